/** The TS AdamW and clipping references against closed forms (PyTorch's AdamW and clip_grad_norm_). */
import { describe, expect, it } from 'vitest';
import { adamwStepRef, clipScaleRef, gradNormRef } from '../../../src/engine/train/ref';

const hp = { lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 };

describe('AdamW reference', () => {
  it('step 1 moves each weight by lr against the sign of its gradient (bias-corrected m̂ = g, v̂ = g²)', () => {
    const p = Float32Array.from([1, -2, 0.5]), g = [0.3, -4, 1e-3];
    const [m, v] = [new Float32Array(3), new Float32Array(3)];
    adamwStepRef(p, g, m, v, hp, 1);
    const want = [1 - 0.1 * (0.3 / (0.3 + 1e-8)), -2 + 0.1 * (4 / (4 + 1e-8)), 0.5 - 0.1 * (1e-3 / (1e-3 + 1e-8))];
    want.forEach((w, i) => expect(p[i]).toBeCloseTo(w, 6));
    expect(m[1]).toBeCloseTo(0.1 * -4, 7);
    expect(v[1]).toBeCloseTo(0.01 * 16, 6);
  });
  it('step 2 follows the bias-corrected moments', () => {
    const p = Float32Array.from([1]);
    const [m, v] = [new Float32Array(1), new Float32Array(1)];
    adamwStepRef(p, [1], m, v, hp, 1);
    const p1 = p[0]!;
    adamwStepRef(p, [-3], m, v, hp, 2);
    const m2 = 0.9 * 0.1 + 0.1 * -3, v2 = 0.99 * 0.01 + 0.01 * 9;
    const want = p1 - (0.1 * (m2 / (1 - 0.81))) / (Math.sqrt(v2 / (1 - 0.99 ** 2)) + 1e-8);
    expect(p[0]).toBeCloseTo(want, 6);
  });
  it('weight decay is decoupled: with a zero gradient it only shrinks the weight by lr·wd', () => {
    const p = Float32Array.from([2, -1]);
    adamwStepRef(p, [0, 0], new Float32Array(2), new Float32Array(2), { ...hp, weightDecay: 0.5 }, 1);
    expect(Array.from(p)).toEqual([Math.fround(2 * 0.95), Math.fround(-1 * 0.95)]);
  });
  it('the clip factor scales the gradient before both moments', () => {
    const [m, v] = [new Float32Array(1), new Float32Array(1)];
    adamwStepRef(Float32Array.from([0]), [10], m, v, hp, 1, 0.25);
    expect(m[0]).toBeCloseTo(0.1 * 2.5, 6);
    expect(v[0]).toBeCloseTo(0.01 * 6.25, 6);
  });
});

describe('global gradient norm and clip factor', () => {
  it('is the 2-norm over all tensors together', () => {
    expect(gradNormRef([[3], [4], []])).toBe(5);
  });
  it('clips to maxNorm / (norm + 1e-6), never scales up, and 0 disables it', () => {
    expect(clipScaleRef(5, 1)).toBeCloseTo(1 / (5 + 1e-6), 15);
    expect(clipScaleRef(0.5, 1)).toBe(1);
    expect(clipScaleRef(1e6, 0)).toBe(1);
  });
});
