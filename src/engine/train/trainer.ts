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
import { readF32, submitEncoder, uploadStorage } from '../gpu/buffers';
import type { Kernels } from '../gpu/kernels';
import type { ModelSpec } from '../model/spec';
import type { ModelWeights } from '../model/weights';
import type { RouterConfig } from '../moe/router';
import { rng } from '../ref/random';
import { TrainGraph, type LayerRouting } from './graph';
import { createLora, destroyLora, type LoraAdapter, type LoraOptions } from './lora';
import { encodeAddScaled } from '../ops/elementwise';
import { auxFreeBias, expertDropout, orthogonalityLoss, zLoss, type BalanceLoss } from './losses';
import { EarlyStopping, RoutingMonitor, type MonitorOptions, type MonitorRecord, type MonitorSnapshot } from './monitor';
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
  /** Router z-loss weight (ST-MoE; 0 = off), on each MoE layer's raw logits. */
  zLossWeight?: number;
  /** Orthogonality loss weight on each router's rows (0 = off; needs trainable routers: router or full mode). */
  orthoWeight?: number;
  /** Std of the Gaussian noise on router logits in training forwards (noisy top-k; 0 = off). */
  routerNoise?: number;
  /** Each step, each expert is left out of routing with this probability (0 = off); top-k always stay. */
  expertDropout?: number;
  /** Flip-rate check every N steps on a fixed probe sequence (and at step 1, the baseline); 0 = never. */
  probeEvery?: number;
}

export const TRAINER_DEFAULTS: Omit<TrainerOptions, 'mode'> = {
  steps: 100, lr: 1e-3, warmupSteps: 10, minLrRatio: 0.1, accumulate: 1, seqLen: 64, valEvery: 10, patience: 3, seed: 0, balance: null, auxFreeRate: 0, monitor: {},
  zLossWeight: 0, orthoWeight: 0, routerNoise: 0, expertDropout: 0, probeEvery: 5,
};

/**
 * What a run carries from one optimizer step to the next besides the GPU tensors (parameters and
 * AdamW moments): enough that a restored trainer takes the very steps an uninterrupted one would.
 * Plain JSON; non-finite numbers are stored as null.
 */
export interface TrainerState {
  step: number;
  adamStep: number;
  /** Shuffled passes over the training set begun, and the position in the current one. */
  epochs: number;
  cursor: number;
  halvings: number;
  stopped: boolean;
  losses: Array<number | null>;
  valLosses: Array<{ step: number; loss: number | null }>;
  stopper: { best: number | null; sinceBest: number };
  monitor: MonitorSnapshot | null;
  auxBias: number[][] | null;
  /** Cold / dead experts at the last step (the summary's). */
  lastCold: number;
  lastDead: number;
}

/** A trainer's whole state: TrainerState plus each parameter's values and AdamW moments. */
export interface TrainerSnapshot {
  state: TrainerState;
  tensors: Array<{ name: string; param: Float32Array; m: Float32Array; v: Float32Array }>;
}

