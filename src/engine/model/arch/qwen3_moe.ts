/**
 * Qwen3-MoE, after transformers' modeling_qwen3_moe.py: per-head q/k RMSNorm (over head_dim,
 * before RoPE), head_dim its own key, biases on q/k/v/o iff attention_bias, no shared expert;
 * routing and the sparse-layer rule as Qwen2-MoE.
 */
import * as v from 'valibot';
import { ConfigError, type ArchBuilder, type ModelSpec } from '../spec';
import { aliasedInt, attentionSpec, baseEntries, bool, capToWindow, checkExpertTotal, checkTopK, int, intList, neutral, parseWith, sparseLayers } from './common';
import { qwen2Moe } from './qwen2_moe';

const schema = v.looseObject({
  ...baseEntries({ rmsNormEps: 1e-6, maxPositions: 32768, bos: null, eos: null }),
  num_experts_per_tok: v.nullish(int(), 8),
  moe_intermediate_size: int(),
  intermediate_size: v.nullish(int()),
  decoder_sparse_step: v.nullish(int(), 1),
  mlp_only_layers: v.nullish(intList(), []),
  norm_topk_prob: v.nullish(bool(), false),
  attention_bias: v.nullish(bool(), false),
  use_sliding_window: v.nullish(bool(), false),
  sliding_window: v.nullish(int(0), 4096),
});

export const qwen3Moe: ArchBuilder = {
  arch: 'qwen3_moe',
  parseConfig(config) {
    const arch = 'qwen3_moe';
    const c = parseWith(arch, schema, config);
    const base = attentionSpec(arch, c, config, { defaultTheta: 10000, defaultKvHeads: 4 });
    // transformers 5 writes num_local_experts (num_experts is its alias); 4.x wrote num_experts.
    const numExperts = aliasedInt(arch, config, ['num_experts', 'num_local_experts'], 0);
    checkTopK(arch, c.num_experts_per_tok, numExperts);
    checkExpertTotal(arch, base.numLayers, numExperts);
    const layers = sparseLayers(base.numLayers, numExperts, c.decoder_sparse_step, c.mlp_only_layers);
    if (layers.some((l) => l.mlp === 'dense') && c.intermediate_size == null) throw new ConfigError(`${arch} config.json is missing "intermediate_size" (the width of its dense MLP layers)`);
    return {
      arch,
      ...base,
      ...neutral,
      // HF: sliding_window applies to every layer when use_sliding_window, else none.
      maxPositions: capToWindow(base.maxPositions, c.use_sliding_window ? c.sliding_window : null),
      qkvBias: c.attention_bias,
      oBias: c.attention_bias,
      qkNorm: 'head',
      denseIntermediateSize: c.intermediate_size ?? 0,
      moe: { numExperts, topK: c.num_experts_per_tok, normTopkProb: c.norm_topk_prob, intermediateSize: c.moe_intermediate_size, sharedExpert: null },
      layers,
    } satisfies ModelSpec;
  },
  // Same tensor names as Qwen2-MoE, minus the shared expert (spec.moe.sharedExpert is null here).
  weightSlots: (s, reader) => qwen2Moe.weightSlots(s, reader),
};
