/**
 * Quantised models against the same model in f32 (whose parity with transformers is checked in
 * parity.test.ts), on the demo checkpoint (every K there is a multiple of 128, so every attention
 * and expert matrix is quantised).
 * Bounds, from each weight's error ≤ s/2 = max|w_group| / (2·qmax): int8 perturbs each matmul by
 * ~0.4 % of its scale, int4 by ~7 %; through 4 layers the logits move by at most the stated
 * fractions of their spread (measured: see the console lines; bounds leave ~2× headroom).
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/engine/io/checkpoint';
import { folderSources } from '../../src/engine/io/node-source';
import { generate } from '../../src/engine/model/generate';
import { MoeModel } from '../../src/engine/model/model';
import { uploadWeights } from '../../src/engine/model/weights';
import type { QuantizedMatrix, WeightFormat } from '../../src/engine/quant/pack';
import type { QuantCache } from '../../src/engine/model/weights';
import { maxAbsDiff } from '../../src/engine/ref/random';
import { gpuKernels } from './device';

const DEMO = join(import.meta.dirname, '..', '..', 'public', 'models', 'demo');
// Bounded: the RMS of the logit error ÷ the std of the logits (the max over 14 × 4096 logits is
// printed too but is a noisy single value). Measured on the demo model: RMS int8 g32 0.0048,
// g128 0.0055, int4 g32 0.080, g128 0.174; max 0.035 / 0.036 / 0.62 / 1.82; greedy 16/16 identical.
const BOUND: Record<string, { logits: number; greedy: number }> = {
  'int8 g32': { logits: 0.02, greedy: 1 },
  'int8 g128': { logits: 0.02, greedy: 1 },
  'int4 g32': { logits: 0.25, greedy: 0.25 },
  'int4 g128': { logits: 0.3, greedy: 0.25 },
};

let opened: ReturnType<typeof openCheckpoint> | undefined;

async function run(format: WeightFormat, group: number) {
  const k = await gpuKernels();
  opened ??= folderSources(DEMO).then((files) => openCheckpoint(files, k.device.limits));
  const ck = await opened;
  const weights = await uploadWeights(k.device, ck.spec, ck.slots, ck.reader, { format, group });
  const model = new MoeModel(k, ck.spec, weights, { contextLength: 128 });
  const ids = ck.tokenizer!.chatIds([{ role: 'user', content: 'Define harbor.' }]);
  const full = await model.forward(ids, { allLogits: true });
  model.reset();
  const greedy: number[] = [];
  for await (const t of generate(model, ids, { maxNewTokens: 16 })) greedy.push(t.id);
  model.destroy();
  return { logits: full.logits, greedy, bytes: weights.bytes };
}

describe('quantised-matrix cache', () => {
  it('a load from the cache reads no expert tensor and gives the same logits', async () => {
    const k = await gpuKernels();
    opened ??= folderSources(DEMO).then((files) => openCheckpoint(files, k.device.limits));
    const ck = await opened;
    const store = new Map<string, QuantizedMatrix>();
    const cache: QuantCache = { get: async (n) => store.get(n) ?? null, put: async (n, q) => void store.set(n, q) };
    const first = await uploadWeights(k.device, ck.spec, ck.slots, ck.reader, { format: 'int4', group: 32, cache });
    expect(store.size).toBe(ck.spec.numLayers * 8); // q, k, v, o, experts gate_up/down, shared gate_up/down
    const reads: string[] = [];
    const spy = { ...ck.reader, has: ck.reader.has.bind(ck.reader), shape: ck.reader.shape.bind(ck.reader), read: (n: string) => (reads.push(n), ck.reader.read(n)) };
    const second = await uploadWeights(k.device, ck.spec, ck.slots, spy, { format: 'int4', group: 32, cache });
    expect(reads.some((n) => n.includes('experts'))).toBe(false);
    const ids = [5, 9, 200, 3000];
    const run = async (w: typeof first) => {
      const m = new MoeModel(k, ck.spec, w, { contextLength: 16 });
      const r = await m.forward(ids, { allLogits: true });
      m.destroy();
      return r.logits;
    };
    expect(maxAbsDiff(await run(first), await run(second))).toBe(0);
  });
});

describe('int8 / int4 models vs the f32 model', () => {
  it('stay within the stated bounds', async () => {
    const ref = await run('f32', 32);
    let mean = 0;
    for (const v of ref.logits) mean += v / ref.logits.length;
    const spread = Math.sqrt(ref.logits.reduce((a, v) => a + (v - mean) ** 2, 0) / ref.logits.length);
    for (const [label, bound] of Object.entries(BOUND)) {
      const [format, g] = label.split(' g') as [WeightFormat, string];
      const q = await run(format, Number(g));
      const maxRel = maxAbsDiff(q.logits, ref.logits) / spread;
      const rel = Math.sqrt(q.logits.reduce((a, v, i) => a + (v - ref.logits[i]!) ** 2, 0) / q.logits.length) / spread;
      let same = 0;
      while (same < ref.greedy.length && q.greedy[same] === ref.greedy[same]) same++;
      console.log(`${label}: rms(Δlogit) / std(logits) = ${rel.toFixed(4)}, max ${maxRel.toFixed(3)}, greedy prefix agreement ${same}/${ref.greedy.length}, weights ${(q.bytes / 2 ** 20).toFixed(2)} MiB vs ${(ref.bytes / 2 ** 20).toFixed(2)} MiB f32`);
      expect(rel).toBeLessThanOrEqual(bound.logits);
      expect(same / ref.greedy.length).toBeGreaterThanOrEqual(bound.greedy);
      expect(q.bytes).toBeLessThan(ref.bytes);
    }
  });
});
