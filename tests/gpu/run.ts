/** Test plumbing: upload arrays, record ops into one encoder, submit, read back. */
import { createStorage, readF32, readU32, submitEncoder, uploadStorage } from '../../src/engine/gpu/buffers';
import type { Kernels } from '../../src/engine/gpu/kernels';

export function up(k: Kernels, data: Float32Array | Uint32Array): GPUBuffer {
  return uploadStorage(k.device, data);
}
export function empty(k: Kernels, floats: number): GPUBuffer {
  return createStorage(k.device, floats * 4);
}
export function submit(k: Kernels, record: (enc: GPUCommandEncoder) => void): void {
  const enc = k.device.createCommandEncoder();
  record(enc);
  submitEncoder(k.device, enc);
}
export const f32 = (k: Kernels, b: GPUBuffer, n: number) => readF32(k.device, b, n);
export const u32 = (k: Kernels, b: GPUBuffer, n: number) => readU32(k.device, b, n);
