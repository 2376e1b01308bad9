/**
 * ggml block dequantization against blocks worked out by hand from ggml-common.h's layouts and
 * ggml-quants.c's dequantize_row_* formulas, and against the test quantizers' own reconstruction.
 */
import { describe, expect, it } from 'vitest';
import { randomF32 } from '../../../src/engine/ref/random';
import { dequantize, GGML, GGML_TYPES, GgmlTypeError, scaleMinK4 } from '../../../src/engine/quant/gguf-blocks';
import { quantizeAs } from '../io/gguf_writer';

const half = (b: Uint8Array, o: number, bits: number) => ((b[o] = bits & 0xff), (b[o + 1] = bits >> 8));

describe('ggml blocks, worked by hand', () => {
  it('Q8_0: d (f16) then 32 int8, y = q·d', () => {
    const b = new Uint8Array(34);
    half(b, 0, 0x3800); // 0.5
    b.set([1, 0xfe, 127, 0x80], 2); // 1, −2, 127, −128
    const y = dequantize(GGML.Q8_0, b, 32);
    expect(Array.from(y.subarray(0, 5))).toEqual([0.5, -1, 63.5, -64, 0]);
  });

  it('Q4_0: d then 16 bytes; low nibble of byte j is element j, high nibble element j+16, minus 8', () => {
    const b = new Uint8Array(18);
    half(b, 0, 0x4000); // 2
    b[2] = 0x9f; // element 0: 15 → (15−8)·2 = 14; element 16: 9 → 2
    b[3] = 0x08; // element 1: 8 → 0; element 17: 0 → −16
    const y = dequantize(GGML.Q4_0, b, 32);
    expect([y[0], y[16], y[1], y[17], y[2], y[18]]).toEqual([14, 2, 0, -16, -16, -16]);
  });

  it('Q4_K: d, dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles (64 elements per 32 bytes)', () => {
    const b = new Uint8Array(144);
    half(b, 0, 0x3c00); // d = 1
    half(b, 2, 0x3800); // dmin = 0.5
    const s = b.subarray(4, 16);
    s[0] = 0xc2; // sub-block 0 scale 2; top bits 3 → sub-block 4's scale bits 4–5
    s[4] = 0x43; // sub-block 0 min 3; top bits 1 → sub-block 4's min bits 4–5
    s[1] = 0x05; // sub-block 1 scale 5
    s[5] = 0x02; // sub-block 1 min 2
    s[8] = 0x5a; // sub-block 4: scale low bits 0xA, min low bits 5 → scale 0xA | 3<<4 = 58, min 5 | 1<<4 = 21
    expect([scaleMinK4(b, 4, 0), scaleMinK4(b, 4, 1), scaleMinK4(b, 4, 4)]).toEqual([[2, 3], [5, 2], [58, 21]]);
    const qs = b.subarray(16);
    qs[0] = 0x37; // element 0 (sub-block 0): 7; element 32 (sub-block 1): 3
    qs[64] = 0x0b; // element 128 (sub-block 4, third group of 64, low nibbles): 11
    const y = dequantize(GGML.Q4_K, b, 256);
    expect(y[0]).toBe(1 * 2 * 7 - 0.5 * 3); // 12.5
    expect(y[1]).toBe(-1.5); // q = 0 in sub-block 0: −dmin·m
    expect(y[32]).toBe(1 * 5 * 3 - 0.5 * 2); // 14
    expect(y[33]).toBe(-1);
    expect(y[128]).toBe(58 * 11 - 0.5 * 21); // 627.5
  });

  it('Q6_K: ql[128], qh[64], int8 scales[16], d; q = (4 low bits | 2 high bits) − 32', () => {
    const b = new Uint8Array(210);
    half(b, 208, 0x3400); // d = 0.25
    const sc = (i: number, v: number) => (b[192 + i] = v & 0xff);
    sc(0, 3); sc(1, 1); sc(2, -2); sc(4, 1); sc(6, 4); sc(8, 2);
    b[0] = 0x5a; // ql[0]: low 10 (element 0), high 5 (element 64)
    b[32] = 0xc4; // ql[32]: low 4 (element 32), high 12 (element 96)
    b[128] = 0x9e; // qh[0]: bits 0–1 = 2 (el. 0), 2–3 = 3 (el. 32), 4–5 = 1 (el. 64), 6–7 = 2 (el. 96)
    b[64] = 0x01; // second half: ql[64] low → element 128 (qh[32] = 0)
    const y = dequantize(GGML.Q6_K, b, 256);
    expect(y[0]).toBe(0.25 * 3 * (10 + 32 - 32)); // 7.5
    expect(y[32]).toBe(0.25 * -2 * (4 + 48 - 32)); // −10
    expect(y[64]).toBe(0.25 * 1 * (5 + 16 - 32)); // −2.75
    expect(y[96]).toBe(0.25 * 4 * (12 + 32 - 32)); // 12
    expect(y[16]).toBe(0.25 * 1 * -32); // scales[1] covers elements 16–31
    expect(y[128]).toBe(0.25 * 2 * (1 - 32)); // −15.5
    expect(y[1]).toBe(0.25 * 3 * -32);
  });

  it('F16 and BF16, little-endian', () => {
    expect(Array.from(dequantize(GGML.F16, new Uint8Array([0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00]), 3))).toEqual([1, -2, 2 ** -24]);
    expect(Array.from(dequantize(GGML.BF16, new Uint8Array([0x80, 0x3f, 0x40, 0xc0]), 2))).toEqual([1, -3]);
  });

  it('refuses unknown and unsupported types and wrong sizes', () => {
    expect(() => dequantize(99, new Uint8Array(4), 1)).toThrow(GgmlTypeError);
    expect(() => dequantize(13, new Uint8Array(176), 256)).toThrow(/Q5_K is not supported \(this loader reads F32, F16, Q4_0, Q8_0, Q4_K, Q6_K, BF16\)/);
    expect(() => dequantize(GGML.Q8_0, new Uint8Array(33), 32)).toThrow(/take 34 bytes, got 33/);
    expect(() => dequantize(GGML.Q4_K, new Uint8Array(144), 128)).toThrow(/not a whole number of Q4_K blocks of 256/);
  });
});

describe('ggml blocks: the test quantizers decode to what they encoded, within the type’s step', () => {
  const x = randomF32(4 * 256, 7, 2);
  // Worst reconstruction error relative to the largest |x| (2 here): half a step, except Q4_0 whose
  // codes span −8…7 steps so the end opposite the largest value clamps a whole step, plus the
  // rounding of the K-quants' scales to 6 (Q4_K) or 8 (Q6_K) bits.
  const bound: Record<string, number> = { Q8_0: 0.5 / 127 + 1e-3, Q4_0: 1 / 8 + 1e-3, Q4_K: 1 / 15 + 0.02, Q6_K: 1 / 31 + 0.01 };
  for (const [name, type] of Object.entries({ Q8_0: GGML.Q8_0, Q4_0: GGML.Q4_0, Q4_K: GGML.Q4_K, Q6_K: GGML.Q6_K })) {
    it(name, () => {
      const q = quantizeAs(type, x);
      expect(q.bytes.byteLength).toBe((x.length / GGML_TYPES.get(type)!.blockSize) * GGML_TYPES.get(type)!.typeSize);
      const y = dequantize(type, q.bytes, x.length);
      expect(y).toEqual(q.recon);
      let worst = 0;
      for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(y[i]! - x[i]!) / 2);
      expect(worst).toBeLessThanOrEqual(bound[name]!);
    });
  }
});
