// `npm run fuzz`: one file per parser (vitest runs them on all cores), FUZZ_RUNS cases each, no GPU.
import { defineConfig } from 'vitest/config';
import base from '../../vite.config';

// The main config's projects (unit, gpu) would replace this include: the fuzz run is one project of its own.
const { projects: _projects, ...test } = base.test ?? {};
export default defineConfig({ ...base, test: { ...test, include: ['tests/fuzz/*.fuzz.ts'], testTimeout: 3_600_000 } });
