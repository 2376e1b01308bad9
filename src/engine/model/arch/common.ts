/**
 * What the architecture builders share: config.json schemas (valibot) whose errors name the key
 * and the model_type, RoPE settings in both transformers 4 and 5 spellings, the attention part of
 * the spec, and weight slots assembled from HF tensors (single tensors, gate+up concatenated,
 * experts stacked from per-expert tensors or taken from a fused 3-D tensor).
 */
import * as v from 'valibot';
import { previewValue } from '../../io/preview';
import { ConfigError, layerSlot, type LayerSlot, type ModelSpec, type RopeScaling, type SlotName, type TensorReader, type WeightSlot } from '../spec';

export type Config = Record<string, unknown>;

// ---------------------------------------------------------------- config schemas

/**
 * Largest size a config may give: a forged 1e308 is an "integer" to JavaScript, and sizes flow into
 * array lengths and loops before any tensor is read (fuzzing found `num_experts: 1e308` throwing
 * RangeError). Real models stay far below (vocabularies ~2^18, hidden sizes ~2^14).
 */
export const MAX_CONFIG_INT = 2 ** 24;
/** Most layers and most experts a config may declare (today's largest MoE models: 94 layers, 512 experts). */
export const MAX_LAYERS = 1024;
export const MAX_EXPERTS = 4096;

/** An integer in [min, max] (messages are the "must be …" part of the error). */
export function int(min = 1, max = MAX_CONFIG_INT) {
  const d = `an integer from ${min} to ${max}`;
  return v.pipe(v.number(d), v.integer(d), v.minValue(min, d), v.maxValue(max, d));
}
/** A finite number (> 0 when `positive`). */
export function num(positive = false) {
  const d = positive ? 'a number > 0' : 'a finite number';
  return positive ? v.pipe(v.number(d), v.finite(d), v.gtValue(0, d)) : v.pipe(v.number(d), v.finite(d));
}
export const bool = () => v.boolean('true or false');
export const intList = () => v.array(int(0), 'a list of integers');
/** eos_token_id / bos_token_id: one id or a list (null: none). */
export const ids = () => v.union([int(0), v.array(int(0))], 'a token id or a list of token ids');

/** Config keys every builder reads; `defaults` are the arch's HF class defaults. */
export function baseEntries(defaults: { rmsNormEps: number; maxPositions: number; bos: number | null; eos: number | number[] | null }) {
  return {
    vocab_size: int(),
    hidden_size: int(),
    num_hidden_layers: int(1, MAX_LAYERS),
    num_attention_heads: int(),
    /** Resolved per arch (HF class default, or num_attention_heads when null). */
    num_key_value_heads: v.nullish(int()),
    head_dim: v.nullish(int()),
    hidden_act: v.nullish(v.picklist(['silu', 'swish'], '"silu" (the expert kernels are SwiGLU)'), 'silu'),
    rms_norm_eps: v.nullish(num(true), defaults.rmsNormEps),
    max_position_embeddings: v.nullish(int(), defaults.maxPositions),
    tie_word_embeddings: v.nullish(bool(), false),
    // Absent: the class default; null: none.
    bos_token_id: v.optional(v.nullable(ids()), defaults.bos),
    eos_token_id: v.optional(v.nullable(ids()), defaults.eos),
  };
}

const describe = (input: unknown): string => previewValue(input);

/** Parses `config` with `schema`; every problem (up to 5) in one ConfigError naming the keys. */
export function parseWith<S extends v.GenericSchema>(arch: string, schema: S, config: Config): v.InferOutput<S> {
  const r = v.safeParse(schema, config);
  if (r.success) return r.output;
  const problems = r.issues.slice(0, 5).map((issue) => {
    const path = v.getDotPath(issue) ?? '(root)';
    if (issue.input === undefined && issue.path?.length === 1) return `is missing "${path}"`;
    return `"${path}" must be ${issue.message}, got ${describe(issue.input)}`;
  });
  const more = r.issues.length > 5 ? ` (and ${r.issues.length - 5} more)` : '';
  throw new ConfigError(`${arch} config.json ${problems.join('; ')}${more}`);
}

/** The value of the first of `keys` present and not null (HF aliases, e.g. num_experts / num_local_experts). */
export function aliased(arch: string, config: Config, keys: string[]): unknown {
  for (const k of keys) if (Object.hasOwn(config, k) && config[k] !== null && config[k] !== undefined) return config[k];
  throw new ConfigError(`${arch} config.json is missing "${keys[0]}" (or "${keys.slice(1).join('" or "')}")`);
}

