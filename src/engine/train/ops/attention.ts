import { dispatch } from '../../gpu/buffers';
import type { Kernels } from '../../gpu/kernels';

/** The most head dimensions the backward handles (one thread per dimension in a 256-wide workgroup). */
export const MAX_BWD_HEAD_DIM = 256;

export interface AttentionBackwardArgs {
  /** [T, H, D] the forward's queries (after norm and RoPE). */
  q: GPUBuffer;
  /** [T, KVH, D] the forward's keys (after norm and RoPE) and values: positions 0 … T−1. */
  k: GPUBuffer;
  v: GPUBuffer;
  /** [T, H, D] the forward's output and its gradient. */
  out: GPUBuffer;
  dout: GPUBuffer;
  /** [T, H, 2] scratch (attentionBackwardStatsFloats): per-row log-sum-exp and dout·out. */
  stats: GPUBuffer;
  /** [T, H, D], [T, KVH, D], [T, KVH, D] gradients, overwritten. */
  dq: GPUBuffer;
  dk: GPUBuffer;
  dv: GPUBuffer;
  tokens: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  scale: number;
}

export function attentionBackwardStatsFloats(tokens: number, heads: number): number {
  return tokens * heads * 2;
}

/**
 * Records the causal GQA attention backward (queries from position 0, as in training on whole
 * sequences): dq first, saving each row's softmax statistics, then dk and dv from them.
 * The work is O(T²·H·D) without tiling: meant for the short sequences of in-tab fine-tuning.
 */
export function encodeAttentionBackward(k: Kernels, enc: GPUCommandEncoder, a: AttentionBackwardArgs): void {
  if (a.headDim > MAX_BWD_HEAD_DIM) throw new Error(`attention backward: head_dim ${a.headDim} is over the supported ${MAX_BWD_HEAD_DIM}`);
  if (a.heads % a.kvHeads !== 0) throw new Error(`attention backward: ${a.heads} heads do not divide into ${a.kvHeads} KV heads`);
  if (a.tokens > 65535 || a.heads > 65535) throw new Error(`attention backward: ${a.tokens} tokens × ${a.heads} heads is past the dispatch limit`);
  const need = attentionBackwardStatsFloats(a.tokens, a.heads) * 4;
  if (a.stats.size < need) throw new Error(`attention backward: stats hold ${a.stats.size} bytes; ${need} needed`);
  const params = k.uniform([{ u32: a.tokens }, { u32: a.heads }, { u32: a.kvHeads }, { u32: a.headDim }, { f32: a.scale }, { u32: 0 }, { u32: 0 }, { u32: 0 }]);
  const { device, pipelines } = k;
  dispatch(device, pipelines.get('bwd_attention.wgsl', 'grad_q'), [params, a.q, a.k, a.v, a.out, a.dout, a.stats, a.dq], [a.heads, a.tokens], enc);
  dispatch(device, pipelines.get('bwd_attention.wgsl', 'grad_kv'), [params, a.q, a.k, a.v, null, a.dout, a.stats, null, a.dk, a.dv], [a.kvHeads, a.tokens], enc);
}
