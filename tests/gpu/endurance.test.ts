/**
 * Long-running use without leaks: every GPU buffer the engine creates is counted (gpu/tracker.ts),
 * and the count must come back to the same value after 1000 generations, after a cancelled
 * generation, after a cancelled upload and after an upload that ran out of GPU memory.
 */
import { describe, expect, it } from 'vitest';
import { createKernels } from '../../src/engine/gpu/kernels';
import { catchOom, GpuOutOfMemoryError } from '../../src/engine/gpu/oom';
import { trackBuffers } from '../../src/engine/gpu/tracker';
import { MoeModel } from '../../src/engine/model/model';
import { destroyWeights, uploadWeights } from '../../src/engine/model/weights';
import { chat } from '../../src/engine/session';
import { gpuKernels } from './device';
import { base, randomWeights, slotsOf } from './tiny_model';

const sampling = (seed: number) => ({ temperature: 0.9, topK: 0, topP: 0.95, repetitionPenalty: 1.1, seed });

async function tinyModel(contextLength = 64) {
  const k = await gpuKernels();
  const stats = trackBuffers(k.device);
  const { slots, reader } = slotsOf(base, randomWeights(base));
  const before = stats.live;
  const model = new MoeModel(k, base, await uploadWeights(k.device, base, slots, reader), { contextLength });
  return { k, stats, model, before, slots, reader };
}

async function run(model: MoeModel, prompt: number[], seed: number, maxNewTokens: number, signal?: AbortSignal): Promise<number> {
  let tokens = 0;
  for await (const ev of chat(model, null, prompt, { sampling: sampling(seed), maxNewTokens, signal })) if (ev.type === 'token') tokens++;
  return tokens;
}

