/**
 * PEFT adapters in and out (src/engine/train/peft.ts): an adapter written in PEFT's form reads back
 * to the same A/B and scale, merging it changes the logits exactly as merging the original does, and
 * every unsupported or malformed piece is refused naming it. (That PEFT itself loads what we write
 * and agrees on the logits is checked on the H100 machine: tools/train/check_peft.py.)
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/engine/io/checkpoint';
import { folderSources } from '../../src/engine/io/node-source';
import { memorySource } from '../../src/engine/io/source';
import { MoeModel } from '../../src/engine/model/model';
import { uploadWeights } from '../../src/engine/model/weights';
import { rng } from '../../src/engine/ref/random';
import { maxAbsDiff } from '../../src/engine/ref/random';
import { createLora, mergeLora, peftConfig, peftTensors, readLora, type LoraAdapter } from '../../src/engine/train/lora';
import { encodeSafetensors } from '../../src/engine/train/params';
import { PeftAdapterError, readPeftAdapter, uploadAdapter } from '../../src/engine/train/peft';
import { gpuKernels } from './device';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'qwen3_moe_e16k4_step2');
const IDS = [3, 17, 42, 5, 88, 1, 60, 29];

async function setup() {
  const k = await gpuKernels();
  const ck = await openCheckpoint(await folderSources(FIXTURE), k.device.limits);
  const weights = await uploadWeights(k.device, ck.spec, ck.slots, ck.reader);
  return { k, spec: ck.spec, weights, model: new MoeModel(k, ck.spec, weights, { contextLength: 32 }) };
}

/** B is zero in a fresh adapter (no effect): give it values so merging changes the model. */
function randomB(device: GPUDevice, a: LoraAdapter, seed: number): void {
  const next = rng(seed);
  for (const l of a.layers) for (const p of Object.values(l)) if (p) device.queue.writeBuffer(p.B, 0, Float32Array.from({ length: p.outDim * p.rank }, () => (next() - 0.5) * 0.2));
}

async function written(device: GPUDevice, a: LoraAdapter) {
  return { config: JSON.parse(JSON.stringify(peftConfig(a, 'fixture'))) as Record<string, unknown>, bytes: encodeSafetensors(await peftTensors(device, a)) };
}

describe('PEFT adapters', () => {
  it('round trip: written, read back, uploaded — same A, B, scale; merging it gives the same logits as the original', async () => {
    const { k, spec, model, weights } = await setup();
    const base = (await model.forward(IDS, { allLogits: true })).logits;
    const a = createLora(k.device, spec, { rank: 4, alpha: 8, targets: ['q_proj', 'v_proj', 'o_proj'], seed: 3 });
    randomB(k.device, a, 5);
    const file = await written(k.device, a);
    const host = await readPeftAdapter(file.config, memorySource('adapter_model.safetensors', file.bytes), spec);
    expect(host.scale).toBe(2);
    const back = uploadAdapter(k.device, spec, host);
    const [x, y] = [await readLora(k.device, a), await readLora(k.device, back)];
    for (let l = 0; l < spec.numLayers; l++) for (const m of ['q_proj', 'v_proj', 'o_proj'] as const) {
      expect(y[l]![m]!.A).toEqual(x[l]![m]!.A);
      expect(y[l]![m]!.B).toEqual(x[l]![m]!.B);
    }
    await mergeLora(k.device, spec, weights, a);
    model.reset();
    const viaOriginal = (await model.forward(IDS, { allLogits: true })).logits;
    expect(maxAbsDiff(viaOriginal, base)).toBeGreaterThan(1e-3);
    await mergeLora(k.device, spec, weights, a, -1);
    await mergeLora(k.device, spec, weights, back);
    model.reset();
    expect(maxAbsDiff((await model.forward(IDS, { allLogits: true })).logits, viaOriginal)).toBeLessThan(1e-5);
    model.destroy();
  });

  it('rsLoRA scales by α/√r', async () => {
    const { k, spec, model } = await setup();
    const a = createLora(k.device, spec, { rank: 4, alpha: 8, targets: ['q_proj'] });
    const file = await written(k.device, a);
    const host = await readPeftAdapter({ ...file.config, use_rslora: true }, memorySource('a.safetensors', file.bytes), spec);
    expect(host.scale).toBe(4);
    model.destroy();
  });

  it('refuses what the engine cannot apply, naming it', async () => {
    const { k, spec, model } = await setup();
    const a = createLora(k.device, spec, { rank: 4, alpha: 8, targets: ['q_proj', 'v_proj'] });
    const f = await written(k.device, a);
    const src = () => memorySource('adapter_model.safetensors', f.bytes);
    const refuse = (cfg: unknown, re: RegExp, bytes = src()) => expect(readPeftAdapter(cfg, bytes, spec)).rejects.toThrow(re);
    await refuse([], /is not a JSON object/);
    await refuse({ ...f.config, peft_type: 'IA3' }, /peft_type "IA3" is not "LORA"/);
    await refuse({ ...f.config, r: 0 }, /"r" must be a whole number/);
    await refuse({ ...f.config, use_dora: true }, /"use_dora": true is not supported/);
    await refuse({ ...f.config, rank_pattern: { q_proj: 8 } }, /"rank_pattern" \(per-module ranks\) is not supported/);
    await refuse({ ...f.config, target_modules: ['gate_proj'] }, /LoRA target "gate_proj" is not supported/);
    await refuse({ ...f.config, target_modules: ['q_proj'] }, /adapts v_proj, which target_modules does not list/);
    await refuse({ ...f.config, r: 8 }, /has shape \[4, 32\], expected \[8, 32\] \(r = 8\)/);
    const short = encodeSafetensors((await peftTensors(k.device, a)).filter((t) => !t.name.includes('layers.1.self_attn.v_proj.lora_B')));
    await refuse(f.config, /has no lora_B for layer 1's v_proj/, memorySource('a.safetensors', short));
    const extra = encodeSafetensors([...(await peftTensors(k.device, a)), { name: 'base_model.model.lm_head.lora_A.weight', shape: [1], data: new Float32Array(1) }]);
    await refuse(f.config, /"base_model.model.lm_head.lora_A.weight" is not a LoRA weight/, memorySource('a.safetensors', extra));
    await expect(readPeftAdapter(f.config, memorySource('a.safetensors', f.bytes.slice(0, 20)), spec)).rejects.toThrow(Error);
    await expect(readPeftAdapter({ ...f.config, peft_type: 'X' }, src(), spec)).rejects.toBeInstanceOf(PeftAdapterError);
    model.destroy();
  });
});
