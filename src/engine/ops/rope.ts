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
 * `headDim` is the rotated width (DeepSeek: qk_rope_head_dim).
 */
export function ropeTable(positions: number, headDim: number, theta: number, scaling: RopeScaling): RopeTable {
  const half = headDim / 2;
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  const inv = invFreq(headDim, theta, scaling);
  const gain = scaling.type === 'yarn' ? scaling.attentionFactor : 1;
  for (let pos = 0; pos < positions; pos++) {
    const p = scaling.type === 'linear' ? Math.fround(pos / scaling.factor) : pos;
    for (let i = 0; i < half; i++) {
      const f = Math.fround(p * inv[i]!);
      cos[pos * half + i] = Math.cos(f) * gain;
      sin[pos * half + i] = Math.sin(f) * gain;
    }
  }
  return { cos, sin, positions, half };
}

/** HF's inv_freq (modeling_rope_utils: default, and _compute_yarn_parameters), in f32 steps. */
export function invFreq(dim: number, theta: number, scaling: RopeScaling): Float32Array {
  const half = dim / 2;
  const posFreq = Float32Array.from({ length: half }, (_, i) => Math.fround(theta ** Math.fround((2 * i) / dim)));
  if (scaling.type !== 'yarn') return posFreq.map((f) => 1 / f);
  const { factor, betaFast, betaSlow, originalMaxPositions: orig, truncate } = scaling;
  // The dimension at which a frequency makes `rotations` turns over the original context.
  const corrDim = (rotations: number) => (dim * Math.log(orig / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
  let low = corrDim(betaFast), high = corrDim(betaSlow);
  if (truncate) [low, high] = [Math.floor(low), Math.ceil(high)];
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (low === high) high += 0.001; // HF's guard against a zero-width ramp
  return posFreq.map((f, i) => {
    const ramp = Math.min(1, Math.max(0, Math.fround(Math.fround(i - low) / Math.fround(high - low))));
    const extrapolation = Math.fround(1 - ramp);
    const inter = Math.fround(1 / Math.fround(factor * f));
    const extra = Math.fround(1 / f);
    return Math.fround(Math.fround(inter * Math.fround(1 - extrapolation)) + Math.fround(extra * extrapolation));
  });
}

export interface GpuRopeTable {
  cos: GPUBuffer;
  sin: GPUBuffer;
  positions: number;
}

export function uploadRopeTable(device: GPUDevice, t: RopeTable): GpuRopeTable {
  return { cos: uploadStorage(device, t.cos, 'rope-cos'), sin: uploadStorage(device, t.sin, 'rope-sin'), positions: t.positions };
}

export type QkNormMode = 'none' | 'head' | 'full';

/**
 * From the fused projection qkv [T, (heads + 2·kvHeads)·headDim]: optional q/k RMSNorm, RoPE, q to
 * `qOut` [T, heads, headDim], k and v into the caches at positions start … start+T−1. One dispatch.
 */
export function encodeQkvRope(
  k: Kernels,
  enc: GPUCommandEncoder,
  a: {
    qkv: GPUBuffer; qOut: GPUBuffer; kCache: GPUBuffer; vCache: GPUBuffer; table: GpuRopeTable;
    norm: QkNormMode; qNorm?: GPUBuffer; kNorm?: GPUBuffer; eps: number;
    tokens: number; heads: number; kvHeads: number; headDim: number; start: number;
  },
): void {
  if (a.start + a.tokens > a.table.positions) {
    throw new Error(`Position ${a.start + a.tokens - 1} is past the model's ${a.table.positions} positions`);
  }
  if (a.heads + a.kvHeads > 512) throw new Error(`${a.heads} + ${a.kvHeads} heads: at most 512 are supported`);
  if (a.norm !== 'none' && (!a.qNorm || !a.kNorm)) throw new Error('q/k norm weights are missing');
  const mode = a.norm === 'none' ? 0 : a.norm === 'head' ? 1 : 2;
  const params = k.uniform([{ u32: a.tokens }, { u32: a.heads }, { u32: a.kvHeads }, { u32: a.headDim }, { u32: a.start }, { u32: mode }, { f32: a.eps }, { u32: 0 }], [4]);
  // Without norms the weight bindings are unread; the RoPE tables stand in (read-only, so sharing is allowed).
  const qn = a.qNorm ?? a.table.cos, kn = a.kNorm ?? a.table.sin;
  dispatch(k.device, k.pipelines.get('qkv_rope.wgsl'), [params, a.qkv, qn, kn, a.qOut, a.kCache, a.vCache, a.table.cos, a.table.sin], grid1d(a.tokens), enc);
}