describe('no GPU memory growth', () => {
  it('1000 consecutive generations keep the live-buffer count flat', { timeout: 600_000 }, async () => {
    const { stats, model, before } = await tinyModel();
    const prompts = [[5, 9, 13], [7, 1, 2, 3], [44, 45, 46, 47, 48], [90, 80, 70, 60, 50, 40]];
    const live: number[] = [];
    const bytes: number[] = [];
    let tokens = 0;
    const t0 = performance.now();
    for (let i = 0; i < 1000; i++) {
      // Two new tokens each (one pipelined decode step): the leak check is about generations — prefill, sample,
      // speculative step, feed back, scratch reuse — not their length.
      tokens += await run(model, prompts[i % prompts.length]!, i, 2);
      live.push(stats.live);
      bytes.push(stats.bytes);
    }
    const ms = performance.now() - t0;
    // The first generations create the scratch buffers and one uniform block per distinct op
    // parameter set (positions 0 … 10); after that nothing may be created without being freed.
    const warm = 50;
    console.log(
      `1000 generations, ${tokens} tokens in ${(ms / 1000).toFixed(1)} s; live buffers: ${before} before the model, ` +
        `${live[0]} after generation 1, ${live[warm - 1]} after ${warm}, ${live[999]} after 1000 (max ${Math.max(...live.slice(warm))}); ` +
        `bytes ${bytes[warm - 1]} → ${bytes[999]}; buffers created in all: ${stats.created}`,
    );
    expect(tokens).toBeGreaterThan(1000);
    expect(live[999]).toBeGreaterThan(before);
    expect(Math.max(...live.slice(warm))).toBe(live[warm - 1]);
    expect(Math.min(...live.slice(warm))).toBe(live[warm - 1]);
    expect(bytes[999]).toBe(bytes[warm - 1]);
    const held = stats.live;
    destroyWeights(model.weights);
    model.destroy();
    // What stays is the kernels' shared uniform blocks, not the model's buffers.
    expect(stats.live).toBeLessThan(held);
  });

  it('router knobs changed before every generation (new uniform blocks each time) keep the count bounded', { timeout: 300_000 }, async () => {
    const dev = (await gpuKernels()).device;
    const stats = trackBuffers(dev);
    // A small cache limit, so retiring runs many times in 300 generations.
    const limit = 128;
    const k = createKernels(dev, (await gpuKernels()).profile, limit);
    const { slots, reader } = slotsOf(base, randomWeights(base));
    const weights = await uploadWeights(dev, base, slots, reader);
    const model = new MoeModel(k, base, weights, { contextLength: 64 });
    const held = stats.live;
    const greedy = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 };
    const tokensOf = async (m: MoeModel) => {
      const ids: number[] = [];
      for await (const ev of chat(m, null, [5, 9, 13], { sampling: greedy, maxNewTokens: 4 })) if (ev.type === 'token') ids.push(ev.id);
      return ids;
    };
    let most = 0;
    for (let i = 0; i < 300; i++) {
      model.setRouter({ ...model.router, noiseStd: 0.5, seed: i });
      await tokensOf(model);
      most = Math.max(most, stats.live);
    }
    console.log(`300 generations, router noise seed changed before each: live buffers ${held} → at most ${most} (uniform cache limit ${limit}), created ${stats.created}`);
    // Model scratch (~60 buffers) plus at most the cache and one retired half.
    expect(most - held).toBeLessThan(100 + limit + limit / 2);
    // Blocks made again after retiring still hold the right values: same tokens as a fresh model.
    model.setRouter({ ...model.router, noiseStd: 0.5, seed: 7 });
    const fresh = new MoeModel(createKernels(dev, k.profile), base, weights, { contextLength: 64 });
    fresh.setRouter(model.router);
    expect(await tokensOf(model)).toEqual(await tokensOf(fresh));
    fresh.destroy();
    model.destroy();
    destroyWeights(weights);
  });

  it('a generation stopped after its first token leaves the same buffers as a finished one', async () => {
    const { stats, model } = await tinyModel();
    await run(model, [5, 9, 13], 1, 6);
    await run(model, [5, 9, 13], 2, 6);
    const after = stats.live;
    const ctl = new AbortController();
    let tokens = 0;
    for await (const ev of chat(model, null, [5, 9, 13], { sampling: sampling(3), maxNewTokens: 6, signal: ctl.signal })) {
      if (ev.type === 'token' && ++tokens === 1) ctl.abort();
      if (ev.type === 'done') expect(ev.reason).toBe('stopped');
    }
    expect(tokens).toBe(1);
    expect(stats.live).toBe(after);
    destroyWeights(model.weights);
    model.destroy();
  });

  it('an upload cancelled half-way frees every buffer it made', async () => {
    const k = await gpuKernels();
    const stats = trackBuffers(k.device);
    const { slots, reader } = slotsOf(base, randomWeights(base));
    const before = stats.live;
    const ctl = new AbortController();
    let peak = 0;
    const upload = uploadWeights(k.device, base, slots, reader, {
      signal: ctl.signal,
      onProgress: (done) => {
        peak = stats.live;
        if (done === Math.floor(slots.length / 2)) ctl.abort();
      },
    });
    await expect(upload).rejects.toThrow(/abort/i);
    expect(peak).toBeGreaterThan(before);
    expect(stats.live).toBe(before);
  });

  it('an upload that runs out of GPU memory frees what it uploaded and names the weight', async () => {
    const k = await gpuKernels();
    const stats = trackBuffers(k.device);
    const { slots, reader } = slotsOf(base, randomWeights(base));
    const before = stats.live;
    // SwiftShader has memory to spare, so the failure is injected where WebGPU reports it: the
    // 'out-of-memory' error scope of the seventh weight's upload.
    const dev = k.device;
    let pops = 0;
    const pop = dev.popErrorScope.bind(dev);
    dev.popErrorScope = async () => {
      const real = await pop();
      return ++pops === 7 ? ({ message: 'injected: allocation of 4096 bytes failed' } as GPUError) : real;
    };
    try {
      await expect(uploadWeights(dev, base, slots, reader, { format: 'int8', group: 32 })).rejects.toThrow(
        new RegExp(`The GPU ran out of memory while uploading ${slots[6]!.name.replace('.', '\\.')} \\(injected`),
      );
    } finally {
      delete (dev as Partial<GPUDevice>).popErrorScope;
    }
    expect(pops).toBe(7);
    expect(stats.live).toBe(before);
  });

  it('catchOom passes values and other errors through when nothing ran out of memory', async () => {
    const k = await gpuKernels();
    expect(await catchOom(k.device, 'probing', () => 1)).toBe(1);
    await expect(catchOom(k.device, 'probing', () => Promise.reject(new RangeError('not memory')))).rejects.toThrow(RangeError);
    const err = await catchOom(k.device, 'probing', () => Promise.reject(new GpuOutOfMemoryError('x', 'y'))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GpuOutOfMemoryError);
  });
});