/** An integer read through `aliased`, checked like the schemas check. */
export function aliasedInt(arch: string, config: Config, keys: string[], min = 1, max = MAX_EXPERTS): number {
  const val = aliased(arch, config, keys);
  if (typeof val !== 'number' || !Number.isInteger(val) || val < min || val > max) {
    throw new ConfigError(`${arch} config.json "${keys.find((k) => config[k] === val)}" must be an integer from ${min} to ${max}, got ${describe(val)}`);
  }
  return val;
}

export function idList(v: number | number[] | null): number[] {
  return v === null ? [] : Array.isArray(v) ? v : [v];
}

// ---------------------------------------------------------------- RoPE

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/**
 * RoPE as transformers 5 resolves it: `rope_scaling` (4.x) wins over `rope_parameters` (5.x); a
 * dict keyed by layer type takes its "full_attention" entry; theta comes from that dict, else the
 * top-level `rope_theta`, else the arch's default. Scaling: none/"default" and "linear" (positions
 * divided by factor, = HF dividing inv_freq); anything else is refused by name.
 */
export function parseRope(arch: string, config: Config, defaultTheta: number): { ropeTheta: number; ropeScaling: RopeScaling } {
  const bad = (why: string): never => {
    throw new ConfigError(`${arch} config.json ${why}`);
  };
  const scaling = config.rope_scaling;
  const params = config.rope_parameters;
  for (const [k, x] of [['rope_scaling', scaling], ['rope_parameters', params]] as const) {
    if (x !== undefined && x !== null && !isObject(x)) bad(`"${k}" must be an object, got ${describe(x)}`);
  }
  let key = isObject(scaling) && Object.keys(scaling).length ? 'rope_scaling' : 'rope_parameters';
  let rp: Record<string, unknown> = (isObject(scaling) && Object.keys(scaling).length ? scaling : isObject(params) ? params : null) ?? {};
  if (isObject(rp.full_attention) || isObject(rp.sliding_attention)) {
    if (!isObject(rp.full_attention)) bad(`"${key}" has settings for sliding_attention layers only`);
    rp = rp.full_attention as Record<string, unknown>;
    key = `${key}.full_attention`;
  }
  const theta = rp.rope_theta ?? config.rope_theta ?? defaultTheta;
  if (typeof theta !== 'number' || !(theta > 0) || !Number.isFinite(theta)) bad(`"rope_theta" must be a number > 0, got ${describe(theta)}`);
  const partial = rp.partial_rotary_factor ?? config.partial_rotary_factor;
  if (partial !== undefined && partial !== null && partial !== 1) bad(`"partial_rotary_factor" ${describe(partial)} is not supported (RoPE over the whole head only)`);
  const type = rp.rope_type ?? rp.type ?? 'default';
  if (type === 'default') return { ropeTheta: theta as number, ropeScaling: { type: 'default' } };
  if (type === 'linear') {
    const f = rp.factor;
    if (typeof f !== 'number' || !(f > 0) || !Number.isFinite(f)) bad(`"${key}.factor" must be a number > 0 for linear RoPE scaling, got ${describe(f)}`);
    return { ropeTheta: theta as number, ropeScaling: { type: 'linear', factor: f as number } };
  }
  if (type === 'yarn') return { ropeTheta: theta as number, ropeScaling: parseYarn(rp, key, config, bad) };
  return bad(`"${key}": RoPE scaling type ${describe(type)} is not supported (none, "default", "linear" and "yarn" are)`);
}

