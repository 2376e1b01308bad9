/**
 * ggml tensor types: every type's block size and bytes per block (so a GGUF header can be checked
 * whole, whatever its types), and CPU dequantizers for the ones this loader reads. Block layouts
 * follow ggml-common.h / ggml-quants.c (dequantize_row_*) byte for byte; tests/unit/quant/
 * gguf_blocks.test.ts checks each against blocks computed by hand.
 */
import { bf16ToF32, f16ToF32 } from '../io/safetensors';

export interface GgmlType {
  id: number;
  name: string;
  /** Elements per block (1 for plain types). */
  blockSize: number;
  /** Bytes per block. */
  typeSize: number;
}

const T = (id: number, name: string, blockSize: number, typeSize: number): GgmlType => ({ id, name, blockSize, typeSize });

/** Every type ggml has defined (ggml.h's enum ggml_type; 4, 5 and 31–33, 36–38 were removed upstream). */
export const GGML_TYPES: ReadonlyMap<number, GgmlType> = new Map(
  [
    T(0, 'F32', 1, 4), T(1, 'F16', 1, 2), T(2, 'Q4_0', 32, 18), T(3, 'Q4_1', 32, 20),
    T(6, 'Q5_0', 32, 22), T(7, 'Q5_1', 32, 24), T(8, 'Q8_0', 32, 34), T(9, 'Q8_1', 32, 36),
    T(10, 'Q2_K', 256, 84), T(11, 'Q3_K', 256, 110), T(12, 'Q4_K', 256, 144), T(13, 'Q5_K', 256, 176),
    T(14, 'Q6_K', 256, 210), T(15, 'Q8_K', 256, 292), T(16, 'IQ2_XXS', 256, 66), T(17, 'IQ2_XS', 256, 74),
    T(18, 'IQ3_XXS', 256, 98), T(19, 'IQ1_S', 256, 50), T(20, 'IQ4_NL', 32, 18), T(21, 'IQ3_S', 256, 110),
    T(22, 'IQ2_S', 256, 82), T(23, 'IQ4_XS', 256, 136), T(24, 'I8', 1, 1), T(25, 'I16', 1, 2),
    T(26, 'I32', 1, 4), T(27, 'I64', 1, 8), T(28, 'F64', 1, 8), T(29, 'IQ1_M', 256, 56),
    T(30, 'BF16', 1, 2), T(34, 'TQ1_0', 256, 54), T(35, 'TQ2_0', 256, 66), T(39, 'MXFP4', 32, 17),
  ].map((t) => [t.id, t]),
);

export const GGML = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8, Q4_K: 12, Q6_K: 14, BF16: 30 } as const;
export type SupportedGgmlType = (typeof GGML)[keyof typeof GGML];

/** Bytes of `n` elements of `type` (n a whole number of blocks). */
export function ggmlBytes(type: GgmlType, n: number): number {
  return (n / type.blockSize) * type.typeSize;
}

export class GgmlTypeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GgmlTypeError';
  }
}

type Dequant = (src: Uint8Array, out: Float32Array, blocks: number) => void;

const le16 = (b: Uint8Array, o: number) => b[o]! | (b[o + 1]! << 8);
const half = (b: Uint8Array, o: number) => f16ToF32(le16(b, o));

// Each product is rounded to f32 as ggml's `float` arithmetic rounds it, so values match bit for bit.
const f = Math.fround;

