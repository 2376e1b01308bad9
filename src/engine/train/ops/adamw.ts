import { dispatch, grid1d } from '../../gpu/buffers';
import type { Kernels, UniformWord } from '../../gpu/kernels';
import type { AdamWHyper } from '../ref';

/** A run of `count` f32 gradients starting `offset` floats into `grad`. */
export interface GradSlice {
  grad: GPUBuffer;
  count: number;
  offset?: number;
}

/** Floats of the stats buffer: [grad norm, clip factor, non-finite flag, unused]. */
export const OPTIM_STATS_FLOATS = 4;
/** Workgroups (and so partial sums) one slice gets: enough to fill a GPU, few enough for one finishing workgroup. */
const MAX_GROUPS_PER_SLICE = 256;

function groupsFor(count: number): number {
  return Math.max(1, Math.min(MAX_GROUPS_PER_SLICE, Math.ceil(count / 256)));
}

/** Floats of the partial-sum scratch encodeGradNorm needs for these slices. */
export function gradNormPartialFloats(slices: ReadonlyArray<Pick<GradSlice, 'count'>>): number {
  return slices.reduce((s, x) => s + groupsFor(x.count), 0);
}

/**
 * Records the global 2-norm of every slice's gradients and the clip factor
 * min(1, maxNorm / (norm + 1e-6)) into `stats` (OPTIM_STATS_FLOATS floats); maxNorm ≤ 0: factor 1.
 */
export function encodeGradNorm(k: Kernels, enc: GPUCommandEncoder, a: { slices: ReadonlyArray<GradSlice>; partials: GPUBuffer; stats: GPUBuffer; maxNorm: number }): void {
  const need = gradNormPartialFloats(a.slices) * 4;
  if (a.partials.size < need) throw new Error(`grad norm: partials hold ${a.partials.size} bytes; ${need} needed`);
  const sumsq = k.pipelines.get('adamw.wgsl', 'sumsq');
  let slot = 0;
  for (const s of a.slices) {
    const groups = groupsFor(s.count);
    const params = k.uniform([{ u32: s.count }, { u32: s.offset ?? 0 }, { u32: slot }, { u32: 0 }, ...ZERO_HYPER, { f32: 0 }]);
    dispatch(k.device, sumsq, [params, s.grad, a.partials], [groups], enc);
    slot += groups;
  }
  const params = k.uniform([{ u32: slot }, { u32: 0 }, { u32: 0 }, { u32: 0 }, ...ZERO_HYPER, { f32: a.maxNorm }]);
  dispatch(k.device, k.pipelines.get('adamw.wgsl', 'finish'), [params, null, a.partials, a.stats], [1], enc);
}

const ZERO_HYPER = Array.from({ length: 7 }, () => ({ f32: 0 }));

export interface AdamWStepArgs {
  /** Parameters, their gradients and the two moment buffers: parallel layouts, same offset. */
  param: GPUBuffer;
  grad: GPUBuffer;
  m: GPUBuffer;
  v: GPUBuffer;
  count: number;
  offset?: number;
  hyper: AdamWHyper;
  /** 1-based step number (bias correction). */
  step: number;
  /** encodeGradNorm's stats: the gradients are scaled by its clip factor, and a non-finite norm skips the step. */
  stats?: GPUBuffer;
}

/** The step kernel's parameter block for `a` (12 words; AdamW rewrites its own blocks with these). */
export function adamwStepWords(a: Omit<AdamWStepArgs, 'param' | 'grad' | 'm' | 'v'>): UniformWord[] {
  if (!(Number.isInteger(a.step) && a.step >= 1)) throw new RangeError(`AdamW step must be a whole number ≥ 1, got ${a.step}`);
  const h = a.hyper;
  return [
    { u32: a.count }, { u32: a.offset ?? 0 }, { u32: 0 }, { u32: a.stats ? 1 : 0 },
    { f32: h.lr }, { f32: h.beta1 }, { f32: h.beta2 }, { f32: h.eps },
    { f32: h.weightDecay }, { f32: 1 - h.beta1 ** a.step }, { f32: 1 - h.beta2 ** a.step }, { f32: 0 },
  ];
}

/**
 * Records one AdamW update of a parameter slice. The parameter block comes from `uniform` when
 * given (a buffer the caller rewrote with adamwStepWords: the AdamW class keeps one per parameter),
 * else from the Kernels' cache keyed by every value — lr and the bias corrections included, since a
 * rewritten shared block would give two parameter groups recorded into one encoder the same lr.
 */
export function encodeAdamWStep(k: Kernels, enc: GPUCommandEncoder, a: AdamWStepArgs, uniform?: GPUBuffer): void {
  const params = uniform ?? k.uniform(adamwStepWords(a));
  // Without stats the shader never reads that binding, but the layout has it (the flag is a runtime
  // value), and it is read_write, so no input buffer may stand in: a per-device placeholder does.
  dispatch(k.device, k.pipelines.get('adamw.wgsl', 'step'), [params, a.grad, null, a.stats ?? dummyStats(k.device), a.param, a.m, a.v], grid1d(Math.ceil(a.count / 256)), enc);
}

const dummies = new WeakMap<GPUDevice, GPUBuffer>();
function dummyStats(device: GPUDevice): GPUBuffer {
  let b = dummies.get(device);
  if (!b) dummies.set(device, (b = device.createBuffer({ label: 'no-optim-stats', size: OPTIM_STATS_FLOATS * 4, usage: GPUBufferUsage.STORAGE })));
  return b;
}
