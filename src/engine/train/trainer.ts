/**
 * The training loop (issue #7): micro-batches of whole sequences through TrainGraph, gradient
 * accumulation, AdamW with clipping by global norm (default 1.0), warmup + cosine schedule,
 * validation every N steps on a held-out split with early stopping (patience 3), balance losses on
 * the router scores, the routing monitor's lr halving, and a per-step event for charts.
 *
 * One optimizer step: for each of `accumulate` sequences, (1) record forward + loss, submit, read
 * back the loss and every MoE layer's routing (probs, idx, counts: T·E floats, small), (2) balance
 * losses on the CPU give dProbs, uploaded, (3) record the backward, submit. Then the AdamW step.
 * The read-back between forward and backward is what lets the balance losses run on the CPU (see
 * losses.ts: T·E is small); it costs one GPU round trip per micro-batch.
 * Deterministic: the GPU kernels sum in fixed orders (no atomics), the batch order comes from the seed.
 */
import { readF32, submitEncoder } from '../gpu/buffers';
import type { Kernels } from '../gpu/kernels';
import type { ModelSpec } from '../model/spec';
import type { ModelWeights } from '../model/weights';
import type { RouterConfig } from '../moe/router';
import { rng } from '../ref/random';
import { TrainGraph, type LayerRouting } from './graph';
import { createLora, destroyLora, type LoraAdapter, type LoraOptions } from './lora';
import { auxFreeBias, type BalanceLoss } from './losses';
import { EarlyStopping, RoutingMonitor, type MonitorOptions, type MonitorRecord } from './monitor';
import { uploadEmbeddingGradPlan } from './ops/embedding';
import { AdamW, type AdamWOptions } from './optim';
import { trainables, type TrainableSet, type TrainMode } from './params';
import { IGNORE_INDEX } from './ref';
import { learningRate, validateSchedule, type LrSchedule } from './schedule';

export type { BalanceLoss } from './losses';

/** One training sequence: ids and their already shifted targets (−100 = none), as data.ts makes them. */
export interface Sequence {
  ids: ArrayLike<number>;
  labels: ArrayLike<number>;
}

export interface TrainerOptions {
  mode: TrainMode;
  /** LoRA settings (mode 'lora'; defaults r = 16, α = 32 on q_proj and v_proj). */
  lora?: Partial<LoraOptions>;
  /** Optimizer steps in the run. */
  steps: number;
  /** Peak learning rate, warmup steps and the cosine floor (fraction of the peak). */
  lr: number;
  warmupSteps: number;
  minLrRatio: number;
  /** Sequences per optimizer step (gradient accumulation). */
  accumulate: number;
  /** Longest sequence (positions). */
  seqLen: number;
  /** Validate every N steps (0 = never); stop after `patience` checks without improvement. */
  valEvery: number;
  patience: number;
  seed: number;
  adamw?: Partial<AdamWOptions>;
  /** Balance loss on each MoE layer's router scores (losses.ts), or null. */
  balance?: BalanceLoss | null;
  /** DeepSeek-V3's aux-free bias step γ (0 = off). */
  auxFreeRate?: number;
  /** Routing monitor settings; the monitor's lr halving applies (null: no monitor). */
  monitor?: Partial<MonitorOptions> | null;
  router?: RouterConfig;
}

export const TRAINER_DEFAULTS: Omit<TrainerOptions, 'mode'> = {
  steps: 100, lr: 1e-3, warmupSteps: 10, minLrRatio: 0.1, accumulate: 1, seqLen: 64, valEvery: 10, patience: 3, seed: 0, balance: null, auxFreeRate: 0, monitor: {},
};

/** Per MoE layer: tokens each expert took, and the router's mean score per expert. */
export interface RoutingSummary {
  layer: number;
  counts: number[];
  meanProb: number[];
  /** Mean over tokens of the top-1 score (how decided the router is). */
  meanTopProb: number;
}

