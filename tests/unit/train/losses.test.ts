/**
 * The router losses of src/engine/train/losses.ts: values on hand-worked examples, every gradient
 * against central finite differences, and the balance gradients carried through the router
 * backward reference (routerBackwardRef's dProbs input) to the logits, against differences of the
 * whole forward logits → routeRef → loss.
 *
 * The losses compute in f64 from f32 inputs, so a difference quotient over the f32 step actually
 * taken has truncation error only (O(h²)); h = 1e-4 and a tolerance of 1e-6 × the gradient's
 * scale. Through routeRef the scores are rounded to f32, so those checks use grad_ref.test.ts's
 * h = 1e-2 and 1e-4.
 */
import { describe, expect, it } from 'vitest';
import { routeRef } from '../../../src/engine/ref/ops';
import { randomF32, rng } from '../../../src/engine/ref/random';
import {
  auxFreeBias, balanceLoss, balanceLossFor, expertDropout, LOSS_PRESETS, meanScores, notesTotal, orthogonalityLoss, routedFractions,
  validateLossConfig, zLoss, type BalanceLossName, type LossConfig,
} from '../../../src/engine/train/losses';
import { routerBackwardRef } from '../../../src/engine/train/ref';
import { finiteDiff } from './finite_diff';


function expectClose(name: string, analytic: ArrayLike<number>, fd: ArrayLike<number>, tol: number): void {
  expect(analytic.length).toBe(fd.length);
  let err = 0, scale = 0, fdMax = 0;
  for (let i = 0; i < fd.length; i++) {
    err = Math.max(err, Math.abs(analytic[i]! - fd[i]!));
    scale = Math.max(scale, Math.abs(analytic[i]!));
    fdMax = Math.max(fdMax, Math.abs(fd[i]!));
  }
  console.log(`${name}: max |fd − analytic| = ${err.toExponential(2)} (scale ${scale.toPrecision(3)})`);
  expect(err, name).toBeLessThanOrEqual(tol * Math.max(scale, 1e-3));
  // A zero gradient would match a flat loss: every check here uses a loss that moves.
  expect(fdMax, `${name} is not trivially zero`).toBeGreaterThan(1e-4);
}

/** Softmax rows of random logits, [T, E], and a top-k choice that is not the argmax (f and P disagree). */
function scores(T: number, E: number, seed: number, sigmoid = false): Float32Array {
  const z = randomF32(T * E, seed, 2);
  const p = new Float32Array(T * E);
  for (let t = 0; t < T; t++) {
    if (sigmoid) {
      for (let e = 0; e < E; e++) p[t * E + e] = 1 / (1 + Math.exp(-z[t * E + e]!));
      continue;
    }
    let s = 0;
    for (let e = 0; e < E; e++) s += Math.exp(z[t * E + e]!);
    for (let e = 0; e < E; e++) p[t * E + e] = Math.exp(z[t * E + e]!) / s;
  }
  return p;
}

function choice(T: number, E: number, k: number, seed: number): Uint32Array {
  const r = rng(seed);
  const idx = new Uint32Array(T * k);
  for (let t = 0; t < T; t++) {
    const pool = Array.from({ length: E }, (_, e) => e);
    for (let j = 0; j < k; j++) idx[t * k + j] = pool.splice(Math.floor(r() * pool.length), 1)[0]!;
  }
  return idx;
}

