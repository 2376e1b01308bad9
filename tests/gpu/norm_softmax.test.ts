import { describe, expect, it } from 'vitest';
import { runRmsNorm, runSoftmax } from '../../src/engine/ops/oneshot';
import { rmsnormRef, softmaxRef } from '../../src/engine/ref/ops';
import { maxAbsDiff, randomF32 } from '../../src/engine/ref/random';
import { TOLERANCE } from '../../src/engine/selftest';
import { gpuKernels } from './device';
import { encodeAddRmsNorm } from '../../src/engine/ops/rmsnorm';
import { empty, f32, submit, up } from './run';

describe('rmsnorm on WebGPU vs TS reference', () => {
  for (const [rows, dim, eps] of [[1, 1, 1e-6], [3, 7, 1e-5], [4, 256, 1e-6], [2, 257, 1e-6], [13, 1000, 1e-5]] as const) {
    it(`${rows}×${dim} eps=${eps}`, async () => {
      const k = await gpuKernels();
      const x = randomF32(rows * dim, dim, 4);
      const w = randomF32(dim, dim + 1);
      const got = await runRmsNorm(k, x, w, rows, dim, eps);
      expect(maxAbsDiff(got, rmsnormRef(x, w, rows, dim, eps))).toBeLessThanOrEqual(TOLERANCE.rmsnorm);
    });
  }
});

describe('softmax over rows on WebGPU vs TS reference', () => {
  for (const [rows, cols, scale] of [[1, 1, 1], [2, 3, 1], [5, 255, 10], [3, 256, 30], [7, 1025, 5], [1, 5000, 50]] as const) {
    it(`${rows}×${cols} (logits ±${scale})`, async () => {
      const k = await gpuKernels();
      const x = randomF32(rows * cols, cols, scale);
      const got = await runSoftmax(k, x, rows, cols);
      expect(maxAbsDiff(got, softmaxRef(x, rows, cols))).toBeLessThanOrEqual(TOLERANCE.softmax);
      for (let r = 0; r < rows; r++) {
        const s = got.subarray(r * cols, (r + 1) * cols).reduce((a, b) => a + b, 0);
        expect(Math.abs(s - 1)).toBeLessThan(1e-5);
      }
    });
  }
});

describe('residual add + rmsnorm in one dispatch vs TS reference', () => {
  for (const [rows, dim, alpha] of [[1, 8, 1], [3, 300, 0.22], [5, 2048, 1]] as const) {
    it(`${rows}×${dim} alpha=${alpha}`, async () => {
      const k = await gpuKernels();
      const h = randomF32(rows * dim, dim, 2), y = randomF32(rows * dim, dim + 1, 2), w = randomF32(dim, dim + 2);
      const bh = up(k, h), x = empty(k, rows * dim);
      submit(k, (enc) => encodeAddRmsNorm(k, enc, { h: bh, y: up(k, y), alpha, weight: up(k, w), x, rows, dim, eps: 1e-6 }));
      const hRef = h.map((v, i) => Math.fround(v + alpha * y[i]!));
      expect(maxAbsDiff(await f32(k, bh, rows * dim), hRef)).toBeLessThan(1e-6);
      expect(maxAbsDiff(await f32(k, x, rows * dim), rmsnormRef(hRef, w, rows, dim, 1e-6))).toBeLessThanOrEqual(TOLERANCE.rmsnorm);
    });
  }
});
