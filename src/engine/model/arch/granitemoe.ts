/**
 * GraniteMoE, after transformers' modeling_granitemoe.py: embeddings × embedding_multiplier,
 * attention scale = attention_multiplier (not 1/√d), residual branches × residual_multiplier,
 * logits ÷ logits_scaling; router = top-k of the logits then softmax over those k (the same as
 * softmax → top-k → renormalise). Experts come stacked: hub checkpoints have
 * `block_sparse_moe.input_linear.weight` [E, 2I, H] (first I rows = gate, the SiLU'd half; then up),
 * `block_sparse_moe.output_linear.weight` [E, H, I] and `block_sparse_moe.router.layer.weight` [E, H];
 * transformers 5 renames these (same layout) to `block_sparse_moe.experts.gate_up_proj`,
 * `block_sparse_moe.experts.down_proj` and `block_sparse_moe.router.weight`.
 */
import * as v from 'valibot';
import { layerSlot, type ArchBuilder, type ModelSpec } from '../spec';
import { aliasedInt, attentionSlots, attentionSpec, baseEntries, bool, checkExpertTotal, checkTopK, fusedExperts, globalSlots, int, num, parseWith, single } from './common';

const schema = v.looseObject({
  ...baseEntries({ rmsNormEps: 1e-6, maxPositions: 2048, bos: 1, eos: 2 }),
  num_experts_per_tok: v.nullish(int(), 2),
  intermediate_size: int(),
  attention_bias: v.nullish(bool(), false),
  embedding_multiplier: v.nullish(num(), 1),
  attention_multiplier: v.nullish(num(), 1),
  residual_multiplier: v.nullish(num(), 1),
  logits_scaling: v.nullish(num(true), 1),
});

export const graniteMoe: ArchBuilder = {
  arch: 'granitemoe',
  parseConfig(config) {
    const arch = 'granitemoe';
    const c = parseWith(arch, schema, config);
    const base = attentionSpec(arch, c, config, { defaultTheta: 10000, defaultKvHeads: null });
    const numExperts = aliasedInt(arch, config, ['num_local_experts', 'num_experts']);
    checkTopK(arch, c.num_experts_per_tok, numExperts);
    checkExpertTotal(arch, base.numLayers, numExperts);
    return {
      arch,
      ...base,
      qkvBias: c.attention_bias,
      oBias: c.attention_bias,
      qkNorm: 'none',
      embeddingMultiplier: c.embedding_multiplier,
      residualMultiplier: c.residual_multiplier,
      attentionScale: c.attention_multiplier,
      logitsDivisor: c.logits_scaling,
      denseIntermediateSize: c.intermediate_size,
      moe: { numExperts, topK: c.num_experts_per_tok, normTopkProb: true, intermediateSize: c.intermediate_size, sharedExpert: null },
      layers: Array.from({ length: base.numLayers }, () => ({ mlp: 'moe' as const })),
    } satisfies ModelSpec;
  },
  weightSlots(s, reader) {
    const out = globalSlots(s);
    const H = s.hiddenSize, I = s.moe.intermediateSize, E = s.moe.numExperts;
    s.layers.forEach((_, l) => {
      const m = `model.layers.${l}.block_sparse_moe`;
      out.push(...attentionSlots(s, l));
      const fused = reader.has(`${m}.experts.gate_up_proj`);
      out.push(single(layerSlot(l, 'router'), fused ? `${m}.router.weight` : `${m}.router.layer.weight`, [E, H]));
      out.push(fusedExperts(layerSlot(l, 'experts.gate_up'), fused ? `${m}.experts.gate_up_proj` : `${m}.input_linear.weight`, [E, 2 * I, H], reader));
      out.push(fusedExperts(layerSlot(l, 'experts.down'), fused ? `${m}.experts.down_proj` : `${m}.output_linear.weight`, [E, H, I], reader));
    });
    return out;
  },
};
