/**
 * The router's live knobs and the kernel that applies them. Defaults reproduce the checkpoint's
 * own routing exactly; every knob changes the next forward without touching the weights.
 */
import { createStorage, dispatch, grid1d } from '../gpu/buffers';
import type { Kernels } from '../gpu/kernels';
import type { ModelSpec } from '../model/spec';

/** The most experts one routing kernel handles (its bitmask size). */
export const MAX_EXPERTS = 256;
/** The most expert groups (group-limited routing). */
export const MAX_GROUPS = 64;

export interface RouterConfig {
  topK: number;
  scoring: 'softmax' | 'sigmoid';
  /** Router logits are divided by this before scoring. */
  temperature: number;
  /** Std of Gaussian noise added to router logits (0 = none), drawn from `seed`, position and expert. */
  noiseStd: number;
  seed: number;
  /** Renormalise the chosen weights to sum to 1. */
  renormalize: boolean;
  /** Group-limited routing: experts split into nGroup equal groups, the topkGroup best are eligible. */
  nGroup: number;
  topkGroup: number;
  /** A group's value: its best expert, or the sum of its two best (DeepSeek-V3). */
  groupScore: 'max' | 'top2sum';
  /**
   * Per-expert bias added to the selection score only (not to the gate weight); null = none. It adds
   * to a checkpoint's own per-layer bias (DeepSeek-V3's e_score_correction_bias), which stays on.
   */
  bias: number[] | null;
  /** Ablated experts: never chosen. */
  disabled: number[];
  /** Each expert takes at most ceil(cf · T · k / E) tokens per forward, in token order; 0 = no limit. */
  capacityFactor: number;
  /** Gate weights are multiplied by this (DeepSeek's routed_scaling_factor). */
  routedScale: number;
}

/** The checkpoint's own routing (DeepSeek's scoring, groups and scale come from its config). */
export function defaultRouter(spec: ModelSpec): RouterConfig {
  const m = spec.moe;
  return {
    topK: m.topK,
    scoring: m.scoring ?? 'softmax',
    temperature: 1,
    noiseStd: 0,
    seed: 0,
    renormalize: m.normTopkProb,
    nGroup: m.nGroup ?? 1,
    topkGroup: m.topkGroup ?? 1,
    groupScore: m.groupScore ?? 'max',
    bias: null,
    disabled: [],
    capacityFactor: 0,
    routedScale: m.routedScale ?? 1,
  };
}

/** Throws a RangeError naming the first knob that is out of range for `numExperts`. */
export function validateRouter(r: RouterConfig, numExperts: number): void {
  const bad = (field: string, why: string) => {
    throw new RangeError(`Router setting ${field}: ${why}`);
  };
  if (numExperts > MAX_EXPERTS) bad('experts', `${numExperts} experts; at most ${MAX_EXPERTS} are supported`);
  if (!Number.isInteger(r.topK) || r.topK < 1 || r.topK > numExperts) bad('topK', `must be a whole number from 1 to ${numExperts}, got ${r.topK}`);
  if (!(r.temperature > 0 && r.temperature <= 100)) bad('temperature', `must be in (0, 100], got ${r.temperature}`);
  if (!(r.noiseStd >= 0 && r.noiseStd <= 100)) bad('noiseStd', `must be in [0, 100], got ${r.noiseStd}`);
  if (!Number.isInteger(r.seed) || r.seed < 0 || r.seed > 0xffffffff) bad('seed', `must be a 32-bit whole number, got ${r.seed}`);
  if (!Number.isInteger(r.nGroup) || r.nGroup < 1 || r.nGroup > MAX_GROUPS || numExperts % r.nGroup !== 0) {
    bad('nGroup', `must divide the ${numExperts} experts evenly (at most ${MAX_GROUPS} groups), got ${r.nGroup}`);
  }
  if (!Number.isInteger(r.topkGroup) || r.topkGroup < 1 || r.topkGroup > r.nGroup) bad('topkGroup', `must be from 1 to nGroup (${r.nGroup}), got ${r.topkGroup}`);
  if (r.bias && (r.bias.length !== numExperts || r.bias.some((b) => !Number.isFinite(b) || Math.abs(b) > 1e3))) {
    bad('bias', `needs ${numExperts} finite values within ±1000`);
  }
  if (r.disabled.some((e) => !Number.isInteger(e) || e < 0 || e >= numExperts)) bad('disabled', `expert ids must be in 0 … ${numExperts - 1}`);
  if (!(r.capacityFactor >= 0 && r.capacityFactor <= 64)) bad('capacityFactor', `must be in [0, 64], got ${r.capacityFactor}`);
  if (!(r.routedScale > 0 && r.routedScale <= 100)) bad('routedScale', `must be in (0, 100], got ${r.routedScale}`);
}

