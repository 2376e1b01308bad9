/**
 * The WebGPU device for GPU tests: Dawn in Node on SwiftShader (or a real GPU when
 * VK_ICD_FILENAMES says so). When no adapter is found this THROWS, so every GPU test fails loudly
 * instead of being skipped: a kernel test that cannot run must not look green.
 */
import { afterEach } from 'vitest';
import { createKernels, type Kernels } from '../../src/engine/gpu/kernels';
import { acquireNodeDevice } from '../../src/engine/gpu/node';

let kernels: Promise<Kernels> | undefined;
const errors: string[] = [];

export function gpuKernels(): Promise<Kernels> {
  kernels ??= acquireNodeDevice({ onUncapturedError: (m) => errors.push(m) }).then((ctx) => createKernels(ctx.device));
  return kernels;
}

// A validation error inside a kernel would otherwise only show up as wrong numbers (or none).
afterEach(() => {
  if (errors.length) throw new Error(`WebGPU reported errors: ${errors.splice(0).join('\n')}`);
});
