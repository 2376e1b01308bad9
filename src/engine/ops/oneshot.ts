/**
 * Runs one op on CPU arrays: upload, encode, submit, read back. For tests and the self-test, not
 * for the forward pass (which keeps tensors on the GPU and batches many ops in one encoder).
 */
import { createStorage, readF32, readU32, submitEncoder, uploadStorage } from '../gpu/buffers';
import type { Kernels } from '../gpu/kernels';
import { createRouterTables, encodeRoute, type RouterConfig, writeRouterTables } from '../moe/router';
import { encodeMatmul } from './matmul';
import { encodeRmsNorm } from './rmsnorm';
import { encodeSoftmax } from './softmax';

async function withEncoder<T>(k: Kernels, inputs: GPUBuffer[], body: (enc: GPUCommandEncoder) => Promise<T> | T): Promise<T> {
  try {
    return await body(k.device.createCommandEncoder());
  } finally {
    for (const b of inputs) b.destroy();
  }
}

export async function runMatmul(k: Kernels, x: Float32Array, w: Float32Array, bias: Float32Array | null, M: number, N: number, K: number): Promise<Float32Array> {
  const bx = uploadStorage(k.device, x);
  const bw = uploadStorage(k.device, w);
  const bb = bias ? uploadStorage(k.device, bias) : undefined;
  const by = createStorage(k.device, M * N * 4);
  return withEncoder(k, [bx, bw, by, ...(bb ? [bb] : [])], (enc) => {
    encodeMatmul(k, enc, { x: bx, w: bw, bias: bb, y: by, M, N, K });
    submitEncoder(k.device, enc);
    return readF32(k.device, by, M * N);
  });
}

export async function runRmsNorm(k: Kernels, x: Float32Array, weight: Float32Array, rows: number, dim: number, eps: number): Promise<Float32Array> {
  const bx = uploadStorage(k.device, x);
  const bw = uploadStorage(k.device, weight);
  const by = createStorage(k.device, rows * dim * 4);
  return withEncoder(k, [bx, bw, by], (enc) => {
    encodeRmsNorm(k, enc, { x: bx, weight: bw, y: by, rows, dim, eps });
    submitEncoder(k.device, enc);
    return readF32(k.device, by, rows * dim);
  });
}

export async function runSoftmax(k: Kernels, x: Float32Array, rows: number, cols: number): Promise<Float32Array> {
  const bx = uploadStorage(k.device, x);
  const by = createStorage(k.device, rows * cols * 4);
  return withEncoder(k, [bx, by], (enc) => {
    encodeSoftmax(k, enc, { x: bx, y: by, rows, cols });
    submitEncoder(k.device, enc);
    return readF32(k.device, by, rows * cols);
  });
}

export async function runRoute(k: Kernels, logits: Float32Array, tokens: number, experts: number, router: RouterConfig, position = 0) {
  const bl = uploadStorage(k.device, logits);
  const tables = createRouterTables(k.device, experts);
  writeRouterTables(k.device, tables, router, experts);
  const bp = createStorage(k.device, tokens * experts * 4);
  const bi = createStorage(k.device, tokens * router.topK * 4);
  const bw = createStorage(k.device, tokens * router.topK * 4);
  return withEncoder(k, [bl, bp, bi, bw, tables.bias, tables.enabled], async (enc) => {
    encodeRoute(k, enc, { logits: bl, tables, probs: bp, idx: bi, weights: bw, tokens, experts, position, router });
    submitEncoder(k.device, enc);
    return {
      probs: await readF32(k.device, bp, tokens * experts),
      idx: await readU32(k.device, bi, tokens * router.topK),
      weights: await readF32(k.device, bw, tokens * router.topK),
    };
  });
}
