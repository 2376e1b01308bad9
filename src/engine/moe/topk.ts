import { dispatch, grid1d } from '../gpu/buffers';
import type { Kernels } from '../gpu/kernels';

/** The most experts one routing kernel handles (its bitmask size). */
export const MAX_EXPERTS = 256;

export interface TopKArgs {
  /** [T, E] router logits. */
  logits: GPUBuffer;
  /** [T, E] softmax scores (written). */
  probs: GPUBuffer;
  /** [T, k] chosen expert ids (written), best first. */
  idx: GPUBuffer;
  /** [T, k] gate weights (written). */
  weights: GPUBuffer;
  tokens: number;
  experts: number;
  k: number;
  renormalize: boolean;
}

/** Records softmax → top-k → optional renormalise for every token. */
export function encodeTopK(kn: Kernels, enc: GPUCommandEncoder, a: TopKArgs): void {
  if (a.experts > MAX_EXPERTS) throw new Error(`Router has ${a.experts} experts; at most ${MAX_EXPERTS} are supported`);
  if (a.k < 1 || a.k > a.experts) throw new Error(`top-k must be between 1 and ${a.experts}, got ${a.k}`);
  const params = kn.uniform([{ u32: a.tokens }, { u32: a.experts }, { u32: a.k }, { u32: a.renormalize ? 1 : 0 }]);
  dispatch(kn.device, kn.pipelines.get('moe_topk.wgsl'), [params, a.logits, a.probs, a.idx, a.weights], grid1d(Math.ceil(a.tokens / 64)), enc);
}
