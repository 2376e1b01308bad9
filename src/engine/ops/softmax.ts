import { dispatch, grid1d } from '../gpu/buffers';
import type { Kernels } from '../gpu/kernels';

/** Records y = softmax(x) along the last axis of a [rows, cols] tensor. */
export function encodeSoftmax(k: Kernels, enc: GPUCommandEncoder, a: { x: GPUBuffer; y: GPUBuffer; rows: number; cols: number }): void {
  const params = k.uniform([{ u32: a.rows }, { u32: a.cols }, { u32: 0 }, { u32: 0 }]);
  dispatch(k.device, k.pipelines.get('softmax.wgsl'), [params, a.x, a.y], grid1d(a.rows), enc);
}
