/**
 * A quick check that every kernel agrees with its TypeScript reference on this adapter. The page
 * runs it at start-up (a broken driver shows up as a red row, not as nonsense text later); the
 * Vitest kernel tests cover many more shapes.
 */
import type { Kernels } from './gpu/kernels';
import type { RouterConfig } from './moe/router';
import { runMatmul, runRmsNorm, runRoute, runSoftmax } from './ops/oneshot';
import { matmulRef, rmsnormRef, routeRef, softmaxRef } from './ref/ops';
import { maxAbsDiff, randomF32 } from './ref/random';

/** HF's plain softmax → top-k routing (every knob at its neutral value). */
export const PLAIN_ROUTER: RouterConfig = {
  topK: 2, scoring: 'softmax', temperature: 1, noiseStd: 0, seed: 0, renormalize: false, nGroup: 1, topkGroup: 1,
  groupScore: 'max', bias: null, disabled: [], capacityFactor: 0, routedScale: 1,
};

export interface SelfTestResult {
  name: string;
  shape: string;
  maxAbsError: number;
  tolerance: number;
  pass: boolean;
  ms: number;
}

/** Tolerances: f32 with different summation order; the matmul bound scales with √K. */
export const TOLERANCE = {
  matmul: (K: number) => 1e-5 * Math.sqrt(K) * 4,
  rmsnorm: 1e-5,
  softmax: 1e-6,
  topkWeights: 1e-6,
} as const;

async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const v = await f();
  return [v, performance.now() - t0];
}

export async function runSelfTest(k: Kernels): Promise<SelfTestResult[]> {
  const out: SelfTestResult[] = [];
  const record = (name: string, shape: string, err: number, tol: number, ms: number) =>
    out.push({ name, shape, maxAbsError: err, tolerance: tol, pass: err <= tol && Number.isFinite(err), ms });

  for (const [M, N, K] of [[7, 129, 67], [64, 96, 256]] as const) {
    const x = randomF32(M * K, 1), w = randomF32(N * K, 2), b = randomF32(N, 3);
    const [y, ms] = await timed(() => runMatmul(k, x, w, b, M, N, K));
    record('matmul x·Wᵀ+b', `${M}×${K} · ${N}×${K}ᵀ`, maxAbsDiff(y, matmulRef(x, w, b, M, N, K)), TOLERANCE.matmul(K), ms);
  }
  {
    const [rows, dim] = [5, 300];
    const x = randomF32(rows * dim, 4, 3), w = randomF32(dim, 5);
    const [y, ms] = await timed(() => runRmsNorm(k, x, w, rows, dim, 1e-6));
    record('rmsnorm', `${rows}×${dim}`, maxAbsDiff(y, rmsnormRef(x, w, rows, dim, 1e-6)), TOLERANCE.rmsnorm, ms);
  }
  {
    const [rows, cols] = [9, 1000];
    const x = randomF32(rows * cols, 6, 8);
    const [y, ms] = await timed(() => runSoftmax(k, x, rows, cols));
    record('softmax', `${rows}×${cols}`, maxAbsDiff(y, softmaxRef(x, rows, cols)), TOLERANCE.softmax, ms);
  }
  {
    const [T, E, K] = [33, 16, 2];
    const logits = randomF32(T * E, 7, 4).map((v) => Math.round(v * 8) / 8);
    const router = { ...PLAIN_ROUTER, topK: K, renormalize: true };
    const [got, ms] = await timed(() => runRoute(k, logits, T, E, router));
    const ref = routeRef(logits, T, E, K, true);
    const idxOk = got.idx.every((v, i) => v === ref.idx[i]);
    const err = idxOk ? maxAbsDiff(got.weights, ref.weights) : Infinity;
    record('moe top-k routing', `${T} tokens × ${E} experts, k=${K}`, err, TOLERANCE.topkWeights, ms);
  }
  return out;
}
