/**
 * The grouped expert backward (shaders/bwd_experts.wgsl) against expertsBackwardRef: the forward's
 * plan, then down-projection dA/dW, SwiGLU backward, gate/up dA/dW and the scatter back to tokens,
 * with dropped slots (capacity) and through int8 weights (dA reads W with the forward's loaders).
 */
import { describe, expect, it } from 'vitest';
import { createMoeScratch, encodeExperts } from '../../src/engine/moe/experts';
import { quantize } from '../../src/engine/quant/pack';
import { uploadQuantized } from '../../src/engine/quant/weight';
import { dequantize } from '../../src/engine/quant/pack';
import { routeRef } from '../../src/engine/ref/ops';
import { randomF32 } from '../../src/engine/ref/random';
import { encodeSwiGluBackward } from '../../src/engine/train/ops/elementwise';
import { encodeGroupedLinearBackward, encodeScaleCopy, encodeSlotScatter, expertsBackwardRef } from '../../src/engine/train/ops/experts';
import { DROPPED } from '../../src/engine/train/ref';
import { gpuKernels } from './device';
import { empty, f32, submit, u32, up } from './run';

const rel = (got: Float32Array, want: Float32Array) => {
  let d = 0, m = 0;
  for (let i = 0; i < want.length; i++) {
    d = Math.max(d, Math.abs(got[i]! - want[i]!));
    m = Math.max(m, Math.abs(want[i]!));
  }
  return d / Math.max(1, m);
};

describe('grouped expert backward vs reference', () => {
  const cases: Array<[number, number, number, number, number, number, 'f32' | 'int8']> = [
    // T, E, k, H, I, capacity, weights
    [5, 4, 1, 8, 16, 0, 'f32'],
    [12, 8, 2, 32, 24, 0, 'f32'],
    [40, 8, 2, 32, 24, 6, 'f32'],
    [20, 16, 4, 32, 32, 0, 'int8'],
  ];
  for (const [T, E, K, H, I, capacity, fmt] of cases) {
    it(`T=${T} E=${E} top-${K} H=${H} I=${I}${capacity ? ` capacity=${capacity}` : ''} ${fmt}`, async () => {
      const k = await gpuKernels();
      const x = randomF32(T * H, T + 11);
      const { idx, weights } = routeRef(randomF32(T * E, T + 12, 3), T, E, K, true);
      let wgu = randomF32(E * 2 * I * H, 13, 0.3);
      let wd = randomF32(E * H * I, 14, 0.3);
      const gpuW = (w: Float32Array, rows: number, cols: number) => {
        if (fmt === 'f32') return { gpu: up(k, w) as GPUBuffer | ReturnType<typeof uploadQuantized>, host: w };
        const q = quantize(w, rows, cols, 'int8', 32);
        return { gpu: uploadQuantized(k.device, q, 'w'), host: dequantize(q) };
      };
      const gu = gpuW(wgu, E * 2 * I, H), dn = gpuW(wd, E * H, I);
      wgu = gu.host;
      wd = dn.host;
      const S = T * K;
      const sc = createMoeScratch(k.device, S, E, H, I);
      const idxBuf = up(k, idx), xBuf = up(k, x);
      submit(k, (enc) => encodeExperts(k, enc, { x: xBuf, idx: idxBuf, gates: up(k, weights), wGateUp: gu.gpu, wDown: dn.gpu, out: empty(k, T * H), tokens: T, topk: K, experts: E, hidden: H, inter: I, scratch: sc, capacity, keepActivations: true }));
      const slotPos = await u32(k, sc.slotPos, S);
      const dYslot = randomF32(S * H, 15);
      const dY = new Float32Array(S * H);
      const idxRef = Uint32Array.from(idx);
      for (let s = 0; s < S; s++) {
        if (slotPos[s] === DROPPED) {
          idxRef[s] = DROPPED;
          dYslot.fill(0, s * H, (s + 1) * H);
        } else dY.set(dYslot.subarray(s * H, (s + 1) * H), slotPos[s]! * H);
      }
      const want = expertsBackwardRef(x, idxRef, dYslot, wgu, wd, T, K, E, H, I);
      const plan = { sorted: sc.sorted, slotPos: sc.slotPos, counts: sc.counts, idx: idxBuf, tokens: T, topk: K, experts: E };
      const dAct = empty(k, S * I), dGU = empty(k, S * 2 * I), dA = empty(k, S * H), dx = empty(k, T * H), dWd = empty(k, E * H * I), dWgu = empty(k, E * 2 * I * H);
      // The gradients accumulate onto a known start (2 × the reference, added twice).
      const half = empty(k, E * H * I);
      submit(k, (enc) => {
        encodeGroupedLinearBackward(k, enc, { plan, dy: up(k, dY), w: dn.gpu, dA: dAct, a: sc.act, dW: dWd, N: H, K: I });
        encodeSwiGluBackward(k, enc, { gateUp: sc.gateUp, dout: dAct, dGateUp: dGU, rows: S, inter: I });
        encodeGroupedLinearBackward(k, enc, { plan, dy: dGU, w: gu.gpu, dA, a: xBuf, gather: true, dW: dWgu, N: 2 * I, K: H });
        encodeSlotScatter(k, enc, { plan, dA, dx, dim: H });
        encodeScaleCopy(k, enc, { x: dWd, y: half, n: E * H * I, alpha: 0.5 });
      });
      const errs = { dx: rel(await f32(k, dx, T * H), want.dx), dGateUp: rel(await f32(k, dWgu, E * 2 * I * H), want.dGateUp), dDown: rel(await f32(k, dWd, E * H * I), want.dDown) };
      expect(rel(await f32(k, half, E * H * I), want.dDown.map((v) => v / 2))).toBeLessThan(1e-5);
      // Accumulation: a second dW pass adds onto the first.
      submit(k, (enc) => encodeGroupedLinearBackward(k, enc, { plan, dy: up(k, dY), a: sc.act, dW: dWd, accumulateDw: true, N: H, K: I }));
      expect(rel(await f32(k, dWd, E * H * I), want.dDown.map((v) => 2 * v))).toBeLessThan(1e-5);
      console.log(`T=${T} E=${E} k=${K} ${fmt}: relative errors dx ${errs.dx.toExponential(1)}, dGateUp ${errs.dGateUp.toExponential(1)}, dDown ${errs.dDown.toExponential(1)}`);
      for (const [name, e] of Object.entries(errs)) expect(e, name).toBeLessThan(1e-5);
    });
  }
});
