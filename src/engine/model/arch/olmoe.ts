/** OLMoE: q/k RMSNorm over the whole projection (before the head split), no shared expert. */
import { ConfigError, layerSlot, type ArchBuilder, type ModelSpec } from '../spec';
import { attentionSlots, attentionSpec, ConfigReader, expertSlots, globalSlots, neutral, single } from './common';

export const olmoe: ArchBuilder = {
  arch: 'olmoe',
  parseConfig(config) {
    const c = new ConfigReader(config, 'olmoe');
    if (c.has('clip_qkv')) throw new ConfigError('olmoe config.json sets clip_qkv: clipping q/k/v is not supported');
    const base = attentionSpec(c);
    const numExperts = c.intAny(['num_experts', 'num_local_experts']);
    const bias = c.bool('attention_bias', false);
    return {
      arch: 'olmoe',
      ...base,
      ...neutral,
      rmsNormEps: c.num('rms_norm_eps', 1e-5),
      qkvBias: bias,
      oBias: bias,
      qkNorm: 'full',
      denseIntermediateSize: c.int('intermediate_size'),
      moe: { numExperts, topK: c.int('num_experts_per_tok'), normTopkProb: c.bool('norm_topk_prob', false), intermediateSize: c.int('intermediate_size'), sharedExpert: null },
      layers: Array.from({ length: base.numLayers }, () => ({ mlp: 'moe' as const })),
    } satisfies ModelSpec;
  },
  weightSlots(s, reader) {
    const out = globalSlots(s);
    s.layers.forEach((_, l) => {
      const p = `model.layers.${l}`;
      out.push(...attentionSlots(s, l));
      out.push(single(layerSlot(l, 'router'), `${p}.mlp.gate.weight`, [s.moe.numExperts, s.hiddenSize]));
      out.push(...expertSlots(l, `${p}.mlp`, s.moe.numExperts, s.hiddenSize, s.moe.intermediateSize, reader));
    });
    return out;
  },
};
