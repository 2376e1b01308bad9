/**
 * The Trainer's loop on a tiny fixture (fast on SwiftShader): gradient accumulation averages the
 * micro-batches' gradients, a run is deterministic for a seed, validation and early stopping work,
 * and the summary has the fields the CLI prints.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readF32 } from '../../src/engine/gpu/buffers';
import { openCheckpoint } from '../../src/engine/io/checkpoint';
import { folderSources } from '../../src/engine/io/node-source';
import { destroyWeights, uploadWeights } from '../../src/engine/model/weights';
import { balanceLoss } from '../../src/engine/train/losses';
import { Trainer, type Sequence, type TrainerOptions } from '../../src/engine/train/trainer';
import { gpuKernels } from './device';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'qwen2_moe_e8k2_shared');
const seqs: Sequence[] = [
  { ids: [5, 9, 17, 33, 2, 8], labels: [9, 17, 33, 2, 8, 40] },
  { ids: [100, 3, 3, 7, 61, 12, 90], labels: [3, 3, 7, 61, 12, 90, 1] },
  { ids: [44, 45, 46, 47], labels: [45, 46, 47, 48] },
  { ids: [1, 2, 3, 4, 5], labels: [2, 3, 4, 5, 6] },
];

async function trainer(opts: Partial<TrainerOptions> & Pick<TrainerOptions, 'mode'>) {
  const k = await gpuKernels();
  const ck = await openCheckpoint(await folderSources(DIR), k.device.limits);
  const weights = await uploadWeights(k.device, ck.spec, ck.slots, ck.reader);
  const t = new Trainer(k, ck.spec, weights, { seqLen: 8, steps: 4, warmupSteps: 1, valEvery: 0, ...opts });
  return { k, t, free: () => (t.destroy(), destroyWeights(weights)) };
}

async function grads(t: Trainer): Promise<Float32Array[]> {
  return Promise.all(t.set.params.map((p) => readF32(t.k.device, p.grad, p.count)));
}

describe('Trainer loop', () => {
  it('accumulating two sequences gives the mean of their gradients', async () => {
    const got: Float32Array[][] = [];
    for (const batch of [[seqs[0]!, seqs[1]!], [seqs[0]!], [seqs[1]!]]) {
      const { t, free } = await trainer({ mode: 'full', accumulate: batch.length });
      await t.trainStep(batch);
      got.push(await grads(t));
      free();
    }
    const [both, a, b] = got as [Float32Array[], Float32Array[], Float32Array[]];
    let worst = 0;
    both.forEach((g, i) => g.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - (a[i]![j]! + b[i]![j]!) / 2)))));
    expect(worst).toBeLessThan(1e-6);
  });

  it('is deterministic for a seed, validates and stops early', async () => {
    const runs = [];
    for (let r = 0; r < 2; r++) {
      const { t, free } = await trainer({ mode: 'full', steps: 6, lr: 3e-3, accumulate: 2, valEvery: 2, patience: 2, seed: 7, balance: balanceLoss('switch', 0.01) });
      const events: number[] = [];
      runs.push({ s: await t.run(seqs.slice(0, 3), seqs.slice(3), (e) => void events.push(e.gradNorm)), norms: events });
      free();
    }
    const [a, b] = runs as [(typeof runs)[0], (typeof runs)[0]];
    expect(a.s.losses).toEqual(b.s.losses);
    expect(a.norms).toEqual(b.norms);
    expect(a.s.val_losses.length).toBeGreaterThan(0);
    expect(a.s.val_loss_best).toBe(Math.min(...a.s.val_losses.map((v) => v.loss)));
    for (const key of ['loss_first', 'loss_last', 'val_loss_best', 'steps', 'lr_halvings', 'cold_experts', 'dead_experts'] as const) expect(a.s[key]).not.toBeUndefined();
    console.log(`fixture full fine-tune: losses ${a.s.losses.map((l) => l.toFixed(3)).join(' ')}; val ${a.s.val_losses.map((v) => `${v.step}:${v.loss.toFixed(3)}`).join(' ')}`);

    // A learning rate so high that validation cannot improve twice in a row stops the run early.
    const { t, free } = await trainer({ mode: 'full', steps: 40, lr: 5, warmupSteps: 0, valEvery: 1, patience: 2, seed: 7, adamw: { maxGradNorm: 0 } });
    const s = await t.run(seqs.slice(0, 3), seqs.slice(3));
    free();
    expect(s.stopped_early).toBe(true);
    expect(s.steps).toBeLessThan(40);
  });
});