/** Tokens one expert may take in a forward of T tokens, or 0 for no limit. */
export function expertCapacity(r: RouterConfig, tokens: number, numExperts: number): number {
  return r.capacityFactor > 0 ? Math.max(1, Math.ceil((r.capacityFactor * tokens * r.topK) / numExperts)) : 0;
}

/** The router's per-expert tables on the GPU (bias, enabled mask), rewritten when the knobs change. */
export interface RouterTables {
  bias: GPUBuffer;
  enabled: GPUBuffer;
}

export function createRouterTables(device: GPUDevice, numExperts: number): RouterTables {
  return { bias: createStorage(device, numExperts * 4, 'router-bias'), enabled: createStorage(device, numExperts * 4, 'router-enabled') };
}

export function writeRouterTables(device: GPUDevice, t: RouterTables, r: RouterConfig, numExperts: number): void {
  device.queue.writeBuffer(t.bias, 0, Float32Array.from(r.bias ?? new Array<number>(numExperts).fill(0)));
  const on = new Uint32Array(numExperts).fill(1);
  for (const e of r.disabled) on[e] = 0;
  device.queue.writeBuffer(t.enabled, 0, on);
}

export interface RouteArgs {
  logits: GPUBuffer;
  tables: RouterTables;
  /** This layer's own selection bias from the checkpoint (DeepSeek-V3), if it has one. */
  layerBias?: GPUBuffer;
  probs: GPUBuffer;
  idx: GPUBuffer;
  weights: GPUBuffer;
  tokens: number;
  experts: number;
  /** Position of the first token (seeds the noise so a token gets the same noise whatever the chunking). */
  position: number;
  router: RouterConfig;
  /**
   * One token only: also write the expert plan encodeExperts needs into this scratch (then pass
   * `planned: true` there), saving moe_plan's dispatch on every decode step. Not the per-expert
   * counts. Needs FUSED_STORAGE_BUFFERS storage buffers per stage (fusedKernelsFit).
   */
  plan?: { sorted: GPUBuffer; slotPos: GPUBuffer; tiles: GPUBuffer; maxTiles: number };
}

/**
 * Storage buffers moe_route's main_plan (routing + plan for a decode step) binds. WebGPU guarantees 8; Dawn in Node offers 12 here, Chrome on
 * SwiftShader 8: below this the engine runs the separate kernels instead.
 */
export const FUSED_STORAGE_BUFFERS = 10;

export function fusedKernelsFit(device: GPUDevice): boolean {
  return device.limits.maxStorageBuffersPerShaderStage >= FUSED_STORAGE_BUFFERS;
}

/** Records routing for every token: idx/weights [T, k] best first, scores in probs [T, E]. */
export function encodeRoute(k: Kernels, enc: GPUCommandEncoder, a: RouteArgs): void {
  const r = a.router;
  const flags = (r.renormalize ? 1 : 0) | (r.scoring === 'sigmoid' ? 2 : 0) | (r.groupScore === 'top2sum' ? 4 : 0) | (r.bias ? 8 : 0) | (r.disabled.length ? 16 : 0) | (a.layerBias ? 32 : 0);
  const params = k.uniform([
    { u32: a.tokens }, { u32: a.experts }, { u32: r.topK }, { u32: flags },
    { f32: r.temperature }, { f32: r.noiseStd }, { u32: r.seed }, { u32: a.position },
    { u32: r.nGroup }, { u32: r.topkGroup }, { f32: r.routedScale }, { u32: a.plan?.maxTiles ?? 0 },
  ], [7]); // the position changes every step
  // Without a layer bias the knob's table stands in (unread; both are read-only, so sharing is allowed).
  const common = [params, a.logits, a.tables.bias, a.tables.enabled, a.probs, a.idx, a.weights, a.layerBias ?? a.tables.bias];
  if (a.plan) {
    if (a.tokens !== 1) throw new Error(`routing with its plan takes one token, got ${a.tokens}`);
    const pl = a.plan;
    dispatch(k.device, k.pipelines.get('moe_route.wgsl', 'main_plan'), [...common, pl.sorted, pl.slotPos, pl.tiles], [1], enc);
  } else dispatch(k.device, k.pipelines.get('moe_route.wgsl'), common, grid1d(a.tokens), enc);
}
