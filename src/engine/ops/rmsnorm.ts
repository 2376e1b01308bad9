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
