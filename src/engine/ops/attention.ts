import { dispatch } from '../gpu/buffers';
import type { Kernels } from '../gpu/kernels';

/** Widest query/key head the kernel takes (DeepSeek's latent attention: kv_lora_rank + rope dims, 576). */
export const MAX_HEAD_DIM = 1024;
/** Widest value head (64 output dims per thread-chunk, at most 8 chunks). */
export const MAX_VALUE_DIM = 512;
/** Keys per online-softmax block in shaders/attention.wgsl; a split covers a whole number of blocks. */
const KEY_BLOCK = 64;
/** Splits are added until about this many workgroups run (an H100 has 132 SMs; 16 heads alone leave most idle). */
const TARGET_WORKGROUPS = 1024;

export interface AttentionArgs {
  /** [T, H, D] queries after norm and RoPE. */
  q: GPUBuffer;
  /** [maxPos, KVH, D] caches already holding positions 0 … start+T−1. */
  kCache: GPUBuffer;
  /** [maxPos, KVH, vStride]: each row's first vDim values are the value (may be kCache itself). */
  vCache: GPUBuffer;
  /** [T, H, vDim]. */
  out: GPUBuffer;
  /** Split partials, at least attentionScratchBytes(tokens, heads, headDim, start + tokens) bytes. */
  scratch: GPUBuffer;
  tokens: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Value width (default headDim) and the row stride of vCache (default vDim). */
  vDim?: number;
  vStride?: number;
  /** Position of the first query token. */
  start: number;
  scale: number;
}

/** How the keys of the longest query are split across workgroups. */
export function attentionPlan(tokens: number, heads: number, keys: number): { splits: number; chunk: number } {
  const wanted = Math.max(1, Math.min(Math.ceil(keys / KEY_BLOCK), Math.ceil(TARGET_WORKGROUPS / (tokens * heads))));
  const chunk = Math.ceil(keys / wanted / KEY_BLOCK) * KEY_BLOCK;
  return { splits: Math.ceil(keys / chunk), chunk };
}

/** Bytes of split partials attention needs for exactly `tokens` queries over at most `maxKeys` keys (`vDim`: the value width). */
export function attentionScratchBytes(tokens: number, heads: number, vDim: number, maxKeys: number): number {
  const { splits } = attentionPlan(tokens, heads, maxKeys);
  return splits > 1 ? tokens * heads * splits * (vDim + 2) * 4 : 4;
}

/** Bytes that serve any call of up to `tokens` queries (fewer queries get more splits each). */
export function attentionScratchBytesUpTo(tokens: number, heads: number, vDim: number, maxKeys: number): number {
  let most = 4;
  for (let t = 1; t <= tokens; t++) most = Math.max(most, attentionScratchBytes(t, heads, vDim, maxKeys));
  return most;
}

/** Records causal GQA attention of T new queries over the cache. */
export function encodeAttention(k: Kernels, enc: GPUCommandEncoder, a: AttentionArgs): void {
  const vDim = a.vDim ?? a.headDim;
  const vStride = a.vStride ?? vDim;
  if (a.headDim > MAX_HEAD_DIM) throw new Error(`head_dim ${a.headDim} is over the supported ${MAX_HEAD_DIM}`);
  if (vDim > MAX_VALUE_DIM || vDim > vStride) throw new Error(`value width ${vDim} (row stride ${vStride}) is not supported: at most ${MAX_VALUE_DIM}`);
  if (a.headDim % 4 !== 0) throw new Error(`head_dim ${a.headDim} is not a multiple of 4, which the attention kernel needs`);
  if (a.heads % a.kvHeads !== 0) throw new Error(`${a.heads} attention heads do not divide into ${a.kvHeads} KV heads`);
  const { splits, chunk } = attentionPlan(a.tokens, a.heads, a.start + a.tokens);
  const need = attentionScratchBytes(a.tokens, a.heads, vDim, a.start + a.tokens);
  if (a.scratch.size < need) throw new Error(`attention scratch holds ${a.scratch.size} bytes; ${need} needed`);
  const params = k.uniform([
    { u32: a.tokens }, { u32: a.heads }, { u32: a.kvHeads }, { u32: a.headDim },
    { u32: a.start }, { f32: a.scale }, { u32: splits }, { u32: chunk },
    { u32: vDim }, { u32: vStride }, { u32: 0 }, { u32: 0 },
  ], [4, 6, 7]); // start, splits and chunk change every step
  const defines = { QV4: Math.max(64, Math.ceil(a.headDim / 4)), DCH: Math.ceil(vDim / 64) };
  dispatch(k.device, k.pipelines.get('attention.wgsl', 'main', defines), [params, a.q, a.kCache, a.vCache, a.out, a.scratch], [splits, a.heads, a.tokens], enc);
  if (splits > 1) dispatch(k.device, k.pipelines.get('attention.wgsl', 'combine', defines), [params, null, null, null, a.out, a.scratch], [a.heads, a.tokens], enc);
}
