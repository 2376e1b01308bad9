/** The ONNX backend's CPU sampler: the rules of shaders/sample.wgsl, which our GPU engine uses. */
import { describe, expect, it } from 'vitest';
import { GREEDY } from '../../../src/engine/model/sampling';
import { sampleCpu } from '../../../src/engine/onnx/sample';

const logits = Float32Array.from([1, 3, 3, -2, 0.5]);

describe('sampleCpu', () => {
  it('greedy: the argmax, ties to the lower id, probability 1', () => {
    expect(sampleCpu(logits, [], GREEDY, 0)).toEqual({ id: 1, prob: 1 });
  });

  it('repetition penalty as HF: positive logits divided, negative multiplied, for every id seen', () => {
    // id 1 penalised 3 → 1.5, so id 2 (3) wins; id 3 seen too: −2 · 2 = −4 stays last.
    expect(sampleCpu(logits, [1, 3, 1], { ...GREEDY, repetitionPenalty: 2 }, 0).id).toBe(2);
  });

  it('top-k 1 always picks the best; probabilities are those of the kept candidates', () => {
    for (let step = 0; step < 20; step++) expect(sampleCpu(logits, [], { temperature: 1, topK: 1, topP: 1, repetitionPenalty: 1, seed: 9 }, step)).toEqual({ id: 1, prob: 1 });
    const two = sampleCpu(logits, [], { temperature: 1, topK: 2, topP: 1, repetitionPenalty: 1, seed: 9 }, 0);
    expect([1, 2]).toContain(two.id);
    expect(two.prob).toBeCloseTo(0.5, 6);
  });

  it('a seed reproduces a whole generation; draws follow the softmax', () => {
    const p = { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seed: 1234 };
    const a = Array.from({ length: 50 }, (_, s) => sampleCpu(logits, [], p, s).id);
    expect(Array.from({ length: 50 }, (_, s) => sampleCpu(logits, [], p, s).id)).toEqual(a);
    expect(Array.from({ length: 50 }, (_, s) => sampleCpu(logits, [], { ...p, seed: 99 }, s).id)).not.toEqual(a);
    // Over many steps the two best (each e³ / Σ ≈ 0.47) take most draws, id 3 (e⁻² / Σ ≈ 0.003) almost none.
    const counts = new Array<number>(5).fill(0);
    for (let s = 0; s < 4000; s++) counts[sampleCpu(logits, [], p, s).id]!++;
    expect(counts[1]! / 4000).toBeGreaterThan(0.42);
    expect(counts[2]! / 4000).toBeGreaterThan(0.42);
    expect(counts[3]!).toBeLessThan(40);
  });

  it('top-p keeps the shortest prefix reaching the mass', () => {
    // With top_p 0.4 the best candidate alone (≈ 0.47) is kept.
    for (let s = 0; s < 30; s++) expect(sampleCpu(logits, [], { temperature: 1, topK: 0, topP: 0.4, repetitionPenalty: 1, seed: 5 }, s).id).toBe(1);
  });
});
