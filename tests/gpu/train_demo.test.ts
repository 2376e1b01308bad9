/**
 * Short training runs on the demo model (qwen2_moe, 4 layers, 16 experts top-2, shared expert):
 * router-only over int8 frozen weights (the backward reads them through the forward's loaders) and
 * LoRA (r = 16, α = 32 on q_proj / v_proj) over f32 weights. The training loss must fall, and a
 * merged LoRA must give MoeModel the adapted model's loss. Kept small for SwiftShader (a forward
 * of 8 tokens through the demo model takes seconds there): 4 steps on one fixed sequence, so the
 * first and last losses are of the same batch and their comparison means something.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/engine/io/checkpoint';
import { folderSources } from '../../src/engine/io/node-source';
import { MoeModel } from '../../src/engine/model/model';
import { destroyWeights, uploadWeights } from '../../src/engine/model/weights';
import { loadTrainingData } from '../../src/engine/train/data';
import { mergeLora, unmergeLora } from '../../src/engine/train/lora';
import { Trainer, type StepEvent } from '../../src/engine/train/trainer';
import { IGNORE_INDEX } from '../../src/engine/train/ref';
import { gpuKernels } from './device';

const DEMO = join(import.meta.dirname, '..', '..', 'public', 'models', 'demo');
const TEXT = [
  'The quick brown fox jumps over the lazy dog.',
  'A journey of a thousand miles begins with a single step.',
  'What is 12 + 30? 12 + 30 = 42.',
  'Define harbor: a sheltered port where ships can take on or discharge cargo.',
].map((text) => JSON.stringify({ text })).join('\n');

async function setup(format: 'f32' | 'int8') {
  const k = await gpuKernels();
  const ck = await openCheckpoint(await folderSources(DEMO), k.device.limits);
  const weights = await uploadWeights(k.device, ck.spec, ck.slots, ck.reader, { format });
  const data = loadTrainingData(TEXT, ck.tokenizer!, { seqLen: 8, valFraction: 0.25, seed: 0 });
  return { k, ck, weights, data };
}

const curve = (evs: StepEvent[]) => evs.map((e) => e.loss.toFixed(3)).join(' ');

describe('training the demo model', () => {
  it('router-only over int8 frozen weights: the training loss falls in 4 steps', async () => {
    const { k, ck, weights, data } = await setup('int8');
    const t = new Trainer(k, ck.spec, weights, { mode: 'router', steps: 4, lr: 5e-2, warmupSteps: 1, seqLen: 8, valEvery: 4, seed: 1 });
    const evs: StepEvent[] = [];
    const s = await t.run(data.train.slice(0, 1), data.val.slice(0, 1), (e) => void evs.push(e));
    console.log(`router-only losses: ${curve(evs)}; val ${s.val_losses.map((v) => v.loss.toFixed(3)).join(' ')}; grad norms ${evs.map((e) => e.gradNorm.toFixed(2)).join(' ')}`);
    expect(s.steps).toBe(4);
    expect(evs.every((e) => Number.isFinite(e.loss) && e.gradNorm > 0)).toBe(true);
    expect(evs[0]!.routing).toHaveLength(4);
    expect(evs[0]!.routing[0]!.counts.reduce((a, b) => a + b, 0)).toBe(2 * evs[0]!.tokens);
    expect(s.loss_last).toBeLessThan(s.loss_first);
    t.destroy();
    destroyWeights(weights);
  }, 120_000);

  it('LoRA on q_proj/v_proj: the training loss falls, and the merged adapter gives MoeModel the same loss', async () => {
    const { k, ck, weights, data } = await setup('f32');
    const t = new Trainer(k, ck.spec, weights, { mode: 'lora', steps: 4, lr: 1e-2, warmupSteps: 1, seqLen: 8, valEvery: 0, seed: 1 });
    const seq = data.train[0]!;
    const evs: StepEvent[] = [];
    const s = await t.run([seq], [], (e) => void evs.push(e));
    const after = await t.evalLoss(seq);
    console.log(`LoRA losses: ${curve(evs)}; after the last step ${after.toFixed(3)}`);
    expect(s.loss_last).toBeLessThan(s.loss_first);
    expect(after).toBeLessThan(s.loss_last);

    // Inference on the merged weights: MoeModel's logits give the trainer's loss for the sequence.
    const merged = await mergeLora(k.device, ck.spec, weights, t.lora!);
    expect(merged).toBe(2 * ck.spec.numLayers);
    const model = new MoeModel(k, ck.spec, weights, { contextLength: 64 });
    const ids = Array.from(seq.ids);
    const out = await model.forward(ids, { allLogits: true });
    const V = ck.spec.vocabSize;
    let ce = 0, n = 0;
    for (let i = 0; i < ids.length; i++) {
      const y = seq.labels[i]!;
      if (y === IGNORE_INDEX) continue;
      const row = out.logits.subarray(i * V, (i + 1) * V);
      const m = Math.max(...row);
      let z = 0;
      for (const v of row) z += Math.exp(v - m);
      ce += Math.log(z) + m - row[y]!;
      n++;
    }
    expect(Math.abs(ce / n - after)).toBeLessThan(1e-3);
    model.destroy();
    await unmergeLora(k.device, ck.spec, weights, t.lora!);
    t.destroy();
    destroyWeights(weights);
  }, 120_000);
});
