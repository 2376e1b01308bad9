import { dispatch, grid1d } from '../../gpu/buffers';
import type { Kernels } from '../../gpu/kernels';
import { asWeight, type GpuWeight, weightDefines, weightExtras } from '../../quant/weight';

/** Which gradient outputs are added to instead of overwritten (gradient accumulation). */
export interface Accumulate {
  dx?: boolean;
  dw?: boolean;
  db?: boolean;
}

export interface LinearBackwardArgs {
  /** [M, N] gradient of the output y = x·Wᵀ + b. */
  dy: GPUBuffer;
  /** [M, K] the forward's input; needed for dw. */
  x?: GPUBuffer;
  /** [N, K] the forward's weight (HF nn.Linear layout), f32 or quantised (a frozen base under LoRA); needed for dx. */
  w?: GPUBuffer | GpuWeight;
  /** [M, K] gradient of x; left out when x needs none (the first layer, a frozen input). */
  dx?: GPUBuffer;
  /** [N, K] gradient of W; left out for a frozen weight. */
  dw?: GPUBuffer;
  /** [N] gradient of the bias. */
  db?: GPUBuffer;
  M: number;
  N: number;
  K: number;
  accumulate?: Accumulate;
}

const TILE = 64;
/** grad_w and grad_b never read W; the module still needs a loader to compile. */
const F32_W = { WFMT: 'f32', GROUP: 1, W_BINDING: 3, S_BINDING: 7 };
const BIAS_COLUMNS = 32;

/** Records the gradients asked for (any of dx, dw, db) of a linear layer into `enc`. */
export function encodeLinearBackward(k: Kernels, enc: GPUCommandEncoder, a: LinearBackwardArgs): void {
  const acc = a.accumulate ?? {};
  const flags = (acc.dx ? 1 : 0) | (acc.dw ? 2 : 0) | (acc.db ? 4 : 0);
  const params = k.uniform([{ u32: a.M }, { u32: a.N }, { u32: a.K }, { u32: flags }]);
  const { device, pipelines } = k;
  if (a.dx) {
    if (!a.w) throw new Error('linear backward: dx needs the weight w');
    const w = asWeight(a.w);
    const pipeline = pipelines.get('bwd_linear.wgsl', 'grad_x', weightDefines(w, 3, 7));
    dispatch(device, pipeline, [params, a.dy, null, w.buffer, a.dx, null, null, ...weightExtras(w)], [Math.ceil(a.K / TILE), Math.ceil(a.M / TILE)], enc);
  }
  if (a.dw) {
    if (!a.x) throw new Error('linear backward: dw needs the input x');
    dispatch(device, pipelines.get('bwd_linear.wgsl', 'grad_w', F32_W), [params, a.dy, a.x, null, null, a.dw], [Math.ceil(a.K / TILE), Math.ceil(a.N / TILE)], enc);
  }
  if (a.db) {
    dispatch(device, pipelines.get('bwd_linear.wgsl', 'grad_b', F32_W), [params, a.dy, null, null, null, null, a.db], grid1d(Math.ceil(a.N / BIAS_COLUMNS)), enc);
  }
}
