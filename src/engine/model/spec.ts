/**
 * The engine's view of a model, whatever its architecture: an arch builder (model/arch/*.ts) reads
 * HF's config.json into a ModelSpec and maps the checkpoint's tensors onto canonical weight slots.
 * The forward pass knows only these two; adding an architecture touches one builder file.
 */

export type ArchName = 'qwen2_moe' | 'qwen3_moe' | 'mixtral' | 'olmoe' | 'granitemoe' | 'deepseek_v2' | 'deepseek_v3';

export type RopeScaling =
  | { type: 'default' }
  /** Positions divided by `factor` (HF "linear"). */
  | { type: 'linear'; factor: number }
  /**
   * YaRN (HF "yarn"): per-frequency blend of interpolated and original inv_freq, and cos/sin scaled by
   * attentionFactor. The DeepSeek models' extra mscale on the attention logits is in attentionScale.
   */
  | { type: 'yarn'; factor: number; originalMaxPositions: number; betaFast: number; betaSlow: number; attentionFactor: number; truncate: boolean };

export interface MoeSpec {
  numExperts: number;
  topK: number;
  /** Renormalise the top-k gate weights to sum to 1 (Mixtral always; Qwen/OLMoE per config). */
  normTopkProb: boolean;
  /** Per-expert FFN width. */
  intermediateSize: number;
  /** Qwen2-MoE's always-on expert, scaled by sigmoid(shared_expert_gate · x); null when absent. */
  sharedExpert: { intermediateSize: number; gated: boolean } | null;
  /**
   * The checkpoint's own routing rule, which the router knobs start from (defaults: softmax, one
   * group, scale 1). DeepSeek-V3: sigmoid scores, a per-layer e_score_correction_bias added for the
   * choice only, groups valued by their top-2 sum; DeepSeek-V2: softmax, groups valued by their max.
   */
  scoring?: 'softmax' | 'sigmoid';
  nGroup?: number;
  topkGroup?: number;
  groupScore?: 'max' | 'top2sum';
  routedScale?: number;
  /** Each MoE layer has a `router_bias` slot (DeepSeek-V3's e_score_correction_bias). */
  correctionBias?: boolean;
}

/**
 * DeepSeek's multi-head latent attention. Queries: [nope | rope] per head from q_proj (or q_a → norm
 * → q_b when qLoraRank is set). Keys/values: x → [c (kvLoraRank) | k_rope (shared by all heads)];
 * c is normed, and kv_b maps it to each head's k_nope and value. The engine caches only [c | k_rope]
 * per position and folds kv_b into the query and the output (see shaders/mla.wgsl).
 */
export interface MlaSpec {
  qLoraRank: number | null;
  kvLoraRank: number;
  nopeDim: number;
  ropeDim: number;
  vDim: number;
  /** The checkpoint's rope dims come in interleaved pairs; rows are reordered to halves at load. */
  ropeInterleaved: boolean;
}

export interface LayerSpec {
  /** 'moe': routed experts (+ shared); 'dense': a plain SwiGLU MLP (qwen3 mlp_only_layers, sparse step). */
  mlp: 'moe' | 'dense';
}

export interface ModelSpec {
  arch: ArchName;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling;
  maxPositions: number;
  tieWordEmbeddings: boolean;
  /** Biases on q/k/v projections (Qwen2-MoE). */
  qkvBias: boolean;
  /** Bias on the output projection. */
  oBias: boolean;
  /**
   * RMSNorm on queries and keys before RoPE: 'head' normalises each head over head_dim (Qwen3-MoE),
   * 'full' normalises the whole projection (OLMoE: q over numHeads·headDim, k over numKvHeads·headDim).
   */
  qkNorm: 'none' | 'head' | 'full';
  /** Granite-style scalars; all 1 / null elsewhere. */
  embeddingMultiplier: number;
  residualMultiplier: number;
  /** Attention logit scale; null means 1/sqrt(headDim). */
  attentionScale: number | null;
  /** Final logits are divided by this (Granite's logits_scaling). */
  logitsDivisor: number;
  /** Width of dense MLP layers (only used when some layer is 'dense'). */
  denseIntermediateSize: number;
  moe: MoeSpec;
  /** Latent attention (DeepSeek); null: ordinary multi-head / grouped-query attention. */
  mla?: MlaSpec | null;
  layers: LayerSpec[];
  bosTokenId: number | null;
  eosTokenIds: number[];
}

/**
 * Canonical weight slots. Linear weights keep HF's [out, in] layout. Experts are stacked:
 * `experts.gate_up` is [E, 2·I, H] with the gate rows first, `experts.down` is [E, H, I].
 * Latent attention: rope rows of `q`/`q_b`/`kv_a` ordered in halves (not interleaved pairs), and
 * `kv_b` per head as the key rows [dn, L] then the value rows transposed to [L, dv].
 */
export type GlobalSlot = 'embed' | 'lm_head' | 'final_norm';
export type LayerSlot =
  | 'attn_norm'
  | 'q' | 'q_bias' | 'k' | 'k_bias' | 'v' | 'v_bias' | 'o' | 'o_bias'
  | 'q_norm' | 'k_norm'
  | 'q_a' | 'q_a_norm' | 'q_b' | 'kv_a' | 'kv_a_norm' | 'kv_b'
  | 'mlp_norm'
  | 'router' | 'router_bias'
  | 'experts.gate_up' | 'experts.down'
  | 'shared.gate_up' | 'shared.down' | 'shared_gate'
  | 'mlp.gate_up' | 'mlp.down';

export type SlotName = GlobalSlot | `L${number}.${LayerSlot}`;

export function layerSlot(layer: number, slot: LayerSlot): SlotName {
  return `L${layer}.${slot}`;
}

/** Reads checkpoint tensors by HF name, converted to f32. Implemented by io/ (safetensors, …). */
export interface TensorReader {
  has(name: string): boolean;
  /** Shape as stored; throws naming the tensor when it is absent. */
  shape(name: string): number[];
  read(name: string): Promise<Float32Array>;
}

/** One canonical slot: its shape and how to assemble it from the checkpoint's tensors. */
export interface WeightSlot {
  name: SlotName;
  shape: number[];
  /** HF tensor names this slot is built from, with the shape each must have (checked before any load). */
  sources: Array<{ name: string; shape: number[] }>;
  load(reader: TensorReader): Promise<Float32Array>;
}

export interface ArchBuilder {
  arch: ArchName;
  /** Parses HF config.json; throws ConfigError naming the missing/invalid key. */
  parseConfig(config: Record<string, unknown>): ModelSpec;
  /** Every weight slot the forward pass needs, for the tensor layout found in `reader`. */
  weightSlots(spec: ModelSpec, reader: TensorReader): WeightSlot[];
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}