export interface StepEvent {
  /** 1-based optimizer step. */
  step: number;
  /** Mean cross-entropy over the step's sequences (balance losses not included). */
  loss: number;
  /** Sum of the balance loss terms (weight included) averaged over the step's sequences. */
  balanceLoss: number;
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  clipped: boolean;
  skipped: boolean;
  /** Positions in the step's sequences. */
  tokens: number;
  routing: RoutingSummary[];
  monitor: MonitorRecord | null;
  /** Set on validation steps. */
  valLoss?: number;
  /** The monitor halved the lr at this step (its reason). */
  lrHalved?: string;
}

export interface TrainSummary {
  loss_first: number;
  loss_last: number;
  val_loss_best: number | null;
  steps: number;
  lr_halvings: number;
  /** Experts under 5 % of the tokens (summed over MoE layers) / with none, at the last step. */
  cold_experts: number;
  dead_experts: number;
  stopped_early: boolean;
  mode: TrainMode;
  losses: number[];
  val_losses: Array<{ step: number; loss: number }>;
}

export class Trainer {
  readonly options: TrainerOptions;
  readonly graph: TrainGraph;
  readonly lora: LoraAdapter | null;
  readonly set: TrainableSet;
  readonly optimizer: AdamW;
  private readonly monitor: RoutingMonitor | null;
  private readonly dProbs: GPUBuffer[];
  private readonly schedule: LrSchedule;
  private auxBias: number[][] | null = null;
  /** Optimizer steps done. */
  step = 0;

