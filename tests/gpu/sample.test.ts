import { describe, expect, it } from 'vitest';
import { createSamplerBuffers, encodeSample, type SamplingParams } from '../../src/engine/model/sampling';
import { greedyRef, softmaxRef } from '../../src/engine/ref/ops';
import { randomF32 } from '../../src/engine/ref/random';
import { gpuKernels } from './device';
import { submit, u32, up } from './run';

async function sampleOnce(logits: Float32Array, history: number[], params: SamplingParams, step = 0): Promise<number> {
  const k = await gpuKernels();
  const bufs = createSamplerBuffers(k.device, logits.length);
  const hist = up(k, Uint32Array.from(history.length ? history : [0]));
  submit(k, (enc) => encodeSample(k, enc, { logits: up(k, logits), history: hist, historyLength: history.length, vocab: logits.length, step, params, bufs }));
  return (await u32(k, bufs.out, 1))[0]!;
}

const base: SamplingParams = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 };

describe('sampling on the GPU', () => {
  it('greedy = argmax, ties to the lower id', async () => {
    for (const V of [1, 7, 1000, 5003]) {
      const l = randomF32(V, V, 5);
      expect(await sampleOnce(l, [], base)).toBe(greedyRef(l, [], 1));
    }
    expect(await sampleOnce(new Float32Array([1, 3, 0, 3]), [], base)).toBe(1);
  });
  it('applies the repetition penalty like HF (divide positives, multiply negatives, once per id)', async () => {
    const l = new Float32Array([2.0, 1.9, -0.5, -0.4]);
    expect(await sampleOnce(l, [0, 0, 0], { ...base, repetitionPenalty: 1.1 })).toBe(greedyRef(l, [0, 0, 0], 1.1));
    expect(await sampleOnce(l, [0], { ...base, repetitionPenalty: 1.1 })).toBe(1);
  });
  it('top-k = 1 is greedy whatever the temperature and seed', async () => {
    const l = randomF32(500, 3, 4);
    for (const seed of [1, 2, 3]) expect(await sampleOnce(l, [], { ...base, temperature: 1.5, topK: 1, seed })).toBe(greedyRef(l, [], 1));
  });
  it('a seed reproduces the draw; the draws follow softmax(l / T)', async () => {
    const l = new Float32Array([1, 0, 2, -1, 0.5]);
    const p: SamplingParams = { ...base, temperature: 0.7, seed: 42 };
    expect(await sampleOnce(l, [], p, 3)).toBe(await sampleOnce(l, [], p, 3));
    const n = 400;
    const hits = new Array<number>(5).fill(0);
    for (let step = 0; step < n; step++) hits[await sampleOnce(l, [], { ...p, seed: 7 }, step)]!++;
    const probs = softmaxRef(l.map((v) => v / 0.7), 1, 5);
    for (let i = 0; i < 5; i++) expect(Math.abs(hits[i]! / n - probs[i]!)).toBeLessThan(0.08);
  });
  it('top-p keeps only the head of the distribution', async () => {
    const l = new Float32Array([5, 4.9, -3, -3, -3, -3]);
    for (let step = 0; step < 40; step++) expect(await sampleOnce(l, [], { ...base, temperature: 1, topP: 0.9, seed: 9 }, step)).toBeLessThan(2);
  });
});