describe('balance losses: hand-worked values', () => {
  // Two tokens, two experts, top-1. P = (0.55, 0.45).
  const probs = Float32Array.from([0.7, 0.3, 0.4, 0.6]);
  const even = Uint32Array.from([0, 1]);
  const skewed = Uint32Array.from([0, 0]);

  it('f and P', () => {
    expect(Array.from(routedFractions(even, 2))).toEqual([0.5, 0.5]);
    expect(Array.from(routedFractions(Uint32Array.from([0, 0xffffffff, 1, 0]), 2))).toEqual([2 / 3, 1 / 3]); // "no expert" slots not counted
    const P = meanScores(probs, 2, 2);
    expect(P[0]).toBeCloseTo(0.55, 7);
    expect(P[1]).toBeCloseTo(0.45, 7);
    expect(() => routedFractions(Uint32Array.from([2]), 2)).toThrow(RangeError);
  });

  it('switch: N Σ f_i P_i = 1 when the slots are even, 2·0.55 when both go to expert 0; dProbs = α N f_i / T', () => {
    const sw = balanceLoss('switch', 0.5);
    expect(sw.compute(probs, even, 2, 2, 1).value).toBeCloseTo(1, 6);
    const r = sw.compute(probs, skewed, 2, 2, 1);
    expect(r.value).toBeCloseTo(1.1, 6);
    expect(r.loss).toBeCloseTo(0.55, 6);
    // f = (1, 0): each token's score of expert 0 carries α·N·1/T = 0.5, expert 1 nothing.
    expect(Array.from(r.dProbs)).toEqual([0.5, 0, 0.5, 0]);
  });

  it("switch equals HF's load_balancing_loss_func divided by k (HF counts f per token, Σ f = k)", () => {
    const [T, E, k] = [7, 5, 2];
    const p = scores(T, E, 3), idx = choice(T, E, k, 4);
    // HF (Mixtral): tokens_per_expert[j, e] = mean_t onehot(idx[t, j])[e]; loss = E · Σ_{j,e} tpe[j, e] · P_e.
    const P = meanScores(p, T, E);
    let hf = 0;
    for (let j = 0; j < k; j++) for (let e = 0; e < E; e++) {
      let n = 0;
      for (let t = 0; t < T; t++) if (idx[t * k + j] === e) n++;
      hf += (n / T) * P[e]!;
    }
    hf *= E;
    expect(balanceLoss('switch', 1).compute(p, idx, T, E, k).value).toBeCloseTo(hf / k, 10);
  });

  it('sqdev: Σ (P_i − τ)² with τ = 1/E, or the given target', () => {
    expect(balanceLoss('sqdev', 1).compute(probs, even, 2, 2, 1).value).toBeCloseTo(0.05 ** 2 * 2, 8);
    expect(balanceLoss('sqdev', 1, { target: 0.55 }).compute(probs, even, 2, 2, 1).value).toBeCloseTo(0.1 ** 2, 8);
    // Does not depend on which experts were chosen: f is taken as the mean probability (see losses.ts).
    expect(balanceLoss('sqdev', 1).compute(probs, skewed, 2, 2, 1).value).toBeCloseTo(0.005, 8);
  });

  it('kl: Σ P_i log(P_i E); 0 when even, log E when one expert has all the mass', () => {
    expect(balanceLoss('kl', 1).compute(probs, even, 2, 2, 1).value).toBeCloseTo(0.55 * Math.log(1.1) + 0.45 * Math.log(0.9), 7);
    const flat = new Float32Array(3 * 4).fill(0.25);
    const r = balanceLoss('kl', 2).compute(flat, Uint32Array.from([0, 1, 2]), 3, 4, 1);
    expect(r.value).toBeCloseTo(0, 7);
    // At the minimum the gradient is a constant per token, which softmax's backward removes.
    const dz = routerBackwardRef(flat, Uint32Array.from([0, 1, 2]), new Float32Array(3), 3, 4, 1, { renormalize: false }, r.dProbs);
    for (const v of dz) expect(Math.abs(v)).toBeLessThan(1e-7);
    const onehot = Float32Array.from([1, 0, 0, 0, 1, 0, 0, 0]);
    const one = balanceLoss('kl', 1).compute(onehot, Uint32Array.from([0, 0]), 2, 4, 1);
    expect(one.value).toBeCloseTo(Math.log(4), 7);
    // Experts at probability 0 (masked) get a large but finite gradient.
    for (const v of one.dProbs) expect(Number.isFinite(v)).toBe(true);
  });

  it('weight 0 gives value, no loss and a zero gradient; bad shapes and weights are refused', () => {
    const r = balanceLoss('switch', 0).compute(probs, skewed, 2, 2, 1);
    expect(r.value).toBeCloseTo(1.1, 6);
    expect(r.loss).toBe(0);
    expect(r.dProbs.every((v) => v === 0)).toBe(true);
    expect(() => balanceLoss('switch', 1).compute(probs, even, 3, 2, 1)).toThrow(/probs holds 4 values, expected T·E = 6/);
    expect(() => balanceLoss('switch', 1).compute(probs, even, 2, 2, 2)).toThrow(/idx holds 2 values, expected T·k = 4/);
    expect(() => balanceLoss('switch', -1)).toThrow(RangeError);
    expect(() => balanceLoss('switch', NaN)).toThrow(RangeError);
    expect(() => balanceLoss('nope' as BalanceLossName, 1)).toThrow(/unknown form "nope"/);
    expect(() => balanceLoss('sqdev', 1, { target: 2 })).toThrow(/target share/);
  });

  it('T = 0 is a zero loss, not NaN', () => {
    for (const name of ['switch', 'sqdev', 'kl'] as const) {
      const r = balanceLoss(name, 1).compute(new Float32Array(0), new Uint32Array(0), 0, 4, 2);
      expect(Number.isFinite(r.loss), name).toBe(true);
      expect(r.dProbs.length).toBe(0);
    }
  });
});

