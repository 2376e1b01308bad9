import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canQuantize, dequantize, quantize } from '../../../src/engine/quant/pack';
import { randomF32 } from '../../../src/engine/ref/random';

describe('group-wise int8 / int4 packing', () => {
  for (const format of ['int8', 'int4'] as const) {
    for (const group of [32, 128]) {
      it(`${format} g${group}: every weight within s/2 of its original`, () => {
        const rows = 5, K = 256;
        const w = randomF32(rows * K, group + (format === 'int8' ? 1 : 2), 3);
        const q = quantize(w, rows, K, format, group);
        expect(q.data.length).toBe((rows * K) / (format === 'int8' ? 4 : 8));
        expect(q.scales.length).toBe((rows * K) / group);
        const back = dequantize(q);
        for (let i = 0; i < w.length; i++) expect(Math.abs(back[i]! - w[i]!)).toBeLessThanOrEqual(q.scales[Math.floor(i / group)]! / 2 + 1e-7);
      });
    }
  }
  it('keeps the extremes and zero exactly; an all-zero group stays zero', () => {
    const K = 32;
    const w = new Float32Array(2 * K);
    w[0] = -2; w[1] = 2; w[2] = 0; // row 0; row 1 all zero
    for (const format of ['int8', 'int4'] as const) {
      const back = dequantize(quantize(w, 2, K, format, 32));
      expect(back[0]).toBeCloseTo(-2, 6);
      expect(back[1]).toBeCloseTo(2, 6);
      expect(back[2]).toBe(0);
      expect(Array.from(back.subarray(K)).every((v) => v === 0)).toBe(true);
    }
  });
  it('refuses shapes it cannot pack, naming them', () => {
    expect(canQuantize(48, 32)).toBe(false);
    expect(canQuantize(128, 128)).toBe(true);
    expect(() => quantize(new Float32Array(48), 1, 48, 'int8', 32)).toThrow(/K = 48 is not a multiple of the group size 32/);
  });
  it('round-trips any values within the bound (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.float({ min: -1e3, max: 1e3, noNaN: true }), { minLength: 64, maxLength: 64 }), fc.constantFrom('int8' as const, 'int4' as const), (vals, format) => {
        const w = Float32Array.from(vals);
        const q = quantize(w, 2, 32, format, 32);
        const back = dequantize(q);
        for (let i = 0; i < 64; i++) expect(Math.abs(back[i]! - w[i]!)).toBeLessThanOrEqual(q.scales[Math.floor(i / 32)]! / 2 * (1 + 1e-6) + 1e-30);
      }),
    );
  });
});
