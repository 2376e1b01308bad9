/**
 * Qwen2-MoE (Qwen1.5-MoE, Qwen2-57B-A14B), after transformers' modeling_qwen2_moe.py:
 * softmax over all experts → top-k → renormalise iff norm_topk_prob; a shared expert on every
 * sparse layer, scaled by sigmoid(shared_expert_gate · x); q/k/v biases iff qkv_bias (o_proj none);
 * layer i sparse iff i ∉ mlp_only_layers and num_experts > 0 and (i + 1) % decoder_sparse_step == 0.
 */
import * as v from 'valibot';
import { ConfigError, layerSlot, type ArchBuilder, type ModelSpec } from '../spec';
import { aliasedInt, attentionSpec, baseEntries, bool, capToWindow, checkExpertTotal, checkTopK, expertSlots, globalSlots, int, intList, mlpSlots, neutral, parseWith, projNames, single, sparseLayers, attentionSlots } from './common';

const schema = v.looseObject({
  ...baseEntries({ rmsNormEps: 1e-6, maxPositions: 32768, bos: null, eos: null }),
  num_experts_per_tok: v.nullish(int(), 4),
  moe_intermediate_size: int(),
  shared_expert_intermediate_size: int(0),
  intermediate_size: v.nullish(int()),
  decoder_sparse_step: v.nullish(int(), 1),
  mlp_only_layers: v.nullish(intList(), []),
  norm_topk_prob: v.nullish(bool(), false),
  qkv_bias: v.nullish(bool(), true),
  use_sliding_window: v.nullish(bool(), false),
  sliding_window: v.nullish(int(0), 4096),
  max_window_layers: v.nullish(int(0), 28),
  layer_types: v.nullish(v.array(v.picklist(['full_attention', 'sliding_attention'], '"full_attention" or "sliding_attention"'), 'a list of layer types')),
});

/** The window of the first sliding-attention layer (HF's default layer_types when none are given), or null. */
export function qwen2Window(c: { use_sliding_window: boolean; sliding_window: number; max_window_layers: number; layer_types?: string[] | null | undefined; num_hidden_layers: number }): number | null {
  if (!c.use_sliding_window) return null; // HF sets sliding_window = 0: no layer slides
  const types = c.layer_types ?? Array.from({ length: c.num_hidden_layers }, (_, i) => ((i + 1) % 2 === 1 && i < c.max_window_layers ? 'sliding_attention' : 'full_attention'));
  return types.includes('sliding_attention') ? c.sliding_window : null;
}

export const qwen2Moe: ArchBuilder = {
  arch: 'qwen2_moe',
  parseConfig(config) {
    const arch = 'qwen2_moe';
    const c = parseWith(arch, schema, config);
    const base = attentionSpec(arch, c, config, { defaultTheta: 10000, defaultKvHeads: 16 });
    const numExperts = aliasedInt(arch, config, ['num_experts', 'num_local_experts'], 0);
    checkTopK(arch, c.num_experts_per_tok, numExperts);
    checkExpertTotal(arch, base.numLayers, numExperts);
    if (c.layer_types && c.layer_types.length !== base.numLayers) throw new ConfigError(`${arch} config.json: "layer_types" has ${c.layer_types.length} entries for ${base.numLayers} layers`);
    const layers = sparseLayers(base.numLayers, numExperts, c.decoder_sparse_step, c.mlp_only_layers);
    if (layers.some((l) => l.mlp === 'dense') && c.intermediate_size == null) throw new ConfigError(`${arch} config.json is missing "intermediate_size" (the width of its dense MLP layers)`);
    return {
      arch,
      ...base,
      ...neutral,
      maxPositions: capToWindow(base.maxPositions, qwen2Window(c)),
      qkvBias: c.qkv_bias,
      oBias: false,
      qkNorm: 'none',
      denseIntermediateSize: c.intermediate_size ?? 0,
      moe: {
        numExperts,
        topK: c.num_experts_per_tok,
        normTopkProb: c.norm_topk_prob,
        intermediateSize: c.moe_intermediate_size,
        // HF builds the shared expert unconditionally; with width 0 it adds nothing.
        sharedExpert: c.shared_expert_intermediate_size > 0 ? { intermediateSize: c.shared_expert_intermediate_size, gated: true } : null,
      },
      layers,
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
      out.push(...expertSlots(l, s.moe.numExperts, H, s.moe.intermediateSize, reader, `${p}.mlp.experts`, projNames(`${p}.mlp`)));
      const se = s.moe.sharedExpert;
      if (se) {
        out.push(...mlpSlots(l, 'shared', `${p}.mlp.shared_expert`, H, se.intermediateSize));
        out.push(single(layerSlot(l, 'shared_gate'), `${p}.mlp.shared_expert_gate.weight`, [1, H]));
      }
    });
    return out;
  },
};
