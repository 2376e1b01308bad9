/** The three latent-attention steps around encodeAttention (shaders/mla.wgsl explains the algebra). */
import { dispatch, grid1d } from '../gpu/buffers';
import type { Kernels } from '../gpu/kernels';
import type { MlaSpec } from '../model/spec';
import type { GpuRopeTable } from './rope';

/** Widest latent and no-rope query part the kernels hold in workgroup memory. */
export const MAX_MLA_VECTOR = 1024;
/** Output columns per workgroup of the query and value kernels (Q_COLS, V_COLS in mla.wgsl). */
const Q_COLS = 64;
const V_COLS = 16;

interface MlaCommon {
  mla: MlaSpec;
  heads: number;
  tokens: number;
  /** Position of the first token. */
  start: number;
  table: GpuRopeTable;
}

function params(k: Kernels, a: Omit<MlaCommon, 'table'>, eps = 0): GPUBuffer {
  const m = a.mla;
  if (m.kvLoraRank > MAX_MLA_VECTOR || m.nopeDim > MAX_MLA_VECTOR) throw new Error(`kv_lora_rank ${m.kvLoraRank} / qk_nope_head_dim ${m.nopeDim}: at most ${MAX_MLA_VECTOR} are supported`);
  return k.uniform([
    { u32: a.tokens }, { u32: a.heads }, { u32: m.kvLoraRank }, { u32: m.ropeDim },
    { u32: m.nopeDim }, { u32: m.vDim }, { u32: a.start }, { f32: eps },
  ], [6]); // the position changes every step
}

function checkPositions(a: MlaCommon): void {
  if (a.start + a.tokens > a.table.positions) throw new Error(`Position ${a.start + a.tokens - 1} is past the model's ${a.table.positions} positions`);
}

/** kv_a output [T, L+R] → cache rows start … start+T−1: [RMSNorm(c) · norm | RoPE(k_rope)]. */
export function encodeMlaCache(k: Kernels, enc: GPUCommandEncoder, a: MlaCommon & { kvA: GPUBuffer; norm: GPUBuffer; eps: number; cache: GPUBuffer }): void {
  checkPositions(a);
  dispatch(k.device, k.pipelines.get('mla.wgsl', 'kv'), [params(k, a, a.eps), a.kvA, a.norm, a.cache, a.table.cos, a.table.sin], grid1d(a.tokens), enc);
}

/** q [T, H·(dn+R)] → attention queries [T, H, L+R] against the cache rows. */
export function encodeMlaQuery(k: Kernels, enc: GPUCommandEncoder, a: MlaCommon & { q: GPUBuffer; kvB: GPUBuffer; out: GPUBuffer }): void {
  checkPositions(a);
  dispatch(k.device, k.pipelines.get('mla.wgsl', 'query'), [params(k, a), a.q, a.kvB, a.out, a.table.cos, a.table.sin], [a.heads, Math.ceil(a.mla.kvLoraRank / Q_COLS), a.tokens], enc);
}

/** Attention over c [T, H, L] → head values [T, H·dv] (the o-projection's input). */
export function encodeMlaValue(k: Kernels, enc: GPUCommandEncoder, a: Omit<MlaCommon, 'table'> & { attn: GPUBuffer; kvB: GPUBuffer; out: GPUBuffer }): void {
  dispatch(k.device, k.pipelines.get('mla.wgsl', 'value'), [params(k, a), a.attn, a.kvB, a.out, null, null], [a.heads, Math.ceil(a.mla.vDim / V_COLS), a.tokens], enc);
}
