import { dispatch, grid1d } from '../../gpu/buffers';
import type { Kernels } from '../../gpu/kernels';

/** Records d(gate_up)[rows, 2I] of out = silu(gate)·up (gate half first) from dout [rows, I]. */
export function encodeSwiGluBackward(k: Kernels, enc: GPUCommandEncoder, a: { gateUp: GPUBuffer; dout: GPUBuffer; dGateUp: GPUBuffer; rows: number; inter: number }): void {
  const params = k.uniform([{ u32: a.rows }, { u32: a.inter }, { u32: 0 }, { u32: 0 }]);
  dispatch(k.device, k.pipelines.get('bwd_swiglu.wgsl'), [params, a.gateUp, a.dout, a.dGateUp], grid1d(Math.ceil((a.rows * a.inter) / 256)), enc);
}
