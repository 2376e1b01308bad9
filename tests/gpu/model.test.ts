import { describe, expect, it } from 'vitest';
import { generate } from '../../src/engine/model/generate';
import { MoeModel } from '../../src/engine/model/model';
import type { ModelSpec } from '../../src/engine/model/spec';
import { uploadWeights } from '../../src/engine/model/weights';
import { refForward } from '../../src/engine/ref/model';
import { maxAbsDiff } from '../../src/engine/ref/random';
import { gpuKernels } from './device';
import { base, randomWeights, slotsOf } from './tiny_model';

const variants: Record<string, Partial<ModelSpec>> = {
  'qwen2_moe-like (bias, gated shared expert)': {},
  'qwen3_moe-like (per-head q/k norm, dense layer, head_dim ≠ H/heads, renorm)': {
    arch: 'qwen3_moe', qkvBias: false, qkNorm: 'head', headDim: 12, numLayers: 3, layers: [{ mlp: 'dense' }, { mlp: 'moe' }, { mlp: 'moe' }],
    moe: { numExperts: 16, topK: 4, normTopkProb: true, intermediateSize: 8, sharedExpert: null }, ropeTheta: 1e6,
  },
  'olmoe-like (full q/k norm, tied embeddings, top-1)': {
    arch: 'olmoe', qkvBias: false, qkNorm: 'full', tieWordEmbeddings: true,
    moe: { numExperts: 4, topK: 1, normTopkProb: false, intermediateSize: 24, sharedExpert: null },
  },
  'granitemoe-like (multipliers, linear rope scaling)': {
    arch: 'granitemoe', qkvBias: false, embeddingMultiplier: 12, residualMultiplier: 0.22, attentionScale: 0.0625, logitsDivisor: 8,
    ropeScaling: { type: 'linear', factor: 2 }, moe: { numExperts: 8, topK: 2, normTopkProb: true, intermediateSize: 16, sharedExpert: null },
  },
};

describe('GPU forward pass vs the TypeScript reference model', () => {
  for (const [label, patch] of Object.entries(variants)) {
    it(label, async () => {
      const k = await gpuKernels();
      const spec = { ...base, ...patch };
      const w = randomWeights(spec);
      const { slots, reader } = slotsOf(spec, w);
      const model = new MoeModel(k, spec, await uploadWeights(k.device, spec, slots, reader), { contextLength: 64, chunkTokens: 5 });
      const ids = [3, 17, 96, 0, 42, 42, 7, 65, 1, 88, 5];
      const ref = refForward(spec, w, ids);

      const full = await model.forward(ids, { allLogits: true, routerLogits: true });
      expect(full.rows).toBe(ids.length);
      expect(maxAbsDiff(full.logits, ref.logits)).toBeLessThan(1e-4);
      ref.routerLogits.forEach((rl, m) => expect(maxAbsDiff(full.routerLogits![m]!, rl)).toBeLessThan(1e-4));
      ref.experts.forEach((ex, m) => expect(Array.from(full.routing.experts[m]!)).toEqual(Array.from(ex)));

      // Prefill then one-token decode steps must give the same last-position logits as one long prefill.
      model.reset();
      await model.forward(ids.slice(0, 6));
      let last = await model.forward([ids[6]!]);
      for (const id of ids.slice(7)) last = await model.forward([id]);
      const V = spec.vocabSize;
      expect(maxAbsDiff(last.logits, ref.logits.subarray((ids.length - 1) * V))).toBeLessThan(1e-4);
      expect(model.position).toBe(ids.length);
      model.destroy();
    });
  }

  it('greedy generation matches argmax of the reference model step by step', async () => {
    const k = await gpuKernels();
    const w = randomWeights(base);
    const { slots, reader } = slotsOf(base, w);
    const model = new MoeModel(k, base, await uploadWeights(k.device, base, slots, reader), { contextLength: 32 });
    const ids = [5, 9, 13];
    const got: number[] = [];
    for await (const t of generate(model, ids, { maxNewTokens: 6 })) got.push(t.id);
    const want: number[] = [];
    const seq = [...ids];
    for (let i = 0; i < 6; i++) {
      const { logits } = refForward(base, w, seq);
      const last = logits.subarray((seq.length - 1) * base.vocabSize);
      const next = last.indexOf(Math.max(...last));
      want.push(next);
      seq.push(next);
    }
    expect(got).toEqual(want);

    // A stop id ends generation while the next step is already queued (pipelined decode): that
    // speculative step is rolled back, so the cache holds exactly the prompt and the fed tokens,
    // and a later forward continues as if it never ran.
    model.reset();
    const stopAt = got[2]!;
    const upTo: number[] = [];
    for await (const t of generate(model, ids, { maxNewTokens: 6, stopIds: [stopAt] })) upTo.push(t.id);
    expect(upTo).toEqual(got.slice(0, got.indexOf(stopAt) + 1));
    expect(model.position).toBe(ids.length + upTo.length - 1);
    const cont = await model.forward([stopAt]);
    const seq2 = [...ids, ...upTo];
    const full = refForward(base, w, seq2).logits.subarray((seq2.length - 1) * base.vocabSize);
    expect(maxAbsDiff(cont.logits, full)).toBeLessThan(1e-4);
    model.destroy();
  });

  it('router knobs apply to the next forward: top-k, ablation (matches the reference with the same knobs)', async () => {
    const k = await gpuKernels();
    const w = randomWeights(base);
    const { slots, reader } = slotsOf(base, w);
    const model = new MoeModel(k, base, await uploadWeights(k.device, base, slots, reader), { contextLength: 32 });
    const ids = [4, 8, 15, 16, 23, 42];
    model.setRouter({ ...model.router, topK: 3, disabled: [0, 3] });
    const r = await model.forward(ids, { allLogits: true });
    expect(r.routing.topk).toBe(3);
    for (const ex of r.routing.experts) expect(Array.from(ex).some((e) => e === 0 || e === 3)).toBe(false);
    const ref = refForward({ ...base, moe: { ...base.moe, topK: 3 } }, w, ids, { disabled: [0, 3] });
    expect(maxAbsDiff(r.logits, ref.logits)).toBeLessThan(1e-4);
    expect(() => model.setRouter({ ...model.router, topK: 9 })).toThrow(/topK: must be a whole number from 1 to 8/);
    model.destroy();
  });

  it('rejects ids outside the vocabulary and a context overflow, naming the problem', async () => {
    const k = await gpuKernels();
    const w = randomWeights(base);
    const { slots, reader } = slotsOf(base, w);
    const model = new MoeModel(k, base, await uploadWeights(k.device, base, slots, reader), { contextLength: 8 });
    await expect(model.forward([1, 97])).rejects.toThrow(/Token id 97 at 1 is outside the vocabulary/);
    await expect(model.forward(new Array(9).fill(1))).rejects.toThrow(/over the context of 8/);
    model.destroy();
  });

  it('refuses NaN weights before anything is uploaded', async () => {
    const k = await gpuKernels();
    const w = randomWeights(base);
    w.get('L1.router')![5] = NaN;
    const { slots, reader } = slotsOf(base, w);
    await expect(uploadWeights(k.device, base, slots, reader)).rejects.toThrow(/L1.router holds NaN at element 5/);
  });
});
