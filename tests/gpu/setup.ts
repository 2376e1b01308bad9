/**
 * Runs before every GPU test file (vite.config.ts, project "gpu"). Those files share their modules
 * (isolate: false), so a hook registered inside device.ts would run for the first file only: the
 * check lives here, where each file registers it again.
 */
import { afterEach } from 'vitest';
import { gpuErrors } from './device';

// A validation error inside a kernel would otherwise only show up as wrong numbers (or none).
afterEach(() => {
  if (gpuErrors.length) throw new Error(`WebGPU reported errors: ${gpuErrors.splice(0).join('\n')}`);
});
