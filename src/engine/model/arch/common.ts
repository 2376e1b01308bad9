/**
 * What the architecture builders share: reading config keys with errors that name them, the
 * attention/embedding part of the spec, and weight slots assembled from HF tensors (single
 * tensors, gate+up concatenated, experts stacked from per-expert tensors or taken fused).
 */
import { ConfigError, layerSlot, type LayerSlot, type ModelSpec, type RopeScaling, type SlotName, type TensorReader, type WeightSlot } from '../spec';

export type Config = Record<string, unknown>;

export class ConfigReader {
  constructor(
    private readonly c: Config,
    private readonly arch: string,
  ) {}
  private raw(key: string): unknown {
    return Object.hasOwn(this.c, key) ? this.c[key] : undefined;
  }
  has(key: string): boolean {
    const v = this.raw(key);
    return v !== undefined && v !== null;
  }
  int(key: string, fallback?: number, min = 1): number {
    const v = this.raw(key) ?? fallback;
    if (v === undefined || v === null) throw new ConfigError(`${this.arch} config.json is missing "${key}"`);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new ConfigError(`${this.arch} config.json: "${key}" must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
    return v;
  }
  num(key: string, fallback?: number): number {
    const v = this.raw(key) ?? fallback;
    if (v === undefined || v === null) throw new ConfigError(`${this.arch} config.json is missing "${key}"`);
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(`${this.arch} config.json: "${key}" must be a number, got ${JSON.stringify(v)}`);
    return v;
  }
  bool(key: string, fallback: boolean): boolean {
    const v = this.raw(key) ?? fallback;
    if (typeof v !== 'boolean') throw new ConfigError(`${this.arch} config.json: "${key}" must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }
  intList(key: string): number[] {
    const v = this.raw(key) ?? [];
    if (!Array.isArray(v) || v.some((x) => !Number.isInteger(x))) throw new ConfigError(`${this.arch} config.json: "${key}" must be a list of integers`);
    return v as number[];
  }
  /** An id or a list of ids (eos_token_id may be either). */
  ids(key: string): number[] {
    const v = this.raw(key);
    if (v === undefined || v === null) return [];
    if (Number.isInteger(v)) return [v as number];
    if (Array.isArray(v) && v.every((x) => Number.isInteger(x))) return v as number[];
    throw new ConfigError(`${this.arch} config.json: "${key}" must be an id or a list of ids`);
  }
  /** The first of `keys` present (configs rename keys across transformers versions). */
  intAny(keys: string[]): number {
    const key = keys.find((k) => this.has(k));
    if (!key) throw new ConfigError(`${this.arch} config.json is missing "${keys.join('" (or "')}")`);
    return this.int(key);
  }
  /** transformers 5 nests RoPE settings in rope_parameters; 4.x has rope_theta and rope_scaling. */
  private ropeParams(): Record<string, unknown> | null {
    const v = this.raw('rope_parameters');
    if (v === undefined || v === null) return null;
    if (typeof v !== 'object' || Array.isArray(v)) throw new ConfigError(`${this.arch} config.json: "rope_parameters" must be an object`);
    return v as Record<string, unknown>;
  }
  ropeTheta(fallback: number): number {
    const rp = this.ropeParams();
    const v = rp?.rope_theta ?? this.raw('rope_theta') ?? fallback;
    if (typeof v !== 'number' || !(v > 0)) throw new ConfigError(`${this.arch} config.json: rope_theta must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  }
  ropeScaling(): RopeScaling {
    const v = this.ropeParams() ?? this.raw('rope_scaling');
    if (v === undefined || v === null) return { type: 'default' };
    const r = v as { type?: unknown; rope_type?: unknown; factor?: unknown };
    const type = r.rope_type ?? r.type;
    if (type === 'default' || type === undefined) return { type: 'default' };
    if (type === 'linear') {
      if (typeof r.factor !== 'number' || !(r.factor > 0)) throw new ConfigError(`${this.arch} config.json: rope_scaling.factor must be a positive number`);
      return { type: 'linear', factor: r.factor };
    }
    throw new ConfigError(`${this.arch} config.json: rope_scaling type ${JSON.stringify(type)} is not supported (none and "linear" are)`);
  }
}

/** The parts every supported architecture reads the same way. */
export function attentionSpec(c: ConfigReader): Pick<ModelSpec, 'vocabSize' | 'hiddenSize' | 'numLayers' | 'numHeads' | 'numKvHeads' | 'headDim' | 'rmsNormEps' | 'ropeTheta' | 'ropeScaling' | 'maxPositions' | 'tieWordEmbeddings' | 'bosTokenId' | 'eosTokenIds'> {
  const hiddenSize = c.int('hidden_size');
  const numHeads = c.int('num_attention_heads');
  const headDim = c.has('head_dim') ? c.int('head_dim') : hiddenSize / numHeads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) throw new ConfigError(`head_dim ${headDim} must be an even integer (hidden_size / num_attention_heads when not given)`);
  const numKvHeads = c.int('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) throw new ConfigError(`num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  const bos = c.ids('bos_token_id');
  return {
    vocabSize: c.int('vocab_size'),
    hiddenSize,
    numLayers: c.int('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: c.num('rms_norm_eps', 1e-6),
    ropeTheta: c.ropeTheta(10000),
    ropeScaling: c.ropeScaling(),
    maxPositions: c.int('max_position_embeddings', 4096),
    tieWordEmbeddings: c.bool('tie_word_embeddings', false),
    bosTokenId: bos[0] ?? null,
    eosTokenIds: c.ids('eos_token_id'),
  };
}

export const neutral = { embeddingMultiplier: 1, residualMultiplier: 1, attentionScale: null, logitsDivisor: 1 } as const;

const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);

export function single(name: SlotName, hf: string, shape: number[]): WeightSlot {
  return { name, shape, sources: [{ name: hf, shape }], load: (r) => r.read(hf) };
}

/** Rows of several [rows_i, cols] tensors one after another (gate then up). */
export function concatRows(name: SlotName, parts: Array<{ name: string; shape: number[] }>, shape: number[]): WeightSlot {
  return {
    name,
    shape,
    sources: parts,
    async load(r) {
      const out = new Float32Array(numel(shape));
      let o = 0;
      for (const p of parts) {
        const d = await r.read(p.name);
        out.set(d, o);
        o += d.length;
      }
      return out;
    },
  };
}

/** [E, ...] from E per-expert pieces, each itself possibly a concatenation (gate+up). */
export function stackExperts(name: SlotName, E: number, piece: (e: number) => Array<{ name: string; shape: number[] }>, shape: number[]): WeightSlot {
  const sources = Array.from({ length: E }, (_, e) => piece(e)).flat();
  return {
    name,
    shape,
    sources,
    async load(r) {
      const out = new Float32Array(numel(shape));
      let o = 0;
      for (const s of sources) {
        const d = await r.read(s.name);
        out.set(d, o);
        o += d.length;
      }
      return out;
    },
  };
}

/** A fused [E, rows, cols] tensor, also accepted transposed as [E, cols, rows]. */
export function fusedExperts(name: SlotName, hf: string, shape: [number, number, number], reader: TensorReader): WeightSlot {
  const [E, rows, cols] = shape;
  const stored = reader.has(hf) ? reader.shape(hf) : shape;
  const transposed = stored.length === 3 && stored[1] === cols && stored[2] === rows && rows !== cols;
  const srcShape = transposed ? [E, cols, rows] : shape;
  return {
    name,
    shape,
    sources: [{ name: hf, shape: srcShape }],
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

/** Sliding-window attention is not implemented: refuse configs that turn it on. */
export function refuseSlidingWindow(c: ConfigReader, arch: string): void {
  if (c.has('use_sliding_window') && c.bool('use_sliding_window', false)) {
    throw new ConfigError(`${arch} config.json sets use_sliding_window: sliding-window attention is not supported`);
  }
}

/** Slots of the attention block and norms, with HF's usual Llama-family names. */
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
    const qn = s.qkNorm === 'head' ? D : s.numHeads * D;
    const kn = s.qkNorm === 'head' ? D : s.numKvHeads * D;
    out.push(single(L('q_norm'), `${p}.self_attn.q_norm.weight`, [qn]));
    out.push(single(L('k_norm'), `${p}.self_attn.k_norm.weight`, [kn]));
  }
  return out;
}

export function globalSlots(s: ModelSpec): WeightSlot[] {
  const out = [single('embed', 'model.embed_tokens.weight', [s.vocabSize, s.hiddenSize]), single('final_norm', 'model.norm.weight', [s.hiddenSize])];
  // Some tied checkpoints still carry lm_head.weight; tied means the embedding is used regardless.
  if (!s.tieWordEmbeddings) out.push(single('lm_head', 'lm_head.weight', [s.vocabSize, s.hiddenSize]));
  return out;
}

/** Gate/up/down SwiGLU MLP with HF's `{gate,up,down}_proj` names under `p`. */
export function mlpSlots(l: number, prefix: string, p: string, H: number, I: number): WeightSlot[] {
  const gu = layerSlot(l, `${prefix}.gate_up` as LayerSlot);
  const dn = layerSlot(l, `${prefix}.down` as LayerSlot);
  return [
    concatRows(gu, [{ name: `${p}.gate_proj.weight`, shape: [I, H] }, { name: `${p}.up_proj.weight`, shape: [I, H] }], [2 * I, H]),
    single(dn, `${p}.down_proj.weight`, [H, I]),
  ];
}

/** Routed experts under `p` (`p.experts.{e}.{gate,up,down}_proj` legacy, or fused `p.experts.gate_up_proj`). */
export function expertSlots(l: number, p: string, E: number, H: number, I: number, reader: TensorReader): WeightSlot[] {
  const gu = layerSlot(l, 'experts.gate_up');
  const dn = layerSlot(l, 'experts.down');
  if (reader.has(`${p}.experts.gate_up_proj`)) {
    return [fusedExperts(gu, `${p}.experts.gate_up_proj`, [E, 2 * I, H], reader), fusedExperts(dn, `${p}.experts.down_proj`, [E, H, I], reader)];
  }
  return [
    stackExperts(gu, E, (e) => [{ name: `${p}.experts.${e}.gate_proj.weight`, shape: [I, H] }, { name: `${p}.experts.${e}.up_proj.weight`, shape: [I, H] }], [E, 2 * I, H]),
    stackExperts(dn, E, (e) => [{ name: `${p}.experts.${e}.down_proj.weight`, shape: [H, I] }], [E, H, I]),
  ];
}
