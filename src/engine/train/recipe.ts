/**
 * The training recipe as a file, for users who outgrow the browser (issue #7): the same data (as
 * token ids with their shifted labels, so no tokenizer or chat template can differ), mode, LoRA
 * settings, AdamW, warmup + cosine schedule, accumulation, validation / early stopping and balance
 * loss, in a JSON that tools/train/hf_train.py runs with PyTorch + transformers (+ PEFT).
 * The batch order is the one thing not carried over (each side shuffles with its own RNG).
 */
import type { TrainExample } from './data';
import type { BalanceLossName } from './losses';
import { ADAMW_DEFAULTS } from './optim';
import { LORA_DEFAULTS } from './lora';
import type { TrainerOptions } from './trainer';

export const RECIPE_FORMAT = 'moe-playground-training-recipe';

export interface Recipe {
  format: typeof RECIPE_FORMAT;
  version: 1;
  /** A folder or hub id transformers can load (the CLI writes the --model path it trained). */
  base_model: string;
  /** JSONL files beside the recipe: {"input_ids": [...], "labels": [...]} per line, labels already shifted (−100 = not learned). */
  data: { train: string; validation: string | null };
  mode: TrainerOptions['mode'];
  lora: { r: number; lora_alpha: number; target_modules: string[] } | null;
  steps: number;
  grad_accum: number;
  seq_len: number;
  optimizer: { name: 'adamw'; lr: number; betas: [number, number]; eps: number; weight_decay: number; max_grad_norm: number };
  /** lr(step) = peak·(step+1)/warmup during warmup, then cosine to min_lr_ratio·peak at the last step (schedule.ts). */
  schedule: { kind: 'warmup_cosine'; warmup_steps: number; min_lr_ratio: number };
  eval: { every: number; patience: number };
  /** Summed over MoE layers (weight included), added to the cross-entropy; losses.ts defines each form. */
  balance: { name: BalanceLossName; weight: number } | null;
  aux_free_rate: number;
  /** Router z-loss / orthogonality weights, training noise on router logits, expert dropout (0 = off). */
  z_loss_weight: number;
  ortho_weight: number;
  router_noise: number;
  expert_dropout: number;
  seed: number;
}

/** The recipe of a run with `opts` on `baseModel` (data file names relative to the recipe). */
export function trainingRecipe(opts: TrainerOptions, baseModel: string, data: { train: string; validation: string | null }): Recipe {
  const a = { ...ADAMW_DEFAULTS, ...opts.adamw };
  const lora = opts.mode === 'lora' ? { ...LORA_DEFAULTS, ...opts.lora } : null;
  return {
    format: RECIPE_FORMAT,
    version: 1,
    base_model: baseModel,
    data,
    mode: opts.mode,
    lora: lora ? { r: lora.rank, lora_alpha: lora.alpha, target_modules: [...(lora.targets ?? LORA_DEFAULTS.targets)] } : null,
    steps: opts.steps,
    grad_accum: opts.accumulate,
    seq_len: opts.seqLen,
    optimizer: { name: 'adamw', lr: opts.lr, betas: [a.beta1, a.beta2], eps: a.eps, weight_decay: a.weightDecay, max_grad_norm: a.maxGradNorm },
    schedule: { kind: 'warmup_cosine', warmup_steps: opts.warmupSteps, min_lr_ratio: opts.minLrRatio },
    eval: { every: opts.valEvery, patience: opts.patience },
    balance: opts.balance ? { name: opts.balance.name, weight: opts.balance.weight } : null,
    aux_free_rate: opts.auxFreeRate ?? 0,
    z_loss_weight: opts.zLossWeight ?? 0,
    ortho_weight: opts.orthoWeight ?? 0,
    router_noise: opts.routerNoise ?? 0,
    expert_dropout: opts.expertDropout ?? 0,
    seed: opts.seed,
  };
}

/** Examples as the recipe's JSONL (one {"input_ids", "labels"} object a line). */
export function examplesJsonl(examples: readonly TrainExample[]): string {
  return examples.map((e) => JSON.stringify({ input_ids: Array.from(e.ids), labels: Array.from(e.labels) })).join('\n') + '\n';
}