export class TrainerStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainerStateError';
  }
}

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
  /** The router loss terms (balance, z-loss, orthogonality; weights included), averaged over the step's sequences. */
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
  private readonly dLogits: GPUBuffer[];
  private auxBias: number[][] | null = null;
  /** Optimizer steps done. */
  step = 0;
  /** The fixed sequence whose routing the flip rate follows (run() picks one; null: no flip rate). */
  probe: Sequence | null = null;
  // The run's progress (run() continues from it; snapshot / restore carry it).
  private epochs = 0;
  private cursor = 0;
  private order: number[] = [];
  private stopper: EarlyStopping;
  private losses: number[] = [];
  private valLosses: Array<{ step: number; loss: number }> = [];
  private halvings = 0;
  private stopped = false;
  private lastCold = 0;
  private lastDead = 0;

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
    for (const [field, v, hi] of [['zLossWeight', o.zLossWeight, 100], ['orthoWeight', o.orthoWeight, 100], ['routerNoise', o.routerNoise, 100], ['expertDropout', o.expertDropout, 0.99]] as const) {
      if (!(v === undefined || (Number.isFinite(v) && v >= 0 && v <= hi))) throw new RangeError(`${field} must be in [0, ${hi}], got ${v}`);
    }
    if (!(o.probeEvery === undefined || (Number.isInteger(o.probeEvery) && o.probeEvery >= 0))) throw new RangeError(`probeEvery must be a whole number ≥ 0, got ${o.probeEvery}`);
    if (o.orthoWeight && o.mode === 'lora') throw new RangeError('the orthogonality loss trains the router weights, which LoRA mode freezes: use router or full mode, or set its weight to 0');
    this.stopper = new EarlyStopping(o.patience);
    this.lora = o.mode === 'lora' ? createLora(k.device, spec, { ...o.lora, seed: o.lora?.seed ?? o.seed }) : null;
    this.graph = new TrainGraph(k, spec, weights, { maxTokens: o.seqLen, router: o.router, lora: this.lora, routerLogits: !!o.zLossWeight });
    this.set = trainables(k.device, spec, weights, o.mode, this.lora);
    this.optimizer = new AdamW(k, this.set.params, o.adamw);
    this.monitor = o.monitor === null || !this.graph.moeLayers.length ? null : new RoutingMonitor(o.monitor);
    const E = spec.moe.numExperts;
    this.dProbs = this.graph.moeLayers.map((_, m) => {
      const b = k.device.createBuffer({ label: `dprobs-${m}`, size: Math.max(4, o.seqLen * E * 4), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
      return b;
    });
    this.dLogits = o.zLossWeight ? this.graph.moeLayers.map((_, m) => k.device.createBuffer({ label: `dlogits-${m}`, size: Math.max(4, o.seqLen * E * 4), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST })) : [];
    if (o.auxFreeRate) this.auxBias = this.graph.moeLayers.map(() => new Array<number>(E).fill(0));
  }

  destroy(): void {
    this.graph.destroy();
    this.set.destroy();
    this.optimizer.destroy();
    for (const b of [...this.dProbs, ...this.dLogits]) b.destroy();
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
    const o = this.options;
    const E = this.spec.moe.numExperts, K = this.graph.router.topK;
    // Noisy top-k and expert dropout in this step's training forwards only (seeded by the step, so a resumed run draws the same).
    const training = o.routerNoise || o.expertDropout;
    if (training && this.graph.moeLayers.length) {
      this.graph.setRoutingOverrides({
        noiseStd: o.routerNoise || undefined,
        seed: (Math.imul(o.seed >>> 0, 0x9e3779b1) + this.step + 1) >>> 0,
        disabled: o.expertDropout ? expertDropout(E, o.expertDropout, K, o.seed, this.step + 1) : [],
      });
    }
    let zl = 0;
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
        if (o.zLossWeight && r.logits) {
          const z = zLoss(r.logits, T, E, o.zLossWeight / n);
          zl += z.loss;
          dev.queue.writeBuffer(this.dLogits[m]!, 0, z.dLogits);
        }
      });
      enc = dev.createCommandEncoder({ label: `train bwd ${this.step + 1}.${i}` });
      this.graph.encodeBackward(enc, this.set.grads, withBalance ? this.dProbs : undefined, this.dLogits.length ? this.dLogits : undefined);
      submitEncoder(dev, enc);
    }
    if (training) this.graph.setRoutingOverrides({});
    const ortho = o.orthoWeight ? await this.addOrthogonality(o.orthoWeight) : 0;
    const lrScale = this.monitor?.lrScale ?? 1;
    const lr = learningRate(this.schedule, this.step) * lrScale;
    const enc = dev.createCommandEncoder({ label: `adamw ${this.step + 1}` });
    this.optimizer.encodeStep(enc, lr);
    submitEncoder(dev, enc);
    const stats = await this.optimizer.readStats();
    this.step++;
    const probe = this.probe && this.graph.moeLayers.length && o.probeEvery && (this.step === 1 || this.step % o.probeEvery === 0) ? await this.routeProbe(this.probe) : undefined;
    const routing: RoutingSummary[] = this.graph.moeLayers.map((layer, m) => ({
      layer,
      counts: counts[m]!,
      meanProb: Array.from(probSum[m]!, (v) => v / tokens),
      meanTopProb: topSum[m]! / tokens,
    }));
    let record: MonitorRecord | null = null;
    let lrHalved: string | undefined;
    if (this.monitor) {
      const u = this.monitor.update({ step: this.step, counts, tokens, probs: lastProbs.length ? lastProbs : undefined, probe });
      record = u.record;
      if (u.actions.length) lrHalved = u.actions.map((a) => a.reason).join('; ');
    }
    if (this.auxBias) {
      this.auxBias = this.auxBias.map((b, m) => auxFreeBias(counts[m]!, b, this.options.auxFreeRate!));
      this.auxBias.forEach((b, m) => this.graph.setSelectionBias(m, b));
    }
    return { step: this.step, loss: ce, balanceLoss: bal + zl + ortho, lr, gradNorm: stats.gradNorm, clipped: stats.clipScale < 1, skipped: stats.skipped, tokens, routing, monitor: record, ...(lrHalved ? { lrHalved } : {}) };
  }

  /** The router's top-k on the probe sequence under the run's own knobs (no training noise or dropout). */
  private async routeProbe(seq: Sequence): Promise<{ k: number; idx: Uint32Array[] }> {
    this.write(seq);
    const enc = this.k.device.createCommandEncoder({ label: 'probe' });
    this.graph.encodeForward(enc);
    submitEncoder(this.k.device, enc);
    const routing = await this.graph.readRouting();
    return { k: this.graph.router.topK, idx: routing.map((r) => r.idx) };
  }

  /**
   * Adds the orthogonality loss's gradient on every MoE router's rows to the step's gradients
   * (computed on the CPU from the current weights: E × hidden per layer). Returns the loss.
   */
  private async addOrthogonality(weight: number): Promise<number> {
    const E = this.spec.moe.numExperts, H = this.spec.hiddenSize, dev = this.k.device;
    let total = 0;
    for (const l of this.graph.moeLayers) {
      const w = this.weights.layers[l]!.router, g = this.set.grads.layers[l]?.router;
      if (!w || !g) continue;
      const res = orthogonalityLoss(await readF32(dev, w, E * H), E, H, weight);
      total += res.loss;
      const tmp = uploadStorage(dev, res.dW, `ortho-grad-${l}`);
      const enc = dev.createCommandEncoder({ label: `ortho ${l}` });
      encodeAddScaled(this.k, enc, { h: g, y: tmp, n: E * H, alpha: 1 });
      submitEncoder(dev, enc);
      tmp.destroy();
    }
    return total;
  }

  /** The next training sequence: one shuffled pass after another (the order depends only on the seed). */
  private take(train: readonly Sequence[]): Sequence {
    if (this.cursor >= this.order.length || this.order.length !== train.length) {
      this.order = shuffled(train.length, this.options.seed, ++this.epochs);
      this.cursor = 0;
    }
    return train[this.order[this.cursor++]!]!;
  }

  /**
   * The whole run: `steps` optimizer steps over `train` (shuffled by the seed, one pass after
   * another), validation every valEvery steps, early stopping. `onStep` sees every event. After
   * restore() it goes on from the restored step (and returns at once for a finished run).
   */
  async run(train: readonly Sequence[], val: readonly Sequence[], onStep?: (e: StepEvent) => void | Promise<void>): Promise<TrainSummary> {
    if (!train.length) throw new RangeError('training needs at least one sequence');
    const o = this.options;
    this.probe ??= val[0] ?? train[0]!;
    if (this.epochs > 0 && this.order.length !== train.length) this.order = shuffled(train.length, o.seed, this.epochs);
    while (this.step < o.steps && !this.stopped) {
      const batch = Array.from({ length: o.accumulate }, () => this.take(train));
      const ev = await this.trainStep(batch);
      this.losses.push(ev.loss);
      if (ev.lrHalved) this.halvings++;
      if (val.length && o.valEvery > 0 && (ev.step % o.valEvery === 0 || ev.step === o.steps)) {
        ev.valLoss = await this.evaluate(val);
        this.valLosses.push({ step: ev.step, loss: ev.valLoss });
        if (this.stopper.update(ev.valLoss).stop) this.stopped = true;
      }
      const rec = ev.monitor;
      this.lastCold = rec ? rec.cold.reduce((a, c) => a + c.length, 0) : coldFromCounts(ev, 0.05);
      this.lastDead = rec ? rec.dead.reduce((a, c) => a + c.length, 0) : coldFromCounts(ev, 0);
      await onStep?.(ev);
    }
    return this.summary();
  }

  /** The run so far as the CLI's --json line reports it. */
  summary(): TrainSummary {
    const { losses, valLosses } = this;
    return {
      loss_first: losses[0] ?? NaN,
      loss_last: losses.at(-1) ?? NaN,
      val_loss_best: valLosses.length ? Math.min(...valLosses.map((v) => v.loss)) : null,
      steps: this.step,
      lr_halvings: this.halvings,
      cold_experts: this.lastCold,
      dead_experts: this.lastDead,
      stopped_early: this.stopped,
      mode: this.options.mode,
      losses: [...losses],
      val_losses: [...valLosses],
    };
  }

  /** The run's whole state, read back from the GPU (call between steps). */
  async snapshot(): Promise<TrainerSnapshot> {
    const dev = this.k.device;
    const fin = (x: number) => (Number.isFinite(x) ? x : null);
    const tensors = [];
    for (const p of this.set.params) {
      const { m, v } = this.optimizer.momentsOf(p.name);
      const [param, mm, vv] = await Promise.all([readF32(dev, p.param, p.count), readF32(dev, m, p.count), readF32(dev, v, p.count)]);
      tensors.push({ name: p.name, param, m: mm, v: vv });
    }
    return {
      state: {
        step: this.step, adamStep: this.optimizer.step, epochs: this.epochs, cursor: this.cursor, halvings: this.halvings, stopped: this.stopped,
        losses: this.losses.map(fin), valLosses: this.valLosses.map((x) => ({ step: x.step, loss: fin(x.loss) })),
        stopper: { best: fin(this.stopper.best), sinceBest: this.stopper.sinceBest },
        monitor: this.monitor?.snapshot() ?? null,
        auxBias: this.auxBias?.map((b) => [...b]) ?? null,
        lastCold: this.lastCold, lastDead: this.lastDead,
      },
      tensors,
    };
  }

  /**
   * Puts a snapshot back (a trainer made with the same model, mode and options, before any step):
   * parameters and moments are written to the GPU, the loop's progress restored. Every tensor is
   * checked by name and size first, so a snapshot of another run changes nothing.
   */
  restore(snap: TrainerSnapshot): void {
    const st = snap.state;
    if (this.step !== 0) throw new TrainerStateError('restore: the trainer has already taken steps');
    const byName = new Map(snap.tensors.map((t) => [t.name, t]));
    for (const p of this.set.params) {
      const t = byName.get(p.name);
      if (!t) throw new TrainerStateError(`the saved run has no ${p.name}: it was made with another mode, LoRA setting or model`);
      for (const [what, a] of [['values', t.param], ['first moment', t.m], ['second moment', t.v]] as const) {
        if (a.length !== p.count) throw new TrainerStateError(`the saved ${p.name} ${what} hold ${a.length} numbers, this model's ${p.count}`);
      }
    }
    if (byName.size !== this.set.params.length) throw new TrainerStateError(`the saved run has ${byName.size} trained tensors, this one ${this.set.params.length}: another mode, LoRA setting or model`);
    const whole = (x: number, what: string, hi = Infinity) => {
      if (!(Number.isInteger(x) && x >= 0 && x <= hi)) throw new TrainerStateError(`the saved ${what} (${x}) is out of range`);
    };
    whole(st.step, 'step', this.options.steps);
    whole(st.adamStep, 'optimizer step');
    whole(st.epochs, 'pass count');
    whole(st.cursor, 'position in the pass');
    if (st.auxBias && (!this.auxBias || st.auxBias.length !== this.auxBias.length || st.auxBias.some((b) => b.length !== this.spec.moe.numExperts))) throw new TrainerStateError('the saved aux-free biases do not fit this run');
    if (st.monitor && this.monitor) {
      try {
        this.monitor.restore(st.monitor);
      } catch (e) {
        throw new TrainerStateError(`the saved routing monitor does not fit this run: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    const dev = this.k.device;
    for (const p of this.set.params) {
      const t = byName.get(p.name)!;
      const { m, v } = this.optimizer.momentsOf(p.name);
      dev.queue.writeBuffer(p.param, 0, t.param);
      dev.queue.writeBuffer(m, 0, t.m);
      dev.queue.writeBuffer(v, 0, t.v);
    }
    this.optimizer.step = st.adamStep;
    this.step = st.step;
    this.epochs = st.epochs;
    this.cursor = st.cursor;
    this.order = [];
    this.halvings = st.halvings;
    this.stopped = st.stopped;
    this.losses = st.losses.map((x) => x ?? NaN);
    this.valLosses = st.valLosses.map((x) => ({ step: x.step, loss: x.loss ?? NaN }));
    this.stopper.best = st.stopper.best ?? Infinity;
    this.stopper.sinceBest = st.stopper.sinceBest;
    this.lastCold = st.lastCold;
    this.lastDead = st.lastDead;
    if (st.auxBias) {
      this.auxBias = st.auxBias.map((b) => [...b]);
      this.auxBias.forEach((b, m) => this.graph.setSelectionBias(m, b));
    }
  }
}

/** Pass `epoch` (1-based) of a run's shuffle: a permutation of 0 … n−1 drawn from (seed, epoch) alone. */
function shuffled(n: number, seed: number, epoch: number): number[] {
  const next = rng((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(epoch, 0x85ebca6b)) >>> 0);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
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
