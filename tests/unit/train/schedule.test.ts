import { describe, expect, it } from 'vitest';
import { learningRate, validateSchedule, type LrSchedule } from '../../../src/engine/train/schedule';

describe('LR schedule: linear warmup then cosine to a floor', () => {
  const s: LrSchedule = { peak: 1e-3, warmupSteps: 4, totalSteps: 14, minRatio: 0.1 };
  it('warms up linearly, the first step already moving', () => {
    expect([0, 1, 2, 3].map((i) => learningRate(s, i))).toEqual([0.25e-3, 0.5e-3, 0.75e-3, 1e-3]);
  });
  it('starts the cosine at the peak, halves the span at its middle, ends at the floor', () => {
    expect(learningRate(s, 4)).toBeCloseTo(1e-3, 15);
    // Decay steps 4 … 13: the middle of the span is step 8.5; steps 8 and 9 straddle it.
    const mid = 1e-4 + 0.9e-3 * 0.5;
    expect((learningRate(s, 8) + learningRate(s, 9)) / 2).toBeCloseTo(mid, 12);
    expect(learningRate(s, 13)).toBeCloseTo(1e-4, 15);
    expect(learningRate(s, 100)).toBeCloseTo(1e-4, 15);
  });
  it('never rises after warmup, and matches ½(1 + cos) in between', () => {
    for (let i = 4; i < 20; i++) expect(learningRate(s, i + 1)).toBeLessThanOrEqual(learningRate(s, i) + 1e-18);
    const p = (6 - 4) / 9;
    expect(learningRate(s, 6)).toBeCloseTo(1e-4 + 0.9e-3 * 0.5 * (1 + Math.cos(Math.PI * p)), 15);
  });
  it('without warmup starts at the peak; with minRatio 1 stays constant', () => {
    expect(learningRate({ ...s, warmupSteps: 0 }, 0)).toBe(1e-3);
    for (let i = 0; i < 20; i++) expect(learningRate({ ...s, warmupSteps: 0, minRatio: 1 }, i)).toBeCloseTo(1e-3, 15);
  });
  it('a run that is all warmup, or one step long, still gives finite rates', () => {
    expect(learningRate({ ...s, warmupSteps: 14 }, 13)).toBeCloseTo(1e-3, 15);
    expect(learningRate({ ...s, warmupSteps: 14 }, 14)).toBeCloseTo(1e-4, 15);
    expect(learningRate({ ...s, warmupSteps: 0, totalSteps: 1 }, 0)).toBeCloseTo(1e-3, 15);
    expect(learningRate({ ...s, warmupSteps: 0, totalSteps: 1 }, 1)).toBeCloseTo(1e-4, 15);
  });
  it('refuses out-of-range settings, naming the field', () => {
    expect(() => validateSchedule(s)).not.toThrow();
    expect(() => validateSchedule({ ...s, warmupSteps: 15 })).toThrow(/warmupSteps/);
    expect(() => validateSchedule({ ...s, totalSteps: 0 })).toThrow(/totalSteps/);
    expect(() => validateSchedule({ ...s, minRatio: 1.5 })).toThrow(/minRatio/);
    expect(() => validateSchedule({ ...s, peak: Number.NaN })).toThrow(/peak/);
  });
});
