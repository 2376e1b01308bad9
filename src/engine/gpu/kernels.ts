import { createUniform } from './buffers';
import type { GpuContext } from './device';
import { PipelineCache } from './pipelines';

export type UniformWord = { u32: number } | { f32: number } | { i32: number };

/** What every op needs: the device, its compiled pipelines and its parameter blocks. */
export interface Kernels {
  device: GPUDevice;
  pipelines: PipelineCache;
  /**
   * 'software' (SwiftShader: invocations run on CPU cores, barriers are costly) picks kernel
   * variants without workgroup reductions for matrix-vector work.
   */
  profile: 'gpu' | 'software';
  /**
   * A uniform buffer holding `words`, made once per distinct content and reused: a decode step
   * records dozens of dispatches whose parameters repeat from step to step.
   */
  uniform(words: readonly UniformWord[]): GPUBuffer;
}

export function createKernels(device: GPUDevice, profile: Kernels['profile'] = 'gpu'): Kernels {
  const uniforms = new Map<string, GPUBuffer>();
  return {
    device,
    profile,
    pipelines: new PipelineCache(device),
    uniform(words) {
      const key = words.map((w) => ('u32' in w ? `u${w.u32}` : 'i32' in w ? `i${w.i32}` : `f${w.f32}`)).join(',');
      let buf = uniforms.get(key);
      if (!buf) uniforms.set(key, (buf = createUniform(device, words)));
      return buf;
    },
  };
}

/** Kernels tuned for the adapter in `ctx` (software adapters get the barrier-free variants). */
export function kernelsFor(ctx: Pick<GpuContext, 'device' | 'info'>): Kernels {
  return createKernels(ctx.device, ctx.info.isSoftware ? 'software' : 'gpu');
}
