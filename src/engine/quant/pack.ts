/**
 * Symmetric group-wise quantisation of row-major weights along K (the reduction axis), packed for
 * the WGSL kernels (shaders/wload_int8.wgsl, wload_int4.wgsl):
 *   int8: q = round(w / s), s = max|w| / 127 per group, q ∈ [−127, 127], 4 per u32 (byte j of word i = k = 4i + j)
 *   int4: q = round(w / s), s = max|w| / 7,               q ∈ [−7, 7],     8 per u32 (nibble j = k = 8i + j)
 * Scales are f32, one per (row, group). Rows may be stacked experts ([E, N, K] is E·N rows).
 * The reconstruction error of each weight is at most s / 2.
 */
export type QuantFormat = 'int8' | 'int4';
/**
 * A GGUF tensor's own encoding kept on the GPU (its ggml blocks, laid out as quant/ggml-pack.ts
 * describes) and dequantised inside the matmul kernels by shaders/wload_<format>.wgsl.
 */
export type GgmlFormat = 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'q4_k' | 'q6_k';
/** How a matrix is stored on the GPU. A load asks for 'f32' or a QuantFormat; GgmlFormats come only from a GGUF file's blocks. */
export type WeightFormat = 'f32' | QuantFormat | GgmlFormat;

export interface QuantizedMatrix {
  format: QuantFormat;
  group: number;
  rows: number;
  K: number;
  data: Uint32Array;
  scales: Float32Array;
}

const QMAX: Record<QuantFormat, number> = { int8: 127, int4: 7 };
const PER_WORD: Record<QuantFormat, number> = { int8: 4, int4: 8 };

/** Whether a [rows, K] matrix can be packed with this group size (else it stays f32). */
export function canQuantize(K: number, group: number): boolean {
  return K % group === 0 && K % 8 === 0;
}

export function quantize(w: Float32Array, rows: number, K: number, format: QuantFormat, group: number): QuantizedMatrix {
  if (w.length !== rows * K) throw new Error(`quantize: ${w.length} values are not ${rows} × ${K}`);
  if (!canQuantize(K, group)) throw new Error(`quantize: K = ${K} is not a multiple of the group size ${group} (and of 8)`);
  const qmax = QMAX[format];
  const per = PER_WORD[format];
  const bits = 32 / per;
  const mask = (1 << bits) - 1;
  const groups = K / group;
  const scales = new Float32Array(rows * groups);
  const data = new Uint32Array((rows * K) / per);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const base = r * K + g * group;
      let amax = 0;
      for (let i = 0; i < group; i++) amax = Math.max(amax, Math.abs(w[base + i]!));
      const s = Math.fround(amax / qmax);
      scales[r * groups + g] = s;
      for (let i = 0; i < group; i++) {
        const idx = base + i;
        const q = s === 0 ? 0 : Math.max(-qmax, Math.min(qmax, Math.round(w[idx]! / s)));
        data[(idx / per) | 0] = (data[(idx / per) | 0]! | ((q & mask) << ((idx % per) * bits))) >>> 0;
      }
    }
  }
  return { format, group, rows, K, data, scales };
}

/** The f32 weights the kernels effectively multiply by (the reference for kernel tests). */
export function dequantize(m: QuantizedMatrix): Float32Array {
  const per = PER_WORD[m.format];
  const bits = 32 / per;
  const out = new Float32Array(m.rows * m.K);
  for (let i = 0; i < out.length; i++) {
    const raw = (m.data[(i / per) | 0]! >>> ((i % per) * bits)) & ((1 << bits) - 1);
    const q = raw >= 1 << (bits - 1) ? raw - (1 << bits) : raw;
    out[i] = q * m.scales[(i / m.group) | 0]!;
  }
  return out;
}
