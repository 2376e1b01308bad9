import { describe, expect, it } from 'vitest';
import { createMoeScratch, encodeExperts } from '../../src/engine/moe/experts';
import { expertsRef, routeRef } from '../../src/engine/ref/ops';
import { maxAbsDiff, randomF32 } from '../../src/engine/ref/random';
import { gpuKernels } from './device';
import { empty, f32, submit, u32, up } from './run';

describe('routed experts (plan → grouped matmuls → combine) vs per-token reference', () => {
  const cases: Array<[number, number, number, number, number, string, number?]> = [
    // T, E, k, H, I, shared, capacity
    [1, 4, 1, 8, 16, 'none'],
    [1, 16, 2, 32, 24, 'gated'],
    [9, 8, 2, 24, 40, 'plain'],
    [70, 16, 2, 40, 72, 'gated'],
    [130, 60, 4, 16, 8, 'none'],
    [40, 8, 2, 16, 24, 'gated', 6],
    [9, 4, 2, 8, 8, 'none', 1],
  ];
  for (const [T, E, K, H, I, sharedMode, capacity = 0] of cases) for (const profile of ['gpu', 'software'] as const) {
    if (profile === 'software' && T * K > 16) continue; // the profiles differ only in the few-slot kernels
    it(`T=${T} E=${E} top-${K} H=${H} I=${I} shared=${sharedMode}${capacity ? ` capacity=${capacity}` : ''} (${profile})`, async () => {
      const k = await gpuKernels(profile);
      const x = randomF32(T * H, T + 1);
      const { idx, weights } = routeRef(randomF32(T * E, T + 2, 3), T, E, K, true);
      const wgu = randomF32(E * 2 * I * H, 5, 0.3);
      const wd = randomF32(E * H * I, 6, 0.3);
      const sharedOut = randomF32(T * H, 7);
      const sharedGate = randomF32(T, 8, 3);
      const shared = sharedMode === 'none' ? undefined : { out: sharedOut, gateLogits: sharedMode === 'gated' ? sharedGate : undefined };
      const out = empty(k, T * H);
      const scratch = createMoeScratch(k.device, T * K, E, H, I);
      submit(k, (enc) =>
        encodeExperts(k, enc, {
          x: up(k, x), idx: up(k, idx), gates: up(k, weights), wGateUp: up(k, wgu), wDown: up(k, wd),
          shared: shared && { out: up(k, shared.out), gateLogits: shared.gateLogits && up(k, shared.gateLogits) },
          out, tokens: T, topk: K, experts: E, hidden: H, inter: I, scratch, capacity,
        }),
      );
      const want = expertsRef(x, idx, weights, wgu, wd, T, K, H, I, shared, capacity);
      expect(maxAbsDiff(await f32(k, out, T * H), want)).toBeLessThan(1e-5);
      // Per-expert counts come out of the plan for routing statistics.
      const counts = await u32(k, scratch.counts, E);
      const wantCounts = new Array<number>(E).fill(0);
      for (const e of idx) wantCounts[e]!++;
      if (capacity) wantCounts.forEach((c, e) => (wantCounts[e] = Math.min(c, capacity)));
      expect(Array.from(counts)).toEqual(wantCounts);
    });
  }
});

describe('the combine with the residual add and the next RMSNorm fused (main_norm) vs the reference and add → norm', () => {
  const cases: Array<[number, number, number, number, number, string, number, number]> = [
    // T, E, k, H, I, shared, capacity, residual multiplier
    [1, 16, 2, 32, 24, 'gated', 0, 1],
    [1, 64, 8, 300, 16, 'none', 0, 1],
    [9, 8, 2, 24, 40, 'plain', 0, 0.22],
    [40, 8, 2, 16, 24, 'gated', 6, 1],
  ];
  for (const [T, E, K, H, I, sharedMode, capacity, alpha] of cases) {
    it(`T=${T} E=${E} top-${K} H=${H} shared=${sharedMode}${capacity ? ` capacity=${capacity}` : ''} alpha=${alpha}`, async () => {
      const k = await gpuKernels();
      const x = randomF32(T * H, T + 11);
      const { idx, weights } = routeRef(randomF32(T * E, T + 12, 3), T, E, K, true);
      const wgu = randomF32(E * 2 * I * H, 15, 0.3);
      const wd = randomF32(E * H * I, 16, 0.3);
      const sharedOut = randomF32(T * H, 17);
      const sharedGate = randomF32(T, 18, 3);
      const shared = sharedMode === 'none' ? undefined : { out: sharedOut, gateLogits: sharedMode === 'gated' ? sharedGate : undefined };
      const h0 = randomF32(T * H, 19, 2);
      const normW = randomF32(H, 20, 0.2).map((v) => 1 + v);
      const eps = 1e-6;
      const h = up(k, h0), xn = empty(k, T * H), capture = empty(k, 2 * T * K + 5);
      const scratch = createMoeScratch(k.device, T * K, E, H, I);
      submit(k, (enc) =>
        encodeExperts(k, enc, {
          x: up(k, x), idx: up(k, idx), gates: up(k, weights), wGateUp: up(k, wgu), wDown: up(k, wd),
          shared: shared && { out: up(k, shared.out), gateLogits: shared.gateLogits && up(k, shared.gateLogits) },
          out: empty(k, 1), tokens: T, topk: K, experts: E, hidden: H, inter: I, scratch, capacity,
          capture: { buffer: capture, offset: 5 }, residualNorm: { h, alpha, weight: up(k, normW), x: xn, eps },
        }),
      );
      const moe = expertsRef(x, idx, weights, wgu, wd, T, K, H, I, shared, capacity);
      const wantH = h0.map((v, i) => v + alpha * moe[i]!);
      const wantX = new Float32Array(T * H);
      for (let t = 0; t < T; t++) {
        let ss = 0;
        for (let d = 0; d < H; d++) ss += wantH[t * H + d]! ** 2;
        const inv = 1 / Math.sqrt(ss / H + eps);
        for (let d = 0; d < H; d++) wantX[t * H + d] = wantH[t * H + d]! * inv * normW[d]!;
      }
      expect(maxAbsDiff(await f32(k, h, T * H), wantH)).toBeLessThan(2e-5);
      expect(maxAbsDiff(await f32(k, xn, T * H), wantX)).toBeLessThan(2e-5);
      // The routing capture rides along, as in the unfused combine.
      const cap = await u32(k, capture, 2 * T * K + 5);
      expect(Array.from(cap.subarray(5, 5 + T * K))).toEqual(Array.from(idx));
      expect(Array.from(new Float32Array(cap.buffer, (5 + T * K) * 4, T * K))).toEqual(Array.from(weights));
    });
  }
});
