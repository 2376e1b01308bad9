/**
 * The WebGPU device for GPU tests: Dawn in Node on SwiftShader (or a real GPU when
 * VK_ICD_FILENAMES says so). When no adapter is found this THROWS, so every GPU test fails loudly
 * instead of being skipped: a kernel test that cannot run must not look green.
 */
import { createKernels, kernelsFor, type Kernels } from '../../src/engine/gpu/kernels';
import { acquireNodeDevice } from '../../src/engine/gpu/node';

let ctx: ReturnType<typeof acquireNodeDevice> | undefined;
/** Validation errors the device reported; tests/gpu/setup.ts fails the test they happened in. */
export const gpuErrors: string[] = [];

/** Kernels on the test device; `profile` forces the GPU or software kernel variants (default: the adapter's). */
const cache = new Map<string, Kernels>();
export async function gpuKernels(profile?: Kernels['profile']): Promise<Kernels> {
  ctx ??= acquireNodeDevice({ onUncapturedError: (m) => gpuErrors.push(m) });
  const c = await ctx;
  const key = profile ?? 'adapter';
  let k = cache.get(key);
  if (!k) cache.set(key, (k = profile ? createKernels(c.device, profile) : kernelsFor(c)));
  return k;
}
