/**
 * Each backward kernel (shaders/bwd_*.wgsl) and the optimizer (shaders/adamw.wgsl) against its
 * TypeScript reference in src/engine/train/ref.ts, on small shapes that are not multiples of the
 * workgroup sizes. Tolerance: max |gpu − ref| ≤ TOL · max(1, max |ref|), TOL stated per kernel,
 * set a few times above the error measured on SwiftShader (printed per check).
 */
import { describe, expect, it } from 'vitest';
import { randomF32 } from '../../src/engine/ref/random';
import { ropeTable, uploadRopeTable } from '../../src/engine/ops/rope';
import { attentionRef } from '../../src/engine/ref/ops';
import { attentionBackwardStatsFloats, encodeAttentionBackward } from '../../src/engine/train/ops/attention';
import { encodeSwiGluBackward } from '../../src/engine/train/ops/elementwise';
import { encodeLinearBackward } from '../../src/engine/train/ops/linear';
import { encodeRmsNormBackward } from '../../src/engine/train/ops/rmsnorm';
import { encodeRopeBackward } from '../../src/engine/train/ops/rope';
import { attentionBackwardRef, linearBackwardRef, rmsnormBackwardRef, ropeBackwardRef, swigluBackwardRef } from '../../src/engine/train/ref';
import { gpuKernels } from './device';
import { empty, f32, submit, up } from './run';

function expectNear(name: string, got: ArrayLike<number>, want: ArrayLike<number>, tol: number): void {
  expect(got.length, name).toBe(want.length);
  let err = 0, scale = 1;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!);
    err = Number.isNaN(d) ? Infinity : Math.max(err, d);
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  console.log(`${name}: max |gpu − ref| = ${err.toExponential(2)} (scale ${scale.toPrecision(3)}, ${(err / scale).toExponential(2)} relative)`);
  expect(err, name).toBeLessThanOrEqual(tol * scale);
}

describe('linear backward (bwd_linear.wgsl)', () => {
  // M, N, K: one tile, ragged edges on every side, several tiles with partial last ones.
  for (const [M, N, K] of [[3, 5, 4], [70, 37, 45], [130, 66, 17]] as const) {
    it(`dx, dW, dbias for M=${M} N=${N} K=${K}`, async () => {
      const k = await gpuKernels();
      const dy = randomF32(M * N, M + 1), x = randomF32(M * K, M + 2), w = randomF32(N * K, M + 3);
      const [dx, dw, db] = [empty(k, M * K), empty(k, N * K), empty(k, N)];
      submit(k, (enc) => encodeLinearBackward(k, enc, { dy: up(k, dy), x: up(k, x), w: up(k, w), dx, dw, db, M, N, K }));
      const ref = linearBackwardRef(dy, x, w, M, N, K);
      expectNear(`linear dx ${M}×${N}×${K}`, await f32(k, dx, M * K), ref.dx, 1e-5);
      expectNear(`linear dW ${M}×${N}×${K}`, await f32(k, dw, N * K), ref.dw, 1e-5);
      expectNear(`linear db ${M}×${N}×${K}`, await f32(k, db, N), ref.db, 1e-5);
    });
  }
  it('accumulates into dW and db when asked, overwrites dx', async () => {
    const k = await gpuKernels();
    const [M, N, K] = [9, 11, 13];
    const dy = randomF32(M * N, 5), x = randomF32(M * K, 6), w = randomF32(N * K, 7);
    const dw0 = randomF32(N * K, 8), db0 = randomF32(N, 9);
    const [dx, dw, db] = [up(k, randomF32(M * K, 10)), up(k, dw0), up(k, db0)];
    submit(k, (enc) => encodeLinearBackward(k, enc, { dy: up(k, dy), x: up(k, x), w: up(k, w), dx, dw, db, M, N, K, accumulate: { dw: true, db: true } }));
    const ref = linearBackwardRef(dy, x, w, M, N, K);
    expectNear('linear dx (overwritten)', await f32(k, dx, M * K), ref.dx, 1e-5);
    expectNear('linear dW (accumulated)', await f32(k, dw, N * K), ref.dw.map((v, i) => v + dw0[i]!), 1e-5);
    expectNear('linear db (accumulated)', await f32(k, db, N), ref.db.map((v, i) => v + db0[i]!), 1e-5);
  });
});

describe('RMSNorm backward (bwd_rmsnorm.wgsl)', () => {
  for (const [R, D] of [[5, 300], [70, 37], [1, 8]] as const) {
    it(`dx and dweight over ${R} rows of ${D}`, async () => {
      const k = await gpuKernels();
      const eps = 1e-6;
      const x = randomF32(R * D, R + D, 2), w = randomF32(D, 3), dy = randomF32(R * D, 4);
      const [dx, rstd, dweight] = [empty(k, R * D), empty(k, R), empty(k, D)];
      submit(k, (enc) => encodeRmsNormBackward(k, enc, { x: up(k, x), weight: up(k, w), dy: up(k, dy), dx, rstd, dweight, rows: R, dim: D, eps }));
      const ref = rmsnormBackwardRef(x, w, dy, R, D, eps);
      expectNear(`rmsnorm dx ${R}×${D}`, await f32(k, dx, R * D), ref.dx, 1e-5);
      expectNear(`rmsnorm dweight ${R}×${D}`, await f32(k, dweight, D), ref.dweight, 1e-5);
    });
  }
  it('adds into dx and dweight when asked', async () => {
    const k = await gpuKernels();
    const [R, D, eps] = [6, 45, 1e-5];
    const x = randomF32(R * D, 1), w = randomF32(D, 2), dy = randomF32(R * D, 3), dx0 = randomF32(R * D, 4), dw0 = randomF32(D, 5);
    const [dx, dweight] = [up(k, dx0), up(k, dw0)];
    submit(k, (enc) => encodeRmsNormBackward(k, enc, { x: up(k, x), weight: up(k, w), dy: up(k, dy), dx, rstd: empty(k, R), dweight, rows: R, dim: D, eps, accumulate: { dx: true, dweight: true } }));
    const ref = rmsnormBackwardRef(x, w, dy, R, D, eps);
    expectNear('rmsnorm dx (accumulated)', await f32(k, dx, R * D), ref.dx.map((v, i) => v + dx0[i]!), 1e-5);
    expectNear('rmsnorm dweight (accumulated)', await f32(k, dweight, D), ref.dweight.map((v, i) => v + dw0[i]!), 1e-5);
  });
});

