/**
 * A fine-tuning run inside the worker: the Train panel's settings → engine/train's data loader,
 * losses and Trainer on the loaded model's own weights, one event per optimizer step. Pause holds
 * the loop between steps; stop ends it after the current one. When it ends, LoRA is merged into the
 * weights (router and full modes trained them in place), so the chat runs the fine-tuned model.
 */
import type { MoeModel } from '../engine/model/model';
import { loadTrainingData, type TrainTokenizer } from '../engine/train/data';
import { mergeLora } from '../engine/train/lora';
import { balanceLossFor, LOSS_PRESETS } from '../engine/train/losses';
import { Trainer, type StepEvent, type TrainSummary } from '../engine/train/trainer';
import type { TrainData, TrainSettings, WorkerEvent } from './protocol';

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

  stop(): void {
    this.stopped = true;
    this.pause(false);
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
}

export async function runTraining(model: MoeModel, tok: TrainTokenizer, data: TrainData, s: TrainSettings, ctl: TrainControl, post: (e: WorkerEvent) => void): Promise<void> {
  validateTrainSettings(s);
  const spec = model.spec;
  if (s.mode !== 'router') {
    const quantized = model.weights.layers.some((l) => l.qkv && 'format' in l.qkv && l.qkv.format !== 'f32');
    if (quantized) throw new Error(`${s.mode === 'lora' ? 'LoRA' : 'Full'} fine-tuning changes the attention weights, which are stored quantised here: load the model as f32 (router-only training works on any format)`);
  }
  const { train, val, stats, format } = loadTrainingData(data.text, tok, { format: data.format, seqLen: s.seqLen, valFraction: s.valFraction, seed: s.seed });
  const preset = LOSS_PRESETS[s.balance];
  const losses = s.balance === 'auxfree' ? { ...preset, auxFreeRate: s.balanceWeight } : { ...preset, balanceWeight: s.balanceWeight };
  const trainer = new Trainer(model.kernels, spec, model.weights, {
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
  });
  post({ type: 'train-started', trainExamples: train.length, valExamples: val.length, tokens: stats.tokens, format, moeLayers: spec.layers.flatMap((l, i) => (l.mlp === 'moe' ? [i] : [])) });
  const steps: StepEvent[] = [];
  let summary: TrainSummary | null = null;
  let reason: 'finished' | 'early-stop' | 'stopped' = 'finished';
  try {
    summary = await trainer.run(train, val, async (ev) => {
      steps.push(ev);
      post({ type: 'train-step', step: ev });
      await ctl.gate();
      if (ctl.stopped) throw new Stopped();
    });
    if (summary.stopped_early) reason = 'early-stop';
  } catch (e) {
    if (!(e instanceof Stopped)) throw e;
    reason = 'stopped';
  } finally {
    // The adapter goes into the weights the chat uses; the trainer's own buffers are freed.
    if (trainer.lora && steps.length) await mergeLora(model.kernels.device, spec, model.weights, trainer.lora);
    trainer.destroy();
    model.reset();
  }
  const losses2 = steps.map((e) => e.loss);
  const vals = steps.flatMap((e) => (e.valLoss !== undefined ? [{ step: e.step, loss: e.valLoss }] : []));
  post({
    type: 'train-done',
    reason,
    summary: summary ?? {
      loss_first: losses2[0] ?? NaN, loss_last: losses2.at(-1) ?? NaN, val_loss_best: vals.length ? Math.min(...vals.map((v) => v.loss)) : null,
      steps: steps.length, lr_halvings: steps.filter((e) => e.lrHalved).length, cold_experts: countExperts(steps.at(-1), 0.05), dead_experts: countExperts(steps.at(-1), 0),
      stopped_early: false, mode: s.mode, losses: losses2, val_losses: vals,
    },
  });
}

/** Experts over all MoE layers at or under `fraction` of the step's tokens (0: none at all). */
function countExperts(ev: StepEvent | undefined, fraction: number): number {
  if (!ev) return 0;
  const rec = ev.monitor;
  if (rec) return (fraction === 0 ? rec.dead : rec.cold).reduce((a, c) => a + c.length, 0);
  return ev.routing.reduce((n, r) => n + r.counts.filter((c) => (fraction === 0 ? c === 0 : c < fraction * ev.tokens)).length, 0);
}
