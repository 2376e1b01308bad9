import { createStorage, dispatch, grid1d } from '../gpu/buffers';
import type { Kernels } from '../gpu/kernels';
import { asWeight, type GpuWeight, weightDefines, weightExtras } from '../quant/weight';

export interface MatmulArgs {
  /** [M, K] activations. */
  x: GPUBuffer;
  /** [N, K] weight, HF nn.Linear layout, f32 or quantised. */
  w: GPUBuffer | GpuWeight;
  /** [N] or absent. */
  bias?: GPUBuffer;
  /** [M, N] output. */
  y: GPUBuffer;
  M: number;
  N: number;
  K: number;
  /** Scales the result (Granite's logits divisor); 1 when absent. */
  alpha?: number;
}

const TILE = 64;
/** Up to this many rows the matrix-vector kernel wins (decode); above it the tiled one does. */
export const GEMV_MAX_ROWS = 8;
/** Output columns per workgroup of each matrix-vector entry point (see matmul_gemv.wgsl). */
const GEMV_COLUMNS = { per_column: 64, main: 8, main8: 32 } as const;
const dummies = new WeakMap<GPUDevice, GPUBuffer>();

/** Records y = x·Wᵀ (+ bias) into `enc`. */
export function encodeMatmul(k: Kernels, enc: GPUCommandEncoder, a: MatmulArgs): void {
  const { device } = k;
  let bias = a.bias;
  if (!bias) {
    bias = dummies.get(device);
    if (!bias) dummies.set(device, (bias = createStorage(device, 4, 'no-bias')));
  }
  const params = k.uniform([{ u32: a.M }, { u32: a.N }, { u32: a.K }, { u32: a.bias ? 1 : 0 }, { f32: a.alpha ?? 1 }, { u32: 0 }, { u32: 0 }, { u32: 0 }]);
  const w = asWeight(a.w);
  const defines = weightDefines(w, 2, 5);
  const buffers = [params, a.x, w.buffer, bias, a.y, ...weightExtras(w)];
  if (a.M <= GEMV_MAX_ROWS) {
    const soft = k.profile === 'software';
    const entry = soft ? 'per_column' : a.K % 8 === 0 ? 'main8' : 'main';
    const pipeline = k.pipelines.get('matmul_gemv.wgsl', entry, defines);
    dispatch(device, pipeline, buffers, grid1d(Math.ceil(a.N / GEMV_COLUMNS[entry])), enc);
  } else {
    dispatch(device, k.pipelines.get('matmul.wgsl', 'main', defines), buffers, [Math.ceil(a.N / TILE), Math.ceil(a.M / TILE)], enc);
  }
}
