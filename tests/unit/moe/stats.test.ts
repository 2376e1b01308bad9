import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { balanceStats, countExperts } from '../../../src/engine/moe/stats';

describe('balance statistics', () => {
  it('an even load has cv 0, max/mean 1, entropy log E, nothing dead', () => {
    const s = balanceStats([5, 5, 5, 5], 10);
    expect(s).toMatchObject({ total: 20, cv: 0, maxOverMean: 1, dead: [], cold: [] });
    expect(s.entropy).toBeCloseTo(Math.log(4), 12);
    expect(s.normalizedEntropy).toBeCloseTo(1, 12);
  });
  it('one busy expert: dead and cold experts are named', () => {
    const s = balanceStats([40, 0, 1, 0], 41);
    expect(s.dead).toEqual([1, 3]);
    expect(s.cold).toEqual([1, 2, 3]);
    expect(s.maxOverMean).toBeCloseTo(40 / (41 / 4), 12);
    expect(s.cv).toBeGreaterThan(1.5);
  });
  it('normalised entropy stays in [0, 1] and cv ≥ 0 for any counts', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(1000), { minLength: 2, maxLength: 64 }), (counts) => {
        const s = balanceStats(counts, Math.max(1, counts.reduce((a, b) => a + b, 0)));
        expect(s.normalizedEntropy).toBeGreaterThanOrEqual(-1e-12);
        expect(s.normalizedEntropy).toBeLessThanOrEqual(1 + 1e-12);
        expect(s.cv).toBeGreaterThanOrEqual(0);
      }),
    );
  });
  it('counts chosen experts', () => {
    expect(Array.from(countExperts([0, 2, 2, 3, 0, 2], 4))).toEqual([2, 0, 3, 1]);
  });
});
