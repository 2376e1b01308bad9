import { describe, expect, it } from 'vitest';
import { runTopK } from '../../src/engine/ops/oneshot';
import { topkRef } from '../../src/engine/ref/ops';
import { maxAbsDiff, randomF32 } from '../../src/engine/ref/random';
import { TOLERANCE } from '../../src/engine/selftest';
import { gpuKernels } from './device';

/** Logits on a 1/8 grid: distinct values are far apart, equal values tie exactly on both sides. */
function gridLogits(n: number, seed: number): Float32Array {
  return randomF32(n, seed, 3).map((v) => Math.round(v * 8) / 8);
}

describe('MoE top-k routing on WebGPU vs TS reference', () => {
  const cases: Array<[number, number, number, boolean]> = [
    [1, 4, 1, false],
    [5, 8, 2, true],
    [5, 8, 2, false],
    [37, 16, 2, true],
    [65, 60, 4, true],
    [3, 64, 8, false],
    [130, 256, 8, true],
  ];
  for (const [T, E, K, renorm] of cases) {
    it(`${T} tokens, ${E} experts, top-${K}${renorm ? ', renormalised' : ''}`, async () => {
      const k = await gpuKernels();
      const logits = gridLogits(T * E, T * E + K);
      const got = await runTopK(k, logits, T, E, K, renorm);
      const ref = topkRef(logits, T, E, K, renorm);
      expect(Array.from(got.idx)).toEqual(Array.from(ref.idx));
      expect(maxAbsDiff(got.weights, ref.weights)).toBeLessThanOrEqual(TOLERANCE.topkWeights);
      expect(maxAbsDiff(got.probs, ref.probs)).toBeLessThanOrEqual(TOLERANCE.softmax);
      if (renorm) {
        for (let t = 0; t < T; t++) {
          const s = got.weights.subarray(t * K, (t + 1) * K).reduce((a, b) => a + b, 0);
          expect(Math.abs(s - 1)).toBeLessThan(1e-5);
        }
      }
    });
  }

  it('breaks ties toward the lower expert index, like torch.topk', async () => {
    const k = await gpuKernels();
    // Experts 2, 5 and 6 tie for the top score; 1 and 7 tie for the next.
    const logits = new Float32Array([0, 1, 3, 0, 0, 3, 3, 1]);
    const got = await runTopK(k, logits, 1, 8, 4, false);
    expect(Array.from(got.idx)).toEqual([2, 5, 6, 1]);
  });
});
