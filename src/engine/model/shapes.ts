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
    const mla = s.mla;
    if (mla) {
      const qk = mla.nopeDim + mla.ropeDim;
      if (mla.qLoraRank !== null) {
        set('q_a', [mla.qLoraRank, H]);
        set('q_a_norm', [mla.qLoraRank]);
        set('q_b', [s.numHeads * qk, mla.qLoraRank]);
      } else {
        set('q', [s.numHeads * qk, H]);
      }
      set('kv_a', [mla.kvLoraRank + mla.ropeDim, H]);
      set('kv_a_norm', [mla.kvLoraRank]);
      set('kv_b', [s.numHeads * (mla.nopeDim + mla.vDim), mla.kvLoraRank]);
      set('o', [H, s.numHeads * mla.vDim]);
    } else {
      set('q', [s.numHeads * D, H]);
      set('k', [s.numKvHeads * D, H]);
      set('v', [s.numKvHeads * D, H]);
      set('o', [H, s.numHeads * D]);
    }
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
      if (s.moe.correctionBias) set('router_bias', [E]);
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

/**
 * Bytes of KV cache one position takes over all layers (f32): a key and a value per KV head, or
 * with latent attention one row [c | k_rope] shared by every head — DeepSeek's memory win.
 */
export function kvBytesPerToken(s: ModelSpec): number {
  const perLayer = s.mla ? s.mla.kvLoraRank + s.mla.ropeDim : 2 * s.numKvHeads * s.headDim;
  return perLayer * 4 * s.numLayers;
}

/** What the same attention would cache per position without the latent trick (a key and value per head). */
export function expandedKvBytesPerToken(s: ModelSpec): number {
  const m = s.mla;
  return m ? s.numHeads * (m.nopeDim + m.ropeDim + m.vDim) * 4 * s.numLayers : kvBytesPerToken(s);
}

/** Width of one attention query/key row: the head dim, or a latent cache row [c | k_rope]. */
export function attentionKeyDim(s: ModelSpec): number {
  return s.mla ? s.mla.kvLoraRank + s.mla.ropeDim : s.headDim;
}