const DEQUANT: Record<SupportedGgmlType, Dequant> = {
  [GGML.F32]: (src, out, n) => {
    const v = new DataView(src.buffer, src.byteOffset, n * 4);
    for (let i = 0; i < n; i++) out[i] = v.getFloat32(i * 4, true);
  },
  [GGML.F16]: (src, out, n) => {
    for (let i = 0; i < n; i++) out[i] = half(src, 2 * i);
  },
  [GGML.BF16]: (src, out, n) => {
    for (let i = 0; i < n; i++) out[i] = bf16ToF32(le16(src, 2 * i));
  },
  // block_q8_0 { ggml_half d; int8_t qs[32]; }: y = qs·d
  [GGML.Q8_0]: (src, out, nb) => {
    for (let i = 0; i < nb; i++) {
      const o = i * 34;
      const d = half(src, o);
      for (let j = 0; j < 32; j++) out[i * 32 + j] = f(((src[o + 2 + j]! << 24) >> 24) * d);
    }
  },
  // block_q4_0 { ggml_half d; uint8_t qs[16]; }: low nibbles are elements 0–15, high nibbles 16–31, minus 8
  [GGML.Q4_0]: (src, out, nb) => {
    for (let i = 0; i < nb; i++) {
      const o = i * 18;
      const d = half(src, o);
      for (let j = 0; j < 16; j++) {
        const q = src[o + 2 + j]!;
        out[i * 32 + j] = f(((q & 0xf) - 8) * d);
        out[i * 32 + j + 16] = f(((q >> 4) - 8) * d);
      }
    }
  },
  // block_q4_K { ggml_half d, dmin; uint8_t scales[12]; uint8_t qs[128]; }: 8 sub-blocks of 32 with
  // 6-bit scales and mins (get_scale_min_k4); each 32 bytes of qs hold two sub-blocks (low, high nibbles).
  [GGML.Q4_K]: (src, out, nb) => {
    for (let i = 0; i < nb; i++) {
      const o = i * 144;
      const d = half(src, o);
      const dmin = half(src, o + 2);
      const sc = o + 4;
      const qs = o + 16;
      let y = i * 256;
      for (let j = 0, is = 0; j < 4; j++, is += 2) {
        const [s1, m1] = scaleMinK4(src, sc, is);
        const [s2, m2] = scaleMinK4(src, sc, is + 1);
        const d1 = f(d * s1), dm1 = f(dmin * m1), d2 = f(d * s2), dm2 = f(dmin * m2);
        const q = qs + 32 * j;
        for (let l = 0; l < 32; l++) out[y++] = f(f(d1 * (src[q + l]! & 0xf)) - dm1);
        for (let l = 0; l < 32; l++) out[y++] = f(f(d2 * (src[q + l]! >> 4)) - dm2);
      }
    }
  },
  // block_q6_K { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; ggml_half d; }: 6-bit quants
  // (4 low bits in ql, 2 high bits in qh) minus 32, 16 sub-blocks of 16 with int8 scales.
  [GGML.Q6_K]: (src, out, nb) => {
    for (let i = 0; i < nb; i++) {
      const o = i * 210;
      const d = half(src, o + 208);
      for (let n = 0; n < 2; n++) {
        const ql = o + 64 * n, qh = o + 128 + 32 * n, sc = o + 192 + 8 * n, y = i * 256 + 128 * n;
        const s = (k: number) => (src[sc + k]! << 24) >> 24;
        for (let l = 0; l < 32; l++) {
          const is = l >> 4;
          const h = src[qh + l]!;
          const q1 = ((src[ql + l]! & 0xf) | (((h >> 0) & 3) << 4)) - 32;
          const q2 = ((src[ql + l + 32]! & 0xf) | (((h >> 2) & 3) << 4)) - 32;
          const q3 = ((src[ql + l]! >> 4) | (((h >> 4) & 3) << 4)) - 32;
          const q4 = ((src[ql + l + 32]! >> 4) | (((h >> 6) & 3) << 4)) - 32;
          out[y + l] = f(f(d * s(is)) * q1);
          out[y + l + 32] = f(f(d * s(is + 2)) * q2);
          out[y + l + 64] = f(f(d * s(is + 4)) * q3);
          out[y + l + 96] = f(f(d * s(is + 6)) * q4);
        }
      }
    }
  },
};

/** ggml's get_scale_min_k4: the j-th 6-bit (scale, min) pair of a Q4_K/Q5_K block's 12 scale bytes. */
export function scaleMinK4(b: Uint8Array, o: number, j: number): [number, number] {
  if (j < 4) return [b[o + j]! & 63, b[o + j + 4]! & 63];
  return [(b[o + j + 4]! & 0xf) | ((b[o + j - 4]! >> 6) << 4), (b[o + j + 4]! >> 4) | ((b[o + j]! >> 6) << 4)];
}

export function isSupported(type: number): type is SupportedGgmlType {
  return Object.hasOwn(DEQUANT, type);
}

export const SUPPORTED_NAMES = Object.keys(DEQUANT).map((id) => GGML_TYPES.get(Number(id))!.name);

/** `n` elements of `type` from their raw little-endian blocks, as f32. */
export function dequantize(type: number, bytes: Uint8Array, n: number): Float32Array {
  const t = GGML_TYPES.get(type);
  if (!t) throw new GgmlTypeError(`unknown ggml type ${type}`);
  if (!isSupported(type)) throw new GgmlTypeError(`ggml type ${t.name} is not supported (this loader reads ${SUPPORTED_NAMES.join(', ')})`);
  if (n % t.blockSize !== 0) throw new GgmlTypeError(`${n} elements are not a whole number of ${t.name} blocks of ${t.blockSize}`);
  const blocks = n / t.blockSize;
  if (bytes.byteLength !== blocks * t.typeSize) throw new GgmlTypeError(`${n} ${t.name} elements take ${blocks * t.typeSize} bytes, got ${bytes.byteLength}`);
  const out = new Float32Array(n);
  DEQUANT[type](bytes, out, t.blockSize === 1 ? n : blocks);
  return out;
}
