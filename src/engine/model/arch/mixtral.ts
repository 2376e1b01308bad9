/**
 * Mixtral, after transformers' modeling_mixtral.py: softmax over all experts → top-k → always
 * renormalised; no biases. Hub checkpoints name the block `block_sparse_moe` with experts
 * w1 (gate) / w3 (up) / w2 (down); transformers 5 renames it `mlp` and may fuse the experts into
 * `mlp.experts.gate_up_proj` [E, 2I, H] (w1 rows, then w3) and `mlp.experts.down_proj` [E, H, I].
 */
import * as v from 'valibot';
import { layerSlot, type ArchBuilder, type ModelSpec } from '../spec';
import { aliasedInt, attentionSlots, attentionSpec, baseEntries, capToWindow, checkExpertTotal, checkTopK, expertSlots, globalSlots, int, neutral, parseWith, single } from './common';

const schema = v.looseObject({
  ...baseEntries({ rmsNormEps: 1e-5, maxPositions: 4096 * 32, bos: 1, eos: 2 }),
  num_experts_per_tok: v.nullish(int(), 2),
  intermediate_size: int(),
  sliding_window: v.nullish(int(0)),
});

export const mixtral: ArchBuilder = {
  arch: 'mixtral',
  parseConfig(config) {
    const arch = 'mixtral';
    const c = parseWith(arch, schema, config);
    const base = attentionSpec(arch, c, config, { defaultTheta: 1e6, defaultKvHeads: 8 });
    const numExperts = aliasedInt(arch, config, ['num_local_experts', 'num_experts']);
    checkTopK(arch, c.num_experts_per_tok, numExperts);
    checkExpertTotal(arch, base.numLayers, numExperts);
    return {
      arch,
      ...base,
      ...neutral,
      maxPositions: capToWindow(base.maxPositions, c.sliding_window ?? null),
      qkvBias: false,
      oBias: false,
      qkNorm: 'none',
      denseIntermediateSize: c.intermediate_size,
      moe: { numExperts, topK: c.num_experts_per_tok, normTopkProb: true, intermediateSize: c.intermediate_size, sharedExpert: null },
      layers: Array.from({ length: base.numLayers }, () => ({ mlp: 'moe' as const })),
    } satisfies ModelSpec;
  },
  weightSlots(s, reader) {
    const out = globalSlots(s);
    const H = s.hiddenSize, I = s.moe.intermediateSize, E = s.moe.numExperts;
    s.layers.forEach((_, l) => {
      out.push(...attentionSlots(s, l));
      // The block is `block_sparse_moe` in hub checkpoints, `mlp` in transformers 5's own names.
      const m = reader.has(`model.layers.${l}.mlp.gate.weight`) ? `model.layers.${l}.mlp` : `model.layers.${l}.block_sparse_moe`;
      out.push(single(layerSlot(l, 'router'), `${m}.gate.weight`, [E, H]));
      out.push(
        ...expertSlots(l, E, H, I, reader, `${m}.experts`, {
          gate: (e) => `${m}.experts.${e}.w1.weight`,
          up: (e) => `${m}.experts.${e}.w3.weight`,
          down: (e) => `${m}.experts.${e}.w2.weight`,
        }),
      );
    });
    return out;
  },
};
