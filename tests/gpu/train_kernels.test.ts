/**
 * Each backward kernel (shaders/bwd_*.wgsl) and the optimizer (shaders/adamw.wgsl) against its
 * TypeScript reference in src/engine/train/ref.ts, on small shapes that are not multiples of the
 * workgroup sizes. Tolerance: max |gpu − ref| ≤ TOL · max(1, max |ref|), TOL stated per kernel,
 * set a few times above the error measured on SwiftShader (printed per check).
 */
import { describe, expect, it } from 'vitest';
import { randomF32, rng } from '../../src/engine/ref/random';
import { ropeTable, uploadRopeTable } from '../../src/engine/ops/rope';
import { uploadStorage } from '../../src/engine/gpu/buffers';
import { dequantize, quantize } from '../../src/engine/quant/pack';
import { uploadWeight } from '../../src/engine/quant/weight';
import { runRoute } from '../../src/engine/ops/oneshot';
import { attentionRef, routeRef } from '../../src/engine/ref/ops';
import { attentionBackwardStatsFloats, encodeAttentionBackward } from '../../src/engine/train/ops/attention';
import { encodeSwiGluBackward } from '../../src/engine/train/ops/elementwise';
import { encodeEmbeddingBackward, uploadEmbeddingGradPlan } from '../../src/engine/train/ops/embedding';
import { crossEntropyTargets, encodeCrossEntropy } from '../../src/engine/train/ops/loss';
import { encodeRouterBackward } from '../../src/engine/train/ops/router';
import { encodeMoeCombineBackward } from '../../src/engine/train/ops/moe';
import { encodeAdamWStep, encodeGradNorm, gradNormPartialFloats, OPTIM_STATS_FLOATS } from '../../src/engine/train/ops/adamw';
import { AdamW } from '../../src/engine/train/optim';
import { learningRate } from '../../src/engine/train/schedule';
import { encodeLinearBackward } from '../../src/engine/train/ops/linear';
import { encodeRmsNormBackward } from '../../src/engine/train/ops/rmsnorm';
import { encodeCopyHeads, encodeRopeBackward } from '../../src/engine/train/ops/rope';
import {
  adamwStepRef, attentionBackwardRef, clipScaleRef, crossEntropyRef, DROPPED, gradNormRef, moeCombineBackwardRef, embeddingBackwardRef, IGNORE_INDEX, linearBackwardRef, rmsnormBackwardRef, ropeBackwardRef,
  routerBackwardRef, swigluBackwardRef,
} from '../../src/engine/train/ref';
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

