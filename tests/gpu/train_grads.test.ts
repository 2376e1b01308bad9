/**
 * The model-level backward (src/engine/train/graph.ts) against PyTorch autograd: for every tiny
 * fixture with ordinary attention, full-mode gradients of the causal-LM loss (mean CE over the T−1
 * shifted positions) on the fixture's input_ids vs tests/fixtures/grads/<fixture>.safetensors
 * (tools/fixtures/make_grads.py), and the loss vs its `__loss__`. Also the training forward's logits
 * vs transformers' (the forward reuses the inference ops; this catches a mis-wired layer).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readF32, submitEncoder } from '../../src/engine/gpu/buffers';
import { openCheckpoint } from '../../src/engine/io/checkpoint';
import { folderSources } from '../../src/engine/io/node-source';
import type { WeightSlot } from '../../src/engine/model/spec';
import { destroyWeights, uploadWeights } from '../../src/engine/model/weights';
import { TrainGraph } from '../../src/engine/train/graph';
import { uploadEmbeddingGradPlan } from '../../src/engine/train/ops/embedding';
import { createLora, destroyLora, readLora } from '../../src/engine/train/lora';
import { readSlotGrads, trainables } from '../../src/engine/train/params';
import { IGNORE_INDEX } from '../../src/engine/train/ref';
import { gpuKernels } from './device';

const ROOT = join(import.meta.dirname, '..', 'fixtures');
/** Per tensor: max |ours − PyTorch| ≤ GRAD_TOL · max(1, max |PyTorch|). */
const GRAD_TOL = 1e-4;
const LOSS_TOL = 1e-5;
const LOGIT_TOL = 1e-4;

/** F32 tensors of a safetensors file by name. */
function readSafetensors(path: string): Map<string, { shape: number[]; data: Float32Array }> {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (t.dtype !== 'F32') throw new Error(`${name}: ${t.dtype}, expected F32`);
    const [a, b] = t.data_offsets;
    const bytes = buf.subarray(8 + n + a, 8 + n + b);
    out.set(name, { shape: t.shape, data: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)) });
  }
  return out;
}

/**
 * The name transformers 5 gives a checkpoint tensor in memory (make_grads.py writes those): Mixtral's
 * `block_sparse_moe` is `mlp`, Granite's hub `router.layer` is `router`; per-expert tensors are
 * fused into `experts.gate_up_proj` / `experts.down_proj` (handled per slot below).
 */
function inMemoryName(arch: string, name: string): string {
  if (arch === 'mixtral') name = name.replace('.block_sparse_moe.', '.mlp.');
  return name.replace('.router.layer.weight', '.router.weight');
}

/** PyTorch's gradient for a slot, laid out like the slot. */
function expectedFor(arch: string, slot: WeightSlot, ref: Map<string, { shape: number[]; data: Float32Array }>): Float32Array {
  const first = inMemoryName(arch, slot.sources[0]!.name);
  if (/\.experts\.(gate_up|down)$/.test(slot.name)) {
    // Per-expert names (`….experts.3.w1.weight`) or Granite's hub `….input_linear.weight`: the module is what comes before.
    const module = first.replace(/\.(experts\.\d+\..*|experts\.[a-z_]+|input_linear\.weight|output_linear\.weight)$/, '');
    const fused = `${module}.experts.${slot.name.endsWith('gate_up') ? 'gate_up_proj' : 'down_proj'}`;
    const t = ref.get(fused);
    if (!t) throw new Error(`no PyTorch gradient ${fused} for ${slot.name}`);
    return t.data;
  }
  const parts = slot.sources.map((src) => {
    const t = ref.get(inMemoryName(arch, src.name));
    if (!t) throw new Error(`no PyTorch gradient ${inMemoryName(arch, src.name)} for ${slot.name}`);
    return t.data;
  });
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) (out.set(p, o), (o += p.length));
  return out;
}

const fixtures = readdirSync(ROOT).filter((d) => existsSync(join(ROOT, d, 'reference.json')) && existsSync(join(ROOT, 'grads', `${d}.safetensors`)) && !d.startsWith('deepseek')).sort();

