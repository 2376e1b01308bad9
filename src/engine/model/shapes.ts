import { layerSlot, type ModelSpec, type SlotName } from './spec';

/** The shape of every canonical weight slot a spec needs (see spec.ts for the layouts). */
export function canonicalShapes(s: ModelSpec): Map<SlotName, number[]> {
  const H = s.hiddenSize, D = s.headDim, E = s.moe.numExperts, I = s.moe.intermediateSize;
  const m = new Map<SlotName, number[]>();
  m.set('embed', [s.vocabSize, H]);
  if (!s.tieWordEmbeddings) m.set('lm_head', [s.vocabSize, H]);
  m.set('final_norm', [H]);
  for (let l = 0; l < s.numLayers; l++) {
    const set = (slot: Parameters<typeof layerSlot>[1], shape: number[]) => m.set(layerSlot(l, slot), shape);
    set('attn_norm', [H]);
    set('q', [s.numHeads * D, H]);
    set('k', [s.numKvHeads * D, H]);
    set('v', [s.numKvHeads * D, H]);
    set('o', [H, s.numHeads * D]);
    if (s.qkvBias) {
      set('q_bias', [s.numHeads * D]);
      set('k_bias', [s.numKvHeads * D]);
      set('v_bias', [s.numKvHeads * D]);
    }
    if (s.oBias) set('o_bias', [H]);
    if (s.qkNorm === 'head') {
      set('q_norm', [D]);
      set('k_norm', [D]);
    } else if (s.qkNorm === 'full') {
      set('q_norm', [s.numHeads * D]);
      set('k_norm', [s.numKvHeads * D]);
    }
    set('mlp_norm', [H]);
    if (s.layers[l]!.mlp === 'moe') {
      set('router', [E, H]);
      set('experts.gate_up', [E, 2 * I, H]);
      set('experts.down', [E, H, I]);
      const se = s.moe.sharedExpert;
      if (se) {
        set('shared.gate_up', [2 * se.intermediateSize, H]);
        set('shared.down', [H, se.intermediateSize]);
        if (se.gated) set('shared_gate', [1, H]);
      }
    } else {
      set('mlp.gate_up', [2 * s.denseIntermediateSize, H]);
      set('mlp.down', [H, s.denseIntermediateSize]);
    }
  }
  return m;
}
