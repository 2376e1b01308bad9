/**
 * The whole forward pass in plain TypeScript over the same ModelSpec and weight slots as the GPU
 * model: the yardstick for the GPU model on any spec (HF parity is checked separately, against
 * transformers' own outputs).
 */
import { layerSlot, type LayerSlot, type ModelSpec, type SlotName } from '../model/spec';
import { ropeTable } from '../ops/rope';
import { attentionRef, embeddingRef, expertsRef, matmulRef, rmsnormRef, ropeRef, swigluRef, routeRef, type RouteRefOptions } from './ops';

export type RefWeights = Map<SlotName, Float32Array>;

export interface RefOutput {
  /** [T, vocab] */
  logits: Float32Array;
  /** Per MoE layer, [T, E]. */
  routerLogits: Float32Array[];
  /** Per MoE layer, [T, k]. */
  experts: Uint32Array[];
}

function addScaled(h: Float32Array, y: Float32Array, alpha: number): void {
  for (let i = 0; i < h.length; i++) h[i] = h[i]! + alpha * y[i]!;
}

/** `router` passes router knobs through to the routing reference (see routeRef). */
export function refForward(spec: ModelSpec, w: RefWeights, ids: number[], router: RouteRefOptions = {}): RefOutput {
  const s = spec;
  const T = ids.length, H = s.hiddenSize, D = s.headDim, nH = s.numHeads, nKV = s.numKvHeads;
  const get = (name: SlotName) => {
    const v = w.get(name);
    if (!v) throw new Error(`reference: no weight ${name}`);
    return v;
  };
  const L = (l: number, slot: LayerSlot) => get(layerSlot(l, slot));
  const opt = (l: number, slot: LayerSlot) => w.get(layerSlot(l, slot)) ?? null;
  const table = ropeTable(T, D, s.ropeTheta, s.ropeScaling);
  const h = embeddingRef(ids, get('embed'), H, s.embeddingMultiplier);
  const routerLogits: Float32Array[] = [];
  const experts: Uint32Array[] = [];
  const ffn = (x: Float32Array, gu: Float32Array, down: Float32Array, I: number) =>
    matmulRef(swigluRef(matmulRef(x, gu, null, T, 2 * I, H), T, I), down, null, T, H, I);

  for (let l = 0; l < s.numLayers; l++) {
    let x = rmsnormRef(h, L(l, 'attn_norm'), T, H, s.rmsNormEps);
    let q = matmulRef(x, L(l, 'q'), opt(l, 'q_bias'), T, nH * D, H);
    let k = matmulRef(x, L(l, 'k'), opt(l, 'k_bias'), T, nKV * D, H);
    const v = matmulRef(x, L(l, 'v'), opt(l, 'v_bias'), T, nKV * D, H);
    if (s.qkNorm === 'head') {
      q = rmsnormRef(q, L(l, 'q_norm'), T * nH, D, s.rmsNormEps);
      k = rmsnormRef(k, L(l, 'k_norm'), T * nKV, D, s.rmsNormEps);
    } else if (s.qkNorm === 'full') {
      q = rmsnormRef(q, L(l, 'q_norm'), T, nH * D, s.rmsNormEps);
      k = rmsnormRef(k, L(l, 'k_norm'), T, nKV * D, s.rmsNormEps);
    }
    q = ropeRef(q, table.cos, table.sin, T, nH, D, 0);
    k = ropeRef(k, table.cos, table.sin, T, nKV, D, 0);
    const attn = attentionRef(q, k, v, T, nH, nKV, D, 0, s.attentionScale ?? 1 / Math.sqrt(D));
    addScaled(h, matmulRef(attn, L(l, 'o'), opt(l, 'o_bias'), T, H, nH * D), s.residualMultiplier);

    x = rmsnormRef(h, L(l, 'mlp_norm'), T, H, s.rmsNormEps);
    let out: Float32Array;
    if (s.layers[l]!.mlp === 'moe') {
      const E = s.moe.numExperts, K = s.moe.topK, I = s.moe.intermediateSize;
      const rl = matmulRef(x, L(l, 'router'), null, T, E, H);
      routerLogits.push(rl);
      const r = routeRef(rl, T, E, K, s.moe.normTopkProb, router);
      experts.push(r.idx);
      let shared: { out: Float32Array; gateLogits?: Float32Array } | undefined;
      const se = s.moe.sharedExpert;
      if (se) {
        shared = { out: ffn(x, L(l, 'shared.gate_up'), L(l, 'shared.down'), se.intermediateSize) };
        if (se.gated) shared.gateLogits = matmulRef(x, L(l, 'shared_gate'), null, T, 1, H);
      }
      out = expertsRef(x, r.idx, r.weights, L(l, 'experts.gate_up'), L(l, 'experts.down'), T, K, H, I, shared);
    } else {
      out = ffn(x, L(l, 'mlp.gate_up'), L(l, 'mlp.down'), s.denseIntermediateSize);
    }
    addScaled(h, out, s.residualMultiplier);
  }
  const xf = rmsnormRef(h, get('final_norm'), T, H, s.rmsNormEps);
  const logits = matmulRef(xf, s.tieWordEmbeddings ? get('embed') : get('lm_head'), null, T, s.vocabSize, H).map((v) => v / s.logitsDivisor);
  return { logits, routerLogits, experts };
}
