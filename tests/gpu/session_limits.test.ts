import { describe, expect, it } from 'vitest';
import { MoeModel } from '../../src/engine/model/model';
import { destroyWeights, uploadWeights } from '../../src/engine/model/weights';
import { chat } from '../../src/engine/session';
import { gpuKernels } from './device';
import { base, randomWeights, slotsOf } from './tiny_model';

describe('prompts past the context', () => {
  it('a token-id prompt that leaves no room for the reply is refused with the numbers, and the model still works', async () => {
    const k = await gpuKernels();
    const { slots, reader } = slotsOf(base, randomWeights(base));
    const weights = await uploadWeights(k.device, base, slots, reader);
    const model = new MoeModel(k, base, weights, { contextLength: 64 });
    const greedy = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 };
    const run = async (ids: number[], maxNewTokens: number) => {
      const out: string[] = [];
      for await (const ev of chat(model, null, ids, { sampling: greedy, maxNewTokens })) out.push(ev.type);
      return out;
    };
    await expect(run(new Array(60).fill(3), 10)).rejects.toThrow('The prompt is 60 tokens; the context of 64 holds at most 54 with 10 left for the reply');
    // At most half the context is held back for the reply, so a long prompt with a huge max still runs.
    const events = await run(new Array(30).fill(3), 1000);
    expect(events[0]).toBe('prompt');
    expect(events.at(-1)).toBe('done');
    model.destroy();
    destroyWeights(weights);
  });
});
