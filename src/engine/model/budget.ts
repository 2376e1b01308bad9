/**
 * Does a checkpoint fit this device? Decided before the first byte is uploaded, from the shapes
 * alone: every buffer it needs (weights in the chosen format, KV cache, the largest scratch buffers)
 * against the adapter's per-buffer limits, and the whole against the memory the device reports,
 * when it reports any. A refusal says how big the model is and which weight format would fit.
 */
import type { FileBlockPlan } from '../io/gguf-file-blocks';
import type { WeightFormat } from '../quant/pack';
import type { ModelSpec, WeightSlot } from './spec';
import { attentionKeyDim, kvBytesPerToken } from './shapes';
import { storedSlotBytes } from './weights';

export interface StorageChoice {
  format: WeightFormat;
  group: number;
  /** GGUF: the slots kept as the file's blocks (model/weights.ts fileBlockPlan); `format` is for the rest. */
  kept?: FileBlockPlan;
}

export interface DeviceBudget {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
  /**
   * Most bytes the device can hold at all, where something says so (WebGPU itself reports no
   * memory size); null: only the per-buffer limits are known.
   */
  memoryBytes: number | null;
  /** Where memoryBytes came from, for the message. */
  memoryNote?: string;
}

export interface Footprint {
  choice: StorageChoice;
  weights: number;
  /** KV cache and the forward pass's largest scratch buffers. */
  runtime: number;
  total: number;
  /** The largest single buffer: a weight, the KV cache of one layer, or the logits scratch. */
  largest: { what: string; bytes: number };
}

/** Formats tried, smallest last, when proposing one that fits. */
export const CHOICES: readonly StorageChoice[] = [
  { format: 'f32', group: 32 },
  { format: 'int8', group: 32 },
  { format: 'int8', group: 128 },
  { format: 'int4', group: 32 },
  { format: 'int4', group: 128 },
];

export function describeChoice(c: StorageChoice): string {
  const rest = c.format === 'f32' ? 'f32' : `${c.format} (group ${c.group})`;
  return c.kept ? `the GGUF file's own formats (others ${rest})` : rest;
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${(n / 2 ** 10).toFixed(0)} KiB`;
}

/**
 * Bytes on the GPU for `spec` stored as `choice` with a KV cache of `contextLength` positions and
 * forward chunks of up to `chunkTokens` (model.ts's default 256). Scratch is estimated from its
 * largest members (logits, hidden states, expert activations); the weights are exact.
 */
export function footprint(spec: ModelSpec, slots: WeightSlot[], choice: StorageChoice, contextLength: number, chunkTokens = 256): Footprint {
  let weights = 0;
  let largest = { what: '', bytes: 0 };
  for (const slot of slots) {
    const b = storedSlotBytes(spec, slot, choice.format, choice.group, choice.kept);
    weights += b.total;
    if (b.largest > largest.bytes) largest = { what: `weight ${slot.name}`, bytes: b.largest };
  }
  const ctx = Math.min(contextLength, spec.maxPositions);
  const T = Math.min(chunkTokens, ctx);
  // One layer's cache buffer: a key (or value) cache, or the latent cache row [c | k_rope].
  const kvTotal = ctx * kvBytesPerToken(spec);
  const kvLayer = spec.mla ? kvTotal / spec.numLayers : kvTotal / spec.numLayers / 2;
  const logits = T * spec.vocabSize * 4;
  const K = spec.moe.topK;
  const hidden = T * (8 * spec.hiddenSize + 4 * spec.numHeads * Math.max(spec.headDim, attentionKeyDim(spec)) + 2 * spec.moe.numExperts) * 4;
  const experts = T * K * (3 * spec.moe.intermediateSize + spec.hiddenSize) * 4;
  const runtime = kvTotal + logits + hidden + experts;
  if (kvLayer > largest.bytes) largest = { what: spec.mla ? 'the latent KV cache of one layer' : 'the KV cache of one layer', bytes: kvLayer };
  if (logits > largest.bytes) largest = { what: `the logits of a ${T}-token chunk`, bytes: logits };
  return { choice, weights, runtime, total: weights + runtime, largest };
}

/** Why `f` cannot be held on `budget`, or null when it fits. */
export function whyNot(f: Footprint, budget: DeviceBudget): string | null {
  const perBuffer = Math.min(budget.maxBufferSize, budget.maxStorageBufferBindingSize);
  if (f.largest.bytes > perBuffer) {
    return `its largest buffer (${f.largest.what}) is ${formatBytes(f.largest.bytes)}, over this adapter's limit of ${formatBytes(perBuffer)} per buffer`;
  }
  if (budget.memoryBytes !== null && f.total > budget.memoryBytes) {
    return `that is more than the ${formatBytes(budget.memoryBytes)} this device has${budget.memoryNote ? ` (${budget.memoryNote})` : ''}`;
  }
  return null;
}

export class CheckpointTooBigError extends Error {
  constructor(
    message: string,
    /** The smallest format that fits, if any. */
    readonly fits: StorageChoice | null,
  ) {
    super(message);
    this.name = 'CheckpointTooBigError';
  }
}

/** Throws CheckpointTooBigError naming the size, the limit it breaks and a format that fits. */
export function checkFits(spec: ModelSpec, slots: WeightSlot[], choice: StorageChoice, budget: DeviceBudget, contextLength: number, chunkTokens?: number): Footprint {
  const f = footprint(spec, slots, choice, contextLength, chunkTokens);
  const why = whyNot(f, budget);
  if (!why) return f;
  const head = `This checkpoint needs ${formatBytes(f.total)} on the GPU as ${describeChoice(choice)} (weights ${formatBytes(f.weights)}, KV cache and working buffers ${formatBytes(f.runtime)}): ${why}.`;
  const others = CHOICES.filter((c) => c.format !== choice.format || c.group !== choice.group || choice.kept).map((c) => footprint(spec, slots, c, contextLength, chunkTokens));
  const ok = others.filter((o) => !whyNot(o, budget)).sort((a, b) => b.total - a.total);
  if (ok.length) {
    const best = ok[0]!;
    return fail(`${head} As ${describeChoice(best.choice)} it needs ${formatBytes(best.total)} and fits: choose it under "weights" and load again. Nothing was uploaded.`, best.choice);
  }
  const smallest = others.sort((a, b) => a.total - b.total)[0];
  return fail(`${head} Even as ${describeChoice(smallest?.choice ?? choice)} it would need ${formatBytes(smallest?.total ?? f.total)}, so no weight format fits this device. Nothing was uploaded.`, null);
}

function fail(message: string, fits: StorageChoice | null): never {
  throw new CheckpointTooBigError(message, fits);
}
