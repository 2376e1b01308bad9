import { dispatch, grid1d } from '../gpu/buffers';
import type { Kernels } from '../gpu/kernels';

/** out[r, i] = silu(gu[r, i]) · gu[r, I+i] for rows of [gate | up]. */
export function encodeSwiGlu(k: Kernels, enc: GPUCommandEncoder, a: { gateUp: GPUBuffer; out: GPUBuffer; rows: number; inter: number }): void {
  const params = k.uniform([{ u32: a.rows }, { u32: a.inter }, { u32: 0 }, { u32: 0 }]);
  dispatch(k.device, k.pipelines.get('swiglu.wgsl'), [params, a.gateUp, a.out], grid1d(Math.ceil((a.rows * a.inter) / 256)), enc);
}

/** h += alpha · y over n elements. */
export function encodeAddScaled(k: Kernels, enc: GPUCommandEncoder, a: { h: GPUBuffer; y: GPUBuffer; n: number; alpha: number }): void {
  const params = k.uniform([{ u32: a.n }, { f32: a.alpha }, { u32: 0 }, { u32: 0 }]);
  dispatch(k.device, k.pipelines.get('add.wgsl'), [params, a.h, a.y], grid1d(Math.ceil(a.n / 256)), enc);
}
