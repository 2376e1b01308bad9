/**
 * The engine's view of a model, whatever its architecture: an arch builder (model/arch/*.ts) reads
 * HF's config.json into a ModelSpec and maps the checkpoint's tensors onto canonical weight slots.
 * The forward pass knows only these two; adding an architecture touches one builder file.
 */

export type ArchName = 'qwen2_moe' | 'qwen3_moe' | 'mixtral' | 'olmoe' | 'granitemoe';

export type RopeScaling =
  | { type: 'default' }
  /** Positions divided by `factor` (HF "linear"). */
  | { type: 'linear'; factor: number };

export interface MoeSpec {
  numExperts: number;
  topK: number;
  /** Renormalise the top-k gate weights to sum to 1 (Mixtral always; Qwen/OLMoE per config). */
  normTopkProb: boolean;
  /** Per-expert FFN width. */
  intermediateSize: number;
  /** Qwen2-MoE's always-on expert, scaled by sigmoid(shared_expert_gate · x); null when absent. */
  sharedExpert: { intermediateSize: number; gated: boolean } | null;
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
  layers: LayerSpec[];
  bosTokenId: number | null;
  eosTokenIds: number[];
}

/**
 * Canonical weight slots. Linear weights keep HF's [out, in] layout. Experts are stacked:
 * `experts.gate_up` is [E, 2·I, H] with the gate rows first, `experts.down` is [E, H, I].
 */
export type GlobalSlot = 'embed' | 'lm_head' | 'final_norm';
export type LayerSlot =
  | 'attn_norm'
  | 'q' | 'q_bias' | 'k' | 'k_bias' | 'v' | 'v_bias' | 'o' | 'o_bias'
  | 'q_norm' | 'k_norm'
  | 'mlp_norm'
  | 'router'
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
