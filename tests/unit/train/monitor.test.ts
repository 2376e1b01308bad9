/**
 * The routing-stability monitor on synthetic count sequences: stable routing (small noise) never
 * halves the learning rate; oscillating routing (load swinging between experts) does, once per
 * window, with a reason naming the expert; a slow collapse onto one expert does not oscillate but
 * shows in CV, entropy, cold and dead experts. Plus the flip rate of a probe set, router entropy and
 * early stopping.
 */
import { describe, expect, it } from 'vitest';
import { rng } from '../../../src/engine/ref/random';
import { EarlyStopping, RoutingMonitor, scoreEntropy, type MonitorAction, type MonitorRecord } from '../../../src/engine/train/monitor';

const T = 256, K = 2, E = 8;

/** Counts for T·K slots spread by `weights` (rounded, the remainder to the first expert). */
function countsFor(weights: number[]): number[] {
  const s = weights.reduce((a, b) => a + b, 0);
  const c = weights.map((w) => Math.floor((w / s) * T * K));
  c[0]! += T * K - c.reduce((a, b) => a + b, 0);
  return c;
}

function run(m: RoutingMonitor, steps: number, layer: (step: number) => number[][]): { records: MonitorRecord[]; actions: MonitorAction[] } {
  const records: MonitorRecord[] = [], actions: MonitorAction[] = [];
  for (let step = 0; step < steps; step++) {
    const r = m.update({ step, counts: layer(step), tokens: T });
    records.push(r.record);
    actions.push(...r.actions);
  }
  return { records, actions };
}

