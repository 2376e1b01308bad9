/**
 * A GGUF tensor's ggml blocks as the GPU keeps them (formats 'f16' … 'q6_k' of pack.ts), read by
 * shaders/wload_<format>.wgsl inside every matmul kernel.
 *
 * Layout: the file's blocks in file order, each widened to a whole number of u32 words so that
 * WGSL (which reads storage only as aligned 32-bit words) finds every block — and the quants in it —
 * at a word boundary. A row of K elements is K / blockSize blocks and never shares a block with the
 * next row, so a matrix is simply rows × blocks-per-row blocks, stacked matrices ([q; k; v], experts
 * [E, N, K]) concatenate, and element i of the row-major matrix lives in block ⌊i / blockSize⌋:
 *
 *   f16, bf16  the file's 2-byte values as they are, two per word (element 2w in the low half of word w)
 *   q8_0       34 → 36 bytes: the f16 scale d in the low half of word 0 (high half zero), then qs[32] as in the file
 *   q4_0       18 → 20 bytes: d in word 0 as for q8_0, then qs[16] as in the file
 *   q4_k       144 bytes, unchanged (d | dmin << 16, scales[12], qs[128] are already word-aligned)
 *   q6_k       210 → 212 bytes: ql[128], qh[64], scales[16], d as in the file, then two zero bytes
 *
 * So q8_0 takes 9 bits per weight (as int8 group 32 with f32 scales), q4_0 5 (as int4 group 32),
 * q4_k 4.5 and q6_k 6.625. The values the kernels multiply by are exactly gguf-blocks.ts's
 * dequantize() of the file's bytes.
 */
import { GGML, GGML_TYPES, GgmlTypeError, type SupportedGgmlType } from './gguf-blocks';
import type { GgmlFormat } from './pack';

export interface GgmlLayout {
  /** The ggml type whose blocks these are. */
  type: SupportedGgmlType;
  /** Elements per block (1 for f16/bf16). */
  blockSize: number;
  /** Bytes of one block in the file. */
  fileBytes: number;
  /** Bytes of one block on the GPU (for f16/bf16: per element; two share a word). */
  gpuBytes: number;
  /** Where the file's first byte of a block lands in the GPU block (q8_0/q4_0: their quants move past the padded scale). */
  split: number;
  /** Bytes of zero padding inserted at `split`. */
  pad: number;
}

const L = (type: SupportedGgmlType, blockSize: number, fileBytes: number, split: number, pad: number): GgmlLayout => ({
  type,
  blockSize,
  fileBytes,
  gpuBytes: fileBytes + pad,
  split,
  pad,
});

export const GGML_LAYOUT: Record<GgmlFormat, GgmlLayout> = {
  f16: L(GGML.F16, 1, 2, 2, 0),
  bf16: L(GGML.BF16, 1, 2, 2, 0),
  q8_0: L(GGML.Q8_0, 32, 34, 2, 2),
  q4_0: L(GGML.Q4_0, 32, 18, 2, 2),
  q4_k: L(GGML.Q4_K, 256, 144, 144, 0),
  q6_k: L(GGML.Q6_K, 256, 210, 210, 2),
};

/** The GPU format for a ggml type, or null where the type is not kept as blocks (F32 is plain f32 already). */
export function ggmlFormatOf(type: number): GgmlFormat | null {
  for (const [f, l] of Object.entries(GGML_LAYOUT) as Array<[GgmlFormat, GgmlLayout]>) if (l.type === type) return f;
  return null;
}

export function isGgmlFormat(format: string): format is GgmlFormat {
  return Object.hasOwn(GGML_LAYOUT, format);
}

/**
 * Whether a [rows, K] matrix of this type can be kept as blocks: rows are whole blocks (always so
 * in a GGUF file, whose ne[0] is a multiple of the block size), and for f16/bf16 K is even, so
 * every row starts on a word and stacked matrices concatenate.
 */
export function canKeepBlocks(format: GgmlFormat, K: number): boolean {
  const l = GGML_LAYOUT[format];
  return K > 0 && K % l.blockSize === 0 && (l.blockSize > 1 || K % 2 === 0);
}

/** Bytes on the GPU of `n` elements (whole rows) in `format`. */
export function ggmlGpuBytes(format: GgmlFormat, n: number): number {
  const l = GGML_LAYOUT[format];
  return (n / l.blockSize) * l.gpuBytes;
}

/** The file's blocks of `n` elements → the GPU layout above, as u32 words (little-endian, as WebGPU reads them). */
export function packGgml(format: GgmlFormat, file: Uint8Array, n: number): Uint32Array {
  const l = GGML_LAYOUT[format];
  const t = GGML_TYPES.get(l.type)!;
  if (n % l.blockSize !== 0) throw new GgmlTypeError(`${n} elements are not a whole number of ${t.name} blocks of ${l.blockSize}`);
  const blocks = n / l.blockSize;
  if (file.byteLength !== blocks * l.fileBytes) throw new GgmlTypeError(`${n} ${t.name} elements take ${blocks * l.fileBytes} bytes, got ${file.byteLength}`);
  const out = new Uint8Array(Math.ceil((blocks * l.gpuBytes) / 4) * 4);
  if (l.pad === 0) out.set(file);
  else {
    for (let b = 0; b < blocks; b++) {
      const src = b * l.fileBytes, dst = b * l.gpuBytes;
      out.set(file.subarray(src, src + l.split), dst);
      out.set(file.subarray(src + l.split, src + l.fileBytes), dst + l.split + l.pad);
    }
  }
  return new Uint32Array(out.buffer);
}

/**
 * Index of the first block (in file order) whose f16 scale — or, for f16/bf16, whose value — is
 * Inf or NaN, or −1. Dequantised blocks are checked for non-finite values on load; blocks kept
 * as they are get this check instead (a finite scale times a small integer code stays finite).
 */
export function firstNonFiniteBlock(format: GgmlFormat, file: Uint8Array): number {
  const l = GGML_LAYOUT[format];
  const blocks = file.byteLength / l.fileBytes;
  // Offsets of the halves that are floats: d (and dmin for q4_k); every element for f16/bf16.
  const halves = format === 'q4_k' ? [0, 2] : format === 'q6_k' ? [208] : [0];
  for (let b = 0; b < blocks; b++) {
    const o = b * l.fileBytes;
    if (format === 'bf16') {
      if ((file[o + 1]! & 0x7f) === 0x7f && file[o]! & 0x80) return b; // exponent all ones
      continue;
    }
    for (const h of halves) if ((file[o + h + 1]! & 0x7c) === 0x7c) return b; // f16 exponent all ones
  }
  return -1;
}
