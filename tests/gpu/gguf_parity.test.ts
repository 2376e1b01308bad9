/**
 * GGUF checkpoints on the GPU model: each fixture converted to F32 GGUF matches HF transformers'
 * logits and greedy tokens (as the safetensors version does in parity.test.ts), and a Q8_0 GGUF
 * (dequantized on load, then optionally requantized to int8) matches the CPU reference run on the
 * same dequantized weights.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/engine/io/checkpoint';
import { folderSources } from '../../src/engine/io/node-source';
import { SafetensorsCheckpoint } from '../../src/engine/io/safetensors';
import { memorySource } from '../../src/engine/io/source';
import { generate } from '../../src/engine/model/generate';
import { MoeModel } from '../../src/engine/model/model';
import { uploadWeights } from '../../src/engine/model/weights';
import { GGML } from '../../src/engine/quant/gguf-blocks';
import { refForward, type RefWeights } from '../../src/engine/ref/model';
import { maxAbsDiff } from '../../src/engine/ref/random';
import { hfToGguf, type HfTensors } from '../unit/io/gguf_writer';
import { gpuKernels } from './device';

const ROOT = join(import.meta.dirname, '..', 'fixtures');
const FIXTURES = readdirSync(ROOT).filter((d) => /^(qwen2_moe|qwen3_moe|mixtral|olmoe|granitemoe)/.test(d)).sort();
/** As parity.test.ts: f32 engine vs f32 PyTorch, different summation orders. */
const LOGIT_TOL = 1e-4;

interface Reference {
  input_ids: number[];
  logits: number[][];
  greedy: { prompt_ids: number[]; new_ids: number[] };
}

async function gguf(name: string, type: number, opts: { splitKvB?: boolean } = {}) {
  const files = await folderSources(join(ROOT, name));
  const st = await SafetensorsCheckpoint.open(files);
  const tensors: HfTensors = new Map();
  for (const n of st.names()) tensors.set(n, { shape: st.shape(n), data: await st.read(n) });
  const config = JSON.parse(readFileSync(join(ROOT, name, 'config.json'), 'utf8')) as Record<string, unknown>;
  return hfToGguf(config, tensors, { type, ...opts }).bytes;
}

describe('GGUF checkpoints on the GPU', () => {
  for (const name of FIXTURES) {
    it(`${name}: F32 GGUF matches transformers (logits, greedy); Q8_0 GGUF matches the CPU reference`, async () => {
      const k = await gpuKernels();
      const ref = JSON.parse(readFileSync(join(ROOT, name, 'reference.json'), 'utf8')) as Reference;
      const ck = await openCheckpoint([memorySource(`${name}.gguf`, await gguf(name, GGML.F32))], k.device.limits);
      const model = new MoeModel(k, ck.spec, await uploadWeights(k.device, ck.spec, ck.slots, ck.reader), { contextLength: 64, chunkTokens: 32 });
      const full = await model.forward(ref.input_ids, { allLogits: true });
      expect(maxAbsDiff(full.logits, Float32Array.from(ref.logits.flat()))).toBeLessThanOrEqual(LOGIT_TOL);
      model.reset();
      const got: number[] = [];
      for await (const t of generate(model, ref.greedy.prompt_ids, { maxNewTokens: ref.greedy.new_ids.length })) got.push(t.id);
      expect(got).toEqual(ref.greedy.new_ids);
      model.destroy();

      const q = await openCheckpoint([memorySource(`${name}-q8_0.gguf`, await gguf(name, GGML.Q8_0))], k.device.limits);
      const w: RefWeights = new Map();
      for (const s of q.slots) w.set(s.name, await s.load(q.reader));
      const cpu = refForward(q.spec, w, ref.input_ids).logits;
      const qm = new MoeModel(k, q.spec, await uploadWeights(k.device, q.spec, q.slots, q.reader), { contextLength: 64, chunkTokens: 32 });
      const gpu = (await qm.forward(ref.input_ids, { allLogits: true })).logits;
      expect(maxAbsDiff(gpu, cpu)).toBeLessThanOrEqual(LOGIT_TOL);
      qm.destroy();
    });
  }
});

// DeepSeek (deepseek2) has no CPU reference forward (latent attention is GPU-only), so its GGUF
// versions are checked against transformers directly, with kv_b whole and as newer llama.cpp
// splits it (attn_k_b transposed + attn_v_b).
const DEEPSEEK = readdirSync(ROOT).filter((d) => d.startsWith('deepseek_')).sort();
describe('DeepSeek GGUF (deepseek2) on the GPU', () => {
  for (const name of DEEPSEEK) {
    it(`${name}: F32 GGUF matches transformers, kv_b whole or split`, async () => {
      const k = await gpuKernels();
      const ref = JSON.parse(readFileSync(join(ROOT, name, 'reference.json'), 'utf8')) as Reference;
      for (const splitKvB of [false, true]) {
        const ck = await openCheckpoint([memorySource(`${name}.gguf`, await gguf(name, GGML.F32, { splitKvB }))], k.device.limits);
        const st = await openCheckpoint(await folderSources(join(ROOT, name)), k.device.limits);
        // GGUF keeps DeepSeek's rope rows interleaved (llama.cpp's layout); a halves checkpoint was interleaved on conversion.
        expect({ ...ck.spec, bosTokenId: null, eosTokenIds: [] }).toEqual({ ...st.spec, bosTokenId: null, eosTokenIds: [], rmsNormEps: Math.fround(st.spec.rmsNormEps), ropeTheta: Math.fround(st.spec.ropeTheta), attentionScale: ck.spec.attentionScale, ropeScaling: ck.spec.ropeScaling, mla: { ...st.spec.mla!, ropeInterleaved: true }, moe: { ...st.spec.moe, routedScale: Math.fround(st.spec.moe.routedScale!) } });
        const model = new MoeModel(k, ck.spec, await uploadWeights(k.device, ck.spec, ck.slots, ck.reader), { contextLength: 64, chunkTokens: 32 });
        const full = await model.forward(ref.input_ids, { allLogits: true });
        expect(maxAbsDiff(full.logits, Float32Array.from(ref.logits.flat())), `split kv_b: ${splitKvB}`).toBeLessThanOrEqual(LOGIT_TOL);
        model.reset();
        const got: number[] = [];
        for await (const t of generate(model, ref.greedy.prompt_ids, { maxNewTokens: ref.greedy.new_ids.length })) got.push(t.id);
        expect(got).toEqual(ref.greedy.new_ids);
        model.destroy();
      }
    });
  }
});
