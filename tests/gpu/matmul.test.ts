import { describe, expect, it } from 'vitest';
import { runMatmul } from '../../src/engine/ops/oneshot';
import { matmulRef } from '../../src/engine/ref/ops';
import { maxAbsDiff, randomF32 } from '../../src/engine/ref/random';
import { TOLERANCE } from '../../src/engine/selftest';
import { gpuKernels } from './device';

describe('matmul x·Wᵀ (+bias) on WebGPU vs TS reference', () => {
  // Odd sizes straddle the 64×64 tile and the 16-wide K step.
  const shapes: Array<[number, number, number, boolean]> = [
    [1, 1, 1, false],
    [1, 64, 64, true],
    [3, 5, 7, true],
    [17, 33, 15, false],
    [64, 64, 64, false],
    [65, 63, 129, true],
    [100, 200, 48, true],
    [1, 517, 300, false],
    [8, 77, 65, true],
  ];
  for (const [M, N, K, withBias] of shapes) for (const profile of ['gpu', 'software'] as const) {
    if (profile === 'software' && M > 8) continue; // the profiles differ only in the few-row kernels
    it(`M=${M} N=${N} K=${K}${withBias ? ' +bias' : ''} (${profile} kernels)`, async () => {
      const k = await gpuKernels(profile);
      const x = randomF32(M * K, M * 31 + K);
      const w = randomF32(N * K, N * 17 + K);
      const b = withBias ? randomF32(N, N) : null;
      const got = await runMatmul(k, x, w, b, M, N, K);
      expect(maxAbsDiff(got, matmulRef(x, w, b, M, N, K))).toBeLessThanOrEqual(TOLERANCE.matmul(K));
    });
  }
});
