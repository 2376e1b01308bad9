import { describe, expect, it } from 'vitest';
import { attentionPlan, attentionScratchBytes, encodeAttention } from '../../src/engine/ops/attention';
import { encodeAddScaled, encodeSwiGlu } from '../../src/engine/ops/elementwise';
import { encodeEmbedding } from '../../src/engine/ops/embedding';
import { encodeQkvRope, ropeTable, uploadRopeTable } from '../../src/engine/ops/rope';
import { attentionRef, embeddingRef, rmsnormRef, ropeRef, swigluRef } from '../../src/engine/ref/ops';
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
  for (const [T, H, KVH, D, start, norm] of [[1, 4, 2, 8, 0, 'none'], [3, 4, 2, 16, 5, 'head'], [2, 6, 2, 32, 40, 'full'], [1, 32, 4, 128, 100, 'head']] as const) {
    it(`fused q/k norm + RoPE + cache write from qkv: T=${T} H=${H} KVH=${KVH} D=${D} start=${start} norm=${norm}`, async () => {
      const k = await gpuKernels();
      const P = 128, W = (H + 2 * KVH) * D, eps = 1e-6;
      const table = ropeTable(P, D, 10000, { type: 'default' });
      const qkv = randomF32(T * W, T + D, 3);
      const qw = randomF32(norm === 'full' ? H * D : D, 11), kw = randomF32(norm === 'full' ? KVH * D : D, 12);
      const kc0 = randomF32(P * KVH * D, 5), vc0 = randomF32(P * KVH * D, 6);
      const [bkc, bvc, qOut] = [up(k, kc0), up(k, vc0), empty(k, T * H * D)];
      submit(k, (enc) => encodeQkvRope(k, enc, {
        qkv: up(k, qkv), qOut, kCache: bkc, vCache: bvc, table: uploadRopeTable(k.device, table), norm, qNorm: up(k, qw), kNorm: up(k, kw), eps,
        tokens: T, heads: H, kvHeads: KVH, headDim: D, start,
      }));
      const part = (off: number, n: number) => Float32Array.from({ length: T * n }, (_, i) => qkv[Math.floor(i / n) * W + off + (i % n)]!);
      let q: Float32Array = part(0, H * D), kk: Float32Array = part(H * D, KVH * D);
      const v = part((H + KVH) * D, KVH * D);
      if (norm === 'head') [q, kk] = [rmsnormRef(q, qw, T * H, D, eps), rmsnormRef(kk, kw, T * KVH, D, eps)];
      if (norm === 'full') [q, kk] = [rmsnormRef(q, qw, T, H * D, eps), rmsnormRef(kk, kw, T, KVH * D, eps)];
      expect(maxAbsDiff(await f32(k, qOut, T * H * D), ropeRef(q, table.cos, table.sin, T, H, D, start))).toBeLessThan(1e-5);
      const kWant = kc0.slice(), vWant = vc0.slice();
      kWant.set(ropeRef(kk, table.cos, table.sin, T, KVH, D, start), start * KVH * D);
      vWant.set(v, start * KVH * D);
      expect(maxAbsDiff(await f32(k, bkc, kc0.length), kWant)).toBeLessThan(1e-5);
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
  // DeepSeek's latent attention: one cache row [c | k_rope] per position is the key, and its first
  // kv_lora_rank values are the value; keys wider than 256 and values wider than 64·4.
  const latent: Array<[number, number, number, number, number]> = [
    // T, H, DK, DV, start
    [3, 4, 24, 16, 5],
    [1, 16, 576, 512, 300],
    [5, 2, 72, 64, 0],
  ];
  for (const [T, H, DK, DV, start] of latent) {
    it(`latent T=${T} H=${H} key ${DK} value ${DV} (shared buffer) start=${start}`, async () => {
      const k = await gpuKernels();
      const P = start + T;
      const q = randomF32(T * H * DK, 11 + T, 1);
      const cache = randomF32(P * DK, 12 + P, 1);
      const out = empty(k, T * H * DV);
      const scale = 0.3;
      const scratch = empty(k, attentionScratchBytes(T, H, DV, P) / 4);
      const c = up(k, cache);
      submit(k, (enc) => encodeAttention(k, enc, { q: up(k, q), kCache: c, vCache: c, out, scratch, tokens: T, heads: H, kvHeads: 1, headDim: DK, vDim: DV, vStride: DK, start, scale }));
      expect(maxAbsDiff(await f32(k, out, T * H * DV), attentionRef(q, cache, cache, T, H, 1, DK, start, scale, DV, DK))).toBeLessThan(1e-5);
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