describe('SwiGLU backward (bwd_swiglu.wgsl)', () => {
  it('d(gate_up) over 7 rows of 37', async () => {
    const k = await gpuKernels();
    const [R, I] = [7, 37];
    const gu = randomF32(R * 2 * I, 11, 6), dout = randomF32(R * I, 12);
    const dgu = empty(k, R * 2 * I);
    submit(k, (enc) => encodeSwiGluBackward(k, enc, { gateUp: up(k, gu), dout: up(k, dout), dGateUp: dgu, rows: R, inter: I }));
    expectNear('swiglu d(gate_up)', await f32(k, dgu, R * 2 * I), swigluBackwardRef(gu, dout, R, I), 1e-5);
  });
});

describe('RoPE backward (bwd_rope.wgsl)', () => {
  it('plain [T, H, D] from a start position', async () => {
    const k = await gpuKernels();
    const [T, H, D, start] = [5, 3, 16, 7];
    const tab = ropeTable(32, D, 10000, { type: 'default' });
    const dy = randomF32(T * H * D, 13);
    const dx = empty(k, T * H * D);
    submit(k, (enc) => encodeRopeBackward(k, enc, { dy: { buffer: up(k, dy) }, dx: { buffer: dx }, table: uploadRopeTable(k.device, tab), tokens: T, heads: H, headDim: D, start }));
    expectNear('rope dx', await f32(k, dx, T * H * D), ropeBackwardRef(dy, tab.cos, tab.sin, T, H, D, start), 1e-6);
  });
  it('into the k slice of a fused d(qkv), leaving the rest untouched', async () => {
    const k = await gpuKernels();
    const [T, H, KVH, D] = [4, 4, 2, 8];
    const W = (H + 2 * KVH) * D;
    const tab = ropeTable(8, D, 10000, { type: 'default' });
    const dk = randomF32(T * KVH * D, 14), before = randomF32(T * W, 15);
    const dqkv = up(k, before);
    submit(k, (enc) => encodeRopeBackward(k, enc, { dy: { buffer: up(k, dk) }, dx: { buffer: dqkv, stride: W, offset: H * D }, table: uploadRopeTable(k.device, tab), tokens: T, heads: KVH, headDim: D, start: 0 }));
    const want = before.slice();
    const rk = ropeBackwardRef(dk, tab.cos, tab.sin, T, KVH, D, 0);
    for (let t = 0; t < T; t++) want.set(rk.subarray(t * KVH * D, (t + 1) * KVH * D), t * W + H * D);
    expectNear('rope dk into d(qkv)', await f32(k, dqkv, T * W), want, 1e-6);
  });
});

describe('causal GQA attention backward (bwd_attention.wgsl)', () => {
  // T, H, KVH, D: single token, GQA groups of 2 and 3, MHA, more keys than one 256-wide block.
  for (const [T, H, KVH, D] of [[1, 1, 1, 4], [7, 4, 2, 16], [9, 6, 2, 36], [5, 2, 2, 128], [300, 2, 1, 8]] as const) {
    it(`dq, dk, dv for T=${T} H=${H} KVH=${KVH} D=${D}`, async () => {
      const k = await gpuKernels();
      const scale = 1 / Math.sqrt(D);
      const q = randomF32(T * H * D, T + 1, 2), kk = randomF32(T * KVH * D, T + 2, 2), v = randomF32(T * KVH * D, T + 3), dout = randomF32(T * H * D, T + 4);
      const out = attentionRef(q, kk, v, T, H, KVH, D, 0, scale);
      const [dq, dk, dv] = [empty(k, T * H * D), empty(k, T * KVH * D), empty(k, T * KVH * D)];
      submit(k, (enc) => encodeAttentionBackward(k, enc, {
        q: up(k, q), k: up(k, kk), v: up(k, v), out: up(k, out), dout: up(k, dout), stats: empty(k, attentionBackwardStatsFloats(T, H)),
        dq, dk, dv, tokens: T, heads: H, kvHeads: KVH, headDim: D, scale,
      }));
      const ref = attentionBackwardRef(q, kk, v, dout, T, H, KVH, D, scale);
      const tag = `T=${T} H=${H} KVH=${KVH} D=${D}`;
      expectNear(`attention dq ${tag}`, await f32(k, dq, T * H * D), ref.dq, 1e-5);
      expectNear(`attention dk ${tag}`, await f32(k, dk, T * KVH * D), ref.dk, 1e-5);
      expectNear(`attention dv ${tag}`, await f32(k, dv, T * KVH * D), ref.dv, 1e-5);
    });
  }
});
