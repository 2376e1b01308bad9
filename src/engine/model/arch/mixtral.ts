/** Mixtral: softmax over the top-k router logits (= softmax, top-k, renormalise); experts w1/w3/w2. */
import { layerSlot, type ArchBuilder, type ModelSpec } from '../spec';
import { attentionSlots, attentionSpec, ConfigReader, expertSlots, globalSlots, neutral, single, stackExperts } from './common';

export const mixtral: ArchBuilder = {
  arch: 'mixtral',
  parseConfig(config) {
    const c = new ConfigReader(config, 'mixtral');
    const base = attentionSpec(c);
    // Keep every position inside the sliding window, where full attention is exact.
    const window = c.has('sliding_window') ? c.int('sliding_window') : Infinity;
    return {
      arch: 'mixtral',
      ...base,
      ...neutral,
      rmsNormEps: c.num('rms_norm_eps', 1e-5),
      ropeTheta: c.ropeTheta(1e6),
      maxPositions: Math.min(base.maxPositions, window),
      qkvBias: false,
      oBias: false,
      qkNorm: 'none',
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
      // transformers 5 may name the block `mlp` and fuse the experts; hub checkpoints use block_sparse_moe.
      if (reader.has(`${p}.mlp.gate.weight`)) {
        out.push(single(layerSlot(l, 'router'), `${p}.mlp.gate.weight`, [E, H]));
        out.push(...expertSlots(l, `${p}.mlp`, E, H, I, reader));
        return;
      }
      const m = `${p}.block_sparse_moe`;
      out.push(single(layerSlot(l, 'router'), `${m}.gate.weight`, [E, H]));
      out.push(stackExperts(layerSlot(l, 'experts.gate_up'), E, (e) => [{ name: `${m}.experts.${e}.w1.weight`, shape: [I, H] }, { name: `${m}.experts.${e}.w3.weight`, shape: [I, H] }], [E, 2 * I, H]));
      out.push(stackExperts(layerSlot(l, 'experts.down'), E, (e) => [{ name: `${m}.experts.${e}.w2.weight`, shape: [H, I] }], [E, H, I]));
    });
    return out;
  },
};
