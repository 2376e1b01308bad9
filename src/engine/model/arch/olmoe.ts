/**
 * OLMoE, after transformers' modeling_olmoe.py: q/k RMSNorm over the whole projection (q over
 * num_heads·head_dim, k over num_kv_heads·head_dim, before the head split and RoPE); softmax over
 * all experts → top-k → renormalise iff norm_topk_prob; biases on q/k/v/o iff attention_bias.
 * clip_qkv (clamping q/k/v) is not implemented: a config that sets it is refused.
 */
import * as v from 'valibot';
import { ConfigError, layerSlot, type ArchBuilder, type ModelSpec } from '../spec';
import { aliasedInt, attentionSlots, attentionSpec, baseEntries, bool, checkExpertTotal, checkTopK, expertSlots, globalSlots, int, neutral, num, parseWith, projNames, single } from './common';

const schema = v.looseObject({
  ...baseEntries({ rmsNormEps: 1e-5, maxPositions: 4096, bos: null, eos: 50279 }),
  num_experts_per_tok: v.nullish(int(), 8),
  intermediate_size: int(),
  norm_topk_prob: v.nullish(bool(), false),
  attention_bias: v.nullish(bool(), false),
  clip_qkv: v.nullish(num(true)),
});

export const olmoe: ArchBuilder = {
  arch: 'olmoe',
  parseConfig(config) {
    const arch = 'olmoe';
    const c = parseWith(arch, schema, config);
    if (c.clip_qkv != null) throw new ConfigError(`${arch} config.json sets "clip_qkv" to ${c.clip_qkv}: clamping q/k/v is not supported (only null is)`);
    const base = attentionSpec(arch, c, config, { defaultTheta: 10000, defaultKvHeads: null });
    const numExperts = aliasedInt(arch, config, ['num_experts', 'num_local_experts']);
    checkTopK(arch, c.num_experts_per_tok, numExperts);
    checkExpertTotal(arch, base.numLayers, numExperts);
    return {
      arch,
      ...base,
      ...neutral,
      qkvBias: c.attention_bias,
      oBias: c.attention_bias,
      qkNorm: 'full',
      denseIntermediateSize: c.intermediate_size,
      moe: { numExperts, topK: c.num_experts_per_tok, normTopkProb: c.norm_topk_prob, intermediateSize: c.intermediate_size, sharedExpert: null },
      layers: Array.from({ length: base.numLayers }, () => ({ mlp: 'moe' as const })),
    } satisfies ModelSpec;
  },
  weightSlots(s, reader) {
    const out = globalSlots(s);
    s.layers.forEach((_, l) => {
      const p = `model.layers.${l}`;
      out.push(...attentionSlots(s, l));
      out.push(single(layerSlot(l, 'router'), `${p}.mlp.gate.weight`, [s.moe.numExperts, s.hiddenSize]));
      out.push(...expertSlots(l, s.moe.numExperts, s.hiddenSize, s.moe.intermediateSize, reader, `${p}.mlp.experts`, projNames(`${p}.mlp`)));
    });
    return out;
  },
};
