// `npm run fuzz`: one file per parser (vitest runs them on all cores), FUZZ_RUNS cases each, no GPU.
import { defineConfig } from 'vitest/config';
import base from '../../vite.config';

export default defineConfig({ ...base, test: { ...base.test, include: ['tests/fuzz/*.fuzz.ts'], testTimeout: 3_600_000 } });
