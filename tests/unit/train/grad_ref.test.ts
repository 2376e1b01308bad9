/**
 * Each TypeScript backward in src/engine/train/ref.ts against central finite differences of its
 * forward in src/engine/ref/ops.ts. The loss is L = Σ c ⊙ forward(x) for a random cotangent c, so
 * ∂L/∂x is exactly what the backward computes from dy = c.
 *
 * The forwards take and return f32, so the differences carry f32 rounding: the step h is large
 * (1e-2 relative to inputs of order 1), the denominator is the f32 step actually taken, and L is
 * summed in f64. Truncation error is O(h²)·f''' and rounding O(2⁻²⁴·|L|/h): measured errors are
 * 5e-7 … 1.4e-5 at gradient scales of about 1 (printed per check), so the tolerance
 * max |fd − analytic| ≤ 1e-4 · max(1, max |analytic|) leaves ~7× room, while a dropped term or a
 * wrong sign (errors of order 1e-1 … 1) fails.
 */
import { describe, expect, it } from 'vitest';
import { ropeTable } from '../../../src/engine/ops/rope';
import { attentionRef, embeddingRef, matmulRef, rmsnormRef, ropeRef, routeRef, swigluRef, type RouteRefOptions } from '../../../src/engine/ref/ops';
import { randomF32, rng } from '../../../src/engine/ref/random';
import {
  attentionBackwardRef, crossEntropyRef, DROPPED, embeddingBackwardRef, IGNORE_INDEX, linearBackwardRef, moeCombineBackwardRef,
  moeCombineRef, rmsnormBackwardRef, ropeBackwardRef, routerBackwardRef, swigluBackwardRef,
} from '../../../src/engine/train/ref';
import { finiteDiff } from './finite_diff';

const TOL = 1e-4;

/** Σ c ⊙ y in f64. */
function dot(c: ArrayLike<number>, y: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += c[i]! * y[i]!;
  return s;
}


/** Fails when the analytic gradient is off the finite differences by more than tol relative to its scale. */
function expectClose(name: string, analytic: ArrayLike<number>, fd: ArrayLike<number>, tol = TOL): void {
  expect(analytic.length).toBe(fd.length);
  let err = 0, scale = 1;
  for (let i = 0; i < fd.length; i++) {
    err = Math.max(err, Math.abs(analytic[i]! - fd[i]!));
    scale = Math.max(scale, Math.abs(analytic[i]!));
  }
  console.log(`${name}: max |fd − analytic| = ${err.toExponential(2)} (scale ${scale.toPrecision(3)})`);
  expect(err, name).toBeLessThanOrEqual(tol * scale);
  // A gradient that is all zeros would pass against a flat loss: the checks use losses that move.
  expect(Math.max(...Array.from(fd, Math.abs)), `${name} is not trivially zero`).toBeGreaterThan(1e-3);
}

describe('linear backward vs finite differences of matmulRef', () => {
  it('dx, dW and dbias for M=3 N=5 K=4', () => {
    const [M, N, K] = [3, 5, 4];
    const x = randomF32(M * K, 1), w = randomF32(N * K, 2), b = randomF32(N, 3), c = randomF32(M * N, 4);
    const loss = () => dot(c, matmulRef(x, w, b, M, N, K));
    const g = linearBackwardRef(c, x, w, M, N, K);
    expectClose('linear dx', g.dx, finiteDiff(loss, x));
    expectClose('linear dW', g.dw, finiteDiff(loss, w));
    expectClose('linear dbias', g.db, finiteDiff(loss, b));
  });
});

describe('RMSNorm backward vs finite differences of rmsnormRef', () => {
  it('dx and dweight over 4 rows of 7', () => {
    const [R, D, eps] = [4, 7, 1e-5];
    const x = randomF32(R * D, 5, 2), w = randomF32(D, 6), c = randomF32(R * D, 7);
    const loss = () => dot(c, rmsnormRef(x, w, R, D, eps));
    const g = rmsnormBackwardRef(x, w, c, R, D, eps);
    expectClose('rmsnorm dx', g.dx, finiteDiff(loss, x));
    expectClose('rmsnorm dweight', g.dweight, finiteDiff(loss, w));
  });
});

describe('SwiGLU backward vs finite differences of swigluRef', () => {
  it('d(gate_up), gate half first', () => {
    const [R, I] = [3, 6];
    const gu = randomF32(R * 2 * I, 8, 3), c = randomF32(R * I, 9);
    const dgu = swigluBackwardRef(gu, c, R, I);
    expectClose('swiglu d(gate_up)', dgu, finiteDiff(() => dot(c, swigluRef(gu, R, I)), gu));
  });
});

