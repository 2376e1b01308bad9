/**
 * Routed experts on the GPU with no CPU loop over experts and no read-back: plan (group slots by
 * expert) → grouped gate/up matmul (gathering token rows) → SwiGLU → grouped down matmul →
 * weighted combine (+ shared expert).
 */
import { createStorage, dispatch, grid1d } from '../gpu/buffers';
import type { Kernels } from '../gpu/kernels';
import { encodeSwiGlu } from '../ops/elementwise';
import { asWeight, type GpuWeight, weightDefines, weightExtras } from '../quant/weight';

export const GROUP_TILE = 64;
/** Up to this many routed slots (tokens × k) the experts run as matrix-vector products. */
export const GEMV_MAX_SLOTS = 16;

/** Upper bound on tiles: Σ_e ceil(c_e / BM) ≤ S / BM + E. */
export function maxTiles(slots: number, experts: number): number {
  return Math.ceil(slots / GROUP_TILE) + experts;
}

/** GPU scratch for one MoE layer call with up to `slots` = T·k routed slots. */
export interface MoeScratch {
  slots: number;
  experts: number;
  sorted: GPUBuffer;
  slotPos: GPUBuffer;
  tiles: GPUBuffer;
  /** [E] tokens routed to each expert in the last call. */
  counts: GPUBuffer;
  gateUp: GPUBuffer;
  act: GPUBuffer;
  down: GPUBuffer;
}

export function createMoeScratch(device: GPUDevice, slots: number, experts: number, hidden: number, inter: number): MoeScratch {
  return {
    slots,
    experts,
    sorted: createStorage(device, slots * 4, 'moe-sorted'),
    slotPos: createStorage(device, slots * 4, 'moe-slot-pos'),
    tiles: createStorage(device, maxTiles(slots, experts) * 16, 'moe-tiles'),
    counts: createStorage(device, experts * 4, 'moe-counts'),
    gateUp: createStorage(device, slots * 2 * inter * 4, 'moe-gate-up'),
    act: createStorage(device, slots * inter * 4, 'moe-act'),
    down: createStorage(device, slots * hidden * 4, 'moe-down'),
  };
}

export function destroyMoeScratch(s: MoeScratch): void {
  for (const b of [s.sorted, s.slotPos, s.tiles, s.counts, s.gateUp, s.act, s.down]) b.destroy();
}

export interface ExpertsArgs {
  /** [T, H] normed hidden state. */
  x: GPUBuffer;
  /** [T, k] chosen experts and their gate weights (from the router). */
  idx: GPUBuffer;
  gates: GPUBuffer;
  /** [E, 2I, H] and [E, H, I], f32 or quantised. */
  wGateUp: GPUBuffer | GpuWeight;
  wDown: GPUBuffer | GpuWeight;
  /** Optional shared-expert output [T, H] and its gate logits [T] (sigmoid-gated when given). */
  shared?: { out: GPUBuffer; gateLogits?: GPUBuffer };
  /** [T, H] result. */
  out: GPUBuffer;
  tokens: number;
  topk: number;
  experts: number;
  hidden: number;
  inter: number;
  /** Most tokens an expert takes (later ones are dropped); 0 = no limit. */
  capacity: number;
  scratch: MoeScratch;
  /** Also copy idx and gates (T·k words each, in that order) into `buffer` from word `offset`. */
  capture?: { buffer: GPUBuffer; offset: number };
  /**
   * Training hook: always write the SwiGLU activations to `scratch.act` (the few-slot vectorised
   * kernel otherwise applies SwiGLU while reading gate/up and never stores them), because the
   * backward of the down projection needs them (src/engine/train/graph.ts).
   */
  keepActivations?: boolean;
  /** The routing kernel already wrote the plan into `scratch` (encodeRoute's `plan`, one token). */
  planned?: boolean;
}

