/**
 * Backward of the routed experts' grouped matmuls (src/engine/moe/experts.ts) over the MoE plan's
 * rows (shaders/bwd_experts.wgsl), plus the scaled copy the model backward needs
 * (shaders/bwd_scale.wgsl). The forward's plan buffers (sorted, slot_pos, counts) are reused as is.
 */
import { dispatch, grid1d } from '../../gpu/buffers';
import type { Kernels } from '../../gpu/kernels';
import { asWeight, type GpuWeight, weightDefines, weightExtras } from '../../quant/weight';
import { DROPPED } from '../ref';

/** The forward plan of one MoE layer call (MoeScratch's buffers) and its shape. */
export interface ExpertPlan {
  /** [S] slot ids grouped by expert (moe_plan.wgsl). */
  sorted: GPUBuffer;
  /** [S] row each slot went to, or DROPPED. */
  slotPos: GPUBuffer;
  /** [E] rows kept per expert. */
  counts: GPUBuffer;
  /** [T, k] the router's chosen experts. */
  idx: GPUBuffer;
  tokens: number;
  topk: number;
  experts: number;
}

export interface GroupedLinearBackwardArgs {
  plan: ExpertPlan;
  /** [S, N] gradient of the grouped output, rows in the plan's order. */
  dy: GPUBuffer;
  /** [E, N, K] the forward's stacked weights (f32 or quantised); needed for dA. */
  w?: GPUBuffer | GpuWeight;
  /** [S, K] gradient of each row's input (rows past the kept ones are left unwritten). */
  dA?: GPUBuffer;
  /** The forward's input: x [T, K] gathered through sorted (gather: true), or a [S, K] in row order. */
  a?: GPUBuffer;
  gather?: boolean;
  /** [E, N, K] gradient of the stacked weights. */
  dW?: GPUBuffer;
  accumulateDw?: boolean;
  N: number;
  K: number;
}

const F32_W = { WFMT: 'f32', GROUP: 1, W_BINDING: 6, S_BINDING: 8 };

function params(k: Kernels, plan: ExpertPlan, N: number, K: number, accumulate: boolean): GPUBuffer {
  return k.uniform([
    { u32: N }, { u32: K }, { u32: plan.topk }, { u32: plan.tokens * plan.topk },
    { u32: plan.experts }, { u32: accumulate ? 1 : 0 }, { u32: 0 }, { u32: 0 },
  ]);
}

/** Records dA and/or dW of a grouped expert matmul. */
export function encodeGroupedLinearBackward(k: Kernels, enc: GPUCommandEncoder, g: GroupedLinearBackwardArgs): void {
  const { plan } = g;
  const S = plan.tokens * plan.topk;
  if (g.dA) {
    if (!g.w) throw new Error('grouped linear backward: dA needs the weights w');
    const w = asWeight(g.w);
    const pipe = k.pipelines.get('bwd_experts.wgsl', 'grad_x', { GATHER: 0, ...weightDefines(w, 6, 8) });
    const buffers = [params(k, plan, g.N, g.K, false), g.dy, null, plan.sorted, plan.idx, plan.counts, w.buffer, g.dA, ...(w.scales ? weightExtras(w) : [null])];
    dispatch(k.device, pipe, buffers, grid1d(Math.ceil((S * g.K) / 256)), enc);
  }
  if (g.dW) {
    if (!g.a) throw new Error('grouped linear backward: dW needs the input a');
    const pipe = k.pipelines.get('bwd_experts.wgsl', 'grad_w', { GATHER: g.gather ? 1 : 0, ...F32_W });
    dispatch(k.device, pipe, [params(k, plan, g.N, g.K, !!g.accumulateDw), g.dy, g.a, plan.sorted, null, plan.counts, null, g.dW], grid1d(Math.ceil((plan.experts * g.N * g.K) / 256)), enc);
  }
}

