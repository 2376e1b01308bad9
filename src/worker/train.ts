/**
 * A fine-tuning run inside the worker: the Train panel's settings → engine/train's data loader,
 * losses and Trainer on the loaded model's own weights, one event per optimizer step. Pause holds
 * the loop between steps; stop ends it after the current one. When it ends, LoRA is merged into the
 * weights (router and full modes trained them in place), so the chat runs the fine-tuned model.
 */
import type { MoeModel } from '../engine/model/model';
import { loadTrainingData, type TrainExample, type TrainTokenizer } from '../engine/train/data';
import { mergeLora, peftConfig, peftTensors } from '../engine/train/lora';
import { BALANCE_PRESETS, balanceLossFor, LOSS_PRESETS } from '../engine/train/losses';
import { TRAIN_MODES } from '../engine/train/params';
import { Trainer, TRAINER_DEFAULTS, type StepEvent, type TrainerOptions, type TrainerSnapshot, type TrainSummary } from '../engine/train/trainer';
import type { RunStatus, TrainData, TrainSettings, WorkerEvent } from './protocol';
import type { RunRecord, StoredRun } from './train-save';

/** What the page can do to a run in progress. */
export class TrainControl {
  stopped = false;
  private paused: Promise<void> | null = null;
  private resume: (() => void) | null = null;

  pause(on: boolean): void {
    if (on && !this.paused) this.paused = new Promise((r) => (this.resume = r));
    if (!on && this.resume) {
      this.resume();
      this.paused = this.resume = null;
    }
  }

  /** The device went: nothing more is read back or saved (the last checkpoint is the one to resume). */
  lost = false;

  stop(lost = false): void {
    this.stopped = true;
    this.lost ||= lost;
    this.pause(false);
  }

  /** A pause is asked for (the loop checkpoints, then waits). */
  get pausedNow(): boolean {
    return this.paused !== null;
  }

  /** Waits while paused. */
  async gate(): Promise<void> {
    if (this.paused) await this.paused;
  }
}

class Stopped extends Error {}

/** Checks the settings the panel lets a user type, naming the first one out of range. */
export function validateTrainSettings(s: TrainSettings): void {
  const bad = (field: string, why: string): never => {
    throw new RangeError(`Training setting ${field}: ${why}`);
  };
  const whole = (field: keyof TrainSettings, lo: number, hi: number) => {
    const v = s[field] as number;
    if (!Number.isInteger(v) || v < lo || v > hi) bad(field, `must be a whole number from ${lo} to ${hi}, got ${v}`);
  };
  if (!TRAIN_MODES.includes(s.mode)) bad('mode', `must be one of ${TRAIN_MODES.join(', ')}, got ${String(s.mode)}`);
  if (!BALANCE_PRESETS.includes(s.balance)) bad('balance', `must be one of ${BALANCE_PRESETS.join(', ')}, got ${String(s.balance)}`);
  whole('steps', 1, 100_000);
  whole('warmupSteps', 0, 100_000);
  whole('seqLen', 2, 4096);
  whole('accumulate', 1, 256);
  whole('valEvery', 0, 100_000);
  whole('patience', 1, 1000);
  whole('loraRank', 1, 256);
  whole('seed', 0, 0xffffffff);
  if (!(s.lr > 0 && s.lr <= 1)) bad('lr', `must be in (0, 1], got ${s.lr}`);
  if (!(s.minLrRatio >= 0 && s.minLrRatio <= 1)) bad('minLrRatio', `must be in [0, 1], got ${s.minLrRatio}`);
  if (!(s.valFraction >= 0 && s.valFraction < 1)) bad('valFraction', `must be in [0, 1), got ${s.valFraction}`);
  if (!(s.balanceWeight >= 0 && s.balanceWeight <= 100)) bad('balanceWeight', `must be in [0, 100], got ${s.balanceWeight}`);
  if (!(s.loraAlpha > 0 && s.loraAlpha <= 4096)) bad('loraAlpha', `must be in (0, 4096], got ${s.loraAlpha}`);
  for (const f of ['zLossWeight', 'orthoWeight', 'routerNoise'] as const) if (!(s[f] >= 0 && s[f] <= 100)) bad(f, `must be in [0, 100], got ${s[f]}`);
  if (!(s.expertDropout >= 0 && s.expertDropout < 1)) bad('expertDropout', `must be in [0, 1), got ${s.expertDropout}`);
  if (s.orthoWeight > 0 && s.mode === 'lora') bad('orthoWeight', 'the orthogonality loss trains the router, which LoRA mode freezes: use router or full mode, or set it to 0');
}

/** What a run needs from the worker besides the model: where it is saved, and a saved state to go on from. */
export interface RunContext {
  /** The loaded model's identity (checkpoint files + weight format) and name, stored with the run. */
  modelKey: string;
  modelName: string;
  /** A saved run to continue (its settings and data are the run's). */
  resume?: StoredRun;
  /** Resumed by the engine itself (after a device loss), not by the user. */
  auto?: boolean;
  /** Persists a checkpoint (OPFS in the page; tests may keep it in memory). */
  save: (snapshot: TrainerSnapshot, record: RunRecord) => Promise<void>;
}