describe('RoPE backward vs finite differences of ropeRef', () => {
  it('the inverse rotation, heads and positions from start', () => {
    const [T, H, D, start] = [3, 2, 8, 5];
    const tab = ropeTable(16, D, 10000, { type: 'default' });
    const x = randomF32(T * H * D, 10), c = randomF32(T * H * D, 11);
    const dx = ropeBackwardRef(c, tab.cos, tab.sin, T, H, D, start);
    expectClose('rope dx', dx, finiteDiff(() => dot(c, ropeRef(x, tab.cos, tab.sin, T, H, D, start)), x));
  });
});

describe('attention backward vs finite differences of attentionRef', () => {
  for (const [T, H, KVH, D] of [[4, 2, 1, 4], [5, 4, 2, 3], [3, 2, 2, 6]] as const) {
    it(`causal GQA T=${T} H=${H} KVH=${KVH} D=${D}`, () => {
      const scale = 1 / Math.sqrt(D);
      const q = randomF32(T * H * D, 12 + D, 1.5), k = randomF32(T * KVH * D, 13 + D, 1.5), v = randomF32(T * KVH * D, 14 + D);
      const c = randomF32(T * H * D, 15 + D);
      const loss = () => dot(c, attentionRef(q, k, v, T, H, KVH, D, 0, scale));
      const g = attentionBackwardRef(q, k, v, c, T, H, KVH, D, scale);
      expectClose('attention dq', g.dq, finiteDiff(loss, q));
      expectClose('attention dk', g.dk, finiteDiff(loss, k));
      expectClose('attention dv', g.dv, finiteDiff(loss, v));
    });
  }
});

describe('softmax cross-entropy', () => {
  it('dlogits vs finite differences of the mean loss, with ignored rows', () => {
    const [T, V] = [5, 9];
    const logits = randomF32(T * V, 16, 3);
    const targets = [3, IGNORE_INDEX, 0, 8, IGNORE_INDEX];
    const { dlogits } = crossEntropyRef(logits, targets, T, V);
    expectClose('cross-entropy dlogits', dlogits, finiteDiff(() => crossEntropyRef(logits, targets, T, V).loss, logits));
    for (let c = 0; c < V; c++) expect(dlogits[1 * V + c]).toBe(0);
  });
  it('is the mean of −log softmax at the targets, and stable at large logits', () => {
    const [T, V] = [2, 4];
    const logits = Float32Array.from([1, 2, 3, 4, -1, 0, 0, 5]);
    const lse = (r: number[]) => Math.log(r.reduce((a, b) => a + Math.exp(b), 0));
    const want = (lse([1, 2, 3, 4]) - 2 + lse([-1, 0, 0, 5]) - 5) / 2;
    expect(crossEntropyRef(logits, [1, 3], T, V).loss).toBeCloseTo(want, 12);
    const shifted = logits.map((v) => v + 1e4);
    const r = crossEntropyRef(shifted, [1, 3], T, V);
    expect(r.loss).toBeCloseTo(want, 3);
    expect(r.dlogits.every(Number.isFinite)).toBe(true);
  });
  it('every row ignored: loss 0 and no gradient (not NaN)', () => {
    const r = crossEntropyRef(randomF32(6, 1), [IGNORE_INDEX, IGNORE_INDEX], 2, 3);
    expect(r.loss).toBe(0);
    expect(r.dlogits.every((v) => v === 0)).toBe(true);
  });
  it('refuses a target outside the vocabulary', () => {
    expect(() => crossEntropyRef(randomF32(6, 1), [0, 3], 2, 3)).toThrow(/target 3 at row 1/);
  });
});

describe('embedding backward vs finite differences of embeddingRef', () => {
  it('repeated ids add up, unused rows stay zero, the scale applies', () => {
    const [V, D, scale] = [6, 3, 1.7];
    const ids = [4, 1, 4, 0, 4];
    const table = randomF32(V * D, 17), c = randomF32(ids.length * D, 18);
    const d = embeddingBackwardRef(ids, c, V, D, scale);
    expectClose('embedding dTable', d, finiteDiff(() => dot(c, embeddingRef(ids, table, D, scale)), table));
    for (const row of [2, 3, 5]) for (let i = 0; i < D; i++) expect(d[row * D + i]).toBe(0);
  });
});

