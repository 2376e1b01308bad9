import { describe, expect, it } from 'vitest';
import { createStorage, dispatch, readF32, readU32, submitEncoder, uploadStorage } from '../../src/engine/gpu/buffers';
import { createMoeScratch, destroyMoeScratch, GROUP_TILE, maxTiles } from '../../src/engine/moe/experts';
import { createRouterTables, encodeRoute, expertCapacity, writeRouterTables, type RouterConfig } from '../../src/engine/moe/router';
import { runRoute } from '../../src/engine/ops/oneshot';
import { routeRef } from '../../src/engine/ref/ops';
import { maxAbsDiff, randomF32 } from '../../src/engine/ref/random';
import { PLAIN_ROUTER, TOLERANCE } from '../../src/engine/selftest';
import { gpuKernels } from './device';

/** Logits on a 1/8 grid: distinct values are far apart, equal values tie exactly on both sides. */
function gridLogits(n: number, seed: number): Float32Array {
  return randomF32(n, seed, 3).map((v) => Math.round(v * 8) / 8);
}

const router = (patch: Partial<RouterConfig>): RouterConfig => ({ ...PLAIN_ROUTER, ...patch });

describe('router (HF semantics with neutral knobs) on WebGPU vs TS reference', () => {
  const cases: Array<[number, number, number, boolean]> = [
    [1, 4, 1, false],
    [5, 8, 2, true],
    [5, 8, 2, false],
    [37, 16, 2, true],
    [65, 60, 4, true],
    [3, 64, 8, false],
    [130, 256, 8, true],
  ];
  for (const [T, E, K, renorm] of cases) {
    it(`${T} tokens, ${E} experts, top-${K}${renorm ? ', renormalised' : ''}`, async () => {
      const k = await gpuKernels();
      const logits = gridLogits(T * E, T * E + K);
      const got = await runRoute(k, logits, T, E, router({ topK: K, renormalize: renorm }));
      const ref = routeRef(logits, T, E, K, renorm);
      expect(Array.from(got.idx)).toEqual(Array.from(ref.idx));
      expect(maxAbsDiff(got.weights, ref.weights)).toBeLessThanOrEqual(TOLERANCE.topkWeights);
      expect(maxAbsDiff(got.probs, ref.probs)).toBeLessThanOrEqual(TOLERANCE.softmax);
    });
  }

  it('breaks ties toward the lower expert index, like torch.topk', async () => {
    const k = await gpuKernels();
    const got = await runRoute(k, new Float32Array([0, 1, 3, 0, 0, 3, 3, 1]), 1, 8, router({ topK: 4 }));
    expect(Array.from(got.idx)).toEqual([2, 5, 6, 1]);
  });
});

describe('router knobs', () => {
  const T = 24, E = 16;
  const logits = gridLogits(T * E, 99);
  const check = async (cfg: Partial<RouterConfig>, ref: Parameters<typeof routeRef>[5]) => {
    const k = await gpuKernels();
    const r = router({ topK: 3, ...cfg });
    const got = await runRoute(k, logits, T, E, r);
    const want = routeRef(logits, T, E, r.topK, r.renormalize, ref);
    expect(Array.from(got.idx)).toEqual(Array.from(want.idx));
    expect(maxAbsDiff(got.weights, want.weights)).toBeLessThan(2e-6);
    return got;
  };
  it('temperature sharpens / flattens the scores', () => check({ temperature: 0.7 }, { temperature: 0.7 }));
  it('sigmoid scoring', () => check({ scoring: 'sigmoid', renormalize: true }, { scoring: 'sigmoid' }));
  it('per-expert bias steers selection but not the weights', async () => {
    const bias = Array.from({ length: E }, (_, e) => (e === 5 ? 10 : 0));
    const got = await check({ bias }, { bias });
    for (let t = 0; t < T; t++) expect(got.idx[t * 3]).toBe(5);
  });
  it('masked experts are never chosen and the softmax renormalises without them', async () => {
    const disabled = [0, 1, 2, 3, 4, 5, 6, 7];
    const got = await check({ disabled, renormalize: true }, { disabled });
    expect(Array.from(got.idx).every((e) => e >= 8)).toBe(true);
  });
  it('every expert masked: no expert, zero weight', async () => {
    const k = await gpuKernels();
    const got = await runRoute(k, logits.subarray(0, E), 1, E, router({ topK: 2, disabled: [...Array(E).keys()] }));
    expect(Array.from(got.idx)).toEqual([0xffffffff, 0xffffffff]);
    expect(Array.from(got.weights)).toEqual([0, 0]);
  });
  it('group-limited routing (max and top-2-sum group scores)', async () => {
    await check({ nGroup: 4, topkGroup: 2 }, { nGroup: 4, topkGroup: 2 });
    await check({ nGroup: 8, topkGroup: 3, groupScore: 'top2sum', scoring: 'sigmoid' }, { nGroup: 8, topkGroup: 3, groupScore: 'top2sum', scoring: 'sigmoid' });
  });
  it('routed scale multiplies the gate weights', () => check({ routedScale: 2.5, renormalize: true }, { routedScale: 2.5 }));
  it('noise is seeded: same seed and position → same routing; another seed → different', async () => {
    const k = await gpuKernels();
    const r = router({ topK: 2, noiseStd: 2, seed: 7 });
    const a = await runRoute(k, logits, T, E, r, 10);
    const b = await runRoute(k, logits, T, E, r, 10);
    const c = await runRoute(k, logits, T, E, { ...r, seed: 8 }, 10);
    const plain = await runRoute(k, logits, T, E, { ...r, noiseStd: 0 }, 10);
    expect(Array.from(a.idx)).toEqual(Array.from(b.idx));
    expect(Array.from(a.idx)).not.toEqual(Array.from(c.idx));
    expect(Array.from(a.idx)).not.toEqual(Array.from(plain.idx));
  });
});

