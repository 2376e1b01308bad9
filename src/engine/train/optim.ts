/**
 * The optimizer a training loop holds: AdamW over a list of parameter buffers, with clipping by
 * global gradient norm, entirely on the GPU (no read-back per step; the norm can be read when a
 * chart wants it).
 */
import { createStorage, createUniform, readF32, writeUniform } from '../gpu/buffers';
import type { Kernels } from '../gpu/kernels';
import { adamwStepWords, encodeAdamWStep, encodeGradNorm, gradNormPartialFloats, OPTIM_STATS_FLOATS } from './ops/adamw';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled weight decay for parameters that do not set their own. */
  weightDecay: number;
  /** Clip the gradients to this global 2-norm; 0 = no clipping (the norm is still measured). */
  maxGradNorm: number;
}

/** PyTorch's AdamW defaults, with the clipping at 1.0 the design notes ask for (seed 004). */
export const ADAMW_DEFAULTS: AdamWOptions = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 };

export interface TrainableParam {
  /** Names the parameter in errors and exports. */
  name: string;
  param: GPUBuffer;
  grad: GPUBuffer;
  /** f32 elements (from offset 0 of both buffers). */
  count: number;
  /** Overrides the optimizer's weight decay (0 for norms, biases and embeddings, as usual). */
  weightDecay?: number;
}

export interface OptimStats {
  /** Global 2-norm of the gradients before clipping. */
  gradNorm: number;
  /** Factor the gradients were multiplied by (1 = not clipped). */
  clipScale: number;
  /** The norm was NaN or infinite, so the step changed nothing. */
  skipped: boolean;
}

export class AdamW {
  readonly options: AdamWOptions;
  /** Optimizer steps recorded so far (the next one is step + 1 for bias correction). */
  step = 0;
  private readonly moments: Array<{ m: GPUBuffer; v: GPUBuffer }>;
  /** Each parameter's step-kernel block, rewritten every step (lr and bias corrections change). */
  private readonly blocks: GPUBuffer[] = [];
  private readonly partials: GPUBuffer;
  /** [grad norm, clip factor, non-finite flag, _] of the last step. */
  readonly stats: GPUBuffer;

  constructor(private readonly k: Kernels, readonly params: readonly TrainableParam[], options: Partial<AdamWOptions> = {}) {
    this.options = { ...ADAMW_DEFAULTS, ...options };
    const names = new Set<string>();
    for (const p of params) {
      if (names.has(p.name)) throw new Error(`AdamW: parameter ${p.name} is listed twice`);
      names.add(p.name);
      if (p.param.size < p.count * 4 || p.grad.size < p.count * 4) throw new Error(`AdamW: ${p.name} buffers are smaller than its ${p.count} floats`);
    }
    // New WebGPU buffers are zero-filled: both moments start at 0, as in PyTorch.
    this.moments = params.map((p) => ({ m: createStorage(k.device, p.count * 4, `${p.name}.adam_m`), v: createStorage(k.device, p.count * 4, `${p.name}.adam_v`) }));
    this.partials = createStorage(k.device, gradNormPartialFloats(params) * 4, 'adamw-partials');
    this.stats = createStorage(k.device, OPTIM_STATS_FLOATS * 4, 'adamw-stats');
  }

  /**
   * Records one step at learning rate `lr`: global grad norm, clip factor, then every parameter's
   * update. Submit `enc` before recording the next step (see encodeAdamWStep).
   */
  encodeStep(enc: GPUCommandEncoder, lr: number): void {
    const o = this.options;
    encodeGradNorm(this.k, enc, { slices: this.params, partials: this.partials, stats: this.stats, maxNorm: o.maxGradNorm });
    this.step++;
    this.params.forEach((p, i) => {
      const { m, v } = this.moments[i]!;
      const hyper = { lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: p.weightDecay ?? o.weightDecay };
      const args = { param: p.param, grad: p.grad, m, v, count: p.count, hyper, step: this.step, stats: this.stats };
      // queue.writeBuffer lands before this encoder's work runs and after earlier submits' work:
      // hence one step per submitted encoder.
      const words = adamwStepWords(args);
      let block = this.blocks[i];
      if (block) writeUniform(this.k.device, block, words);
      else this.blocks[i] = block = createUniform(this.k.device, words);
      encodeAdamWStep(this.k, enc, args, block);
    });
  }

  /** The last step's gradient norm and clipping (waits for the GPU: for charts, not every step). */
  async readStats(): Promise<OptimStats> {
    const [gradNorm, clipScale, bad] = await readF32(this.k.device, this.stats, 3);
    return { gradNorm: gradNorm!, clipScale: clipScale!, skipped: bad !== 0 };
  }

  /** The moment buffers of parameter `name` (checkpointing the optimizer state). */
  momentsOf(name: string): { m: GPUBuffer; v: GPUBuffer } {
    const i = this.params.findIndex((p) => p.name === name);
    if (i < 0) throw new Error(`AdamW: no parameter named ${name}`);
    return this.moments[i]!;
  }

  destroy(): void {
    for (const { m, v } of this.moments) {
      m.destroy();
      v.destroy();
    }
    for (const b of this.blocks) b.destroy();
    this.partials.destroy();
    this.stats.destroy();
  }
}
