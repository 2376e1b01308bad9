import { dispatch, grid1d } from '../../gpu/buffers';
import type { Kernels } from '../../gpu/kernels';

/** A strided view of [tokens, heads, headDim]: element (t, h, d) at t·stride + offset + h·headDim + d. */
export interface HeadView {
  buffer: GPUBuffer;
  /** Floats per token; heads·headDim when absent (a plain [T, H, D] tensor). */
  stride?: number;
  /** Floats before head 0 in each token's row; 0 when absent. */
  offset?: number;
}

export interface RopeBackwardArgs {
  /** Gradient of the rotated q or k. */
  dy: HeadView;
  /** Gradient before rotation (a different buffer than dy): e.g. the q or k slice of d(qkv). */
  dx: HeadView;
  /** The forward's cos/sin tables [positions, headDim/2] (uploadRopeTable in src/engine/ops/rope.ts). */
  table: { cos: GPUBuffer; sin: GPUBuffer; positions: number };
  tokens: number;
  heads: number;
  headDim: number;
  /** Position of the first token. */
  start: number;
}

/** Records the RoPE backward (the inverse rotation) from dy into dx. */
export function encodeRopeBackward(k: Kernels, enc: GPUCommandEncoder, a: RopeBackwardArgs): void {
  if (a.start + a.tokens > a.table.positions) throw new Error(`RoPE backward: position ${a.start + a.tokens - 1} is past the table's ${a.table.positions}`);
  if (a.headDim % 2 !== 0) throw new Error(`RoPE backward: head_dim ${a.headDim} is odd`);
  if (a.dy.buffer === a.dx.buffer) throw new Error('RoPE backward: dy and dx must be different buffers');
  const plain = a.heads * a.headDim;
  const params = k.uniform([
    { u32: a.tokens }, { u32: a.heads }, { u32: a.headDim }, { u32: a.start },
    { u32: a.dy.stride ?? plain }, { u32: a.dy.offset ?? 0 }, { u32: a.dx.stride ?? plain }, { u32: a.dx.offset ?? 0 },
  ]);
  const n = a.tokens * a.heads * (a.headDim / 2);
  dispatch(k.device, k.pipelines.get('bwd_rope.wgsl'), [params, a.dy.buffer, a.dx.buffer, a.table.cos, a.table.sin], grid1d(Math.ceil(n / 256)), enc);
}

/**
 * Records a copy of [tokens, heads, headDim] between strided views (the RoPE backward without the
 * rotation): dv into the v slice of d(qkv), or a slice back out.
 */
export function encodeCopyHeads(k: Kernels, enc: GPUCommandEncoder, a: { src: HeadView; dst: HeadView; tokens: number; heads: number; headDim: number }): void {
  if (a.src.buffer === a.dst.buffer) throw new Error('copy heads: src and dst must be different buffers');
  const plain = a.heads * a.headDim;
  const params = k.uniform([
    { u32: a.tokens }, { u32: a.heads }, { u32: a.headDim }, { u32: 0 },
    { u32: a.src.stride ?? plain }, { u32: a.src.offset ?? 0 }, { u32: a.dst.stride ?? plain }, { u32: a.dst.offset ?? 0 },
  ]);
  const n = a.tokens * a.heads * a.headDim;
  dispatch(k.device, k.pipelines.get('bwd_rope.wgsl', 'copy'), [params, a.src.buffer, a.dst.buffer], grid1d(Math.ceil(n / 256)), enc);
}
