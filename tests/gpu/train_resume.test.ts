/**
 * Resumable training and the router losses / routing options wired into the Trainer, on the tiny
 * fixture (fast on SwiftShader): a run stopped, written to a checkpoint file, read back into a
 * fresh trainer over freshly uploaded weights and continued takes exactly the steps an
 * uninterrupted run takes (router and LoRA mode, with every piece of carried state in play);
 * restore() refuses another mode's snapshot without touching anything; the z-loss gradient matches
 * finite differences of CE + z-loss; the orthogonality loss lowers the routers' row overlap; the
 * flip-rate probe runs on its steps; noisy top-k and expert dropout are deterministic and dropped
 * experts get no token.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readF32 } from '../../src/engine/gpu/buffers';
import { openCheckpoint } from '../../src/engine/io/checkpoint';
import { folderSources } from '../../src/engine/io/node-source';
import { destroyWeights, uploadWeights } from '../../src/engine/model/weights';
import { decodeTrainCheckpoint, encodeTrainCheckpoint } from '../../src/engine/train/checkpoint';
import { balanceLoss, expertDropout, orthogonalityLoss, zLoss } from '../../src/engine/train/losses';
import { Trainer, TrainerStateError, type Sequence, type StepEvent, type TrainerOptions } from '../../src/engine/train/trainer';
import { gpuKernels } from './device';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'qwen2_moe_e8k2_shared');
const train: Sequence[] = [
  { ids: [5, 9, 17, 33, 2, 8], labels: [9, 17, 33, 2, 8, 40] },
  { ids: [100, 3, 3, 7, 61, 12, 90], labels: [3, 3, 7, 61, 12, 90, 1] },
  { ids: [44, 45, 46, 47], labels: [45, 46, 47, 48] },
  { ids: [70, 71, 20, 21, 22, 90, 91, 92], labels: [71, 20, 21, 22, 90, 91, 92, 93] },
];
const val: Sequence[] = [
  { ids: [1, 2, 3, 4, 5], labels: [2, 3, 4, 5, 6] },
  { ids: [60, 50, 40, 30, 20, 10], labels: [50, 40, 30, 20, 10, 0] },
];

async function trainer(opts: Partial<TrainerOptions> & Pick<TrainerOptions, 'mode'>) {
  const k = await gpuKernels();
  const ck = await openCheckpoint(await folderSources(DIR), k.device.limits);
  const weights = await uploadWeights(k.device, ck.spec, ck.slots, ck.reader);
  const t = new Trainer(k, ck.spec, weights, { seqLen: 8, steps: 4, warmupSteps: 1, valEvery: 0, ...opts });
  return { k, spec: ck.spec, weights, t, free: () => (t.destroy(), destroyWeights(weights)) };
}

const params = (t: Trainer) => Promise.all(t.set.params.map((p) => readF32(t.k.device, p.param, p.count)));
const grads = (t: Trainer) => Promise.all(t.set.params.map((p) => readF32(t.k.device, p.grad, p.count)));

class Interrupt extends Error {}

/** Router mode with aux-free bias, z-loss, orthogonality and a small monitor window (so its history and halvings matter); LoRA mode with noisy top-k and expert dropout. */
const RESUME_CASES: Array<{ name: string; opts: Partial<TrainerOptions> & Pick<TrainerOptions, 'mode'> }> = [
  { name: 'router', opts: { mode: 'router', lr: 1e-2, accumulate: 2, auxFreeRate: 0.01, zLossWeight: 1e-3, orthoWeight: 0.01, monitor: { window: 3, threshold: 0.2 } } },
  { name: 'lora', opts: { mode: 'lora', lora: { rank: 4, alpha: 8 }, lr: 1e-2, accumulate: 1, routerNoise: 0.5, expertDropout: 0.2, monitor: {} } },
];

