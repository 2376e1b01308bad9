/**
 * Parity with HF transformers: tiny random checkpoints of each architecture and the outputs
 * transformers computed for them (tools/fixtures/make_fixtures.py, run on the GPU machine).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/engine/io/checkpoint';
import { folderSources } from '../../src/engine/io/node-source';
import { generate } from '../../src/engine/model/generate';
import { MoeModel } from '../../src/engine/model/model';
import type { TensorReader } from '../../src/engine/model/spec';
import { uploadWeights } from '../../src/engine/model/weights';
import { builderFor } from '../../src/engine/model/arch';
import { maxAbsDiff } from '../../src/engine/ref/random';
import { gpuKernels } from './device';

const ROOT = join(import.meta.dirname, '..', 'fixtures');
/** f32 engine vs f32 PyTorch: different summation orders, reference rounded to 7 digits. */
const LOGIT_TOL = 1e-4;

interface Reference {
  input_ids: number[];
  logits: number[][];
  router_logits: Array<{ layer: number; logits: number[][] }>;
  greedy: { prompt_ids: number[]; new_ids: number[] };
  prefill_decode: { prefill: number; logits: number[][] };
  layout: string;
}

// Only the directories make_fixtures.py wrote (a reference.json each); crashers/ and the like sit beside them.
const fixtures = readdirSync(ROOT).filter((d) => existsSync(join(ROOT, d, 'reference.json'))).sort();

async function load(name: string, wrap?: (r: TensorReader) => TensorReader) {
  const k = await gpuKernels();
  const ck = await openCheckpoint(await folderSources(join(ROOT, name)), k.device.limits);
  let { slots, reader } = ck;
  if (wrap) {
    reader = wrap(reader);
    const cfg = JSON.parse(readFileSync(join(ROOT, name, 'config.json'), 'utf8')) as Record<string, unknown>;
    slots = builderFor(cfg).weightSlots(ck.spec, reader);
  }
  const weights = await uploadWeights(k.device, ck.spec, slots, reader);
  return { model: new MoeModel(k, ck.spec, weights, { contextLength: 64, chunkTokens: 32 }), spec: ck.spec, slots };
}

const flat = (rows: number[][]) => Float32Array.from(rows.flat());

