/**
 * Plain TypeScript references for the GPU kernels (llm.c style): obvious loops, f64 accumulation.
 * Tests compare each kernel with these; the page's self-test does too.
 */

/** y[M,N] = x[M,K] · W[N,K]ᵀ (+ bias). */
export function matmulRef(x: Float32Array, w: Float32Array, bias: Float32Array | null, M: number, N: number, K: number): Float32Array {
  const y = new Float32Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = bias ? bias[n]! : 0;
      for (let k = 0; k < K; k++) s += x[m * K + k]! * w[n * K + k]!;
      y[m * N + n] = s;
    }
  }
  return y;
}

export function rmsnormRef(x: Float32Array, weight: Float32Array, rows: number, dim: number, eps: number): Float32Array {
  const y = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[r * dim + i]! ** 2;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) y[r * dim + i] = x[r * dim + i]! * inv * weight[i]!;
  }
  return y;
}

export function softmaxRef(x: Float32Array, rows: number, cols: number): Float32Array {
  const y = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let mx = -Infinity;
    for (let c = 0; c < cols; c++) mx = Math.max(mx, x[r * cols + c]!);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(x[r * cols + c]! - mx);
    for (let c = 0; c < cols; c++) y[r * cols + c] = Math.exp(x[r * cols + c]! - mx) / s;
  }
  return y;
}

export interface TopKRef {
  probs: Float32Array;
  idx: Uint32Array;
  weights: Float32Array;
}

/** softmax → top-k (ties to the lower index, like torch.topk) → optional renormalise. */
export function topkRef(logits: Float32Array, tokens: number, experts: number, k: number, renormalize: boolean): TopKRef {
  const probs = softmaxRef(logits, tokens, experts);
  const idx = new Uint32Array(tokens * k);
  const weights = new Float32Array(tokens * k);
  for (let t = 0; t < tokens; t++) {
    const order = Array.from({ length: experts }, (_, e) => e).sort((a, b) => probs[t * experts + b]! - probs[t * experts + a]! || a - b);
    let sum = 0;
    for (let j = 0; j < k; j++) {
      const e = order[j]!;
      idx[t * k + j] = e;
      weights[t * k + j] = probs[t * experts + e]!;
      sum += probs[t * experts + e]!;
    }
    if (renormalize) for (let j = 0; j < k; j++) weights[t * k + j] = weights[t * k + j]! / sum;
  }
  return { probs, idx, weights };
}
