/**
 * The backward kernels and AdamW composed into a real training loop on a tiny model
 * (embedding → RMSNorm → linear head with bias → cross-entropy), forward through the engine's own
 * forward ops, against the same loop run on the CPU from the TypeScript references. Checks that the
 * APIs fit together (layouts, accumulate flags, in-place loss gradient, the optimizer's state) and
 * that the loss goes down.
 */
import { describe, expect, it } from 'vitest';
import { uploadStorage } from '../../src/engine/gpu/buffers';
import { encodeEmbedding } from '../../src/engine/ops/embedding';
import { encodeMatmul } from '../../src/engine/ops/matmul';
import { encodeRmsNorm } from '../../src/engine/ops/rmsnorm';
import { embeddingRef, matmulRef, rmsnormRef } from '../../src/engine/ref/ops';
import { randomF32 } from '../../src/engine/ref/random';
import { encodeEmbeddingBackward, uploadEmbeddingGradPlan } from '../../src/engine/train/ops/embedding';
import { encodeLinearBackward } from '../../src/engine/train/ops/linear';
import { crossEntropyTargets, encodeCrossEntropy } from '../../src/engine/train/ops/loss';
import { encodeRmsNormBackward } from '../../src/engine/train/ops/rmsnorm';
import { AdamW } from '../../src/engine/train/optim';
import { adamwStepRef, clipScaleRef, crossEntropyRef, embeddingBackwardRef, gradNormRef, IGNORE_INDEX, linearBackwardRef, rmsnormBackwardRef } from '../../src/engine/train/ref';
import { learningRate } from '../../src/engine/train/schedule';
import { gpuKernels } from './device';
import { empty, f32, submit, up } from './run';

describe('a training loop from the backward kernels and AdamW', () => {
  it('embedding → RMSNorm → linear → cross-entropy: GPU losses follow the CPU references for 20 steps and fall', async () => {
    const k = await gpuKernels();
    const [V, D, eps] = [23, 16, 1e-6];
    // Next-token prediction on a fixed sequence; the last position has no next token.
    const ids = [3, 7, 7, 1, 22, 3, 7, 0, 15, 9, 9, 3];
    const T = ids.length;
    const targets = [...ids.slice(1), IGNORE_INDEX];
    const init = { table: randomF32(V * D, 1), norm: randomF32(D, 2, 0.5).map((v) => v + 1), w: randomF32(V * D, 3, 0.3), b: new Float32Array(V) };
    const cpu = { table: init.table.slice(), norm: init.norm.slice(), w: init.w.slice(), b: init.b.slice() };
    const names = ['table', 'norm', 'w', 'b'] as const;
    const mom = Object.fromEntries(names.map((n) => [n, { m: new Float32Array(cpu[n].length), v: new Float32Array(cpu[n].length) }])) as Record<(typeof names)[number], { m: Float32Array; v: Float32Array }>;

    const g = {
      table: up(k, init.table), norm: up(k, init.norm), w: up(k, init.w), b: up(k, init.b),
      dTable: empty(k, V * D), dNorm: empty(k, D), dW: empty(k, V * D), dB: empty(k, V),
      emb: empty(k, T * D), x: empty(k, T * D), logits: empty(k, T * V), dx: empty(k, T * D), dEmb: empty(k, T * D), rstd: empty(k, T),
      losses: empty(k, T), loss: empty(k, 1),
    };
    const idsBuf = up(k, Uint32Array.from(ids));
    const tg = uploadStorage(k.device, crossEntropyTargets(targets, V));
    const plan = uploadEmbeddingGradPlan(k.device, ids, V);
    const wd = { table: 0, norm: 0, w: 0.1, b: 0 };
    const opt = new AdamW(k, [
      { name: 'table', param: g.table, grad: g.dTable, count: V * D, weightDecay: wd.table },
      { name: 'norm', param: g.norm, grad: g.dNorm, count: D, weightDecay: wd.norm },
      { name: 'w', param: g.w, grad: g.dW, count: V * D, weightDecay: wd.w },
      { name: 'b', param: g.b, grad: g.dB, count: V, weightDecay: wd.b },
    ], { maxGradNorm: 1 });
    const sched = { peak: 5e-2, warmupSteps: 3, totalSteps: 20, minRatio: 0.1 };
    const gpuLosses: number[] = [], cpuLosses: number[] = [];
    for (let step = 0; step < sched.totalSteps; step++) {
      const lr = learningRate(sched, step);
      submit(k, (enc) => {
        encodeEmbedding(k, enc, { ids: idsBuf, table: g.table, out: g.emb, tokens: T, dim: D, vocab: V, scale: 1 });
        encodeRmsNorm(k, enc, { x: g.emb, weight: g.norm, y: g.x, rows: T, dim: D, eps });
        encodeMatmul(k, enc, { x: g.x, w: g.w, bias: g.b, y: g.logits, M: T, N: V, K: D });
        encodeCrossEntropy(k, enc, { logits: g.logits, targets: tg, dlogits: g.logits, losses: g.losses, loss: g.loss, tokens: T, vocab: V });
        encodeLinearBackward(k, enc, { dy: g.logits, x: g.x, w: g.w, dx: g.dx, dw: g.dW, db: g.dB, M: T, N: V, K: D });
        encodeRmsNormBackward(k, enc, { x: g.emb, weight: g.norm, dy: g.dx, dx: g.dEmb, rstd: g.rstd, dweight: g.dNorm, rows: T, dim: D, eps });
        encodeEmbeddingBackward(k, enc, { plan, dout: g.dEmb, dTable: g.dTable, dim: D, scale: 1 });
        opt.encodeStep(enc, lr);
      });
      gpuLosses.push((await f32(k, g.loss, 1))[0]!);

      // The same step from the references.
      const emb = embeddingRef(ids, cpu.table, D, 1);
      const x = rmsnormRef(emb, cpu.norm, T, D, eps);
      const logits = matmulRef(x, cpu.w, cpu.b, T, V, D);
      const ce = crossEntropyRef(logits, targets, T, V);
      cpuLosses.push(ce.loss);
      const lin = linearBackwardRef(ce.dlogits, x, cpu.w, T, V, D);
      const nb = rmsnormBackwardRef(emb, cpu.norm, lin.dx, T, D, eps);
      const grads = { table: embeddingBackwardRef(ids, nb.dx, V, D, 1), norm: nb.dweight, w: lin.dw, b: lin.db };
      const clip = clipScaleRef(gradNormRef(names.map((n) => grads[n])), 1);
      for (const n of names) adamwStepRef(cpu[n], grads[n], mom[n].m, mom[n].v, { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: wd[n] }, step + 1, clip);
    }
    console.log(`tiny model losses, GPU: ${gpuLosses.map((l) => l.toFixed(4)).join(' ')}`);
    console.log(`max |GPU − CPU| loss over 20 steps: ${Math.max(...gpuLosses.map((l, i) => Math.abs(l - cpuLosses[i]!))).toExponential(2)}`);
    gpuLosses.forEach((l, i) => expect(Math.abs(l - cpuLosses[i]!), `step ${i + 1}`).toBeLessThan(1e-4 * Math.max(1, cpuLosses[i]!)));
    expect(gpuLosses[0]).toBeGreaterThan(2.5); // about log 23 at the start
    expect(gpuLosses.at(-1)!).toBeLessThan(0.5 * gpuLosses[0]!);
    const wGpu = await f32(k, g.w, V * D);
    expect(Math.max(...wGpu.map((v, i) => Math.abs(v - cpu.w[i]!)))).toBeLessThan(1e-4);
    opt.destroy();
  });
});
