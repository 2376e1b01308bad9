import { dispatch, grid1d, uploadStorage } from '../gpu/buffers';
import type { Kernels } from '../gpu/kernels';
import type { RopeScaling } from '../model/spec';

export interface RopeTable {
  cos: Float32Array;
  sin: Float32Array;
  positions: number;
  half: number;
}

/**
 * cos/sin of position · inv_freq, rounded the way HF computes them in f32:
 * inv_freq = 1 / θ^(2i/d) (f32), freq = f32(pos · inv_freq), then cos/sin of that f32 value.
 */
export function ropeTable(positions: number, headDim: number, theta: number, scaling: RopeScaling): RopeTable {
  const half = headDim / 2;
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.fround(theta ** Math.fround((2 * i) / headDim));
  for (let pos = 0; pos < positions; pos++) {
    const p = scaling.type === 'linear' ? Math.fround(pos / scaling.factor) : pos;
    for (let i = 0; i < half; i++) {
      const f = Math.fround(p * inv[i]!);
      cos[pos * half + i] = Math.cos(f);
      sin[pos * half + i] = Math.sin(f);
    }
  }
  return { cos, sin, positions, half };
}

export interface GpuRopeTable {
  cos: GPUBuffer;
  sin: GPUBuffer;
  positions: number;
}

export function uploadRopeTable(device: GPUDevice, t: RopeTable): GpuRopeTable {
  return { cos: uploadStorage(device, t.cos, 'rope-cos'), sin: uploadStorage(device, t.sin, 'rope-sin'), positions: t.positions };
}

/** Rotates x[T, heads, headDim] in place for tokens at positions start … start+T−1. */
export function encodeRope(
  k: Kernels,
  enc: GPUCommandEncoder,
  a: { x: GPUBuffer; table: GpuRopeTable; tokens: number; heads: number; headDim: number; start: number },
): void {
  if (a.start + a.tokens > a.table.positions) {
    throw new Error(`Position ${a.start + a.tokens - 1} is past the model's ${a.table.positions} positions`);
  }
  const params = k.uniform([{ u32: a.tokens }, { u32: a.heads }, { u32: a.headDim }, { u32: a.start }]);
  const threads = a.tokens * a.heads * (a.headDim / 2);
  dispatch(k.device, k.pipelines.get('rope.wgsl'), [params, a.x, a.table.cos, a.table.sin], grid1d(Math.ceil(threads / 64)), enc);
}

/**
 * Rotates q[T, heads, D] in place and writes rotated k and plain v [T, kvHeads, D] into the caches
 * at positions start … start+T−1, in one dispatch.
 */
export function encodeRopeToCache(
  k: Kernels,
  enc: GPUCommandEncoder,
  a: { q: GPUBuffer; k: GPUBuffer; v: GPUBuffer; kCache: GPUBuffer; vCache: GPUBuffer; table: GpuRopeTable; tokens: number; heads: number; kvHeads: number; headDim: number; start: number },
): void {
  if (a.start + a.tokens > a.table.positions) {
    throw new Error(`Position ${a.start + a.tokens - 1} is past the model's ${a.table.positions} positions`);
  }
  const params = k.uniform([{ u32: a.tokens }, { u32: a.heads }, { u32: a.kvHeads }, { u32: a.headDim }, { u32: a.start }, { u32: 0 }, { u32: 0 }, { u32: 0 }]);
  const half = a.headDim / 2;
  const threads = a.tokens * (a.heads * half + a.kvHeads * half + a.kvHeads * a.headDim);
  dispatch(k.device, k.pipelines.get('rope_cache.wgsl'), [params, a.q, a.k, a.v, a.kCache, a.vCache, a.table.cos, a.table.sin], grid1d(Math.ceil(threads / 64)), enc);
}
