// `npm run fuzz`: the fuzz targets with 10⁵ cases each (FUZZ_RUNS overrides), one file, no GPU.
import { defineConfig } from 'vitest/config';
import base from '../../vite.config';

export default defineConfig({ ...base, test: { ...base.test, include: ['tests/unit/fuzz.test.ts'], testTimeout: 3_600_000 } });