/** Records the routed-expert FFN for T tokens. */
export function encodeExperts(k: Kernels, enc: GPUCommandEncoder, a: ExpertsArgs): void {
  const slots = a.tokens * a.topk;
  const s = a.scratch;
  if (slots > s.slots || a.experts !== s.experts) throw new Error(`MoE scratch holds ${s.slots} slots / ${s.experts} experts; needed ${slots} / ${a.experts}`);
  if (a.experts > 256) throw new Error(`${a.experts} experts: at most 256 are supported`);
  const tiles = maxTiles(slots, a.experts);

  if (!a.planned) {
    const plan = k.uniform([{ u32: slots }, { u32: a.experts }, { u32: GROUP_TILE }, { u32: tiles }, { u32: a.capacity }, { u32: 0 }, { u32: 0 }, { u32: 0 }]);
    dispatch(k.device, k.pipelines.get('moe_plan.wgsl'), [plan, a.idx, s.sorted, s.slotPos, s.tiles, s.counts], [1], enc);
  }

  // Few slots (decode): per-row dot products; many (prefill): 64×64 register-tiled GEMM.
  const gemv = slots <= GEMV_MAX_SLOTS;
  // The plan writes the used tiles first; with ≤ GROUP_TILE slots each expert fills at most one,
  // so `slots` workgroup rows cover them all and the other E − k tiles are not even launched.
  const [ty, tz] = grid1d(gemv ? Math.min(tiles, slots) : tiles);
  const shader = gemv ? 'matmul_grouped_gemv.wgsl' : 'matmul_grouped.wgsl';
  // Output columns per workgroup: 32 for main8 (8 warps × 4), 8 for main (8 warps × 1), 64 otherwise.
  const vec8 = a.hidden % 8 === 0 && a.inter % 8 === 0;
  const colsPerGroup = !gemv || k.profile === 'software' ? 64 : vec8 ? 32 : 8;
  const entry = !gemv ? 'main' : k.profile === 'software' ? 'per_column' : vec8 ? 'main8' : 'main';
  const up = k.uniform([{ u32: 2 * a.inter }, { u32: a.hidden }, { u32: a.topk }, { u32: tiles }]);
  const wgu = asWeight(a.wGateUp);
  const wdn = asWeight(a.wDown);
  const swigluDefine: Record<string, number> = shader === 'matmul_grouped_gemv.wgsl' ? { SWIGLU: 0 } : {};
  dispatch(k.device, k.pipelines.get(shader, entry, { GATHER: 1, ...swigluDefine, ...weightDefines(wgu, 4, 6) }), [up, s.tiles, s.sorted, a.x, wgu.buffer, s.gateUp, ...weightExtras(wgu)], [Math.ceil((2 * a.inter) / colsPerGroup), ty, tz], enc);

  // The vectorised few-slot kernel applies SwiGLU as it reads the gate/up rows; the others need it done first.
  const fused = entry === 'main8' && !a.keepActivations;
  if (!fused) encodeSwiGlu(k, enc, { gateUp: s.gateUp, out: s.act, rows: slots, inter: a.inter });

  const down = k.uniform([{ u32: a.hidden }, { u32: a.inter }, { u32: a.topk }, { u32: tiles }]);
  const downDefines: Record<string, string | number> = { GATHER: 0, ...(shader === 'matmul_grouped_gemv.wgsl' ? { SWIGLU: fused ? 1 : 0 } : {}), ...weightDefines(wdn, 4, 6) };
  dispatch(k.device, k.pipelines.get(shader, entry, downDefines), [down, s.tiles, s.sorted, fused ? s.gateUp : s.act, wdn.buffer, s.down, ...weightExtras(wdn)], [Math.ceil(a.hidden / colsPerGroup), ty, tz], enc);

  const mode = a.shared ? (a.shared.gateLogits ? 2 : 1) : 0;
  const cap = a.capture;
  const comb = k.uniform([{ u32: a.tokens }, { u32: a.hidden }, { u32: a.topk }, { u32: mode }, { u32: cap ? 1 : 0 }, { u32: cap?.offset ?? 0 }, { u32: 0 }, { u32: 0 }]);
  const sharedOut = a.shared?.out ?? s.down; // bound but unread when mode is 0
  const sharedGate = a.shared?.gateLogits ?? s.counts;
  const threads = a.tokens * Math.max(a.hidden, a.topk);
  dispatch(k.device, k.pipelines.get('moe_combine.wgsl'), [comb, a.gates, s.slotPos, s.down, sharedOut, sharedGate, a.out, a.idx, cap?.buffer ?? s.tiles], grid1d(Math.ceil(threads / 256)), enc);
}