/** What the worker keeps of a finished run for the export buttons. */
export interface RunResult {
  mode: TrainSettings['mode'];
  /** PEFT files of the adapter (LoRA runs). */
  adapter: { config: Record<string, unknown>; tensors: Array<{ name: string; shape: number[]; data: Float32Array }> } | null;
  /** The run's options and examples, for the transformers recipe. */
  options: TrainerOptions;
  train: TrainExample[];
  val: TrainExample[];
}

/** Checkpoints at most this often while a run goes (and always on pause, stop and at the end). */
const SAVE_EVERY_MS = 1500;

export async function runTraining(model: MoeModel, tok: TrainTokenizer, data: TrainData, s: TrainSettings, ctl: TrainControl, post: (e: WorkerEvent) => void, ctx: RunContext): Promise<RunResult> {
  validateTrainSettings(s);
  const spec = model.spec;
  if (s.mode !== 'router') {
    const quantized = model.weights.layers.some((l) => l.qkv && 'format' in l.qkv && l.qkv.format !== 'f32');
    if (quantized) throw new Error(`${s.mode === 'lora' ? 'LoRA' : 'Full'} fine-tuning changes the attention weights, which are stored quantised here: load the model as f32 (router-only training works on any format)`);
  }
  const { train, val, stats, format } = loadTrainingData(data.text, tok, { format: data.format, seqLen: s.seqLen, valFraction: s.valFraction, seed: s.seed });
  const preset = LOSS_PRESETS[s.balance];
  const losses = s.balance === 'auxfree' ? { ...preset, auxFreeRate: s.balanceWeight } : { ...preset, balanceWeight: s.balanceWeight };
  const options: TrainerOptions = {
    mode: s.mode,
    steps: s.steps,
    lr: s.lr,
    warmupSteps: s.warmupSteps,
    minLrRatio: s.minLrRatio,
    accumulate: s.accumulate,
    seqLen: s.seqLen,
    valEvery: val.length ? s.valEvery : 0,
    patience: s.patience,
    seed: s.seed,
    lora: { rank: s.loraRank, alpha: s.loraAlpha },
    balance: balanceLossFor(losses, model.router.scoring),
    auxFreeRate: losses.auxFreeRate,
    router: model.router,
    zLossWeight: s.zLossWeight,
    orthoWeight: s.orthoWeight,
    routerNoise: s.routerNoise,
    expertDropout: s.expertDropout,
    monitor: {},
    adamw: {},
    probeEvery: TRAINER_DEFAULTS.probeEvery,
  };
  const trainer = new Trainer(model.kernels, spec, model.weights, options);
  const steps: StepEvent[] = [];
  let status: RunStatus = 'running';
  let lastSave = 0;
  const checkpoint = async () => {
    if (ctl.lost) return;
    try {
      await ctx.save(await trainer.snapshot(), { version: 1, modelKey: ctx.modelKey, modelName: ctx.modelName, settings: s, data, events: steps, status, savedAt: Date.now() });
      lastSave = performance.now();
      post({ type: 'train-checkpoint', step: trainer.step, error: null });
    } catch (e) {
      // A run that cannot be saved still runs; the page says so.
      post({ type: 'train-checkpoint', step: trainer.step, error: e instanceof Error ? e.message : String(e) });
    }
  };
  let reason: 'finished' | 'early-stop' | 'stopped' = 'finished';
  let summary: TrainSummary;
  let result: RunResult | null = null;
  try {
    if (ctx.resume) {
      trainer.restore(ctx.resume.snapshot);
      steps.push(...ctx.resume.record.events);
    }
    post({
      type: 'train-started', trainExamples: train.length, valExamples: val.length, tokens: stats.tokens, format, moeLayers: spec.layers.flatMap((l, i) => (l.mlp === 'moe' ? [i] : [])),
      settings: s, data, resumedFrom: trainer.step, events: steps, auto: ctx.auto === true,
    });
    // A new run replaces the saved one at once: a reload from here on finds this one.
    if (!ctx.resume) await checkpoint();
    try {
      summary = await trainer.run(train, val, async (ev) => {
        steps.push(ev);
        post({ type: 'train-step', step: ev });
        if (performance.now() - lastSave > SAVE_EVERY_MS) await checkpoint();
        if (ctl.pausedNow) {
          status = 'paused';
          await checkpoint();
          await ctl.gate();
          status = 'running';
        }
        if (ctl.stopped) throw new Stopped();
      });
      if (summary.stopped_early) reason = 'early-stop';
    } catch (e) {
      if (!(e instanceof Stopped)) throw e;
      reason = 'stopped';
      summary = trainer.summary();
    }
    if (ctl.lost) throw new Error('The GPU device was lost during training.');
    status = reason === 'finished' ? 'finished' : reason;
    await checkpoint();
    const adapter = trainer.lora ? { config: peftConfig(trainer.lora, ctx.modelName), tensors: await peftTensors(model.kernels.device, trainer.lora) } : null;
    result = { mode: s.mode, adapter, options, train, val };
    // The adapter goes into the weights the chat uses.
    if (trainer.lora && trainer.step > 0) await mergeLora(model.kernels.device, spec, model.weights, trainer.lora);
  } finally {
    trainer.destroy();
    model.reset();
  }
  post({ type: 'train-done', reason, summary });
  return result;
}
