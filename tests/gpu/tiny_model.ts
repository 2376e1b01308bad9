/** A tiny random MoE model for GPU tests: its spec, random weights and the slots that load them. */
import { canonicalShapes } from '../../src/engine/model/shapes';
import type { ModelSpec, SlotName, TensorReader, WeightSlot } from '../../src/engine/model/spec';
import { randomF32 } from '../../src/engine/ref/random';

export const base: ModelSpec = {
  arch: 'qwen2_moe', vocabSize: 97, hiddenSize: 32, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 8,
  rmsNormEps: 1e-6, ropeTheta: 10000, ropeScaling: { type: 'default' }, maxPositions: 128, tieWordEmbeddings: false,
  qkvBias: true, oBias: false, qkNorm: 'none', embeddingMultiplier: 1, residualMultiplier: 1, attentionScale: null,
  logitsDivisor: 1, denseIntermediateSize: 48,
  moe: { numExperts: 8, topK: 2, normTopkProb: false, intermediateSize: 16, sharedExpert: { intermediateSize: 40, gated: true } },
  layers: [{ mlp: 'moe' }, { mlp: 'moe' }], bosTokenId: null, eosTokenIds: [0],
};

export function randomWeights(spec: ModelSpec): Map<SlotName, Float32Array> {
  const w = new Map<SlotName, Float32Array>();
  let seed = 1;
  for (const [name, shape] of canonicalShapes(spec)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const isNorm = name.endsWith('norm');
    w.set(name, isNorm ? randomF32(n, seed++, 0.2).map((v) => 1 + v) : randomF32(n, seed++, 0.35));
  }
  return w;
}

export function slotsOf(spec: ModelSpec, w: Map<SlotName, Float32Array>): { slots: WeightSlot[]; reader: TensorReader } {
  const shapes = canonicalShapes(spec);
  const reader: TensorReader = {
    has: (n) => w.has(n as SlotName),
    shape: (n) => shapes.get(n as SlotName)!,
    read: async (n) => w.get(n as SlotName)!,
  };
  const slots = [...shapes].map(([name, shape]): WeightSlot => ({ name, shape, sources: [{ name, shape }], load: (r) => r.read(name) }));
  return { slots, reader };
}