/** Records dx[t] (+)= Σ_j dA[slot_pos[t, j]] over the kept slots: the gather's backward. */
export function encodeSlotScatter(k: Kernels, enc: GPUCommandEncoder, a: { plan: ExpertPlan; dA: GPUBuffer; dx: GPUBuffer; dim: number; accumulate?: boolean }): void {
  const pipe = k.pipelines.get('bwd_experts.wgsl', 'scatter', { GATHER: 0, ...F32_W });
  const buffers = [params(k, a.plan, 0, a.dim, !!a.accumulate), a.dA, null, null, null, null, null, a.dx, null, a.plan.slotPos];
  dispatch(k.device, pipe, buffers, grid1d(Math.ceil((a.plan.tokens * a.dim) / 256)), enc);
}

/** Records y (+)= alpha · x over n floats (x and y different buffers). */
export function encodeScaleCopy(k: Kernels, enc: GPUCommandEncoder, a: { x: GPUBuffer; y: GPUBuffer; n: number; alpha: number; accumulate?: boolean }): void {
  if (a.x === a.y) throw new Error('scale copy: x and y must be different buffers');
  const p = k.uniform([{ u32: a.n }, { f32: a.alpha }, { u32: a.accumulate ? 1 : 0 }, { u32: 0 }]);
  dispatch(k.device, k.pipelines.get('bwd_scale.wgsl'), [p, a.x, a.y], grid1d(Math.ceil(a.n / 256)), enc);
}

/**
 * CPU reference of the whole routed-expert backward for one layer, from the forward's routing:
 * y_slot = down_e(swiglu(gate_up_e(x_t))), out_t = Σ_j gate[t, j] · y_(t, j). Given dY [T·k, H] per
 * slot (in slot order, not plan order; 0 for dropped slots) returns dx [T, H], dGateUp [E, 2I, H]
 * and dDown [E, H, I]. Used by the kernel test; the model-level check is against PyTorch.
 */
export function expertsBackwardRef(
  x: Float32Array, idx: Uint32Array, dYslot: Float32Array, wGateUp: Float32Array, wDown: Float32Array,
  T: number, topk: number, E: number, H: number, I: number,
): { dx: Float32Array; dGateUp: Float32Array; dDown: Float32Array } {
  const dx = new Float32Array(T * H), dGateUp = new Float32Array(E * 2 * I * H), dDown = new Float32Array(E * H * I);
  for (let s = 0; s < T * topk; s++) {
    const e = idx[s]!;
    if (e === DROPPED || e >= E) continue;
    const t = Math.floor(s / topk);
    const gu = new Float64Array(2 * I);
    for (let n = 0; n < 2 * I; n++) {
      let acc = 0;
      for (let c = 0; c < H; c++) acc += x[t * H + c]! * wGateUp[(e * 2 * I + n) * H + c]!;
      gu[n] = acc;
    }
    const act = new Float64Array(I), dAct = new Float64Array(I), dGu = new Float64Array(2 * I);
    for (let i = 0; i < I; i++) {
      const g = gu[i]!, sg = 1 / (1 + Math.exp(-g));
      act[i] = g * sg * gu[I + i]!;
    }
    for (let c = 0; c < H; c++) {
      const d = dYslot[s * H + c]!;
      for (let i = 0; i < I; i++) {
        dDown[(e * H + c) * I + i]! += d * act[i]!;
        dAct[i]! += d * wDown[(e * H + c) * I + i]!;
      }
    }
    for (let i = 0; i < I; i++) {
      const g = gu[i]!, u = gu[I + i]!, sg = 1 / (1 + Math.exp(-g));
      dGu[i] = dAct[i]! * u * sg * (1 + g * (1 - sg));
      dGu[I + i] = dAct[i]! * g * sg;
    }
    for (let n = 0; n < 2 * I; n++) {
      for (let c = 0; c < H; c++) {
        dGateUp[(e * 2 * I + n) * H + c]! += dGu[n]! * x[t * H + c]!;
        dx[t * H + c]! += dGu[n]! * wGateUp[(e * 2 * I + n) * H + c]!;
      }
    }
  }
  return { dx, dGateUp, dDown };
}
