/** Qwen2-MoE (Qwen1.5-MoE): q/k/v biases, routed experts plus a sigmoid-gated shared expert. */
import { layerSlot, type ArchBuilder, type ModelSpec } from '../spec';
import { attentionSlots, attentionSpec, ConfigReader, expertSlots, globalSlots, mlpSlots, neutral, refuseSlidingWindow, single } from './common';

/** HF: sparse iff not in mlp_only_layers and num_experts > 0 and (i + 1) % decoder_sparse_step == 0. */
export function sparseLayers(c: ConfigReader, numLayers: number, numExperts: number): Array<{ mlp: 'moe' | 'dense' }> {
  const step = c.int('decoder_sparse_step', 1);
  const dense = new Set(c.intList('mlp_only_layers'));
  return Array.from({ length: numLayers }, (_, i) => ({ mlp: !dense.has(i) && numExperts > 0 && (i + 1) % step === 0 ? 'moe' : 'dense' }));
}

export const qwen2Moe: ArchBuilder = {
  arch: 'qwen2_moe',
  parseConfig(config) {
    const c = new ConfigReader(config, 'qwen2_moe');
    refuseSlidingWindow(c, 'qwen2_moe');
    const base = attentionSpec(c);
    const numExperts = c.intAny(['num_experts', 'num_local_experts']);
    const sharedI = c.int('shared_expert_intermediate_size', 0, 0);
    return {
      arch: 'qwen2_moe',
      ...base,
      ...neutral,
      qkvBias: c.bool('qkv_bias', true),
      oBias: false,
      qkNorm: 'none',
      denseIntermediateSize: c.int('intermediate_size'),
      moe: {
        numExperts,
        topK: c.int('num_experts_per_tok'),
        normTopkProb: c.bool('norm_topk_prob', false),
        intermediateSize: c.int('moe_intermediate_size'),
        sharedExpert: sharedI > 0 ? { intermediateSize: sharedI, gated: true } : null,
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
      const se = s.moe.sharedExpert;
      if (se) {
        out.push(...mlpSlots(l, 'shared', `${p}.mlp.shared_expert`, H, se.intermediateSize));
        out.push(single(layerSlot(l, 'shared_gate'), `${p}.mlp.shared_expert_gate.weight`, [1, H]));
      }
    });
    return out;
  },
};
