import { describe, expect, it } from 'vitest';
import { attentionPlan, attentionScratchBytes, encodeAttention } from '../../src/engine/ops/attention';
import { encodeAddScaled, encodeSwiGlu } from '../../src/engine/ops/elementwise';
import { encodeEmbedding } from '../../src/engine/ops/embedding';
import { encodeRope, encodeRopeToCache, ropeTable, uploadRopeTable } from '../../src/engine/ops/rope';
import { attentionRef, embeddingRef, ropeRef, swigluRef } from '../../src/engine/ref/ops';
import { maxAbsDiff, randomF32, rng } from '../../src/engine/ref/random';
import { gpuKernels } from './device';
import { empty, f32, submit, up } from './run';

describe('embedding lookup', () => {
  it('gathers rows and scales them (Granite multiplier)', async () => {
    const k = await gpuKernels();
    const [V, D] = [37, 19];
    const table = randomF32(V * D, 1);
    const ids = new Uint32Array([0, 36, 5, 5, 12]);
    const out = empty(k, ids.length * D);
    submit(k, (enc) => encodeEmbedding(k, enc, { ids: up(k, ids), table: up(k, table), out, tokens: ids.length, dim: D, vocab: V, scale: 12 }));
    expect(maxAbsDiff(await f32(k, out, ids.length * D), embeddingRef(ids, table, D, 12))).toBe(0);
  });
});

describe('rope (rotate_half) vs reference', () => {
  for (const [T, H, D, start, theta] of [[1, 1, 2, 0, 10000], [5, 3, 8, 0, 10000], [3, 4, 64, 17, 1e6], [1, 2, 32, 99, 500]] as const) {
    it(`T=${T} heads=${H} D=${D} start=${start} θ=${theta}`, async () => {
      const k = await gpuKernels();
      const table = ropeTable(128, D, theta, { type: 'default' });
      const x = randomF32(T * H * D, T + D);
      const buf = up(k, x);
      submit(k, (enc) => encodeRope(k, enc, { x: buf, table: uploadRopeTable(k.device, table), tokens: T, heads: H, headDim: D, start }));
      expect(maxAbsDiff(await f32(k, buf, x.length), ropeRef(x, table.cos, table.sin, T, H, D, start))).toBeLessThan(1e-6);
    });
  }
  for (const [T, H, KVH, D, start] of [[1, 4, 2, 8, 0], [3, 4, 4, 16, 9], [2, 6, 2, 64, 100]] as const) {
    it(`q in place, k and v into the cache: T=${T} H=${H} KVH=${KVH} D=${D} start=${start}`, async () => {
      const k = await gpuKernels();
      const P = 128;
      const table = ropeTable(P, D, 10000, { type: 'default' });
      const q = randomF32(T * H * D, T + D), kk = randomF32(T * KVH * D, T + D + 1), v = randomF32(T * KVH * D, T + D + 2);
      const kc0 = randomF32(P * KVH * D, 5), vc0 = randomF32(P * KVH * D, 6);
      const [bq, bkc, bvc] = [up(k, q), up(k, kc0), up(k, vc0)];
      submit(k, (enc) => encodeRopeToCache(k, enc, { q: bq, k: up(k, kk), v: up(k, v), kCache: bkc, vCache: bvc, table: uploadRopeTable(k.device, table), tokens: T, heads: H, kvHeads: KVH, headDim: D, start }));
      expect(maxAbsDiff(await f32(k, bq, q.length), ropeRef(q, table.cos, table.sin, T, H, D, start))).toBeLessThan(1e-6);
      const row0 = start * KVH * D;
      const kWant = kc0.slice(), vWant = vc0.slice();
      kWant.set(ropeRef(kk, table.cos, table.sin, T, KVH, D, start), row0);
      vWant.set(v, row0);
      expect(maxAbsDiff(await f32(k, bkc, kc0.length), kWant)).toBeLessThan(1e-6);
      expect(maxAbsDiff(await f32(k, bvc, vc0.length), vWant)).toBe(0);
    });
  }
  it('linear scaling divides positions by the factor', () => {
    const a = ropeTable(64, 8, 10000, { type: 'linear', factor: 4 });
    const b = ropeTable(64, 8, 10000, { type: 'default' });
    expect(a.cos[8 * 4 + 1]).toBeCloseTo(b.cos[2 * 4 + 1]!, 7);
  });
});

describe('causal GQA attention over the KV cache vs reference', () => {
  const cases: Array<[number, number, number, number, number]> = [
    // T, H, KVH, D, start
    [1, 1, 1, 4, 0],
    [7, 4, 2, 16, 0],
    [1, 4, 1, 32, 70],
    [3, 6, 3, 64, 130],
    [65, 2, 2, 8, 0],
    [2, 8, 8, 256, 5],
    // long contexts: keys split over many workgroups, then combined
    [1, 2, 1, 16, 1000],
    [4, 4, 2, 8, 700],
    [9, 1, 1, 4, 3000],
  ];
  it('splits long contexts and not short prefills', () => {
    expect(attentionPlan(1, 16, 1024).splits).toBeGreaterThan(4);
    expect(attentionPlan(512, 16, 512).splits).toBe(1);
    const { splits, chunk } = attentionPlan(1, 16, 4096);
    expect(splits * chunk).toBeGreaterThanOrEqual(4096);
    expect(chunk % 64).toBe(0);
  });
  for (const [T, H, KVH, D, start] of cases) {
    it(`T=${T} H=${H} KVH=${KVH} D=${D} start=${start}`, async () => {
      const k = await gpuKernels();
      const P = start + T;
      const q = randomF32(T * H * D, 1 + T, 2);
      const kc = randomF32(P * KVH * D, 2 + P, 2);
      const vc = randomF32(P * KVH * D, 3 + P);
      const out = empty(k, T * H * D);
      const scale = 1 / Math.sqrt(D);
      const scratch = empty(k, attentionScratchBytes(T, H, D, P) / 4);
      submit(k, (enc) => encodeAttention(k, enc, { q: up(k, q), kCache: up(k, kc), vCache: up(k, vc), out, scratch, tokens: T, heads: H, kvHeads: KVH, headDim: D, start, scale }));
      expect(maxAbsDiff(await f32(k, out, T * H * D), attentionRef(q, kc, vc, T, H, KVH, D, start, scale))).toBeLessThan(2e-6);
    });
  }
});

describe('elementwise', () => {
  it('swiglu over [gate | up] rows', async () => {
    const k = await gpuKernels();
    const [R, I] = [5, 37];
    const gu = randomF32(R * 2 * I, 9, 6);
    const out = empty(k, R * I);
    submit(k, (enc) => encodeSwiGlu(k, enc, { gateUp: up(k, gu), out, rows: R, inter: I }));
    expect(maxAbsDiff(await f32(k, out, R * I), swigluRef(gu, R, I))).toBeLessThan(1e-5);
  });
  it('h += alpha · y', async () => {
    const k = await gpuKernels();
    const r = rng(3);
    const h = Float32Array.from({ length: 300 }, r), y = Float32Array.from({ length: 300 }, r);
    const hb = up(k, h);
    submit(k, (enc) => encodeAddScaled(k, enc, { h: hb, y: up(k, y), n: 300, alpha: 0.22 }));
    const want = h.map((v, i) => Math.fround(v + 0.22 * y[i]!));
    expect(maxAbsDiff(await f32(k, hb, 300), want)).toBeLessThan(1e-6);
  });
});