describe('routing with its plan (one decode token) vs routing then moe_plan.wgsl', () => {
  // The plan's outputs for one token: what moe_plan writes from idx, and what main_plan must write too.
  async function both(logits: Float32Array, E: number, r: RouterConfig) {
    const k = await gpuKernels();
    const K = r.topK;
    const tiles = maxTiles(K, E);
    const run = async (fused: boolean) => {
      const bl = uploadStorage(k.device, logits);
      const tables = createRouterTables(k.device, E);
      writeRouterTables(k.device, tables, r, E);
      const probs = createStorage(k.device, E * 4), idx = createStorage(k.device, K * 4), gates = createStorage(k.device, K * 4);
      const s = createMoeScratch(k.device, K, E, 8, 8);
      // Stale values from an earlier step: everything the plan covers must be overwritten.
      k.device.queue.writeBuffer(s.tiles, 0, new Uint32Array(tiles * 4).fill(7));
      k.device.queue.writeBuffer(s.slotPos, 0, new Uint32Array(K).fill(5));
      const enc = k.device.createCommandEncoder();
      const plan = fused ? { sorted: s.sorted, slotPos: s.slotPos, tiles: s.tiles, maxTiles: tiles } : undefined;
      encodeRoute(k, enc, { logits: bl, tables, probs, idx, weights: gates, tokens: 1, experts: E, position: 3, router: r, plan });
      if (!fused) {
        const params = k.uniform([{ u32: K }, { u32: E }, { u32: GROUP_TILE }, { u32: tiles }, { u32: expertCapacity(r, 1, E) }, { u32: 0 }, { u32: 0 }, { u32: 0 }]);
        dispatch(k.device, k.pipelines.get('moe_plan.wgsl'), [params, idx, s.sorted, s.slotPos, s.tiles, s.counts], [1], enc);
      }
      submitEncoder(k.device, enc);
      const idxs = await readU32(k.device, idx, K);
      const slotPos = await readU32(k.device, s.slotPos, K);
      const used = Array.from(slotPos).filter((p) => p !== 0xffffffff).length;
      const out = {
        idx: Array.from(idxs), gates: Array.from(await readF32(k.device, gates, K)),
        slotPos: Array.from(slotPos), sorted: Array.from(await readU32(k.device, s.sorted, K)).slice(0, used), tiles: Array.from(await readU32(k.device, s.tiles, tiles * 4)),
      };
      for (const b of [bl, probs, idx, gates, tables.bias, tables.enabled]) b.destroy();
      destroyMoeScratch(s);
      return out;
    };
    return { fused: await run(true), separate: await run(false) };
  }
  const cases: Array<[string, number, Partial<RouterConfig>]> = [
    ['64 experts, top-8', 64, { topK: 8, renormalize: true }],
    ['16 experts, top-2, capacity factor 1', 16, { topK: 2, capacityFactor: 1 }],
    ['256 experts, top-8, sigmoid, 8 groups keep 4 (top-2 sum), bias', 256, { topK: 8, scoring: 'sigmoid', nGroup: 8, topkGroup: 4, groupScore: 'top2sum', bias: Array.from({ length: 256 }, (_, e) => (e % 7) / 50) }],
    ['8 experts, top-4, only 2 left after ablation (slots with no expert)', 8, { topK: 4, disabled: [0, 1, 2, 3, 4, 5] }],
    ['16 experts, top-3, noise', 16, { topK: 3, noiseStd: 1.5, seed: 11 }],
  ];
  for (const [name, E, patch] of cases) {
    it(name, async () => {
      const { fused, separate } = await both(gridLogits(E, E * 31 + 1), E, router(patch));
      expect(fused).toEqual(separate);
      // Every chosen slot has a place; the others are dropped.
      expect(fused.slotPos.filter((p) => p !== 0xffffffff).length).toBe(fused.idx.filter((i) => i !== 0xffffffff).length);
    });
  }
});