describe('model backward vs PyTorch autograd (full fine-tune, f32)', () => {
  it('covers the five MHA architectures', () => {
    for (const arch of ['qwen2_moe', 'qwen3_moe', 'mixtral', 'olmoe', 'granitemoe']) expect(fixtures.some((f) => f.startsWith(arch))).toBe(true);
  });

  for (const name of fixtures) {
    it(`${name}: loss, logits and every parameter's gradient`, async () => {
      const k = await gpuKernels();
      const dir = join(ROOT, name);
      const ck = await openCheckpoint(await folderSources(dir), k.device.limits);
      const weights = await uploadWeights(k.device, ck.spec, ck.slots, ck.reader);
      const refJson = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as { input_ids: number[]; logits: number[][] };
      const ids = refJson.input_ids;
      const T = ids.length;
      const targets = [...ids.slice(1), IGNORE_INDEX];
      const graph = new TrainGraph(k, ck.spec, weights, { maxTokens: T });
      const set = trainables(k.device, ck.spec, weights, 'full');
      graph.writeSequence(ids, targets);
      graph.embedPlan = uploadEmbeddingGradPlan(k.device, ids, ck.spec.vocabSize);

      let enc = k.device.createCommandEncoder();
      graph.encodeForward(enc);
      submitEncoder(k.device, enc);
      const logits = await readF32(k.device, graph.logits, T * ck.spec.vocabSize);
      const dLogit = Math.max(...refJson.logits.flat().map((v, i) => Math.abs(v - logits[i]!)));

      enc = k.device.createCommandEncoder();
      for (const b of set.gradBuffers) enc.clearBuffer(b);
      graph.encodeLoss(enc);
      graph.encodeBackward(enc, set.grads);
      submitEncoder(k.device, enc);
      const loss = (await readF32(k.device, graph.loss, 1))[0]!;

      const ref = readSafetensors(join(ROOT, 'grads', `${name}.safetensors`));
      const ours = await readSlotGrads(k.device, ck.spec, ck.slots, set.grads);
      let worst = { rel: 0, slot: '' };
      let checked = 0;
      for (const slot of ck.slots) {
        const got = ours.get(slot.name);
        expect(got, `no gradient for ${slot.name}`).toBeDefined();
        const want = expectedFor(ck.spec.arch, slot, ref);
        expect(got!.length, slot.name).toBe(want.length);
        let maxRef = 0, maxDiff = 0;
        for (let i = 0; i < want.length; i++) {
          maxRef = Math.max(maxRef, Math.abs(want[i]!));
          maxDiff = Math.max(maxDiff, Math.abs(want[i]! - got![i]!));
        }
        const rel = maxDiff / Math.max(1, maxRef);
        if (rel > worst.rel) worst = { rel, slot: slot.name };
        expect(rel, `${slot.name}: max |Δ| ${maxDiff.toExponential(2)}, max |g| ${maxRef.toExponential(2)}`).toBeLessThanOrEqual(GRAD_TOL);
        checked += want.length;
      }
      const refLoss = ref.get('__loss__')!.data[0]!;
      console.log(`${name}: loss ${loss.toFixed(6)} (PyTorch ${refLoss.toFixed(6)}), max|Δlogit| ${dLogit.toExponential(2)}, ${checked} gradients, worst max|Δ|/max(1,max|g|) ${worst.rel.toExponential(2)} (${worst.slot})`);
      expect(Math.abs(loss - refLoss)).toBeLessThanOrEqual(LOSS_TOL * Math.max(1, refLoss));
      expect(dLogit).toBeLessThanOrEqual(LOGIT_TOL);
      graph.destroy();
      set.destroy();
      destroyWeights(weights);
    });
  }

  // LoRA with B = 0 (its start) leaves the model unchanged, so PyTorch's gradients still apply:
  // dB = (α/r)·dW·Aᵀ with dW the base projection's gradient, and dA = 0. Checked on a head-norm
  // (qwen3) and a full-norm (olmoe) fixture, all four target modules. Router mode must give the
  // routers exactly the full-mode gradients (the same backward, with everything else frozen).
  for (const name of fixtures.filter((f) => f.startsWith('qwen3') || f.startsWith('olmoe'))) {
    it(`${name}: LoRA (q, k, v, o) and router-only gradients`, async () => {
      const k = await gpuKernels();
      const dir = join(ROOT, name);
      const ck = await openCheckpoint(await folderSources(dir), k.device.limits);
      const weights = await uploadWeights(k.device, ck.spec, ck.slots, ck.reader);
      const ids = (JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as { input_ids: number[] }).input_ids;
      const ref = readSafetensors(join(ROOT, 'grads', `${name}.safetensors`));
      const lora = createLora(k.device, ck.spec, { rank: 4, alpha: 8, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], seed: 3 });
      const run = async (mode: 'lora' | 'router') => {
        const graph = new TrainGraph(k, ck.spec, weights, { maxTokens: ids.length, lora: mode === 'lora' ? lora : null });
        const set = trainables(k.device, ck.spec, weights, mode, lora);
        graph.writeSequence(ids, [...ids.slice(1), IGNORE_INDEX]);
        const enc = k.device.createCommandEncoder();
        for (const b of set.gradBuffers) enc.clearBuffer(b);
        graph.encodeForward(enc);
        graph.encodeLoss(enc);
        graph.encodeBackward(enc, set.grads);
        submitEncoder(k.device, enc);
        return { graph, set };
      };
      const { graph, set } = await run('lora');
      const host = await readLora(k.device, lora);
      const gradsHost = await Promise.all(lora.layers.map(async (m) => Object.fromEntries(await Promise.all(Object.entries(m).map(async ([mod, p]) => [mod, { gA: await readF32(k.device, p!.gA, p!.rank * p!.inDim), gB: await readF32(k.device, p!.gB, p!.outDim * p!.rank) }] as const)))));
      let worst = 0;
      host.forEach((m, l) => {
        for (const [mod, p] of Object.entries(m)) {
          const dW = ref.get(`model.layers.${l}.self_attn.${mod}.weight`)!.data;
          const want = new Float32Array(p!.outDim * p!.rank);
          for (let i = 0; i < p!.outDim; i++) for (let j = 0; j < p!.rank; j++) {
            let acc = 0;
            for (let c = 0; c < p!.inDim; c++) acc += dW[i * p!.inDim + c]! * p!.A[j * p!.inDim + c]!;
            want[i * p!.rank + j] = lora.scale * acc;
          }
          const got = gradsHost[l]![mod]!;
          const maxRef = Math.max(1, ...want.map(Math.abs));
          const rel = Math.max(...want.map((v, i) => Math.abs(v - got.gB[i]!))) / maxRef;
          worst = Math.max(worst, rel);
          expect(rel, `L${l} ${mod} lora_B`).toBeLessThanOrEqual(GRAD_TOL);
          expect(Math.max(...got.gA.map(Math.abs)), `L${l} ${mod} lora_A`).toBe(0);
        }
      });
      graph.destroy();
      set.destroy();
      const r = await run('router');
      const ours = await readSlotGrads(k.device, ck.spec, ck.slots, r.set.grads);
      const routers = ck.slots.filter((s) => s.name.endsWith('.router'));
      expect(ours.size).toBe(routers.length);
      for (const slot of routers) {
        const want = expectedFor(ck.spec.arch, slot, ref);
        const got = ours.get(slot.name)!;
        const rel = Math.max(...want.map((v, i) => Math.abs(v - got[i]!))) / Math.max(1, ...want.map(Math.abs));
        worst = Math.max(worst, rel);
        expect(rel, slot.name).toBeLessThanOrEqual(GRAD_TOL);
      }
      console.log(`${name}: LoRA dB and router-only gradients, worst max|Δ|/max(1,max|g|) ${worst.toExponential(2)}`);
      r.graph.destroy();
      r.set.destroy();
      destroyLora(lora);
      destroyWeights(weights);
    });
  }
});