describe('linear backward through a quantised weight (LoRA over an int8/int4 base)', () => {
  for (const [format, group] of [['int8', 32], ['int4', 32]] as const) {
    it(`dx = dY · W with W ${format}, group ${group}: as through the dequantised weight`, async () => {
      const k = await gpuKernels();
      const [M, N, K] = [19, 40, 96];
      const dy = randomF32(M * N, 41), wf = randomF32(N * K, 42);
      const dx = empty(k, M * K);
      const wq = uploadWeight(k.device, wf, N, K, format, group, 'wq');
      expect(wq.format).toBe(format); // not the f32 fallback
      submit(k, (enc) => encodeLinearBackward(k, enc, { dy: up(k, dy), w: wq, dx, M, N, K }));
      const wDeq = dequantize(quantize(wf, N, K, format, group));
      expectNear(`linear dx through ${format} W`, await f32(k, dx, M * K), linearBackwardRef(dy, new Float32Array(M * K), wDeq, M, N, K).dx, 1e-5);
    });
  }
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
  it('copies dv into the v slice of d(qkv) without rotating it', async () => {
    const k = await gpuKernels();
    const [T, H, KVH, D] = [3, 2, 1, 6];
    const W = (H + 2 * KVH) * D;
    const dv = randomF32(T * KVH * D, 16), before = randomF32(T * W, 17);
    const dqkv = up(k, before);
    submit(k, (enc) => encodeCopyHeads(k, enc, { src: { buffer: up(k, dv) }, dst: { buffer: dqkv, stride: W, offset: (H + KVH) * D }, tokens: T, heads: KVH, headDim: D }));
    const want = before.slice();
    for (let t = 0; t < T; t++) want.set(dv.subarray(t * KVH * D, (t + 1) * KVH * D), t * W + (H + KVH) * D);
    expect(Array.from(await f32(k, dqkv, T * W))).toEqual(Array.from(want));
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

describe('softmax cross-entropy + gradient (bwd_xent.wgsl)', () => {
  async function run(logits: Float32Array, targets: number[], V: number, opts: { inPlace?: boolean; gradScale?: number } = {}) {
    const k = await gpuKernels();
    const T = targets.length;
    const bl = up(k, logits);
    const dl = opts.inPlace ? bl : empty(k, T * V);
    const [losses, loss] = [empty(k, T), empty(k, 1)];
    const tg = uploadStorage(k.device, crossEntropyTargets(targets, V));
    submit(k, (enc) => encodeCrossEntropy(k, enc, { logits: bl, targets: tg, dlogits: dl, losses, loss, tokens: T, vocab: V, gradScale: opts.gradScale }));
    return { dlogits: await f32(k, dl, T * V), losses: await f32(k, losses, T), loss: (await f32(k, loss, 1))[0]! };
  }
  it('mean loss, per-row losses and dlogits over 7 rows of 300, two rows ignored', async () => {
    const V = 300;
    const targets = [5, IGNORE_INDEX, 299, 0, 17, IGNORE_INDEX, 5];
    const logits = randomF32(targets.length * V, 21, 4);
    const got = await run(logits, targets, V, { gradScale: 0.5 });
    const ref = crossEntropyRef(logits, targets, targets.length, V, 0.5);
    expectNear('cross-entropy dlogits', got.dlogits, ref.dlogits, 1e-5);
    expectNear('cross-entropy row losses', got.losses, ref.losses, 1e-6);
    expectNear('cross-entropy mean loss', [got.loss], [ref.loss], 1e-6);
  });
  it('in place over the logits, stable at logits near 1e4', async () => {
    const V = 41;
    const targets = [3, 40, IGNORE_INDEX];
    const logits = randomF32(targets.length * V, 22, 3).map((v) => v + 1e4);
    const got = await run(logits, targets, V, { inPlace: true });
    const ref = crossEntropyRef(logits, targets, targets.length, V);
    expectNear('cross-entropy in place dlogits', got.dlogits, ref.dlogits, 1e-5);
    expectNear('cross-entropy in place mean loss', [got.loss], [ref.loss], 1e-5);
    expect(Number.isFinite(got.loss)).toBe(true);
  });
  it('every row ignored: loss 0 and a zero gradient, not NaN', async () => {
    const got = await run(randomF32(2 * 5, 23), [IGNORE_INDEX, IGNORE_INDEX], 5);
    expect(got.loss).toBe(0);
    expect(got.dlogits.every((v) => v === 0)).toBe(true);
  });
  it('the host refuses a target outside the vocabulary', () => {
    expect(() => crossEntropyTargets([1, 5], 5)).toThrow(/target 5 at row 1/);
    expect(() => crossEntropyTargets([-1], 5)).toThrow(/target -1/);
  });
});

describe('embedding backward (bwd_embedding.wgsl)', () => {
  const [V, D] = [37, 70];
  const ids = [4, 36, 4, 0, 12, 4, 36];
  it('scatters rows by id with repeats, scaled; untouched rows cleared', async () => {
    const k = await gpuKernels();
    const dout = randomF32(ids.length * D, 24);
    const dTable = up(k, randomF32(V * D, 25)); // stale contents that a non-accumulating call must clear
    submit(k, (enc) => encodeEmbeddingBackward(k, enc, { plan: uploadEmbeddingGradPlan(k.device, ids, V), dout: up(k, dout), dTable, dim: D, scale: 1.5 }));
    expectNear('embedding dTable', await f32(k, dTable, V * D), embeddingBackwardRef(ids, dout, V, D, 1.5), 1e-6);
  });
  it('accumulates onto an existing gradient', async () => {
    const k = await gpuKernels();
    const dout = randomF32(ids.length * D, 26), before = randomF32(V * D, 27);
    const dTable = up(k, before);
    submit(k, (enc) => encodeEmbeddingBackward(k, enc, { plan: uploadEmbeddingGradPlan(k.device, ids, V), dout: up(k, dout), dTable, dim: D, scale: 1, accumulate: true }));
    const want = embeddingBackwardRef(ids, dout, V, D, 1).map((v, i) => v + before[i]!);
    expectNear('embedding dTable (accumulated)', await f32(k, dTable, V * D), want, 1e-6);
  });
  it('the plan refuses an id outside the vocabulary', async () => {
    const k = await gpuKernels();
    expect(() => uploadEmbeddingGradPlan(k.device, [1, 37], V)).toThrow(/token id 37 at position 1/);
  });
});

describe('MoE router backward (bwd_router.wgsl)', () => {
  const cases = [
    { name: 'softmax, top-2, renormalised', E: 8, k: 2, o: { renormalize: true } },
    { name: 'softmax, top-3, τ = 0.7, routed scale 2.5, not renormalised, + dProbs', E: 60, k: 3, o: { renormalize: false, temperature: 0.7, routedScale: 2.5 }, dProbs: true },
    { name: 'sigmoid, top-2, renormalised, + dProbs', E: 16, k: 2, o: { renormalize: true, scoring: 'sigmoid' as const }, dProbs: true },
  ];
  for (const { name, E, k: K, o, dProbs } of cases) {
    it(`${name} (T = 70)`, async () => {
      const k = await gpuKernels();
      const T = 70;
      const logits = randomF32(T * E, E + K, 2);
      const fwd = routeRef(logits, T, E, K, o.renormalize, { scoring: o.scoring, temperature: o.temperature, routedScale: o.routedScale, disabled: [1] });
      const dG = randomF32(T * K, E + 1), dP = dProbs ? randomF32(T * E, E + 2) : null;
      const dLogits = empty(k, T * E);
      submit(k, (enc) => encodeRouterBackward(k, enc, {
        probs: up(k, fwd.probs), idx: up(k, fwd.idx), dGates: up(k, dG), dProbs: dP ? up(k, dP) : undefined, dLogits,
        tokens: T, experts: E, topK: K, router: o,
      }));
      expectNear(`router dLogits (${name})`, await f32(k, dLogits, T * E), routerBackwardRef(fwd.probs, fwd.idx, dG, T, E, K, o, dP), 1e-5);
    });
  }
  it('from the GPU routing kernel\'s own probs and choice (masked expert, fewer experts than k allowed)', async () => {
    const k = await gpuKernels();
    const [T, E, K] = [5, 4, 3];
    const logits = randomF32(T * E, 28, 2);
    const router = {
      topK: K, scoring: 'softmax' as const, temperature: 1, noiseStd: 0, seed: 0, renormalize: true, nGroup: 1, topkGroup: 1,
      groupScore: 'max' as const, bias: null, disabled: [0, 2], capacityFactor: 0, routedScale: 1,
    };
    const fwd = await runRoute(k, logits, T, E, router);
    expect(fwd.idx[2]).toBe(0xffffffff); // two experts allowed, k = 3: the last slot goes to none
    const dG = randomF32(T * K, 29);
    const dLogits = empty(k, T * E);
    submit(k, (enc) => encodeRouterBackward(k, enc, { probs: up(k, fwd.probs), idx: up(k, fwd.idx), dGates: up(k, dG), dLogits, tokens: T, experts: E, topK: K, router }));
    const got = await f32(k, dLogits, T * E);
    expectNear('router dLogits from encodeRoute', got, routerBackwardRef(fwd.probs, fwd.idx, dG, T, E, K, router), 1e-5);
    for (let t = 0; t < T; t++) for (const e of [0, 2]) expect(Math.abs(got[t * E + e]!)).toBe(0);
  });
});

describe('AdamW with global-norm clipping (adamw.wgsl)', () => {
  // Parameters of order 1 drift from the reference by a few f32 ulps per step (the reference
  // computes each update in f64 and the WGSL division and square root may be 2.5 ulp): measured at
  // most 7.8e-7 after 6 steps, so 2e-6. A missing bias correction or decay term moves them by ~lr.
  const P_TOL = 2e-6;
  it('two parameter groups in one encoder (one at an offset, without decay, at 3× the lr) over 5 steps, clipping on some, vs the TS AdamW', async () => {
    const k = await gpuKernels();
    // Slice A: 1000 floats (several sum-of-squares workgroups); slice B: 37 floats at offset 5 of 50.
    const [nA, nB, offB, lenB] = [1000, 37, 5, 50];
    const pA = randomF32(nA, 31), pB = randomF32(lenB, 32);
    const [mA, vA, mB, vB] = [new Float32Array(nA), new Float32Array(nA), new Float32Array(lenB), new Float32Array(lenB)];
    const gpu = { pA: up(k, pA), pB: up(k, pB), gA: empty(k, nA), gB: empty(k, lenB), mA: empty(k, nA), vA: empty(k, nA), mB: empty(k, lenB), vB: empty(k, lenB) };
    const slices = [{ grad: gpu.gA, count: nA }, { grad: gpu.gB, count: nB, offset: offB }];
    const partials = empty(k, gradNormPartialFloats(slices)), stats = empty(k, OPTIM_STATS_FLOATS);
    const maxNorm = 1;
    const base = { beta1: 0.9, beta2: 0.95, eps: 1e-8 };
    let clipped = 0;
    // Gradient scales: norms from ~0.2 (no clipping) to ~60 (clipped to 1).
    for (const [step, gs] of [[1, 0.01], [2, 2], [3, 0.02], [4, 3], [5, 0.5]] as const) {
      const gA = randomF32(nA, 40 + step, gs), gB = randomF32(lenB, 50 + step, gs);
      k.device.queue.writeBuffer(gpu.gA, 0, gA);
      k.device.queue.writeBuffer(gpu.gB, 0, gB);
      const lr = 0.01 / step;
      submit(k, (enc) => {
        encodeGradNorm(k, enc, { slices, partials, stats, maxNorm });
        encodeAdamWStep(k, enc, { param: gpu.pA, grad: gpu.gA, m: gpu.mA, v: gpu.vA, count: nA, hyper: { ...base, lr, weightDecay: 0.1 }, step, stats });
        encodeAdamWStep(k, enc, { param: gpu.pB, grad: gpu.gB, m: gpu.mB, v: gpu.vB, count: nB, offset: offB, hyper: { ...base, lr: 3 * lr, weightDecay: 0 }, step, stats });
      });
      const norm = gradNormRef([gA, gB.subarray(offB, offB + nB)]);
      const clip = clipScaleRef(norm, maxNorm);
      if (clip < 1) clipped++;
      const st = await f32(k, stats, 3);
      expectNear(`grad norm, step ${step}`, [st[0]!], [norm], 1e-6);
      expectNear(`clip factor, step ${step}`, [st[1]!], [clip], 1e-6);
      expect(st[2]).toBe(0);
      adamwStepRef(pA, gA, mA, vA, { ...base, lr, weightDecay: 0.1 }, step, clip);
      const sub = (a: Float32Array) => a.subarray(offB, offB + nB);
      adamwStepRef(sub(pB), sub(gB), sub(mB), sub(vB), { ...base, lr: 3 * lr, weightDecay: 0 }, step, clip);
      expectNear(`AdamW params A, step ${step}`, await f32(k, gpu.pA, nA), pA, P_TOL);
      expectNear(`AdamW params B, step ${step}`, await f32(k, gpu.pB, lenB), pB, P_TOL);
      expectNear(`AdamW m A, step ${step}`, await f32(k, gpu.mA, nA), mA, 1e-6);
      expectNear(`AdamW v B, step ${step}`, await f32(k, gpu.vB, lenB), vB, 1e-6);
    }
    expect(clipped).toBeGreaterThanOrEqual(2);
    expect(clipped).toBeLessThanOrEqual(3);
  });

  it('the AdamW class on a warmup + cosine schedule, and a non-finite gradient skips the step', async () => {
    const k = await gpuKernels();
    const n = [300, 20];
    const init = n.map((c, i) => randomF32(c, 60 + i));
    const ref = init.map((p) => p.slice());
    const mom = n.map((c) => ({ m: new Float32Array(c), v: new Float32Array(c) }));
    const params = n.map((c, i) => ({ name: `p${i}`, param: up(k, init[i]!), grad: empty(k, c), count: c, weightDecay: i === 1 ? 0 : undefined }));
    const opt = new AdamW(k, params, { maxGradNorm: 0.5, weightDecay: 0.05 });
    const sched = { peak: 3e-2, warmupSteps: 2, totalSteps: 6, minRatio: 0.1 };
    for (let s = 0; s < 6; s++) {
      const grads = n.map((c, i) => randomF32(c, 70 + 10 * s + i, 0.1));
      // Step 3 carries a NaN: the whole step must change nothing (and later steps go on).
      if (s === 3) grads[1]![4] = Number.NaN;
      grads.forEach((g, i) => k.device.queue.writeBuffer(params[i]!.grad, 0, g));
      const lr = learningRate(sched, s);
      submit(k, (enc) => opt.encodeStep(enc, lr));
      const st = await opt.readStats();
      if (s === 3) {
        expect(st.skipped).toBe(true);
      } else {
        expect(st.skipped).toBe(false);
        const norm = gradNormRef(grads);
        expectNear(`AdamW class grad norm, step ${s + 1}`, [st.gradNorm], [norm], 1e-6);
        grads.forEach((g, i) => adamwStepRef(ref[i]!, g, mom[i]!.m, mom[i]!.v, { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: i === 1 ? 0 : 0.05 }, s + 1, clipScaleRef(norm, 0.5)));
      }
      for (let i = 0; i < n.length; i++) expectNear(`AdamW class p${i}, step ${s + 1}`, await f32(k, params[i]!.param, n[i]!), ref[i]!, P_TOL);
    }
    expect(opt.step).toBe(6);
    opt.destroy();
  });
});

describe('MoE combine backward (bwd_moe_combine.wgsl)', () => {
  // 6 tokens, top-3, dim 300 (more than one 256-wide pass), 22 rows: 16 kept slots, 2 dropped, padding.
  const [T, K, dim, rows] = [6, 3, 300, 22];
  const r = rng(90);
  const perm = Array.from({ length: rows }, (_, i) => i).sort(() => r() - 0.5);
  const slotPos = Uint32Array.from({ length: T * K }, (_, s) => (s === 4 || s === 11 ? DROPPED : perm[s]!));
  for (const mode of ['none', 'added', 'gated'] as const) {
    it(`dGate, dY and the shared expert's gradients (shared expert: ${mode})`, async () => {
      const k = await gpuKernels();
      const gate = randomF32(T * K, 91), y = randomF32(rows * dim, 92), dout = randomF32(T * dim, 93);
      const sharedCpu = mode === 'none' ? undefined : { out: randomF32(T * dim, 94), gateLogits: mode === 'gated' ? randomF32(T, 95, 2) : undefined };
      const [dGate, dY, dSharedOut, dSharedGate] = [empty(k, T * K), up(k, randomF32(rows * dim, 96)), empty(k, T * dim), empty(k, T)];
      submit(k, (enc) => encodeMoeCombineBackward(k, enc, {
        gate: up(k, gate), slotPos: up(k, slotPos), y: up(k, y), dout: up(k, dout), dGate, dY, tokens: T, topK: K, dim,
        shared: sharedCpu && { out: up(k, sharedCpu.out), gateLogits: sharedCpu.gateLogits && up(k, sharedCpu.gateLogits), dOut: dSharedOut, dGateLogits: dSharedGate },
      }));
      const ref = moeCombineBackwardRef(gate, slotPos, y, dout, T, K, dim, rows, sharedCpu);
      expectNear(`combine dGate (${mode})`, await f32(k, dGate, T * K), ref.dGate, 1e-5);
      expectNear(`combine dY (${mode}; stale rows cleared)`, await f32(k, dY, rows * dim), ref.dY, 1e-6);
      if (sharedCpu) expectNear(`combine dSharedOut (${mode})`, await f32(k, dSharedOut, T * dim), ref.dSharedOut!, 1e-6);
      if (sharedCpu?.gateLogits) expectNear(`combine dSharedGate (${mode})`, await f32(k, dSharedGate, T), ref.dSharedGate!, 1e-5);
    });
  }
});
