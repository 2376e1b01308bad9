/**
 * LoRA adapters (issue #7): W' = W + (α/r)·B·A on chosen attention projections, default r = 16,
 * α = 32 on q_proj and v_proj (design notes, seed 001). The engine stacks q, k and v into one `qkv`
 * weight: a LoRA on q_proj adds (α/r)·(x·Aᵀ)·Bᵀ to the q rows of the qkv output, one on v_proj to
 * the v rows (src/engine/train/graph.ts records this in the training forward and its backward).
 *
 * A starts PEFT's way (kaiming-uniform with a = √5: U(−1/√in, 1/√in)), from a seed; B starts at 0,
 * so the adapted model starts as the base. For inference, `mergeLora` folds (α/r)·B·A into the f32
 * base weights on the GPU's copies (the first version: no separate LoRA path in MoeModel, so the
 * chat sees the fine-tuned model through the merged weights; `unmerge` restores them).
 * Experts are not a LoRA target yet (the grouped expert matmul has no adapter path).
 */
import { createStorage, readF32, uploadStorage } from '../gpu/buffers';
import type { ModelSpec } from '../model/spec';
import type { ModelWeights } from '../model/weights';
import { rng } from '../ref/random';

export type LoraModule = 'q_proj' | 'k_proj' | 'v_proj' | 'o_proj';
export const LORA_MODULES: readonly LoraModule[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj'];

export interface LoraOptions {
  rank: number;
  alpha: number;
  targets: LoraModule[];
  /** Seed of A's initialisation. */
  seed: number;
}

export const LORA_DEFAULTS: LoraOptions = { rank: 16, alpha: 32, targets: ['q_proj', 'v_proj'], seed: 0 };

/** One adapted projection: A [rank, inDim], B [outDim, rank] and their gradients. */
export interface LoraPair {
  A: GPUBuffer;
  B: GPUBuffer;
  gA: GPUBuffer;
  gB: GPUBuffer;
  rank: number;
  inDim: number;
  outDim: number;
}

export interface LoraAdapter {
  options: LoraOptions;
  /** α / r. */
  scale: number;
  layers: Array<Partial<Record<LoraModule, LoraPair>>>;
}

/** [out, in] of a target module's base weight. */
export function loraShape(spec: ModelSpec, mod: LoraModule): { inDim: number; outDim: number } {
  const H = spec.hiddenSize, D = spec.headDim;
  switch (mod) {
    case 'q_proj':
      return { inDim: H, outDim: spec.numHeads * D };
    case 'k_proj':
    case 'v_proj':
      return { inDim: H, outDim: spec.numKvHeads * D };
    case 'o_proj':
      return { inDim: spec.numHeads * D, outDim: H };
  }
}

export function validateLora(o: LoraOptions): void {
  if (!Number.isInteger(o.rank) || o.rank < 1 || o.rank > 1024) throw new RangeError(`LoRA rank must be a whole number from 1 to 1024, got ${o.rank}`);
  if (!(Number.isFinite(o.alpha) && o.alpha > 0)) throw new RangeError(`LoRA alpha must be a number > 0, got ${o.alpha}`);
  if (!o.targets.length) throw new RangeError('LoRA needs at least one target module');
  for (const t of o.targets) {
    if (!LORA_MODULES.includes(t)) throw new RangeError(`LoRA target "${String(t)}" is not supported (${LORA_MODULES.join(', ')}; experts are not a target yet)`);
  }
}

/** A fresh adapter on every layer: A random (seeded), B zero. */
export function createLora(device: GPUDevice, spec: ModelSpec, opts: Partial<LoraOptions> = {}): LoraAdapter {
  const options: LoraOptions = { ...LORA_DEFAULTS, ...opts, targets: [...(opts.targets ?? LORA_DEFAULTS.targets)] };
  validateLora(options);
  if (spec.mla) throw new Error(`LoRA on ${spec.arch}: latent attention is not supported`);
  const r = options.rank;
  const next = rng(options.seed);
  const layers = spec.layers.map((_, l) => {
    const m: Partial<Record<LoraModule, LoraPair>> = {};
    for (const mod of options.targets) {
      const { inDim, outDim } = loraShape(spec, mod);
      const bound = 1 / Math.sqrt(inDim);
      const a = Float32Array.from({ length: r * inDim }, () => (2 * next() - 1) * bound);
      m[mod] = {
        A: uploadStorage(device, a, `L${l}.${mod}.lora_A`),
        B: createStorage(device, outDim * r * 4, `L${l}.${mod}.lora_B`),
        gA: createStorage(device, r * inDim * 4, `L${l}.${mod}.lora_A.grad`),
        gB: createStorage(device, outDim * r * 4, `L${l}.${mod}.lora_B.grad`),
        rank: r, inDim, outDim,
      };
    }
    return m;
  });
  return { options, scale: options.alpha / r, layers };
}

export function destroyLora(a: LoraAdapter): void {
  for (const l of a.layers) for (const p of Object.values(l)) if (p) for (const b of [p.A, p.B, p.gA, p.gB]) b.destroy();
}

/** The adapter's A and B on the CPU, per layer and module. */
export async function readLora(device: GPUDevice, a: LoraAdapter): Promise<Array<Partial<Record<LoraModule, { A: Float32Array; B: Float32Array; rank: number; inDim: number; outDim: number }>>>> {
  return Promise.all(a.layers.map(async (l) => {
    const out: Partial<Record<LoraModule, { A: Float32Array; B: Float32Array; rank: number; inDim: number; outDim: number }>> = {};
    for (const [mod, p] of Object.entries(l) as Array<[LoraModule, LoraPair | undefined]>) {
      if (!p) continue;
      out[mod] = { A: await readF32(device, p.A, p.rank * p.inDim), B: await readF32(device, p.B, p.outDim * p.rank), rank: p.rank, inDim: p.inDim, outDim: p.outDim };
    }
    return out;
  }));
}

/** Where a module's rows live: the qkv weight (at a row offset) or o. */
function target(spec: ModelSpec, w: ModelWeights, l: number, mod: LoraModule): { buffer: GPUBuffer; rowOffset: number; K: number } {
  const lw = w.layers[l]!;
  const H = spec.hiddenSize, D = spec.headDim;
  const mat = mod === 'o_proj' ? lw.o : lw.qkv;
  if (!mat) throw new Error(`LoRA merge: layer ${l} has no ${mod}`);
  const fmt = 'format' in mat ? mat.format : 'f32';
  if (fmt !== 'f32') throw new Error(`LoRA merge needs f32 base weights; layer ${l}'s ${mod} is ${fmt} (load the model as f32 to merge an adapter)`);
  const buffer = 'format' in mat ? mat.buffer : mat;
  const rowOffset = mod === 'q_proj' ? 0 : mod === 'k_proj' ? spec.numHeads * D : mod === 'v_proj' ? (spec.numHeads + spec.numKvHeads) * D : 0;
  return { buffer, rowOffset, K: mod === 'o_proj' ? spec.numHeads * D : H };
}

/**
 * Folds sign·(α/r)·B·A into the base weights on the GPU (f32 bases only), so MoeModel runs the
 * adapted model with no LoRA path of its own. `unmergeLora` (sign −1) restores the base up to f32
 * rounding. Returns the number of matrices changed.
 */
export async function mergeLora(device: GPUDevice, spec: ModelSpec, w: ModelWeights, a: LoraAdapter, sign: 1 | -1 = 1): Promise<number> {
  const host = await readLora(device, a);
  let n = 0;
  for (let l = 0; l < host.length; l++) {
    for (const [mod, p] of Object.entries(host[l]!) as Array<[LoraModule, { A: Float32Array; B: Float32Array; rank: number; inDim: number; outDim: number } | undefined]>) {
      if (!p) continue;
      const t = target(spec, w, l, mod);
      const offset = t.rowOffset * t.K * 4;
      const base = new Float32Array(await readRange(device, t.buffer, offset, p.outDim * t.K * 4));
      const s = sign * a.scale;
      for (let i = 0; i < p.outDim; i++) {
        for (let c = 0; c < p.inDim; c++) {
          let d = 0;
          for (let j = 0; j < p.rank; j++) d += p.B[i * p.rank + j]! * p.A[j * p.inDim + c]!;
          base[i * t.K + c] = base[i * t.K + c]! + s * d;
        }
      }
      device.queue.writeBuffer(t.buffer, offset, base);
      n++;
    }
  }
  return n;
}

export const unmergeLora = (device: GPUDevice, spec: ModelSpec, w: ModelWeights, a: LoraAdapter) => mergeLora(device, spec, w, a, -1);

/** Merges the adapter for inference and returns the undo (the chat sees the fine-tuned model meanwhile). */
export async function applyLora(device: GPUDevice, spec: ModelSpec, w: ModelWeights, a: LoraAdapter): Promise<() => Promise<void>> {
  await mergeLora(device, spec, w, a, 1);
  return async () => {
    await mergeLora(device, spec, w, a, -1);
  };
}

async function readRange(device: GPUDevice, src: GPUBuffer, offset: number, bytes: number): Promise<ArrayBuffer> {
  const staging = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(src, offset, staging, 0, bytes);
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = staging.getMappedRange().slice(0);
  staging.unmap();
  staging.destroy();
  return out;
}

/** PEFT's adapter_config.json for this adapter (transformers' module names). */
export function peftConfig(a: LoraAdapter, baseModel: string): Record<string, unknown> {
  return {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: baseModel,
    r: a.options.rank,
    lora_alpha: a.options.alpha,
    lora_dropout: 0,
    bias: 'none',
    fan_in_fan_out: false,
    use_rslora: false,
    target_modules: [...a.options.targets],
    inference_mode: true,
  };
}

/** The adapter's tensors under PEFT's key names (base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight …). */
export async function peftTensors(device: GPUDevice, a: LoraAdapter): Promise<Array<{ name: string; shape: number[]; data: Float32Array }>> {
  const host = await readLora(device, a);
  const out: Array<{ name: string; shape: number[]; data: Float32Array }> = [];
  host.forEach((l, i) => {
    for (const [mod, p] of Object.entries(l) as Array<[LoraModule, { A: Float32Array; B: Float32Array; rank: number; inDim: number; outDim: number } | undefined]>) {
      if (!p) continue;
      const base = `base_model.model.model.layers.${i}.self_attn.${mod}`;
      out.push({ name: `${base}.lora_A.weight`, shape: [p.rank, p.inDim], data: p.A });
      out.push({ name: `${base}.lora_B.weight`, shape: [p.outDim, p.rank], data: p.B });
    }
  });
  return out;
}
