import { dispatch, endPass, grid1d } from '../../gpu/buffers';
import type { Kernels } from '../../gpu/kernels';

export interface MoeCombineBackwardArgs {
  /** [T, k] the gate weights the combine used (the router's output). */
  gate: GPUBuffer;
  /** [T, k] u32 row of y each slot went to, 0xffffffff = dropped (the MoE plan's slot_pos). */
  slotPos: GPUBuffer;
  /** [yRows, dim] the experts' outputs, one row per kept slot (grouped by expert). */
  y: GPUBuffer;
  /** [T, dim] gradient of the combined output. */
  dout: GPUBuffer;
  /** [T, k] gradient of the gate weights: the router backward's dGates. */
  dGate: GPUBuffer;
  /** [yRows, dim] gradient of the experts' outputs; cleared first, so padding rows read as 0. */
  dY: GPUBuffer;
  tokens: number;
  topK: number;
  dim: number;
  /** The shared expert, when the model has one: its output and, for Qwen2-MoE, its gate logits. */
  shared?: { out: GPUBuffer; gateLogits?: GPUBuffer; dOut: GPUBuffer; dGateLogits?: GPUBuffer };
}

/** Records the MoE combine backward: gate gradients, expert-output gradients, the shared expert's. */
export function encodeMoeCombineBackward(k: Kernels, enc: GPUCommandEncoder, a: MoeCombineBackwardArgs): void {
  const sh = a.shared;
  if (sh?.gateLogits && !sh.dGateLogits) throw new Error('MoE combine backward: a gated shared expert needs dGateLogits');
  const mode = !sh ? 0 : sh.gateLogits ? 2 : 1;
  const params = k.uniform([{ u32: a.tokens }, { u32: a.dim }, { u32: a.topK }, { u32: mode }]);
  const { device, pipelines } = k;
  endPass(enc);
  enc.clearBuffer(a.dY);
  dispatch(device, pipelines.get('bwd_moe_combine.wgsl', 'grad_gate'), [params, null, a.slotPos, a.y, a.dout, a.dGate], grid1d(a.tokens), enc);
  dispatch(device, pipelines.get('bwd_moe_combine.wgsl', 'grad_y'), [params, a.gate, a.slotPos, null, a.dout, null, a.dY], grid1d(Math.ceil((a.tokens * a.topK * a.dim) / 256)), enc);
  if (sh) {
    // Ungated (mode 1) the shader returns before touching the gate logits or their gradient, but the
    // layout has both bindings (the mode is a runtime value): per-device placeholders fill them.
    const [g, dg] = sh.gateLogits && sh.dGateLogits ? [sh.gateLogits, sh.dGateLogits] : placeholders(device);
    dispatch(device, pipelines.get('bwd_moe_combine.wgsl', 'grad_shared'), [params, null, null, null, a.dout, null, null, sh.out, g, sh.dOut, dg], grid1d(a.tokens), enc);
  }
}

const spare = new WeakMap<GPUDevice, [GPUBuffer, GPUBuffer]>();
function placeholders(device: GPUDevice): [GPUBuffer, GPUBuffer] {
  let p = spare.get(device);
  if (!p) {
    const mk = (label: string) => device.createBuffer({ label, size: 16, usage: GPUBufferUsage.STORAGE });
    spare.set(device, (p = [mk('no-shared-gate'), mk('no-shared-gate-grad')]));
  }
  return p;
}
