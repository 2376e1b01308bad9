/**
 * GraniteMoE: scalars on the embedding, attention logits, residual branches and final logits;
 * experts already stacked (input_linear [E, 2I, H], gate half first; output_linear [E, H, I]);
 * top-k over router logits then softmax over those k (= softmax, top-k, renormalise).
 */
import { layerSlot, type ArchBuilder, type ModelSpec } from '../spec';
import { attentionSlots, attentionSpec, ConfigReader, expertSlots, fusedExperts, globalSlots, single } from './common';

export const graniteMoe: ArchBuilder = {
  arch: 'granitemoe',
  parseConfig(config) {
    const c = new ConfigReader(config, 'granitemoe');
    const base = attentionSpec(c);
    const bias = c.bool('attention_bias', false);
    return {
      arch: 'granitemoe',
      ...base,
      qkvBias: bias,
      oBias: bias,
      qkNorm: 'none',
      embeddingMultiplier: c.num('embedding_multiplier', 1),
      residualMultiplier: c.num('residual_multiplier', 1),
      attentionScale: c.num('attention_multiplier', 1),
      logitsDivisor: c.num('logits_scaling', 1),
      denseIntermediateSize: c.int('intermediate_size'),
      moe: { numExperts: c.intAny(['num_local_experts', 'num_experts']), topK: c.int('num_experts_per_tok'), normTopkProb: true, intermediateSize: c.int('intermediate_size'), sharedExpert: null },
      layers: Array.from({ length: base.numLayers }, () => ({ mlp: 'moe' as const })),
    } satisfies ModelSpec;
  },
  weightSlots(s, reader) {
    const out = globalSlots(s);
    const H = s.hiddenSize, I = s.moe.intermediateSize, E = s.moe.numExperts;
    s.layers.forEach((_, l) => {
      const p = `model.layers.${l}`;
      out.push(...attentionSlots(s, l));
      if (reader.has(`${p}.mlp.gate.weight`)) {
        out.push(single(layerSlot(l, 'router'), `${p}.mlp.gate.weight`, [E, H]));
        out.push(...expertSlots(l, `${p}.mlp`, E, H, I, reader));
        return;
      }
      const m = `${p}.block_sparse_moe`;
      out.push(single(layerSlot(l, 'router'), `${m}.router.layer.weight`, [E, H]));
      out.push(fusedExperts(layerSlot(l, 'experts.gate_up'), `${m}.input_linear.weight`, [E, 2 * I, H], reader));
      out.push(fusedExperts(layerSlot(l, 'experts.down'), `${m}.output_linear.weight`, [E, H, I], reader));
    });
    return out;
  },
};