describe('RoutingMonitor: oscillation → halve the learning rate (seed 000)', () => {
  it('stable routing with ±10 % noise: never', () => {
    const r = rng(1);
    const m = new RoutingMonitor();
    const { records, actions } = run(m, 200, () => [countsFor(Array.from({ length: E }, () => 1 + (r() - 0.5) * 0.2)), countsFor(Array.from({ length: E }, () => 1 + (r() - 0.5) * 0.2))]);
    expect(actions).toEqual([]);
    expect(m.lrScale).toBe(1);
    expect(records[8]!.oscillation).toBeNull(); // window of 10 not full yet
    expect(records[199]!.oscillation!).toBeLessThan(0.2);
    for (const rec of records) {
      expect(rec.cv.every((v) => v < 0.15)).toBe(true);
      expect(rec.entropy.every((v) => v > 0.99)).toBe(true);
      expect(rec.dead).toEqual([[], []]);
      expect(rec.cold).toEqual([[], []]);
    }
  });

  it('load jumping between experts 0 and 1 every step: halved once a window, with the reason, up to maxHalvings', () => {
    const m = new RoutingMonitor({ window: 6, threshold: 0.5, maxHalvings: 3 });
    // Layer 0 stable; layer 1 sends 40 % of the slots to expert 0 on even steps and to expert 1 on odd ones.
    const { actions } = run(m, 40, (step) => [countsFor(new Array(E).fill(1)), countsFor([step % 2 ? 1 : 4.2, step % 2 ? 4.2 : 1, 1, 1, 1, 1, 1, 1])]);
    expect(actions.map((a) => a.step)).toEqual([5, 11, 17]); // each after a full fresh window; then capped
    expect(actions.map((a) => a.lrScale)).toEqual([0.5, 0.25, 0.125]);
    expect(m.lrScale).toBe(0.125);
    const a = actions[0]!;
    expect(a).toMatchObject({ kind: 'lr-halved', step: 5, factor: 0.5 });
    expect(a.reason).toMatch(/^routing oscillates: layer 1 expert [01]'s load share swung between \d\.\d % and 3\d\.\d % over the last 6 steps/);
    expect(a.reason).toMatch(/threshold 50 %\); learning rate halved \(now ×0\.5\)$/);
  });

  it('detrended, the same back-and-forth still halves it', () => {
    const swing = (step: number) => [countsFor([step % 2 ? 1 : 4.2, step % 2 ? 4.2 : 1, 1, 1, 1, 1, 1, 1])];
    expect(run(new RoutingMonitor({ detrend: true }), 10, swing).actions.map((a) => a.step)).toEqual([9]);
  });

  it('the threshold is configurable: the same swings pass under a looser one', () => {
    const swing = (step: number) => [countsFor([step % 2 ? 1 : 1.6, step % 2 ? 1.6 : 1, 1, 1, 1, 1, 1, 1])];
    // Share swings 1/8.6 ↔ 1.6/8.6: std ≈ 0.035 = 0.28 × the even share.
    const tight = run(new RoutingMonitor({ threshold: 0.2 }), 30, swing);
    const loose = run(new RoutingMonitor({ threshold: 0.4 }), 30, swing);
    expect(tight.actions.length).toBeGreaterThan(0);
    expect(loose.actions).toEqual([]);
    expect(loose.records[29]!.oscillation!).toBeCloseTo(((1.6 - 1) / 8.6 / 2) * 8, 1);
  });

  it('a collapse onto expert 0: CV and entropy move and the others go cold, then dead; only the plain std calls it oscillation', () => {
    const collapse = (step: number) => {
      const others = Math.max(0, 1 - step / 100);
      return [countsFor([1, others, others, others, others, others, others, others])];
    };
    // Plain std (the notes' rule): the last stretch moves expert 0 from ~50 % to 100 % within a window.
    const plain = run(new RoutingMonitor(), 120, collapse);
    expect(plain.actions.length).toBeGreaterThan(0);
    expect(plain.actions[0]!.reason).toMatch(/layer 0 expert 0's/);
    const m = new RoutingMonitor({ detrend: true });
    const { records, actions } = run(m, 120, collapse);
    expect(actions).toEqual([]);
    const first = records[0]!, mid = records[70]!, last = records[119]!;
    expect(first.cv[0]).toBeLessThan(0.01);
    expect(mid.cv[0]).toBeGreaterThan(first.cv[0]!);
    expect(last.cv[0]).toBeCloseTo(Math.sqrt(E - 1), 6); // one expert has everything
    expect(last.entropy[0]).toBe(0);
    expect(first.cold[0]).toEqual([]);
    // Cold (fraction of tokens < 5 %, as stats.ts): share·k < 0.05. At step 70: others ≈ 0.3 / 3.1 · 2 = 0.19 of the tokens: warm.
    expect(mid.cold[0]).toEqual([]);
    expect(records[97]!.cold[0]).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(records[97]!.dead[0]).toEqual([]);
    expect(last.dead[0]).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(last.load[0]).toEqual([1, 0, 0, 0, 0, 0, 0, 0]);
  });

  it("cold as a fraction of the even share for many experts (256 experts, top-8: even is 3.1 % of the tokens)", () => {
    const counts = new Array(256).fill(8);
    counts[0] = 0;
    counts[1] = 1; // 1 slot of 256 tokens: 0.4 % of the tokens, 12.5 % of the even share (8)
    counts[2] = 0.3; // fractional counts are fine here: 3.75 % of the even share
    const byTokens = new RoutingMonitor().update({ step: 0, counts: [counts], tokens: 256 }).record;
    expect(byTokens.cold[0]!.length).toBe(256); // every expert under 5 % of the tokens
    const byShare = new RoutingMonitor({ coldOf: 'evenShare' }).update({ step: 0, counts: [counts], tokens: 256 }).record;
    expect(byShare.cold[0]).toEqual([0, 2]);
    expect(byShare.dead[0]).toEqual([0]);
  });
});

describe('RoutingMonitor: flip rate of the probe set', () => {
  const P = 4;
  it('fraction of probe tokens whose top-k set changed since the last check; order within the set does not count', () => {
    const m = new RoutingMonitor();
    const counts = [countsFor(new Array(E).fill(1)), countsFor(new Array(E).fill(1))];
    const check = (step: number, l0: number[], l1: number[]) => m.update({ step, counts, tokens: T, probe: { k: K, idx: [Uint32Array.from(l0), Uint32Array.from(l1)] } }).record;
    const noCheck = m.update({ step: 0, counts, tokens: T }).record;
    expect(noCheck.flipRate).toBeNull();
    const a = check(1, [0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 0, 1, 0, 1, 0, 1]);
    expect(a.flipRate).toBeNull(); // first check: the baseline
    // Layer 0: token 0 swapped order only (no flip), token 1 changed one expert (flip). Layer 1: all four flip.
    const b = check(5, [1, 0, 2, 4, 4, 5, 6, 7], [2, 3, 2, 3, 2, 3, 2, 3]);
    expect(b.layerFlipRate).toEqual([1 / P, 1]);
    expect(b.flipRate).toBeCloseTo((0.25 + 1) / 2, 12);
    // Against the last check, not the first.
    const c = check(9, [1, 0, 2, 4, 4, 5, 6, 7], [2, 3, 2, 3, 2, 3, 2, 3]);
    expect(c.layerFlipRate).toEqual([0, 0]);
    // A probe of another size starts a new baseline.
    expect(m.update({ step: 10, counts, tokens: T, probe: { k: 1, idx: [Uint32Array.of(1), Uint32Array.of(2)] } }).record.flipRate).toBeNull();
  });

  it('refuses probes and counts that do not fit', () => {
    const m = new RoutingMonitor();
    const counts = [countsFor(new Array(E).fill(1))];
    expect(() => m.update({ step: 0, counts, tokens: T, probe: { k: 2, idx: [Uint32Array.of(1, 2, 3)] } })).toThrow(/P·k/);
    expect(() => m.update({ step: 0, counts, tokens: T, probe: { k: 2, idx: [] } })).toThrow(/probe has 0 layers/);
    expect(() => m.update({ step: 1, counts: [[1, 2, 3]], tokens: T })).toThrow(/1 layers × 3 experts, but the run so far had 1 × 8/);
    expect(() => m.update({ step: 1, counts: [], tokens: T })).toThrow(RangeError);
    expect(() => m.update({ step: 1, counts, tokens: NaN })).toThrow(/tokens must be a finite number/);
    expect(() => new RoutingMonitor({ window: 1 })).toThrow(/^Monitor setting window/);
    expect(() => new RoutingMonitor({ threshold: 0 })).toThrow(/^Monitor setting threshold/);
  });
});

describe('router entropy', () => {
  it('mean per-token score entropy over log E; sigmoid scores renormalised', () => {
    expect(scoreEntropy(new Float32Array(2 * 4).fill(0.25), 4)).toBeCloseTo(1, 6);
    expect(scoreEntropy(Float32Array.from([1, 0, 0, 0, 0.25, 0.25, 0.25, 0.25]), 4)).toBeCloseTo(0.5, 6);
    expect(scoreEntropy(Float32Array.from([0.9, 0.9, 0.9, 0.9]), 4)).toBeCloseTo(1, 6);
    const rec = new RoutingMonitor().update({ step: 0, counts: [[1, 1, 1, 1], [1, 1, 1, 1]], tokens: 2, probs: [Float32Array.from([1, 0, 0, 0, 1, 0, 0, 0])] }).record;
    expect(rec.routerEntropy).toEqual([0, null]);
  });
});

describe('early stopping (patience on validation loss)', () => {
  it('stops after 3 checks in a row without beating the best', () => {
    const es = new EarlyStopping();
    const seq = [3, 2.5, 2.6, 2.4, 2.45, 2.41, 2.5];
    const out = seq.map((v) => es.update(v));
    expect(out.map((o) => o.improved)).toEqual([true, true, false, true, false, false, false]);
    expect(out.map((o) => o.stop)).toEqual([false, false, false, false, false, false, true]);
    expect(out[6]).toMatchObject({ best: 2.4, sinceBest: 3 });
  });

  it('NaN never improves; minDelta demands a real improvement; patience is configurable', () => {
    const es = new EarlyStopping(2, 0.1);
    expect(es.update(NaN).improved).toBe(false);
    expect(es.update(2).improved).toBe(true);
    expect(es.update(1.95)).toMatchObject({ improved: false, stop: false });
    expect(es.update(1.85)).toMatchObject({ improved: true, stop: false });
    expect(es.update(NaN)).toMatchObject({ improved: false, stop: false });
    expect(es.update(1.8)).toMatchObject({ improved: false, stop: true });
    expect(() => new EarlyStopping(0)).toThrow(RangeError);
  });
});