describe('balance losses: dProbs vs finite differences', () => {
  const [T, E, k] = [6, 5, 2];
  for (const name of ['switch', 'sqdev', 'kl'] as const) {
    for (const normalize of [false, true]) {
      it(`${name}${normalize ? ' (sigmoid scores, renormalised per token)' : ''}`, () => {
        const p = scores(T, E, 11, normalize), idx = choice(T, E, k, 12);
        const bl = balanceLoss(name, 0.7, { normalize });
        const r = bl.compute(p, idx, T, E, k);
        expectClose(`${name} dProbs${normalize ? ' normalised' : ''}`, r.dProbs, finiteDiff(() => bl.compute(p, idx, T, E, k).loss, p, 1e-4), 1e-6);
      });
    }
  }

  it('renormalised: scaling a token\'s scores changes nothing', () => {
    const p = scores(T, E, 13, true), idx = choice(T, E, k, 14);
    const q = Float32Array.from(p, (v, i) => (i < E ? v * 3 : v));
    for (const name of ['switch', 'sqdev', 'kl'] as const) {
      const bl = balanceLoss(name, 1, { normalize: true });
      expect(bl.compute(q, idx, T, E, k).value, name).toBeCloseTo(bl.compute(p, idx, T, E, k).value, 6);
    }
  });
});

describe('balance losses through the router backward (dProbs → dLogits) vs differences of the whole forward', () => {
  const [T, E, k] = [5, 6, 2];
  const cases = [
    { name: 'softmax, renormalised', scoring: 'softmax' as const, renorm: true, temperature: 1 },
    { name: 'softmax τ = 0.7 (seed 003)', scoring: 'softmax' as const, renorm: false, temperature: 0.7 },
    { name: 'sigmoid, renormalised (DeepSeek-V3)', scoring: 'sigmoid' as const, renorm: true, temperature: 1 },
  ];
  for (const c of cases) {
    for (const name of ['switch', 'sqdev', 'kl'] as const) {
      it(`${name}, ${c.name}`, () => {
        // Logits spread enough that a step of 1e-2 never reorders the top-k (f stays put).
        const logits = Float32Array.from({ length: T * E }, (_, i) => ((i * 7) % (T * E)) * 0.15 - 2 + randomF32(1, i)[0]! * 0.02);
        const o = { scoring: c.scoring, temperature: c.temperature };
        const bl = balanceLoss(name, 0.9, { normalize: c.scoring === 'sigmoid' });
        const base = routeRef(logits, T, E, k, c.renorm, o);
        const loss = () => {
          const r = routeRef(logits, T, E, k, c.renorm, o);
          expect(Array.from(r.idx)).toEqual(Array.from(base.idx));
          return bl.compute(r.probs, r.idx, T, E, k).loss;
        };
        const fd = finiteDiff(loss, logits, 1e-2);
        const dProbs = bl.compute(base.probs, base.idx, T, E, k).dProbs;
        const an = routerBackwardRef(base.probs, base.idx, new Float32Array(T * k), T, E, k, { ...o, renormalize: c.renorm }, dProbs);
        expectClose(`router dLogits from ${name} (${c.name})`, an, fd, 1e-4);
      });
    }
  }
});

