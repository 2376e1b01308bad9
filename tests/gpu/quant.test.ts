import { describe, expect, it } from 'vitest';
import { createMoeScratch, encodeExperts } from '../../src/engine/moe/experts';
import { encodeMatmul } from '../../src/engine/ops/matmul';
import { dequantize, quantize } from '../../src/engine/quant/pack';
import { uploadWeight } from '../../src/engine/quant/weight';
import { expertsRef, matmulRef, routeRef } from '../../src/engine/ref/ops';
import { maxAbsDiff, randomF32 } from '../../src/engine/ref/random';
import { TOLERANCE } from '../../src/engine/selftest';
import { gpuKernels } from './device';
import { empty, f32, submit, up } from './run';

// The kernels multiply by exactly dequantize(quantize(W)); they are checked against that, with the
// f32 tolerance. (How far that is from the f32 model is the quantisation error, bounded in pack tests
// and measured on real checkpoints in parity.test.ts.)
describe('matmul with int8 / int4 weights dequantised in the kernel', () => {
  const shapes: Array<[number, number, number]> = [[1, 37, 64], [3, 64, 128], [8, 17, 256], [70, 65, 128]];
  for (const format of ['int8', 'int4'] as const) {
    for (const group of [32, 128]) {
      for (const [M, N, K] of shapes) {
        if (K % group) continue;
        for (const profile of ['gpu', 'software'] as const) {
          if (profile === 'software' && M > 8) continue;
          it(`${format} g${group} M=${M} N=${N} K=${K} (${profile})`, async () => {
            const k = await gpuKernels(profile);
            const x = randomF32(M * K, M + K), w = randomF32(N * K, N + K), b = randomF32(N, 3);
            const wq = uploadWeight(k.device, w, N, K, format, group, 'w');
            expect(wq.format).toBe(format);
            const y = empty(k, M * N);
            submit(k, (enc) => encodeMatmul(k, enc, { x: up(k, x), w: wq, bias: up(k, b), y, M, N, K }));
            const want = matmulRef(x, dequantize(quantize(w, N, K, format, group)), b, M, N, K);
            expect(maxAbsDiff(await f32(k, y, M * N), want)).toBeLessThanOrEqual(TOLERANCE.matmul(K));
          });
        }
      }
    }
  }
});

describe('routed experts with quantised expert weights', () => {
  for (const [T, format] of [[1, 'int4'], [2, 'int8'], [1, 'int8'], [2, 'int4'], [40, 'int4']] as const) for (const profile of ['gpu', 'software'] as const) {
    it(`T=${T} ${format} g32 (${profile})`, async () => {
      const k = await gpuKernels(profile);
      const [E, K, H, I] = [8, 2, 64, 32];
      const x = randomF32(T * H, T);
      const { idx, weights } = routeRef(randomF32(T * E, T + 9, 3), T, E, K, true);
      const wgu = randomF32(E * 2 * I * H, 5, 0.3), wd = randomF32(E * H * I, 6, 0.3);
      const qgu = uploadWeight(k.device, wgu, E * 2 * I, H, format, 32, 'gu');
      const qd = uploadWeight(k.device, wd, E * H, I, format, 32, 'd');
      const out = empty(k, T * H);
      submit(k, (enc) => encodeExperts(k, enc, {
        x: up(k, x), idx: up(k, idx), gates: up(k, weights), wGateUp: qgu, wDown: qd, out,
        tokens: T, topk: K, experts: E, hidden: H, inter: I, capacity: 0, scratch: createMoeScratch(k.device, T * K, E, H, I),
      }));
      const want = expertsRef(x, idx, weights, dequantize(quantize(wgu, E * 2 * I, H, format, 32)), dequantize(quantize(wd, E * H, I, format, 32)), T, K, H, I);
      expect(maxAbsDiff(await f32(k, out, T * H), want)).toBeLessThan(1e-5);
    });
  }
});
