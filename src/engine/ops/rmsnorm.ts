import { dispatch, grid1d } from '../gpu/buffers';
import type { Kernels } from '../gpu/kernels';

export interface RmsNormArgs {
  x: GPUBuffer;
  weight: GPUBuffer;
  y: GPUBuffer;
  rows: number;
  dim: number;
  eps: number;
}

/** Records y = RMSNorm(x) · weight over `rows` rows of `dim`. */
export function encodeRmsNorm(k: Kernels, enc: GPUCommandEncoder, a: RmsNormArgs): void {
  const params = k.uniform([{ u32: a.rows }, { u32: a.dim }, { f32: a.eps }, { u32: 0 }]);
  dispatch(k.device, k.pipelines.get('rmsnorm.wgsl'), [params, a.x, a.weight, a.y], grid1d(a.rows), enc);
}

/** Records h += alpha · y, then x = RMSNorm(h) · weight, row by row in one dispatch. */
export function encodeAddRmsNorm(k: Kernels, enc: GPUCommandEncoder, a: { h: GPUBuffer; y: GPUBuffer; alpha: number; weight: GPUBuffer; x: GPUBuffer; rows: number; dim: number; eps: number }): void {
  const params = k.uniform([{ u32: a.rows }, { u32: a.dim }, { f32: a.eps }, { f32: a.alpha }]);
  dispatch(k.device, k.pipelines.get('add_rmsnorm.wgsl'), [params, a.h, a.y, a.weight, a.x], grid1d(a.rows), enc);
}
