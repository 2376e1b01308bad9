import { createUniform, writeUniform } from './buffers';
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
   * records dozens of dispatches whose parameters repeat from step to step. Words listed in
   * `dynamic` (the position, which changes every step) do not make a new buffer: the one buffer
   * for the other words is rewritten (queue.writeBuffer, ordered after earlier submits), so its
   * bind groups stay cached too. Every use of such a buffer inside one command encoder must carry
   * the same values — true of a forward pass, where all layers see the same position.
   */
  uniform(words: readonly UniformWord[], dynamic?: readonly number[]): GPUBuffer;
}

/**
 * Most uniform blocks a Kernels keeps. Their keys include positions and router knobs (noise seed,
 * temperature…), so live router tuning makes new ones without end: past the limit the least
 * recently used half is retired, and destroyed at the next retirement. By then `limit / 2` more
 * blocks have been made, far more than one forward pass records (layers × ops per layer, about
 * 1,400 for a 94-layer model), so the encoder that last used a retired block has been submitted,
 * and destroy() after submit lets that work finish first.
 */
export const UNIFORM_CACHE_LIMIT = 8192;

export function createKernels(device: GPUDevice, profile: Kernels['profile'] = 'gpu', uniformLimit = UNIFORM_CACHE_LIMIT): Kernels {
  // A Map iterates in insertion order: re-inserting on every hit keeps it least recently used first.
  const uniforms = new Map<string, GPUBuffer>();
  let retired: GPUBuffer[] = [];
  const retire = () => {
    for (const b of retired) b.destroy();
    retired = [];
    for (const [key, b] of uniforms) {
      if (uniforms.size <= uniformLimit / 2) break;
      uniforms.delete(key);
      retired.push(b);
    }
  };
  const show = (w: UniformWord) => ('u32' in w ? `u${w.u32}` : 'i32' in w ? `i${w.i32}` : `f${w.f32}`);
  // Rewritable blocks, keyed by their static words; bounded the same way (retired, destroyed one
  // retirement later, after the encoders that used them were submitted).
  const slots = new Map<string, { buf: GPUBuffer; content: string }>();
  let retiredSlots: GPUBuffer[] = [];
  const rewritable = (words: readonly UniformWord[], dynamic: readonly number[]): GPUBuffer => {
    const content = words.map(show).join(',');
    const key = words.map((w, i) => (dynamic.includes(i) ? '*' : show(w))).join(',');
    const slot = slots.get(key);
    if (slot) {
      if (slot.content !== content) {
        writeUniform(device, slot.buf, words);
        slot.content = content;
      }
      return slot.buf;
    }
    if (slots.size + 1 > uniformLimit / 8) {
      for (const b of retiredSlots) b.destroy();
      retiredSlots = [...slots.values()].map((x) => x.buf);
      slots.clear();
    }
    const buf = createUniform(device, words);
    slots.set(key, { buf, content });
    return buf;
  };
  return {
    device,
    profile,
    pipelines: new PipelineCache(device),
    uniform(words, dynamic) {
      if (dynamic?.length) return rewritable(words, dynamic);
      const key = words.map(show).join(',');
      let buf = uniforms.get(key);
      if (buf) {
        uniforms.delete(key);
      } else {
        buf = createUniform(device, words);
        if (uniforms.size + 1 > uniformLimit) retire();
      }
      uniforms.set(key, buf);
      return buf;
    },
  };
}

/** Kernels tuned for the adapter in `ctx` (software adapters get the barrier-free variants). */
export function kernelsFor(ctx: Pick<GpuContext, 'device' | 'info'>): Kernels {
  return createKernels(ctx.device, ctx.info.isSoftware ? 'software' : 'gpu');
}
