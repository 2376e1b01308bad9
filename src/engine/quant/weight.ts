/** A weight matrix on the GPU in any storage format, and how kernels bind it. */
import { uploadStorage } from '../gpu/buffers';
import { canQuantize, quantize, type QuantizedMatrix, type WeightFormat } from './pack';

export interface GpuWeight {
  format: WeightFormat;
  /** f32 values, or packed u32 words for int8/int4. */
  buffer: GPUBuffer;
  /** One f32 per (row, group) for int8/int4. */
  scales: GPUBuffer | null;
  group: number;
  /** Bytes on the GPU (data + scales). */
  bytes: number;
}

export function asWeight(w: GPUBuffer | GpuWeight): GpuWeight {
  return 'format' in w ? w : { format: 'f32', buffer: w, scales: null, group: 0, bytes: w.size };
}

/** Uploads a [rows, K] matrix, quantised when asked and possible (else it stays f32). */
export function uploadWeight(device: GPUDevice, data: Float32Array, rows: number, K: number, format: WeightFormat, group: number, label: string): GpuWeight {
  if (format === 'f32' || !canQuantize(K, group)) {
    const buffer = uploadStorage(device, data, label);
    return { format: 'f32', buffer, scales: null, group: 0, bytes: buffer.size };
  }
  return uploadQuantized(device, quantize(data, rows, K, format, group), label);
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
