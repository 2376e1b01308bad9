/** Qwen3-MoE: per-head q/k RMSNorm, head_dim of its own, no shared expert. */
import { layerSlot, type ArchBuilder, type ModelSpec } from '../spec';
import { attentionSlots, attentionSpec, ConfigReader, expertSlots, globalSlots, mlpSlots, neutral, refuseSlidingWindow, single } from './common';
import { sparseLayers } from './qwen2_moe';

export const qwen3Moe: ArchBuilder = {
  arch: 'qwen3_moe',
  parseConfig(config) {
    const c = new ConfigReader(config, 'qwen3_moe');
    refuseSlidingWindow(c, 'qwen3_moe');
    const base = attentionSpec(c);
    const numExperts = c.intAny(['num_experts', 'num_local_experts']);
    const bias = c.bool('attention_bias', false);
    return {
      arch: 'qwen3_moe',
      ...base,
      ...neutral,
      qkvBias: bias,
      oBias: bias,
      qkNorm: 'head',
      denseIntermediateSize: c.int('intermediate_size'),
      moe: {
        numExperts,
        topK: c.int('num_experts_per_tok'),
        normTopkProb: c.bool('norm_topk_prob', false),
        intermediateSize: c.int('moe_intermediate_size'),
        sharedExpert: null,
      },
      layers: sparseLayers(c, base.numLayers, numExperts),
    } satisfies ModelSpec;
  },
  weightSlots(s, reader) {
    const out = globalSlots(s);
    const H = s.hiddenSize;
    s.layers.forEach((layer, l) => {
      const p = `model.layers.${l}`;
      out.push(...attentionSlots(s, l));
      if (layer.mlp === 'dense') {
        out.push(...mlpSlots(l, 'mlp', `${p}.mlp`, H, s.denseIntermediateSize));
        return;
      }
      out.push(single(layerSlot(l, 'router'), `${p}.mlp.gate.weight`, [s.moe.numExperts, H]));
      out.push(...expertSlots(l, `${p}.mlp`, s.moe.numExperts, H, s.moe.intermediateSize, reader));
    });
    return out;
  },
};