/** HF's _compute_yarn_parameters: its defaults, and the attention factor it derives from mscale / mscale_all_dim. */
function parseYarn(rp: Record<string, unknown>, key: string, config: Config, bad: (why: string) => never): RopeScaling {
  const positive = (name: string, x: unknown): number => {
    if (typeof x !== 'number' || !(x > 0) || !Number.isFinite(x)) bad(`"${key}.${name}" must be a number > 0 for YaRN, got ${describe(x)}`);
    return x as number;
  };
  const orig = positive('original_max_position_embeddings', rp.original_max_position_embeddings);
  const maxPos = config.max_position_embeddings;
  // HF: no factor → the ratio of the context to the pretraining context.
  const factor = rp.factor === undefined || rp.factor === null ? positive('factor', typeof maxPos === 'number' ? maxPos / orig : undefined) : positive('factor', rp.factor);
  const opt = (name: string, dflt: number) => (rp[name] === undefined || rp[name] === null || rp[name] === 0 ? dflt : positive(name, rp[name]));
  const mscale = (scale: number, m: number) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
  let attentionFactor: number;
  if (rp.attention_factor !== undefined && rp.attention_factor !== null) attentionFactor = positive('attention_factor', rp.attention_factor);
  else if (rp.mscale && rp.mscale_all_dim) attentionFactor = mscale(factor, positive('mscale', rp.mscale)) / mscale(factor, positive('mscale_all_dim', rp.mscale_all_dim));
  else attentionFactor = mscale(factor, 1);
  const truncate = rp.truncate ?? true;
  if (typeof truncate !== 'boolean') bad(`"${key}.truncate" must be true or false, got ${describe(truncate)}`);
  return { type: 'yarn', factor, originalMaxPositions: orig, betaFast: opt('beta_fast', 32), betaSlow: opt('beta_slow', 1), attentionFactor, truncate: truncate as boolean };
}

/** DeepSeek's extra factor on the attention logits under YaRN: mscale(factor, mscale_all_dim)², else 1. */
export function yarnLogitGain(config: Config): number {
  const pick = (x: unknown) => (typeof x === 'object' && x !== null && !Array.isArray(x) && Object.keys(x).length ? (x as Record<string, unknown>) : null);
  const rp = pick(config.rope_scaling) ?? pick(config.rope_parameters);
  const type = rp?.rope_type ?? rp?.type ?? 'default';
  if (!rp || type === 'default' || !rp.mscale_all_dim || typeof rp.factor !== 'number' || typeof rp.mscale_all_dim !== 'number') return 1;
  const m = rp.factor <= 1 ? 1 : 0.1 * rp.mscale_all_dim * Math.log(rp.factor) + 1;
  return m * m;
}

// ---------------------------------------------------------------- shared spec parts

export type BaseConfig = v.InferOutput<v.ObjectSchema<ReturnType<typeof baseEntries>, undefined>>;

