/** A weight matrix on the GPU in any storage format, and how kernels bind it. */
import { createStorage, uploadStorage } from '../gpu/buffers';
import { canKeepBlocks, GGML_LAYOUT, packGgml } from './ggml-pack';
import { canQuantize, quantize, type GgmlFormat, type QuantFormat, type QuantizedMatrix, type WeightFormat } from './pack';

export interface GpuWeight {
  format: WeightFormat;
  /** f32 values, packed u32 words for int8/int4, or a GGUF tensor's blocks (quant/ggml-pack.ts). */
  buffer: GPUBuffer;
  /** One f32 per (row, group) for int8/int4; null otherwise (ggml blocks carry their own scales). */
  scales: GPUBuffer | null;
  /** int8/int4: elements per scale; ggml formats: elements per block. */
  group: number;
  /** Bytes on the GPU (data + scales). */
  bytes: number;
}

export function asWeight(w: GPUBuffer | GpuWeight): GpuWeight {
  return 'format' in w ? w : { format: 'f32', buffer: w, scales: null, group: 0, bytes: w.size };
}

/** Uploads a [rows, K] matrix, quantised when asked and possible (else it stays f32). */
export function uploadWeight(device: GPUDevice, data: Float32Array, rows: number, K: number, format: 'f32' | QuantFormat, group: number, label: string): GpuWeight {
  if (format === 'f32' || !canQuantize(K, group)) {
    const buffer = uploadStorage(device, data, label);
    return { format: 'f32', buffer, scales: null, group: 0, bytes: buffer.size };
  }
  return uploadQuantized(device, quantize(data, rows, K, format, group), label);
}

/**
 * Uploads a [rows, K] matrix given as a GGUF tensor's ggml blocks (`file`: its bytes as in the
 * file, rows × K / blockSize blocks), kept as they are and dequantised in the kernels.
 */
export function uploadGgml(device: GPUDevice, format: GgmlFormat, file: Uint8Array, rows: number, K: number, label: string): GpuWeight {
  if (!canKeepBlocks(format, K)) throw new Error(`${label}: rows of ${K} elements cannot be kept as ${format} blocks of ${GGML_LAYOUT[format].blockSize}`);
  const buffer = uploadStorage(device, packGgml(format, file, rows * K), label);
  return { format, buffer, scales: null, group: GGML_LAYOUT[format].blockSize, bytes: buffer.size };
}

/** Uploads an already packed matrix (e.g. from a cache). */
export function uploadQuantized(device: GPUDevice, q: QuantizedMatrix, label: string): GpuWeight {
  const buffer = uploadStorage(device, q.data, label);
  const scales = uploadStorage(device, q.scales, `${label}-scales`);
  return { format: q.format, buffer, scales, group: q.group, bytes: buffer.size + scales.size };
}

/** Shader defines selecting the weight loader (shaders/wload_*.wgsl) and its bindings. */
export function weightDefines(w: GpuWeight, wBinding: number, sBinding: number): Record<string, string | number> {
  return { WFMT: w.format, GROUP: Math.max(1, w.group), W_BINDING: wBinding, S_BINDING: sBinding };
}

/** Extra buffers to bind after a kernel's own (the scales, for quantised weights). */
export function weightExtras(w: GpuWeight): GPUBuffer[] {
  return w.scales ? [w.scales] : [];
}

export function destroyWeight(w: GpuWeight): void {
  w.buffer.destroy();
  w.scales?.destroy();
}

/** One buffer holding `parts` back to back (on the GPU, by copies); the parts are destroyed. */
export function concatBuffers(device: GPUDevice, parts: GPUBuffer[], label: string): GPUBuffer {
  const out = createStorage(device, parts.reduce((n, b) => n + b.size, 0), label);
  const enc = device.createCommandEncoder();
  let off = 0;
  for (const b of parts) {
    enc.copyBufferToBuffer(b, 0, out, off, b.size);
    off += b.size;
  }
  device.queue.submit([enc.finish()]);
  for (const b of parts) b.destroy(); // freed once the copies ran
  return out;
}

/**
 * Stacks matrices that share K, format and group row-wise into one ([q; k; v] → a single
 * projection, one dispatch instead of three). Rows never share a group or a packed word (K is a
 * multiple of the group and of 8), so the packed data and the scales simply concatenate; nor do
 * ggml blocks (a row is whole blocks, each a whole number of words).
 */
export function concatRows(device: GPUDevice, parts: GpuWeight[], label: string): GpuWeight {
  const f = parts[0]!;
  if (parts.some((w) => w.format !== f.format || w.group !== f.group)) throw new Error(`${label}: cannot stack matrices stored in different formats`);
  const scales = f.scales ? concatBuffers(device, parts.map((w) => w.scales!), `${label}-scales`) : null;
  const buffer = concatBuffers(device, parts.map((w) => w.buffer), label);
  return { format: f.format, buffer, scales, group: f.group, bytes: buffer.size + (scales?.size ?? 0) };
}
