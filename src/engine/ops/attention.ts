import { dispatch } from '../gpu/buffers';
import type { Kernels } from '../gpu/kernels';

export const MAX_HEAD_DIM = 256;

export interface AttentionArgs {
  /** [T, H, D] queries after norm and RoPE. */
  q: GPUBuffer;
  /** [maxPos, KVH, D] caches already holding positions 0 … start+T−1. */
  kCache: GPUBuffer;
  vCache: GPUBuffer;
  /** [T, H, D]. */
  out: GPUBuffer;
  tokens: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Position of the first query token. */
  start: number;
  scale: number;
}

/** Records causal GQA attention of T new queries over the cache. */
export function encodeAttention(k: Kernels, enc: GPUCommandEncoder, a: AttentionArgs): void {
  if (a.headDim > MAX_HEAD_DIM) throw new Error(`head_dim ${a.headDim} is over the supported ${MAX_HEAD_DIM}`);
  if (a.heads % a.kvHeads !== 0) throw new Error(`${a.heads} attention heads do not divide into ${a.kvHeads} KV heads`);
  const params = k.uniform([
    { u32: a.tokens }, { u32: a.heads }, { u32: a.kvHeads }, { u32: a.headDim },
    { u32: a.start }, { f32: a.scale }, { u32: 0 }, { u32: 0 },
  ]);
  dispatch(k.device, k.pipelines.get('attention.wgsl'), [params, a.q, a.kCache, a.vCache, a.out], [a.tokens, a.heads], enc);
}
