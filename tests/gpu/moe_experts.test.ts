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