describe('Trainer resume, router losses and routing options', () => {
  for (const { name, opts } of RESUME_CASES) {
    it(`resumes a ${name}-mode run from a checkpoint file exactly`, async () => {
      const o = { ...opts, steps: 6, warmupSteps: 2, valEvery: 2, patience: 5, probeEvery: 2, seed: 11, balance: balanceLoss('switch', 0.01) };

      const whole = await trainer(o);
      const wholeEvents: StepEvent[] = [];
      const wholeSummary = await whole.t.run(train, val, (e) => void wholeEvents.push(structuredClone(e)));
      const wholeSnap = await whole.t.snapshot();
      whole.free();
      expect(wholeSummary.steps).toBe(6);

      // The same run stopped after step 3 (mid-pass in router mode: 6 of 4 + 4 sequences; at a pass's end in LoRA mode).
      const first = await trainer(o);
      const firstEvents: StepEvent[] = [];
      await expect(
        first.t.run(train, val, (e) => {
          firstEvents.push(structuredClone(e));
          if (e.step === 3) throw new Interrupt('stop');
        }),
      ).rejects.toBeInstanceOf(Interrupt);
      const file = encodeTrainCheckpoint(await first.t.snapshot(), { note: 'resume test' });
      first.free();

      const { snapshot, extra } = await decodeTrainCheckpoint(file);
      expect(extra).toEqual({ note: 'resume test' });
      expect(snapshot.state.step).toBe(3);
      const second = await trainer(o);
      second.t.restore(snapshot);
      expect(second.t.summary().losses).toEqual(wholeSummary.losses.slice(0, 3));
      const secondEvents: StepEvent[] = [];
      const summary = await second.t.run(train, val, (e) => void secondEvents.push(structuredClone(e)));
      const secondSnap = await second.t.snapshot();
      const secondParams = await params(second.t);
      second.free();

      // Kernels sum in fixed orders and every random draw is seeded by (seed, step): bit-identical.
      expect(secondEvents.map((e) => e.step)).toEqual([4, 5, 6]);
      expect([...firstEvents, ...secondEvents]).toEqual(wholeEvents);
      expect(summary).toEqual(wholeSummary);
      expect(summary.val_losses.map((v) => v.step)).toEqual([2, 4, 6]);
      expect(secondSnap).toEqual(wholeSnap);
      expect(secondParams).toEqual(wholeSnap.tensors.map((x) => x.param));
      // What the options put in play really was in play.
      expect(wholeEvents.filter((e) => e.monitor?.flipRate !== null).map((e) => e.step)).toEqual([2, 4, 6]);
      if (name === 'router') expect(wholeSnap.state.auxBias?.flat().some((b) => b !== 0)).toBe(true);
      // The trained tensors moved from their start.
      const start = await trainer(o);
      const before = await params(start.t);
      start.free();
      expect(before.some((p, i) => p.some((v, j) => v !== secondParams[i]![j]))).toBe(true);
      console.log(`${name} resume: losses ${summary.losses.map((l) => l.toFixed(4)).join(' ')}; val ${summary.val_losses.map((v) => `${v.step}:${v.loss.toFixed(4)}`).join(' ')}; lr halvings ${summary.lr_halvings}`);
    });
  }

  it('restore() refuses a snapshot of another mode and changes nothing', async () => {
    const router = await trainer({ mode: 'router', steps: 2, monitor: null, probeEvery: 0 });
    await router.t.run(train, []);
    const snap = await router.t.snapshot();
    router.free();

    const lora = await trainer({ mode: 'lora', lora: { rank: 4 }, steps: 2, monitor: null, probeEvery: 0 });
    const before = await params(lora.t);
    let err: unknown;
    try {
      lora.t.restore(snap);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TrainerStateError);
    expect((err as Error).message).toMatch(/L\d+\.\w+\.lora_[AB]/);
    expect(lora.t.step).toBe(0);
    expect(lora.t.summary().losses).toEqual([]);
    expect(lora.t.optimizer.step).toBe(0);
    expect(await params(lora.t)).toEqual(before);
    // And the other way round, names matching but one size wrong: still refused before anything is written.
    const own = await lora.t.snapshot();
    const bad = { ...own, state: { ...own.state, step: 1 }, tensors: own.tensors.map((x, i) => (i === own.tensors.length - 1 ? { ...x, v: x.v.subarray(1) } : x)) };
    expect(() => lora.t.restore(bad)).toThrow(TrainerStateError);
    expect(lora.t.step).toBe(0);
    // The refused trainer still trains.
    const s = await lora.t.run(train, []);
    expect(s.steps).toBe(2);
    lora.free();
  });

  it('z-loss: the router gradient matches finite differences of CE + z-loss, and the step reports the term', async () => {
    const W = 1;
    // lr 0 and no clipping: the step leaves the weights alone and the gradient buffers hold d(CE + z)/dW.
    const { t, spec, weights, free } = await trainer({ mode: 'router', steps: 1, warmupSteps: 0, lr: 0, zLossWeight: W, adamw: { maxGradNorm: 0 }, monitor: null, probeEvery: 0 });
    const seq = train[3]!;
    const E = spec.moe.numExperts, H = spec.hiddenSize, T = seq.ids.length;
    const ev = await t.trainStep([seq]);
    const g = await grads(t);

    const dev = t.k.device;
    const losses = async () => {
      const ce = await t.evalLoss(seq);
      const routing = await t.graph.readRouting();
      const z = routing.reduce((s, r) => s + zLoss(r.logits!, T, E, W).loss, 0);
      return { ce, z, idx: routing.map((r) => Array.from(r.idx)) };
    };
    const base = await losses();
    expect(base.z).toBeGreaterThan(0);
    expect(ev.balanceLoss).toBeGreaterThan(0);
    expect(ev.balanceLoss).toBeCloseTo(base.z, 5);
    expect(ev.loss).toBeCloseTo(base.ce, 5);

    const h = 1e-3;
    let checked = 0, zPart = 0;
    const report: string[] = [];
    for (const [pi, p] of t.set.params.entries()) {
      const l = Number(/^L(\d+)\.router$/.exec(p.name)![1]);
      const buf = weights.layers[l]!.router!;
      const w0 = await readF32(dev, buf, E * H);
      // The largest gradients first; skip an element whose nudge changes a top-k choice (the CE jumps there).
      const order = Array.from(g[pi]!.keys()).sort((a, b) => Math.abs(g[pi]![b]!) - Math.abs(g[pi]![a]!));
      let done = 0;
      for (const i of order.slice(0, 8)) {
        if (done === 2) break;
        const at = async (v: number) => {
          dev.queue.writeBuffer(buf, i * 4, Float32Array.of(v));
          return losses();
        };
        const up = await at(w0[i]! + h), down = await at(w0[i]! - h);
        await at(w0[i]!);
        if (JSON.stringify(up.idx) !== JSON.stringify(base.idx) || JSON.stringify(down.idx) !== JSON.stringify(base.idx)) continue;
        const step = Math.fround(w0[i]! + h) - Math.fround(w0[i]! - h);
        const fd = (up.ce + up.z - (down.ce + down.z)) / step;
        const fdZ = (up.z - down.z) / step;
        expect(Math.abs(g[pi]![i]! - fd), `${p.name}[${i}]: gradient ${g[pi]![i]}, finite difference ${fd}`).toBeLessThan(2e-3 + 0.02 * Math.abs(fd));
        zPart = Math.max(zPart, Math.abs(fdZ) / (Math.abs(fd) + 1e-9));
        report.push(`${p.name}[${i}] ${g[pi]![i]!.toExponential(3)} vs ${fd.toExponential(3)} (z-loss part ${fdZ.toExponential(3)})`);
        done++;
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(2);
    // The z-loss is a real part of what was checked, not a rounding-sized addition to the CE's gradient.
    expect(zPart).toBeGreaterThan(0.2);
    console.log(`z-loss gradient vs finite differences: ${report.join('; ')}`);
    free();
  });

  it('orthogonality: a heavy weight lowers the overlap of the router rows; LoRA mode refuses it', async () => {
    const { t, spec, weights, free } = await trainer({ mode: 'router', steps: 4, warmupSteps: 0, lr: 1e-2, orthoWeight: 1, monitor: null, probeEvery: 0 });
    const E = spec.moe.numExperts, H = spec.hiddenSize;
    const overlap = async () => {
      let s = 0;
      for (const l of t.graph.moeLayers) s += orthogonalityLoss(await readF32(t.k.device, weights.layers[l]!.router!, E * H), E, H, 1).value;
      return s;
    };
    const start = await overlap();
    const events: StepEvent[] = [];
    await t.run(train, [], (e) => void events.push(e));
    const end = await overlap();
    free();
    expect(start).toBeGreaterThan(0);
    expect(end).toBeLessThan(start * 0.9);
    // The step reports the term (no balance loss or z-loss here: it is all orthogonality).
    expect(events[0]!.balanceLoss).toBeCloseTo(start, 5);
    console.log(`orthogonality of the routers: ${start.toFixed(4)} → ${end.toFixed(4)} over 4 steps`);

    const k = await gpuKernels();
    const ck = await openCheckpoint(await folderSources(DIR), k.device.limits);
    const w = await uploadWeights(k.device, ck.spec, ck.slots, ck.reader);
    expect(() => new Trainer(k, ck.spec, w, { mode: 'lora', seqLen: 8, steps: 2, orthoWeight: 0.1 })).toThrow(RangeError);
    destroyWeights(w);
  });

  it('flip rate: probed at step 1 (the baseline) and every probeEvery steps', async () => {
    const { t, free } = await trainer({ mode: 'router', steps: 4, lr: 1e-2, probeEvery: 2, monitor: {} });
    const events: StepEvent[] = [];
    await t.run(train, val, (e) => void events.push(e));
    free();
    const flips = events.map((e) => e.monitor!.flipRate);
    expect(flips[0]).toBeNull();
    expect(flips[2]).toBeNull();
    for (const i of [1, 3]) {
      expect(typeof flips[i]).toBe('number');
      expect(flips[i]).toBeGreaterThanOrEqual(0);
      expect(flips[i]).toBeLessThanOrEqual(1);
      expect(events[i]!.monitor!.layerFlipRate).toHaveLength(t.graph.moeLayers.length);
    }
    expect(events[2]!.monitor!.layerFlipRate).toBeNull();
  });

  it('noisy top-k and expert dropout: deterministic, dropped experts get no token', async () => {
    const o = { mode: 'router' as const, steps: 3, lr: 1e-2, seed: 5, routerNoise: 0.5, expertDropout: 0.5, monitor: null, probeEvery: 0 };
    const runs: StepEvent[][] = [];
    for (let r = 0; r < 2; r++) {
      const { t, free } = await trainer(o);
      const events: StepEvent[] = [];
      await t.run(train, [], (e) => void events.push(e));
      // The overrides are for training forwards only: the graph is back to the run's own routing.
      expect(t.graph.router.noiseStd).toBe(0);
      expect(t.graph.router.disabled).toEqual([]);
      free();
      runs.push(events);
    }
    expect(runs[0]).toEqual(runs[1]);
    const E = runs[0]![0]!.routing[0]!.counts.length;
    let droppedSome = 0;
    for (const e of runs[0]!) {
      const off = expertDropout(E, 0.5, 2, o.seed, e.step);
      droppedSome += off.length;
      for (const r of e.routing) {
        for (const x of off) expect(r.counts[x], `step ${e.step} layer ${r.layer} expert ${x} was dropped`).toBe(0);
        expect(r.counts.reduce((a, b) => a + b, 0)).toBe(2 * e.tokens);
      }
    }
    expect(droppedSome).toBeGreaterThan(0);
    // Without noise and dropout the same run routes (and so scores) differently from its first step on.
    const plain = await trainer({ ...o, routerNoise: 0, expertDropout: 0 });
    const plainLosses = (await plain.t.run(train, [])).losses;
    plain.free();
    expect(plainLosses[0]).not.toBe(runs[0]![0]!.loss);
  });
});