describe('router z-loss', () => {
  it('(1/T) Σ lse² on hand values', () => {
    expect(zLoss(Float32Array.from([0, 0]), 1, 2, 1).value).toBeCloseTo(Math.LN2 ** 2, 10);
    const r = zLoss(Float32Array.from([0, 0, 1, 1]), 2, 2, 0.5);
    const want = (Math.LN2 ** 2 + (1 + Math.LN2) ** 2) / 2;
    expect(r.value).toBeCloseTo(want, 7);
    expect(r.loss).toBeCloseTo(0.5 * want, 7);
    // Large logits do not overflow.
    expect(zLoss(Float32Array.from([1000, 1000]), 1, 2, 1).value).toBeCloseTo((1000 + Math.LN2) ** 2, 3);
    expect(() => zLoss(new Float32Array(3), 1, 2, 1)).toThrow(RangeError);
  });

  it('dLogits vs finite differences', () => {
    const [T, E] = [4, 7];
    const z = randomF32(T * E, 21, 3);
    const r = zLoss(z, T, E, 0.3);
    expectClose('z-loss dLogits', r.dLogits, finiteDiff(() => zLoss(z, T, E, 0.3).loss, z, 1e-4), 1e-6);
  });
});

describe('orthogonality loss', () => {
  it('0 for orthogonal rows, 1 for parallel ones, ½ for rows at 45°; scale-free', () => {
    expect(orthogonalityLoss(Float32Array.from([1, 0, 0, 2]), 2, 2, 1).value).toBeCloseTo(0, 12);
    expect(orthogonalityLoss(Float32Array.from([1, 0, -3, 0]), 2, 2, 1).value).toBeCloseTo(1, 12);
    expect(orthogonalityLoss(Float32Array.from([1, 0, 1, 1]), 2, 2, 1).value).toBeCloseTo(0.5, 7);
    expect(orthogonalityLoss(Float32Array.from([5, 0, 0.1, 0.1]), 2, 2, 1).value).toBeCloseTo(0.5, 7);
    // Three rows: (1,0), (0,1), (1,1)/√2 → pairs 0, ½, ½ (each twice) over 3·2.
    expect(orthogonalityLoss(Float32Array.from([1, 0, 0, 1, 1, 1]), 3, 2, 2).loss).toBeCloseTo((2 * 2 * (0.5 + 0.5)) / 6, 7);
  });

  it('dW vs finite differences (a zero row adds nothing and gets nothing)', () => {
    const [n, dim] = [5, 6];
    const w = randomF32(n * dim, 31);
    for (let d = 0; d < dim; d++) w[2 * dim + d] = 0;
    const r = orthogonalityLoss(w, n, dim, 0.1);
    for (let d = 0; d < dim; d++) expect(r.dW[2 * dim + d]).toBe(0);
    const fd = finiteDiff(() => orthogonalityLoss(w, n, dim, 0.1).loss, w, 1e-4);
    // The zero row's difference is |h|-sized noise around a kink: compare the others.
    const keep = (a: ArrayLike<number>) => Array.from(a).filter((_, i) => Math.floor(i / dim) !== 2);
    expectClose('ortho dW', keep(r.dW), keep(fd), 1e-6);
    // Gradient is orthogonal to each row (the loss does not depend on row lengths).
    for (let i = 0; i < n; i++) {
      let dot = 0;
      for (let d = 0; d < dim; d++) dot += r.dW[i * dim + d]! * w[i * dim + d]!;
      expect(Math.abs(dot)).toBeLessThan(1e-7);
    }
  });

  it('one row or none: 0; a wrong size is refused', () => {
    expect(orthogonalityLoss(Float32Array.from([1, 2]), 1, 2, 1).loss).toBe(0);
    expect(() => orthogonalityLoss(new Float32Array(5), 2, 2, 1)).toThrow(RangeError);
  });
});

describe("DeepSeek-V3's auxiliary-loss-free bias", () => {
  it('b_i += γ · sign(mean − load_i): overloaded down, idle up, average unchanged; input untouched', () => {
    const bias = [0.5, 0, 0, -0.25];
    expect(auxFreeBias([10, 0, 5, 5], bias, 0.001)).toEqual([0.499, 0.001, 0, -0.25]);
    expect(bias).toEqual([0.5, 0, 0, -0.25]);
    expect(auxFreeBias([3, 1], null, 0.1)).toEqual([-0.1, 0.1]);
    expect(() => auxFreeBias([1, 2], [0], 0.1)).toThrow(RangeError);
    expect(() => auxFreeBias([1, 2], null, -1)).toThrow(RangeError);
  });

  it('run against a fixed preference, the bias evens the loads out (routing by score + bias)', () => {
    // 4 experts, top-1, 64 tokens whose scores favour expert 0; the bias alone must spread them.
    const [T, E] = [64, 4];
    const p = scores(T, E, 41);
    for (let t = 0; t < T; t++) p[t * E] = p[t * E]! + 0.5;
    let bias: number[] = [0, 0, 0, 0];
    const route = () => {
      const counts = new Array<number>(E).fill(0);
      for (let t = 0; t < T; t++) {
        let best = 0;
        for (let e = 1; e < E; e++) if (p[t * E + e]! + bias[e]! > p[t * E + best]! + bias[best]!) best = e;
        counts[best]!++;
      }
      return counts;
    };
    const before = route();
    expect(before[0]).toBeGreaterThan(T / 2);
    for (let step = 0; step < 400; step++) bias = auxFreeBias(route(), bias, 0.005);
    const after = route();
    expect(Math.max(...after) - Math.min(...after), `loads ${after}`).toBeLessThanOrEqual(T / 4);
  });
});