describe('router backward vs finite differences of routeRef', () => {
  /** Logits whose scores are far enough apart that a ±h step never changes the top-k choice. */
  function spacedLogits(T: number, E: number, seed: number, spacing: number): Float32Array {
    const r = rng(seed);
    const out = new Float32Array(T * E);
    for (let t = 0; t < T; t++) {
      const perm = Array.from({ length: E }, (_, e) => e).sort(() => r() - 0.5);
      perm.forEach((e, rank) => (out[t * E + e] = (rank - E / 2) * spacing + (r() - 0.5) * 0.1 * spacing));
    }
    return out;
  }
  const cases: Array<{ name: string; E: number; k: number; renorm: boolean; o: RouteRefOptions; dProbs?: boolean }> = [
    { name: 'softmax, top-2, renormalised', E: 8, k: 2, renorm: true, o: {} },
    { name: 'softmax, top-3, not renormalised', E: 6, k: 3, renorm: false, o: {} },
    { name: 'softmax, τ = 0.7, routed scale 2.5, renormalised, + dProbs', E: 8, k: 2, renorm: true, o: { temperature: 0.7, routedScale: 2.5 }, dProbs: true },
    { name: 'sigmoid, top-2, renormalised, routed scale 1.5', E: 6, k: 2, renorm: true, o: { scoring: 'sigmoid', routedScale: 1.5 } },
    { name: 'sigmoid, top-2, not renormalised, + dProbs', E: 5, k: 2, renorm: false, o: { scoring: 'sigmoid' }, dProbs: true },
    { name: 'softmax, masked experts and fixed noise, renormalised', E: 8, k: 3, renorm: true, o: { disabled: [1, 6], noise: randomF32(4 * 8, 77, 0.3) } },
    { name: 'softmax, group-limited with a selection bias, renormalised', E: 8, k: 2, renorm: true, o: { nGroup: 4, topkGroup: 2, bias: [0.05, 0, 0.1, 0, 0, 0.02, 0, 0] } },
  ];
  for (const { name, E, k, renorm, o, dProbs } of cases) {
    it(name, () => {
      const T = 4;
      const logits = spacedLogits(T, E, E * 31 + k, 0.4);
      const dG = randomF32(T * k, 19 + E), dP = dProbs ? randomF32(T * E, 20 + E) : null;
      const base = routeRef(logits, T, E, k, renorm, o);
      const loss = () => {
        const r = routeRef(logits, T, E, k, renorm, o);
        // A perturbation that changed the choice would make the difference quotient meaningless.
        expect(Array.from(r.idx)).toEqual(Array.from(base.idx));
        return dot(dG, r.weights) + (dP ? dot(dP, r.probs) : 0);
      };
      const fd = finiteDiff(loss, logits);
      const opts = { scoring: o.scoring, temperature: o.temperature, renormalize: renorm, routedScale: o.routedScale };
      const an = routerBackwardRef(base.probs, base.idx, dG, T, E, k, opts, dP);
      expectClose(`router dLogits (${name})`, an, fd);
      for (const e of o.disabled ?? []) for (let t = 0; t < T; t++) expect(Math.abs(an[t * E + e]!)).toBe(0);
    });
  }
});

describe('MoE combine backward vs finite differences of its forward (moe_combine.wgsl)', () => {
  // 4 tokens, top-2, rows grouped by expert with one padding row (6) and one dropped slot.
  const [T, k, dim, rows] = [4, 2, 5, 8];
  const slotPos = Uint32Array.from([3, 0, 5, DROPPED, 1, 7, 2, 4]);
  for (const mode of ['none', 'added', 'gated'] as const) {
    it(`dGate, dY and the shared expert's gradients (shared expert: ${mode})`, () => {
      const gate = randomF32(T * k, 81), y = randomF32(rows * dim, 82), c = randomF32(T * dim, 83);
      const shared = mode === 'none' ? undefined : { out: randomF32(T * dim, 84), gateLogits: mode === 'gated' ? randomF32(T, 85, 2) : undefined };
      const loss = () => dot(c, moeCombineRef(gate, slotPos, y, T, k, dim, shared));
      const g = moeCombineBackwardRef(gate, slotPos, y, c, T, k, dim, rows, shared);
      expectClose(`combine dGate (${mode})`, g.dGate, finiteDiff(loss, gate));
      expectClose(`combine dY (${mode})`, g.dY, finiteDiff(loss, y));
      expect(g.dGate[3]).toBe(0);
      for (let d = 0; d < dim; d++) expect(g.dY[6 * dim + d]).toBe(0);
      if (shared) expectClose(`combine dSharedOut (${mode})`, g.dSharedOut!, finiteDiff(loss, shared.out));
      if (shared?.gateLogits) expectClose(`combine dSharedGate (${mode})`, g.dSharedGate!, finiteDiff(loss, shared.gateLogits));
    });
  }
});
