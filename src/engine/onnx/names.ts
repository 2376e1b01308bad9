/**
 * The decoder graph's contract, shared by the exporter and the onnxruntime backend: input/output
 * names (Optimum's names for ids, positions and the cache, so graphs exported elsewhere with the
 * same IO load too) and the metadata_props keys that describe the model.
 */

export const INPUT_IDS = 'input_ids';
export const POSITION_IDS = 'position_ids';
/** Optional: Optimum exports take one; we feed ones over the whole context. */
export const ATTENTION_MASK = 'attention_mask';
export const LOGITS = 'logits';
export const pastKey = (l: number) => `past_key_values.${l}.key`;
export const pastValue = (l: number) => `past_key_values.${l}.value`;
export const presentKey = (l: number) => `present.${l}.key`;
export const presentValue = (l: number) => `present.${l}.value`;
export const routerLogits = (l: number) => `router_logits.${l}`;
export const ROUTER_LOGITS_RE = /^router_logits\.(\d+)$/;
export const PAST_RE = /^past_key_values\.(\d+)\.(key|value)$/;

/** metadata_props keys (values are strings; lists and objects as JSON). */
export const META = {
  version: 'moe_playground.version',
  arch: 'moe_playground.arch',
  numLayers: 'moe_playground.num_layers',
  moeLayers: 'moe_playground.moe_layers',
  numExperts: 'moe_playground.num_experts',
  topK: 'moe_playground.top_k',
  normTopkProb: 'moe_playground.norm_topk_prob',
  contextLength: 'moe_playground.context_length',
  vocabSize: 'moe_playground.vocab_size',
  hiddenSize: 'moe_playground.hidden_size',
  eosTokenIds: 'moe_playground.eos_token_ids',
  bosTokenId: 'moe_playground.bos_token_id',
  parameters: 'moe_playground.parameters',
} as const;

/** What the backend needs to know about an exported decoder, from metadata or elsewhere. */
export interface OnnxDecoderMeta {
  arch: string;
  numLayers: number;
  /** Indices of the MoE layers, each with a router_logits.{l} output. */
  moeLayers: number[];
  numExperts: number;
  topK: number;
  normTopkProb: boolean;
  /** Positions the graph's RoPE table covers. */
  contextLength: number;
  vocabSize: number;
  hiddenSize: number;
  eosTokenIds: number[];
  bosTokenId: number | null;
  parameters: number;
}

export function metaProps(m: OnnxDecoderMeta): Record<string, string> {
  return {
    [META.version]: '1',
    [META.arch]: m.arch,
    [META.numLayers]: String(m.numLayers),
    [META.moeLayers]: JSON.stringify(m.moeLayers),
    [META.numExperts]: String(m.numExperts),
    [META.topK]: String(m.topK),
    [META.normTopkProb]: String(m.normTopkProb),
    [META.contextLength]: String(m.contextLength),
    [META.vocabSize]: String(m.vocabSize),
    [META.hiddenSize]: String(m.hiddenSize),
    [META.eosTokenIds]: JSON.stringify(m.eosTokenIds),
    [META.bosTokenId]: JSON.stringify(m.bosTokenId),
    [META.parameters]: String(m.parameters),
  };
}
