/**
 * PEFT LoRA adapters in and out: an adapter folder (adapter_config.json + adapter_model.safetensors,
 * as HF PEFT saves it) becomes a LoraAdapter the engine can merge for chat, and an adapter trained
 * here is written in that form (lora.ts's peftConfig / peftTensors give the contents). Only what the
 * engine's LoRA does is accepted: plain LoRA (no DoRA, no rank pattern, no bias) on q/k/v/o_proj of
 * every layer; anything else is refused naming the field, before any GPU buffer is made.
 */
import { uploadStorage, createStorage } from '../gpu/buffers';
import { SafetensorsCheckpoint } from '../io/safetensors';
import type { ByteSource } from '../io/source';
import type { ModelSpec } from '../model/spec';
import { LORA_MODULES, loraShape, validateLora, type LoraAdapter, type LoraModule, type LoraOptions, type LoraPair } from './lora';

export class PeftAdapterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PeftAdapterError';
  }
}

/** What a PEFT folder holds, on the CPU: options, the scale, and A/B per layer and module. */
export interface HostAdapter {
  options: LoraOptions;
  scale: number;
  layers: Array<Partial<Record<LoraModule, { A: Float32Array; B: Float32Array }>>>;
}

const KEY = /^base_model\.model\.model\.layers\.(\d+)\.self_attn\.(q_proj|k_proj|v_proj|o_proj)\.lora_([AB])(?:\.default)?\.weight$/;

/** Reads and checks an adapter against `spec` (shapes, modules, layers). */
export async function readPeftAdapter(config: unknown, weights: ByteSource, spec: ModelSpec): Promise<HostAdapter> {
  const fail = (why: string): never => {
    throw new PeftAdapterError(`adapter_config.json: ${why}`);
  };
  if (typeof config !== 'object' || config === null || Array.isArray(config)) fail('is not a JSON object');
  const c = config as Record<string, unknown>;
  if (c.peft_type !== 'LORA') fail(`peft_type ${JSON.stringify(c.peft_type)} is not "LORA"`);
  const rank = c.r;
  const alpha = c.lora_alpha;
  if (typeof rank !== 'number' || !Number.isInteger(rank) || rank < 1 || rank > 1024) fail(`"r" must be a whole number from 1 to 1024, got ${JSON.stringify(rank)}`);
  if (typeof alpha !== 'number' || !(alpha > 0) || !Number.isFinite(alpha)) fail(`"lora_alpha" must be a number > 0, got ${JSON.stringify(alpha)}`);
  for (const [key, ok] of [['use_dora', false], ['fan_in_fan_out', false]] as const) if (c[key] !== undefined && c[key] !== null && c[key] !== ok) fail(`"${key}": ${JSON.stringify(c[key])} is not supported`);
  if (c.bias !== undefined && c.bias !== 'none') fail(`"bias": ${JSON.stringify(c.bias)} is not supported (only "none")`);
  for (const key of ['rank_pattern', 'alpha_pattern']) {
    const v = c[key];
    if (v !== undefined && v !== null && (typeof v !== 'object' || Object.keys(v).length > 0)) fail(`"${key}" (per-module ranks) is not supported`);
  }
  const targets = typeof c.target_modules === 'string' ? [c.target_modules] : c.target_modules;
  if (!Array.isArray(targets) || !targets.length || targets.some((t) => typeof t !== 'string')) fail(`"target_modules" must be a list of module names, got ${JSON.stringify(c.target_modules)}`);
  const options: LoraOptions = { rank: rank as number, alpha: alpha as number, targets: targets as LoraModule[], seed: 0 };
  try {
    validateLora(options);
  } catch (e) {
    fail(e instanceof Error ? e.message : String(e));
  }
  if (spec.mla) fail(`LoRA on ${spec.arch}: latent attention has no q_proj/v_proj to adapt`);
  // rsLoRA scales by α/√r instead of α/r.
  const scale = c.use_rslora === true ? (alpha as number) / Math.sqrt(rank as number) : (alpha as number) / (rank as number);

  const st = await SafetensorsCheckpoint.open([weights]);
  const layers: HostAdapter['layers'] = spec.layers.map(() => ({}));
  const seen = new Set<string>();
  for (const name of st.names()) {
    const m = KEY.exec(name);
    if (!m) throw new PeftAdapterError(`adapter_model.safetensors: tensor "${name}" is not a LoRA weight of a q/k/v/o projection this engine adapts`);
    const l = Number(m[1]);
    const mod = m[2] as LoraModule;
    if (l >= spec.numLayers) throw new PeftAdapterError(`adapter_model.safetensors: "${name}" is for layer ${l}; the model has ${spec.numLayers}`);
    if (!options.targets.includes(mod)) throw new PeftAdapterError(`adapter_model.safetensors: "${name}" adapts ${mod}, which target_modules does not list`);
    const { inDim, outDim } = loraShape(spec, mod);
    const want = m[3] === 'A' ? [options.rank, inDim] : [outDim, options.rank];
    const got = st.shape(name);
    if (got.join() !== want.join()) throw new PeftAdapterError(`adapter_model.safetensors: "${name}" has shape [${got.join(', ')}], expected [${want.join(', ')}] (r = ${options.rank})`);
    const entry = (layers[l]![mod] ??= { A: new Float32Array(0), B: new Float32Array(0) });
    entry[m[3] as 'A' | 'B'] = await st.read(name);
    seen.add(`${l}.${mod}.${m[3]}`);
  }
  for (let l = 0; l < spec.numLayers; l++) {
    for (const mod of options.targets) {
      for (const ab of ['A', 'B']) if (!seen.has(`${l}.${mod}.${ab}`)) throw new PeftAdapterError(`adapter_model.safetensors has no lora_${ab} for layer ${l}'s ${mod}`);
    }
  }
  return { options, scale, layers };
}

/** The adapter on the GPU, in the shape training and mergeLora use (gradient buffers included, zero). */
export function uploadAdapter(device: GPUDevice, spec: ModelSpec, h: HostAdapter): LoraAdapter {
  const layers = h.layers.map((l, i) => {
    const out: Partial<Record<LoraModule, LoraPair>> = {};
    for (const mod of LORA_MODULES) {
      const p = l[mod];
      if (!p) continue;
      const { inDim, outDim } = loraShape(spec, mod);
      const r = h.options.rank;
      out[mod] = {
        A: uploadStorage(device, p.A, `L${i}.${mod}.lora_A`),
        B: uploadStorage(device, p.B, `L${i}.${mod}.lora_B`),
        gA: createStorage(device, r * inDim * 4, `L${i}.${mod}.lora_A.grad`),
        gB: createStorage(device, outDim * r * 4, `L${i}.${mod}.lora_B.grad`),
        rank: r,
        inDim,
        outDim,
      };
    }
    return out;
  });
  return { options: h.options, scale: h.scale, layers };
}