describe('parity with HF transformers (f32)', () => {
  it('has a fixture for each of the seven architectures', () => {
    for (const arch of ['qwen2_moe', 'qwen3_moe', 'mixtral', 'olmoe', 'granitemoe', 'deepseek_v2', 'deepseek_v3']) expect(fixtures.some((f) => f.startsWith(arch))).toBe(true);
  });

  for (const name of fixtures) {
    it(`${name}: logits, router logits, greedy tokens, prefill-then-decode`, async () => {
      const ref = JSON.parse(readFileSync(join(ROOT, name, 'reference.json'), 'utf8')) as Reference;
      const { model } = await load(name);
      const full = await model.forward(ref.input_ids, { allLogits: true, routerLogits: true });
      const dLogit = maxAbsDiff(full.logits, flat(ref.logits));
      expect(dLogit).toBeLessThanOrEqual(LOGIT_TOL);
      expect(full.routing.layers).toEqual(ref.router_logits.length ? ref.router_logits.map((r) => r.layer) : full.routing.layers);
      ref.router_logits.forEach((r, m) => expect(maxAbsDiff(full.routerLogits![m]!, flat(r.logits))).toBeLessThanOrEqual(LOGIT_TOL));

      model.reset();
      const P = ref.prefill_decode.prefill;
      await model.forward(ref.input_ids.slice(0, P));
      for (let i = P; i < ref.input_ids.length; i++) {
        const step = await model.forward([ref.input_ids[i]!]);
        expect(maxAbsDiff(step.logits, Float32Array.from(ref.prefill_decode.logits[i - P]!))).toBeLessThanOrEqual(LOGIT_TOL);
      }
      model.reset();
      const got: number[] = [];
      for await (const t of generate(model, ref.greedy.prompt_ids, { maxNewTokens: ref.greedy.new_ids.length })) got.push(t.id);
      expect(got).toEqual(ref.greedy.new_ids);

      console.log(`${name}: max|Δlogit| ${dLogit.toExponential(2)} (${ref.layout} layout)`);
      model.destroy();
    });
  }

  it('reads the fused transformers-5 expert layout ([E, 2I, H] gate|up, [E, H, I]) to the same logits', async () => {
    const name = 'qwen2_moe_e8k2_shared';
    const ref = JSON.parse(readFileSync(join(ROOT, name, 'reference.json'), 'utf8')) as Reference;
    const fuse = (r: TensorReader): TensorReader => {
      const E = 8, I = 24, H = 32;
      const fused = (l: number, kind: string) => `model.layers.${l}.mlp.experts.${kind}`;
      const parse = (n: string) => /^model\.layers\.(\d+)\.mlp\.experts\.(gate_up_proj|down_proj)$/.exec(n);
      return {
        has: (n) => (parse(n) ? true : !/\.mlp\.experts\.\d+\./.test(n) && r.has(n)),
        shape: (n) => {
          const m = parse(n);
          if (!m) return r.shape(n);
          return m[2] === 'gate_up_proj' ? [E, 2 * I, H] : [E, H, I];
        },
        read: async (n) => {
          const m = parse(n);
          if (!m) return r.read(n);
          const l = Number(m[1]);
          const parts = [];
          for (let e = 0; e < E; e++) {
            const p = `model.layers.${l}.mlp.experts.${e}`;
            if (m[2] === 'gate_up_proj') parts.push(await r.read(`${p}.gate_proj.weight`), await r.read(`${p}.up_proj.weight`));
            else parts.push(await r.read(`${p}.down_proj.weight`));
          }
          const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
          let o = 0;
          for (const p of parts) (out.set(p, o), (o += p.length));
          void fused;
          return out;
        },
      };
    };
    const { model, slots } = await load(name, fuse);
    expect(slots.some((s) => s.sources.some((src) => src.name.endsWith('experts.gate_up_proj')))).toBe(true);
    const full = await model.forward(ref.input_ids, { allLogits: true });
    expect(maxAbsDiff(full.logits, flat(ref.logits))).toBeLessThanOrEqual(LOGIT_TOL);
    model.destroy();
  });

  // The DeepSeek fixtures would pass by luck if a routing detail never changed a choice: each
  // detail, undone, must move the logits past the tolerance.
  const undo: Array<[string, string, (r: TensorReader) => TensorReader]> = [
    ['deepseek_v3_e16k4_g4_yarn', 'e_score_correction_bias zeroed', (r) => ({ has: (n) => r.has(n), shape: (n) => r.shape(n), read: async (n) => (n.endsWith('e_score_correction_bias') ? new Float32Array(16) : r.read(n)) })],
  ];
  for (const [name, what, wrap] of undo) {
    it(`${name}: ${what} changes the logits (the fixture exercises it)`, async () => {
      const ref = JSON.parse(readFileSync(join(ROOT, name, 'reference.json'), 'utf8')) as Reference;
      const { model } = await load(name, wrap);
      const full = await model.forward(ref.input_ids, { allLogits: true });
      expect(maxAbsDiff(full.logits, flat(ref.logits))).toBeGreaterThan(100 * LOGIT_TOL);
      model.destroy();
    });
  }
  it('deepseek_v3_e16k4_g4_yarn: without group limits, routing changes', async () => {
    const name = 'deepseek_v3_e16k4_g4_yarn';
    const ref = JSON.parse(readFileSync(join(ROOT, name, 'reference.json'), 'utf8')) as Reference;
    const { model } = await load(name);
    model.setRouter({ ...model.router, nGroup: 1, topkGroup: 1 });
    const full = await model.forward(ref.input_ids, { allLogits: true });
    expect(maxAbsDiff(full.logits, flat(ref.logits))).toBeGreaterThan(100 * LOGIT_TOL);
    model.destroy();
  });
});