/** The attention/embedding part of the spec, read the same way by every builder. */
export function attentionSpec(
  arch: string,
  c: BaseConfig,
  config: Config,
  opts: { defaultTheta: number; defaultKvHeads: number | null },
): Pick<ModelSpec, 'vocabSize' | 'hiddenSize' | 'numLayers' | 'numHeads' | 'numKvHeads' | 'headDim' | 'rmsNormEps' | 'ropeTheta' | 'ropeScaling' | 'maxPositions' | 'tieWordEmbeddings' | 'bosTokenId' | 'eosTokenIds'> {
  const numHeads = c.num_attention_heads;
  // HF: a key left out takes the class default; null (or a class default of None) means "as many as query heads".
  const numKvHeads = c.num_key_value_heads ?? (Object.hasOwn(config, 'num_key_value_heads') ? null : opts.defaultKvHeads) ?? numHeads;
  if (numHeads % numKvHeads !== 0) throw new ConfigError(`${arch} config.json: num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  const headDim = c.head_dim ?? Math.floor(c.hidden_size / numHeads);
  if (headDim < 2 || headDim % 2 !== 0) throw new ConfigError(`${arch} config.json: head_dim ${headDim} must be even for RoPE (hidden_size / num_attention_heads when "head_dim" is not given)`);
  const bos = idList(c.bos_token_id);
  return {
    vocabSize: c.vocab_size,
    hiddenSize: c.hidden_size,
    numLayers: c.num_hidden_layers,
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: c.rms_norm_eps,
    ...parseRope(arch, config, opts.defaultTheta),
    maxPositions: c.max_position_embeddings,
    tieWordEmbeddings: c.tie_word_embeddings,
    bosTokenId: bos[0] ?? null,
    eosTokenIds: idList(c.eos_token_id),
  };
}

export const neutral = { embeddingMultiplier: 1, residualMultiplier: 1, attentionScale: null, logitsDivisor: 1 } as const;

/**
 * Sliding-window attention is exact full attention while the context fits in the window, so a
 * model with a window is run with its context capped at the window instead of being refused.
 */
export function capToWindow(maxPositions: number, window: number | null): number {
  return window !== null && window > 0 ? Math.min(maxPositions, window) : maxPositions;
}

/**
 * Most layers × experts a config may declare. Checkpoints in the per-expert layout get three weight
 * sources per expert and layer, built before any tensor is looked up: a 300-byte config.json with
 * 1024 layers × 4096 experts (each within its own bound) made 12.6 M of them, 8 s and gigabytes
 * (fuzzing found). Today's largest MoE models declare ~24 k (Qwen3-Next 48 × 512, Kimi K2 61 × 384).
 */
export const MAX_EXPERT_TOTAL = 2 ** 16;

export function checkExpertTotal(arch: string, numLayers: number, numExperts: number): void {
  if (numLayers * numExperts > MAX_EXPERT_TOTAL) {
    throw new ConfigError(`${arch} config.json: ${numLayers} layers × ${numExperts} experts is ${numLayers * numExperts} experts in all, more than the ${MAX_EXPERT_TOTAL} this loader accepts`);
  }
}

/** top-k must be between 1 and the number of experts. */
export function checkTopK(arch: string, topK: number, numExperts: number): void {
  if (numExperts > 0 && topK > numExperts) throw new ConfigError(`${arch} config.json: num_experts_per_tok ${topK} is more than the ${numExperts} experts`);
}

// ---------------------------------------------------------------- weight slots

const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);

export function single(name: SlotName, hf: string, shape: number[]): WeightSlot {
  return { name, shape, sources: [{ name: hf, shape }], load: (r) => r.read(hf) };
}

/** Several tensors one after another in memory: rows of [rows_i, cols] (gate then up), or experts [E, …]. */
export function concat(name: SlotName, sources: Array<{ name: string; shape: number[] }>, shape: number[]): WeightSlot {
  return {
    name,
    shape,
    sources,
    async load(r) {
      const out = new Float32Array(numel(shape));
      let o = 0;
      for (const s of sources) {
        const d = await r.read(s.name);
        if (o + d.length > out.length) throw new Error(`${name}: tensor "${s.name}" holds more values than its shape [${s.shape.join(', ')}]`);
        out.set(d, o);
        o += d.length;
      }
      return out;
    },
  };
}

/** [E, …] from E per-expert pieces, each itself possibly a concatenation (gate+up rows). */
export function stackExperts(name: SlotName, E: number, piece: (e: number) => Array<{ name: string; shape: number[] }>, shape: number[]): WeightSlot {
  return concat(name, Array.from({ length: E }, (_, e) => piece(e)).flat(), shape);
}

/**
 * A fused [E, rows, cols] tensor (transformers 5's `experts.gate_up_proj` [E, 2I, H] with the gate
 * rows first, `experts.down_proj` [E, H, I]). Also accepted transposed as [E, cols, rows] (the
 * layout some conversions write); the transpose happens on load.
 */
export function fusedExperts(name: SlotName, hf: string, shape: [number, number, number], reader: TensorReader): WeightSlot {
  const [E, rows, cols] = shape;
  const stored = reader.has(hf) ? reader.shape(hf) : shape;
  const transposed = rows !== cols && stored.length === 3 && stored[0] === E && stored[1] === cols && stored[2] === rows;
  return {
    name,
    shape,
    sources: [{ name: hf, shape: transposed ? [E, cols, rows] : shape }],
    async load(r) {
      const d = await r.read(hf);
      if (!transposed) return d;
      const out = new Float32Array(d.length);
      for (let e = 0; e < E; e++) {
        const b = e * rows * cols;
        for (let i = 0; i < cols; i++) for (let j = 0; j < rows; j++) out[b + j * cols + i] = d[b + i * rows + j]!;
      }
      return out;
    },
  };
}

/** Slots of the attention block and its norms, with HF's Llama-family names. */
export function attentionSlots(s: ModelSpec, l: number, p = `model.layers.${l}`): WeightSlot[] {
  const H = s.hiddenSize, D = s.headDim;
  const L = (slot: LayerSlot) => layerSlot(l, slot);
  const out = [
    single(L('attn_norm'), `${p}.input_layernorm.weight`, [H]),
    single(L('mlp_norm'), `${p}.post_attention_layernorm.weight`, [H]),
    single(L('q'), `${p}.self_attn.q_proj.weight`, [s.numHeads * D, H]),
    single(L('k'), `${p}.self_attn.k_proj.weight`, [s.numKvHeads * D, H]),
    single(L('v'), `${p}.self_attn.v_proj.weight`, [s.numKvHeads * D, H]),
    single(L('o'), `${p}.self_attn.o_proj.weight`, [H, s.numHeads * D]),
  ];
  if (s.qkvBias) {
    out.push(single(L('q_bias'), `${p}.self_attn.q_proj.bias`, [s.numHeads * D]));
    out.push(single(L('k_bias'), `${p}.self_attn.k_proj.bias`, [s.numKvHeads * D]));
    out.push(single(L('v_bias'), `${p}.self_attn.v_proj.bias`, [s.numKvHeads * D]));
  }
  if (s.oBias) out.push(single(L('o_bias'), `${p}.self_attn.o_proj.bias`, [H]));
  if (s.qkNorm !== 'none') {
    out.push(single(L('q_norm'), `${p}.self_attn.q_norm.weight`, [s.qkNorm === 'head' ? D : s.numHeads * D]));
    out.push(single(L('k_norm'), `${p}.self_attn.k_norm.weight`, [s.qkNorm === 'head' ? D : s.numKvHeads * D]));
  }
  return out;
}

/**
 * Embedding, final norm and LM head. Tied embeddings have no lm_head slot: the forward pass reads
 * `model.embed_tokens.weight` for both (a stray lm_head.weight in a tied checkpoint is ignored, as HF does).
 */
export function globalSlots(s: ModelSpec): WeightSlot[] {
  const out = [single('embed', 'model.embed_tokens.weight', [s.vocabSize, s.hiddenSize]), single('final_norm', 'model.norm.weight', [s.hiddenSize])];
  if (!s.tieWordEmbeddings) out.push(single('lm_head', 'lm_head.weight', [s.vocabSize, s.hiddenSize]));
  return out;
}

/** A SwiGLU MLP with HF's `{gate,up,down}_proj` names under `p`, as slots `<prefix>.gate_up` / `<prefix>.down`. */
export function mlpSlots(l: number, prefix: 'mlp' | 'shared', p: string, H: number, I: number): WeightSlot[] {
  return [
    concat(layerSlot(l, `${prefix}.gate_up`), [{ name: `${p}.gate_proj.weight`, shape: [I, H] }, { name: `${p}.up_proj.weight`, shape: [I, H] }], [2 * I, H]),
    single(layerSlot(l, `${prefix}.down`), `${p}.down_proj.weight`, [H, I]),
  ];
}

/** Per-expert tensor names of the legacy (hub) layout. */
export interface LegacyExpertNames {
  gate: (e: number) => string;
  up: (e: number) => string;
  down: (e: number) => string;
}

/** `<p>.experts.{e}.{gate,up,down}_proj.weight` (Qwen2/3-MoE, OLMoE). */
export const projNames = (p: string): LegacyExpertNames => ({
  gate: (e) => `${p}.experts.${e}.gate_proj.weight`,
  up: (e) => `${p}.experts.${e}.up_proj.weight`,
  down: (e) => `${p}.experts.${e}.down_proj.weight`,
});

/**
 * Routed experts, in whichever layout the checkpoint has: fused `<fused>.gate_up_proj` /
 * `<fused>.down_proj` when the reader holds the former, else one tensor per expert.
 */
export function expertSlots(l: number, E: number, H: number, I: number, reader: TensorReader, fused: string, legacy: LegacyExpertNames): WeightSlot[] {
  const gu = layerSlot(l, 'experts.gate_up');
  const dn = layerSlot(l, 'experts.down');
  if (reader.has(`${fused}.gate_up_proj`)) {
    return [fusedExperts(gu, `${fused}.gate_up_proj`, [E, 2 * I, H], reader), fusedExperts(dn, `${fused}.down_proj`, [E, H, I], reader)];
  }
  return [
    stackExperts(gu, E, (e) => [{ name: legacy.gate(e), shape: [I, H] }, { name: legacy.up(e), shape: [I, H] }], [E, 2 * I, H]),
    stackExperts(dn, E, (e) => [{ name: legacy.down(e), shape: [H, I] }], [E, H, I]),
  ];
}

/** HF: layer i is sparse iff i ∉ mlp_only_layers and num_experts > 0 and (i + 1) % decoder_sparse_step == 0. */
export function sparseLayers(numLayers: number, numExperts: number, step: number, mlpOnly: number[]): Array<{ mlp: 'moe' | 'dense' }> {
  const dense = new Set(mlpOnly);
  return Array.from({ length: numLayers }, (_, i) => ({ mlp: !dense.has(i) && numExperts > 0 && (i + 1) % step === 0 ? 'moe' : 'dense' }));
}