describe('expert dropout', () => {
  it('deterministic in (seed, step), about `rate` of the experts, never fewer than `keep` left', () => {
    expect(expertDropout(64, 0.1, 2, 7, 3)).toEqual(expertDropout(64, 0.1, 2, 7, 3));
    expect(expertDropout(64, 0.1, 2, 7, 3)).not.toEqual(expertDropout(64, 0.1, 2, 7, 4));
    let dropped = 0;
    for (let s = 0; s < 200; s++) dropped += expertDropout(64, 0.1, 2, 1, s).length;
    expect(dropped / (200 * 64)).toBeGreaterThan(0.08);
    expect(dropped / (200 * 64)).toBeLessThan(0.12);
    for (let s = 0; s < 50; s++) expect(4 - expertDropout(4, 0.9, 2, 1, s).length).toBeGreaterThanOrEqual(2);
    expect(expertDropout(8, 0, 2, 1, 1)).toEqual([]);
    expect(() => expertDropout(8, 1, 2, 1, 1)).toThrow(RangeError);
  });
});

describe('loss presets', () => {
  it("'notes' is seed 000's CE + 0.3·L_balance + 0.1·L_ortho with the notes' own balance form", () => {
    expect(notesTotal).toEqual({ balance: 'sqdev', balanceWeight: 0.3, balanceTarget: null, auxFreeRate: 0, zLossWeight: 0, orthoWeight: 0.1 });
    const bl = balanceLossFor(notesTotal)!;
    expect(bl.name).toBe('sqdev');
    expect(bl.weight).toBe(0.3);
  });

  it('each preset validates; auxfree and none have no loss term; sigmoid scoring renormalises', () => {
    for (const [name, c] of Object.entries(LOSS_PRESETS)) {
      expect(() => validateLossConfig(c), name).not.toThrow();
      expect(balanceLossFor(c) === null, name).toBe(name === 'auxfree' || name === 'none');
    }
    expect(LOSS_PRESETS.auxfree.auxFreeRate).toBe(0.001);
    // Sigmoid: the loss from balanceLossFor is the renormalised one (scaling a row changes nothing).
    const bl = balanceLossFor(LOSS_PRESETS.switch, 'sigmoid')!;
    const p = Float32Array.from([0.9, 0.1, 0.5, 0.5]), idx = Uint32Array.from([0, 1]);
    expect(bl.compute(p, idx, 2, 2, 1).value).toBeCloseTo(bl.compute(Float32Array.from([0.45, 0.05, 0.5, 0.5]), idx, 2, 2, 1).value, 6);
  });

  it('bad settings are refused naming the field', () => {
    const bad = (c: Partial<LossConfig>) => () => validateLossConfig({ ...LOSS_PRESETS.switch, ...c });
    expect(bad({ balance: 'x' as LossConfig['balance'] })).toThrow(/^Loss setting balance:/);
    expect(bad({ balanceWeight: -1 })).toThrow(/^Loss setting balanceWeight:/);
    expect(bad({ zLossWeight: NaN })).toThrow(/^Loss setting zLossWeight:/);
    expect(bad({ orthoWeight: Infinity })).toThrow(/^Loss setting orthoWeight:/);
    expect(bad({ auxFreeRate: 2 })).toThrow(/^Loss setting auxFreeRate:/);
    expect(bad({ balanceTarget: -0.1 })).toThrow(/^Loss setting balanceTarget:/);
  });
});