  constructor(
    readonly k: Kernels,
    readonly spec: ModelSpec,
    readonly weights: ModelWeights,
    opts: Partial<TrainerOptions> & { mode: TrainMode },
  ) {
    const o: TrainerOptions = { ...TRAINER_DEFAULTS, ...opts };
    if (!Number.isInteger(o.accumulate) || o.accumulate < 1) throw new RangeError(`gradient accumulation must be a whole number ≥ 1, got ${o.accumulate}`);
    if (!Number.isInteger(o.valEvery) || o.valEvery < 0) throw new RangeError(`valEvery must be a whole number ≥ 0, got ${o.valEvery}`);
    this.schedule = { peak: o.lr, warmupSteps: Math.min(o.warmupSteps, o.steps), totalSteps: o.steps, minRatio: o.minLrRatio };
    validateSchedule(this.schedule);
    this.options = o;
    this.lora = o.mode === 'lora' ? createLora(k.device, spec, { ...o.lora, seed: o.lora?.seed ?? o.seed }) : null;
    this.graph = new TrainGraph(k, spec, weights, { maxTokens: o.seqLen, router: o.router, lora: this.lora });
    this.set = trainables(k.device, spec, weights, o.mode, this.lora);
    this.optimizer = new AdamW(k, this.set.params, o.adamw);
    this.monitor = o.monitor === null || !this.graph.moeLayers.length ? null : new RoutingMonitor(o.monitor);
    const E = spec.moe.numExperts;
    this.dProbs = this.graph.moeLayers.map((_, m) => {
      const b = k.device.createBuffer({ label: `dprobs-${m}`, size: Math.max(4, o.seqLen * E * 4), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
      return b;
    });
    if (o.auxFreeRate) this.auxBias = this.graph.moeLayers.map(() => new Array<number>(E).fill(0));
  }

  destroy(): void {
    this.graph.destroy();
    this.set.destroy();
    this.optimizer.destroy();
    for (const b of this.dProbs) b.destroy();
    if (this.lora) destroyLora(this.lora);
  }

  private write(seq: Sequence): number {
    const T = Math.min(seq.ids.length, this.options.seqLen);
    const ids = Array.from({ length: T }, (_, i) => seq.ids[i]!);
    const labels = Array.from({ length: T }, (_, i) => seq.labels[i] ?? IGNORE_INDEX);
    this.graph.writeSequence(ids, labels);
    if (this.set.grads.embed) this.graph.embedPlan = uploadEmbeddingGradPlan(this.k.device, ids, this.spec.vocabSize);
    return T;
  }

  /** The mean CE of one sequence under the current weights (no gradient). */
  async evalLoss(seq: Sequence): Promise<number> {
    this.write(seq);
    const enc = this.k.device.createCommandEncoder({ label: 'eval' });
    this.graph.encodeForward(enc);
    this.graph.encodeLoss(enc);
    submitEncoder(this.k.device, enc);
    return (await readF32(this.k.device, this.graph.loss, 1))[0]!;
  }

  /** Mean loss over sequences (each weighted equally, as the training loss is). */
  async evaluate(seqs: readonly Sequence[]): Promise<number> {
    if (!seqs.length) throw new RangeError('evaluate: no sequences');
    let s = 0;
    for (const q of seqs) s += await this.evalLoss(q);
    return s / seqs.length;
  }

  /** One optimizer step over `batch` (accumulated); returns its event. */
  async trainStep(batch: readonly Sequence[]): Promise<StepEvent> {
    if (!batch.length) throw new RangeError('trainStep: empty batch');
    const dev = this.k.device;
    const n = batch.length;
    let ce = 0, bal = 0;
    const counts = this.graph.moeLayers.map(() => new Array<number>(this.spec.moe.numExperts).fill(0));
    const probSum = this.graph.moeLayers.map(() => new Float64Array(this.spec.moe.numExperts));
    const topSum = this.graph.moeLayers.map(() => 0);
    let tokens = 0;
    const lastProbs: Float32Array[] = [];
    for (let i = 0; i < n; i++) {
      const T = this.write(batch[i]!);
      tokens += T;
      let enc = dev.createCommandEncoder({ label: `train fwd ${this.step + 1}.${i}` });
      if (i === 0) for (const b of this.set.gradBuffers) enc.clearBuffer(b);
      this.graph.encodeForward(enc);
      this.graph.encodeLoss(enc, 1 / n);
      submitEncoder(dev, enc);
      const [loss, routing] = await Promise.all([readF32(dev, this.graph.loss, 1), this.graph.moeLayers.length ? this.graph.readRouting() : Promise.resolve([] as LayerRouting[])]);
      ce += loss[0]! / n;
      const E = this.spec.moe.numExperts, K = this.graph.router.topK;
      let withBalance = false;
      routing.forEach((r, m) => {
        for (let e = 0; e < E; e++) counts[m]![e]! += r.counts[e]!;
        for (let t = 0; t < T; t++) {
          let top = 0;
          for (let e = 0; e < E; e++) {
            const p = r.probs[t * E + e]!;
            probSum[m]![e]! += p;
            top = Math.max(top, p);
          }
          topSum[m]! += top;
        }
        lastProbs[m] = r.probs;
        const bl = this.options.balance;
        if (bl) {
          const res = bl.compute(r.probs, r.idx, T, E, K);
          bal += res.loss / n;
          // Each sequence's balance loss is averaged over the step like its CE.
          const d = res.dProbs.map((v) => v / n);
          dev.queue.writeBuffer(this.dProbs[m]!, 0, d);
          withBalance = true;
        }
      });
      enc = dev.createCommandEncoder({ label: `train bwd ${this.step + 1}.${i}` });
      this.graph.encodeBackward(enc, this.set.grads, withBalance ? this.dProbs : undefined);
      submitEncoder(dev, enc);
    }
    const lrScale = this.monitor?.lrScale ?? 1;
    const lr = learningRate(this.schedule, this.step) * lrScale;
    const enc = dev.createCommandEncoder({ label: `adamw ${this.step + 1}` });
    this.optimizer.encodeStep(enc, lr);
    submitEncoder(dev, enc);
    const stats = await this.optimizer.readStats();
    this.step++;
    const routing: RoutingSummary[] = this.graph.moeLayers.map((layer, m) => ({
      layer,
      counts: counts[m]!,
      meanProb: Array.from(probSum[m]!, (v) => v / tokens),
      meanTopProb: topSum[m]! / tokens,
    }));
    let record: MonitorRecord | null = null;
    let lrHalved: string | undefined;
    if (this.monitor) {
      const u = this.monitor.update({ step: this.step, counts, tokens, probs: lastProbs.length ? lastProbs : undefined });
      record = u.record;
      if (u.actions.length) lrHalved = u.actions.map((a) => a.reason).join('; ');
    }
    if (this.auxBias) {
      this.auxBias = this.auxBias.map((b, m) => auxFreeBias(counts[m]!, b, this.options.auxFreeRate!));
      this.auxBias.forEach((b, m) => this.graph.setSelectionBias(m, b));
    }
    return { step: this.step, loss: ce, balanceLoss: bal, lr, gradNorm: stats.gradNorm, clipped: stats.clipScale < 1, skipped: stats.skipped, tokens, routing, monitor: record, ...(lrHalved ? { lrHalved } : {}) };
  }

  /**
   * The whole run: `steps` optimizer steps over `train` (shuffled by the seed, one pass after
   * another), validation every valEvery steps, early stopping. `onStep` sees every event.
   */
  async run(train: readonly Sequence[], val: readonly Sequence[], onStep?: (e: StepEvent) => void | Promise<void>): Promise<TrainSummary> {
    if (!train.length) throw new RangeError('training needs at least one sequence');
    const o = this.options;
    const next = rng(o.seed);
    let order: number[] = [];
    let cursor = 0;
    const take = (): Sequence => {
      if (cursor >= order.length) {
        order = train.map((_, i) => i);
        for (let i = order.length - 1; i > 0; i--) {
          const j = Math.floor(next() * (i + 1));
          [order[i], order[j]] = [order[j]!, order[i]!];
        }
        cursor = 0;
      }
      return train[order[cursor++]!]!;
    };
    const stopper = new EarlyStopping(o.patience);
    const losses: number[] = [];
    const valLosses: Array<{ step: number; loss: number }> = [];
    let halvings = 0;
    let stopped = false;
    let last: StepEvent | null = null;
    while (this.step < o.steps) {
      const batch = Array.from({ length: o.accumulate }, take);
      const ev = await this.trainStep(batch);
      losses.push(ev.loss);
      if (ev.lrHalved) halvings++;
      if (val.length && o.valEvery > 0 && (ev.step % o.valEvery === 0 || ev.step === o.steps)) {
        ev.valLoss = await this.evaluate(val);
        valLosses.push({ step: ev.step, loss: ev.valLoss });
        if (stopper.update(ev.valLoss).stop) stopped = true;
      }
      last = ev;
      await onStep?.(ev);
      if (stopped) break;
    }
    const rec = last?.monitor;
    return {
      loss_first: losses[0] ?? NaN,
      loss_last: losses.at(-1) ?? NaN,
      val_loss_best: valLosses.length ? Math.min(...valLosses.map((v) => v.loss)) : null,
      steps: this.step,
      lr_halvings: halvings,
      cold_experts: rec ? rec.cold.reduce((a, c) => a + c.length, 0) : coldFromCounts(last, 0.05),
      dead_experts: rec ? rec.dead.reduce((a, c) => a + c.length, 0) : coldFromCounts(last, 0),
      stopped_early: stopped,
      mode: o.mode,
      losses,
      val_losses: valLosses,
    };
  }
}

/** Experts (over all MoE layers) whose share of the tokens is at most `fraction` (0: none at all). */
function coldFromCounts(ev: StepEvent | null, fraction: number): number {
  if (!ev) return 0;
  let n = 0;
  for (const r of ev.routing) {
    for (const c of r.counts) if (fraction === 0 ? c === 0 : c < fraction * ev.tokens) n++;
  }
  return n;
}
