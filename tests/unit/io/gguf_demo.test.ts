/**
 * The built-in demo model (public/models/demo: qwen2_moe with a byte-level BPE tokenizer and a chat
 * template) as a Q8_0 GGUF: its tokenizer rebuilt from metadata gives the demo tokenizer's ids, and
 * greedy decoding on the CPU reference answers the arithmetic prompt as the safetensors model does.
 * GGUF_DEMO_OUT=path also writes the file (for trying the CLI or the page on it).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../../src/engine/io/checkpoint';
import { folderSources } from '../../../src/engine/io/node-source';
import { memorySource } from '../../../src/engine/io/source';
import type { HfTokenizer } from '../../../src/engine/io/tokenizer';
import type { ModelSpec, WeightSlot, TensorReader } from '../../../src/engine/model/spec';
import { GGML } from '../../../src/engine/quant/gguf-blocks';
import { refForward, type RefWeights } from '../../../src/engine/ref/model';
import { folderToGguf } from './hf_folder_to_gguf';

const DEMO = join(import.meta.dirname, '..', '..', '..', 'public', 'models', 'demo');

async function greedy(ck: { spec: ModelSpec; slots: WeightSlot[]; reader: TensorReader; tokenizer: HfTokenizer | null }, prompt: string, n: number): Promise<string> {
  const w: RefWeights = new Map();
  for (const s of ck.slots) w.set(s.name, await s.load(ck.reader));
  const ids = ck.tokenizer!.chatIds([{ role: 'user', content: prompt }]);
  const out: number[] = [];
  const V = ck.spec.vocabSize;
  for (let i = 0; i < n; i++) {
    const logits = refForward(ck.spec, w, [...ids, ...out]).logits.subarray(-V);
    let best = 0;
    for (let v = 1; v < V; v++) if (logits[v]! > logits[best]!) best = v;
    if (ck.spec.eosTokenIds.includes(best)) break;
    out.push(best);
  }
  return ck.tokenizer!.decode(out, { skipSpecialTokens: true });
}

describe('the demo model as a GGUF', () => {
  it('Q8_0: same tokenizer ids, same greedy answer', async () => {
    const bytes = await folderToGguf(DEMO, GGML.Q8_0);
    if (process.env.GGUF_DEMO_OUT) writeFileSync(process.env.GGUF_DEMO_OUT, bytes);
    const gguf = await openCheckpoint([memorySource('demo-q8_0.gguf', bytes)]);
    const st = await openCheckpoint(await folderSources(DEMO));
    for (const s of ['What is 12 + 30?', '请念一首诗。', 'def f(x):\n    return x', '<|im_start|>user\nhi<|im_end|>']) expect(gguf.tokenizer!.encode(s)).toEqual(st.tokenizer!.encode(s));
    expect(gguf.tokenizer!.chatIds([{ role: 'user', content: 'hi' }])).toEqual(st.tokenizer!.chatIds([{ role: 'user', content: 'hi' }]));
    expect(gguf.spec.eosTokenIds).toEqual(st.spec.eosTokenIds);
    const [a, b] = [await greedy(gguf, 'What is 12 + 30?', 10), await greedy(st, 'What is 12 + 30?', 10)];
    console.log(`demo greedy: safetensors ${JSON.stringify(b)}, GGUF Q8_0 ${JSON.stringify(a)}`);
    expect(a).toContain('12 + 30 =');
    expect(b).toContain('12 + 30 =');
  }, 120_000);
});
