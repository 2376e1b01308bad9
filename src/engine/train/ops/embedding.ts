import { dispatch, endPass, grid1d, uploadStorage } from '../../gpu/buffers';
import type { Kernels } from '../../gpu/kernels';

/** The tokens of a batch grouped by id, on the GPU (see shaders/bwd_embedding.wgsl for the layout). */
export interface EmbeddingGradPlan {
  buffer: GPUBuffer;
  /** Distinct ids. */
  segments: number;
  tokens: number;
}

/**
 * Groups token positions by id: [distinct ids | segment starts (S + 1) | positions sorted by id,
 * ascending within an id]. Throws a RangeError for an id outside the vocabulary.
 */
export function embeddingGradPlan(ids: ArrayLike<number>, vocab: number): { data: Uint32Array; segments: number } {
  const T = ids.length;
  for (let t = 0; t < T; t++) {
    const id = ids[t]!;
    if (!(Number.isInteger(id) && id >= 0 && id < vocab)) throw new RangeError(`token id ${id} at position ${t} is outside the vocabulary of ${vocab}`);
  }
  // A stable sort keeps positions ascending within an id, which fixes the summation order.
  const order = Array.from({ length: T }, (_, t) => t).sort((a, b) => ids[a]! - ids[b]! || a - b);
  const segIds: number[] = [];
  const starts: number[] = [];
  order.forEach((t, n) => {
    if (n === 0 || ids[t] !== ids[order[n - 1]!]) {
      segIds.push(ids[t]!);
      starts.push(n);
    }
  });
  starts.push(T);
  const S = segIds.length;
  const data = new Uint32Array(2 * S + 1 + T);
  data.set(segIds, 0);
  data.set(starts, S);
  data.set(order, 2 * S + 1);
  return { data, segments: S };
}

export function uploadEmbeddingGradPlan(device: GPUDevice, ids: ArrayLike<number>, vocab: number): EmbeddingGradPlan {
  const { data, segments } = embeddingGradPlan(ids, vocab);
  return { buffer: uploadStorage(device, data, 'embedding-grad-plan'), segments, tokens: ids.length };
}

export interface EmbeddingBackwardArgs {
  plan: EmbeddingGradPlan;
  /** [T, dim] gradient of the looked-up rows. */
  dout: GPUBuffer;
  /** [vocab, dim] gradient of the table. */
  dTable: GPUBuffer;
  dim: number;
  /** The forward's multiplier (Granite's embedding_multiplier; 1 otherwise). */
  scale: number;
  /** Add to dTable (gradient accumulation, or a table tied to the LM head); otherwise it is cleared first. */
  accumulate?: boolean;
}

/** Records dTable (+)= scatter of dout by token id, without atomics. */
export function encodeEmbeddingBackward(k: Kernels, enc: GPUCommandEncoder, a: EmbeddingBackwardArgs): void {
  if (!a.accumulate) {
    endPass(enc);
    enc.clearBuffer(a.dTable);
  }
  if (a.plan.segments === 0) return;
  const params = k.uniform([{ u32: a.plan.segments }, { u32: a.dim }, { u32: a.plan.tokens }, { f32: a.scale }]);
  dispatch(k.device, k.pipelines.get('bwd_embedding.wgsl'), [params, a.plan.buffer, a.dout, a.dTable], grid1d(a.plan.segments), enc);
}
