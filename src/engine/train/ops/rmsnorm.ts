import { dispatch, grid1d } from '../../gpu/buffers';
import type { Kernels } from '../../gpu/kernels';

export interface RmsNormBackwardArgs {
  /** [rows, dim] the forward's input. */
  x: GPUBuffer;
  /** [dim] the forward's weight. */
  weight: GPUBuffer;
  /** [rows, dim] gradient of the output. */
  dy: GPUBuffer;
  /** [rows, dim] gradient of x. */
  dx: GPUBuffer;
  /** [rows] scratch: each row's 1/rms, written by the dx pass and read by the dweight pass. */
  rstd: GPUBuffer;
  /** [dim] gradient of the weight; left out for a frozen norm. */
  dweight?: GPUBuffer;
  rows: number;
  dim: number;
  eps: number;
  /**
   * Add into dx instead of overwriting (the norm's input is the residual stream, whose gradient
   * already holds the skip connection's share), and into dweight (gradient accumulation).
   */
  accumulate?: { dx?: boolean; dweight?: boolean };
}

/** Records the RMSNorm backward: dx, then (if asked) dweight, reduced over rows without atomics. */
export function encodeRmsNormBackward(k: Kernels, enc: GPUCommandEncoder, a: RmsNormBackwardArgs): void {
  const flags = (a.accumulate?.dx ? 1 : 0) | (a.accumulate?.dweight ? 2 : 0);
  const params = k.uniform([{ u32: a.rows }, { u32: a.dim }, { f32: a.eps }, { u32: flags }]);
  dispatch(k.device, k.pipelines.get('bwd_rmsnorm.wgsl', 'grad_x'), [params, a.x, a.weight, a.dy, a.dx, a.rstd], grid1d(a.rows), enc);
  if (a.dweight) {
    dispatch(k.device, k.pipelines.get('bwd_rmsnorm.wgsl', 'grad_w'), [params, a.x, null, a.dy, null, a.rstd, a.dweight], grid1d(Math.ceil(a.dim / 32)), enc);
  }
}
