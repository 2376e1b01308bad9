/**
 * The tiny HF checkpoints of tests/fixtures/ (and random 256-wide ones, which K-quant blocks fit)
 * converted to GGUF in each ggml type the loader reads, opened through openCheckpoint, and run
 * through the CPU reference forward (src/engine/ref/model.ts):
 *   - the spec equals the safetensors spec (the HF config is rebuilt from GGUF metadata);
 *   - every weight slot equals, bit for bit, the HF weights as the file encodes them (the writer's
 *     own reconstruction from its codes and scales), so names, merged experts, the Q/K
 *     un-permutation and every block format are exact;
 *   - F32 logits equal the safetensors logits exactly (and HF transformers' to 1e-4);
 *   - quantized logits stay within QUANT_BOUND × the relative RMS weight error of that file.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../../src/engine/io/checkpoint';
import { folderSources } from '../../../src/engine/io/node-source';
import { SafetensorsCheckpoint } from '../../../src/engine/io/safetensors';
import { memorySource } from '../../../src/engine/io/source';
import { builderFor } from '../../../src/engine/model/arch';
import type { ModelSpec, TensorReader, WeightSlot } from '../../../src/engine/model/spec';
import { GGML } from '../../../src/engine/quant/gguf-blocks';
import { refForward, type RefWeights } from '../../../src/engine/ref/model';
import { maxAbsDiff } from '../../../src/engine/ref/random';
import { SYNTHETIC, syntheticTensors } from './gguf_synthetic';
import { hfToGguf, type ConvertOptions, type HfTensors } from './gguf_writer';

const ROOT = join(import.meta.dirname, '..', '..', 'fixtures');
const FIXTURES = readdirSync(ROOT).filter((d) => /^(qwen2_moe|qwen3_moe|mixtral|olmoe|granitemoe)/.test(d)).sort();

/**
 * Quantized logits: ‖Δlogits‖₂/‖logits‖₂ ≤ QUANT_BOUND · ε_w, where ε_w = ‖W_q − W‖₂/‖W‖₂ over the
 * file's matrices. Each matmul turns a relative weight error ε into about ε of relative output error
 * (independent rounding errors add in quadrature), and a token's logits pass ~2 matmuls per layer
 * plus the head, with norms and residual adds between: √7 ≈ 2.6 · ε_w for 3 layers by that count;
 * measured 1.6–6.1 · ε_w on these models (the Mixtral fixture amplifies most), so the bound is 8 —
 * an empirical bound, stated per type in the printed table. It is about quantization quality only:
 * the loader's correctness is the exact slot equality above (a wrong nibble order, a missed
 * permutation or a mis-split expert fails that), and such errors give O(1) relative logit error.
 * The bound holds while routing is unchanged: a perturbation can flip a near-tied top-k choice,
 * which changes that token's output by a whole expert's contribution (quantization's real effect,
 * not a loader error). So logits are compared over the tokens before the first one whose expert
 * set changed in any layer; attention is causal, so earlier tokens cannot see the flip.
 */
const QUANT_BOUND = 8;

const TYPES = { F32: GGML.F32, F16: GGML.F16, BF16: GGML.BF16, Q8_0: GGML.Q8_0, Q4_0: GGML.Q4_0, Q4_K: GGML.Q4_K, Q6_K: GGML.Q6_K } as const;
type TypeName = keyof typeof TYPES;

function mapReader(t: HfTensors): TensorReader {
  return {
    has: (n) => t.has(n),
    shape: (n) => [...t.get(n)!.shape],
    read: async (n) => Float32Array.from(t.get(n)!.data),
  };
}

async function load(slots: WeightSlot[], r: TensorReader): Promise<RefWeights> {
  const w: RefWeights = new Map();
  for (const s of slots) w.set(s.name, await s.load(r));
  return w;
}

/** The f32 values GGUF metadata stores (eps, θ, Granite's scales): the model a GGUF file describes. */
function f32Spec(s: ModelSpec): ModelSpec {
  const r = (x: number | null) => (x === null ? null : Math.fround(x));
  return { ...s, rmsNormEps: r(s.rmsNormEps)!, ropeTheta: r(s.ropeTheta)!, attentionScale: r(s.attentionScale), embeddingMultiplier: r(s.embeddingMultiplier)!, residualMultiplier: r(s.residualMultiplier)!, logitsDivisor: r(s.logitsDivisor)! };
}

/** Index of the first element that differs (as bits: −0 ≠ +0), or −1; toEqual is too slow for 10⁶ values. */
function firstDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

/** The first token whose set of experts differs in some MoE layer (T when none does). */
function firstFlip(a: Uint32Array[], b: Uint32Array[], T: number): number {
  for (let t = 0; t < T; t++) {
    for (let m = 0; m < a.length; m++) {
      const k = a[m]!.length / T;
      const sa = [...a[m]!.subarray(t * k, (t + 1) * k)].sort().join();
      const sb = [...b[m]!.subarray(t * k, (t + 1) * k)].sort().join();
      if (sa !== sb) return t;
    }
  }
  return T;
}

const rel = (a: Float32Array, b: Float32Array) => {
  let d = 0, n = 0;
  for (let i = 0; i < a.length; i++) (d += (a[i]! - b[i]!) ** 2), (n += b[i]! ** 2);
  return Math.sqrt(d / n);
};

/** ε_w over the 2-D-and-up tensors (the ones a type quantizes). */
function weightError(orig: HfTensors, recon: HfTensors): number {
  let d = 0, n = 0;
  for (const [name, t] of orig) {
    const r = recon.get(name);
    if (!r || t.shape.length < 2) continue;
    for (let i = 0; i < t.data.length; i++) (d += (r.data[i]! - t.data[i]!) ** 2), (n += t.data[i]! ** 2);
  }
  return Math.sqrt(d / n);
}

interface Case {
  name: string;
  config: Record<string, unknown>;
  tensors: HfTensors;
  ids: number[];
  /** HF transformers' logits for `ids`, when the fixture has them. */
  hfLogits?: Float32Array;
}

interface Baseline {
  spec: ModelSpec;
  /** The safetensors weights run under the f32-rounded spec. */
  logits: Float32Array;
  experts: Uint32Array[];
  /** HF precision (the spec as config.json has it), for the comparison with transformers. */
  hfPrecisionLogits: Float32Array;
}

async function baseline(c: Case): Promise<Baseline> {
  const builder = builderFor(c.config);
  const spec = builder.parseConfig(c.config);
  const w = await load(builder.weightSlots(spec, mapReader(c.tensors)), mapReader(c.tensors));
  const out = refForward(f32Spec(spec), w, c.ids);
  return { spec, logits: out.logits, experts: out.experts, hfPrecisionLogits: refForward(spec, w, c.ids).logits };
}

async function check(c: Case, base: Baseline, type: TypeName, opts: Omit<ConvertOptions, 'type'> = {}) {
  const conv = hfToGguf(c.config, c.tensors, { type: TYPES[type], ...opts });
  const ck = await openCheckpoint([memorySource(`${c.name}.gguf`, conv.bytes)], { limits: { maxStorageBufferBindingSize: 2 ** 30 } });
  // Token ids come from the tokenizer metadata (none here; see gguf_tokenizer.test.ts).
  const noIds = { bosTokenId: null, eosTokenIds: [] };
  expect({ ...ck.spec, ...noIds }).toEqual({ ...f32Spec(base.spec), ...noIds });
  const got = await load(ck.slots, ck.reader);
  const want = await load(builderFor(c.config).weightSlots(base.spec, mapReader(conv.recon)), mapReader(conv.recon));
  expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [slot, data] of want) expect(firstDiff(got.get(slot)!, data), `slot ${slot}: first differing element`).toBe(-1);
  const out = refForward(ck.spec, got, c.ids);
  const T = c.ids.length;
  const flip = firstFlip(out.experts, base.experts, T);
  const V = out.logits.length / T;
  const pre = (x: Float32Array) => x.subarray(0, flip * V);
  return { logits: out.logits, conv, flip, rel: flip ? rel(pre(out.logits), pre(base.logits)) : 0, epsW: weightError(c.tensors, conv.recon), maxAbs: maxAbsDiff(pre(out.logits), pre(base.logits)) };
}

async function fixtureCase(name: string): Promise<Case> {
  const files = await folderSources(join(ROOT, name));
  const config = JSON.parse(readFileSync(join(ROOT, name, 'config.json'), 'utf8')) as Record<string, unknown>;
  const st = await SafetensorsCheckpoint.open(files);
  const tensors: HfTensors = new Map();
  for (const n of st.names()) tensors.set(n, { shape: st.shape(n), data: await st.read(n) });
  const ref = JSON.parse(readFileSync(join(ROOT, name, 'reference.json'), 'utf8')) as { input_ids: number[]; logits: number[][] };
  return { name, config, tensors, ids: ref.input_ids, hfLogits: Float32Array.from(ref.logits.flat()) };
}

const report: string[] = [];
/** Tokens compared / tokens run, per type (the bound must not be vacuous). */
const compared = new Map<string, [number, number]>();
const line = (name: string, type: string, r: { rel: number; epsW: number; maxAbs: number; flip: number }, T: number) => {
  const [a, b] = compared.get(type) ?? [0, 0];
  compared.set(type, [a + r.flip, b + T]);
  return `${name} ${type}: rel ${r.rel.toExponential(2)}, ε_w ${r.epsW.toExponential(2)}, ratio ${(r.rel / (r.epsW || 1)).toFixed(2)}, max|Δ| ${r.maxAbs.toExponential(2)}, tokens compared ${r.flip}/${T}`;
};

describe('GGUF versions of the fixture checkpoints (CPU reference forward)', () => {
  it('has the four MoE archs of issue #9 (and granitemoe)', () => {
    for (const a of ['qwen2_moe', 'qwen3_moe', 'mixtral', 'olmoe']) expect(FIXTURES.some((f) => f.startsWith(a))).toBe(true);
  });
  for (const name of FIXTURES) {
    it(`${name}: F32 exact, F16/BF16/Q8_0/Q4_0 within the bound`, async () => {
      const c = await fixtureCase(name);
      const base = await baseline(c);
      expect(maxAbsDiff(base.hfPrecisionLogits, c.hfLogits!)).toBeLessThanOrEqual(1e-4);
      for (const type of ['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0'] as const) {
        const r = await check(c, base, type);
        if (type === 'F32') {
          expect(firstDiff(r.logits, base.logits)).toBe(-1);
          expect(maxAbsDiff(r.logits, c.hfLogits!)).toBeLessThanOrEqual(1e-4);
        } else expect(r.rel, `${name} ${type}: relative logit error ${r.rel} vs ε_w ${r.epsW}`).toBeLessThanOrEqual(QUANT_BOUND * r.epsW);
        const fallback = [...r.conv.types.values()].filter((t) => t === 'F16').length;
        report.push(line(name, type, r, c.ids.length) + (type.startsWith('Q') ? `, ${fallback} tensors F16 (rows not whole blocks)` : ''));
      }
    });
  }
});

describe('GGUF versions of random 256-wide models (every type, K-quants included)', () => {
  for (const [arch, config] of Object.entries(SYNTHETIC)) {
    it(`${arch}: F32 exact, every quantized type within the bound`, async () => {
      const c: Case = { name: `synthetic_${arch}`, config, tensors: syntheticTensors(config, 11), ids: [3, 17, 42, 5, 88, 1, 60, 29] };
      const base = await baseline(c);
      for (const type of Object.keys(TYPES) as TypeName[]) {
        const r = await check(c, base, type);
        if (type === 'F32') expect(firstDiff(r.logits, base.logits)).toBe(-1);
        else expect(r.rel, `${arch} ${type}: relative logit error ${r.rel} vs ε_w ${r.epsW}`).toBeLessThanOrEqual(QUANT_BOUND * r.epsW);
        // Every row here is whole blocks of every type: nothing falls back to F16.
        if (type !== 'F16') expect([...r.conv.types.values()]).not.toContain('F16');
        report.push(line(c.name, type, r, c.ids.length));
      }
    });
  }

  it('llama-arch files need the Q/K un-permutation: without it the logits are far off', async () => {
    const c: Case = { name: 'synthetic_mixtral', config: SYNTHETIC.mixtral!, tensors: syntheticTensors(SYNTHETIC.mixtral!, 11), ids: [3, 17, 42, 5, 88, 1, 60, 29] };
    const base = await baseline(c);
    const conv = hfToGguf(c.config, c.tensors, { type: GGML.F32, skipPermute: true });
    const ck = await openCheckpoint([memorySource('m.gguf', conv.bytes)]);
    const logits = refForward(ck.spec, await load(ck.slots, ck.reader), c.ids).logits;
    expect(rel(logits, base.logits)).toBeGreaterThan(0.05);
  });

  it('reads the pre-2024 per-expert layout (blk.N.ffn_gate.E.weight) and a flat [H] shared-expert gate', async () => {
    for (const [arch, opts] of [['mixtral', { perExpert: true }], ['qwen2_moe', { flatSharedGate: true }]] as const) {
      const config = SYNTHETIC[arch]!;
      const c: Case = { name: arch, config, tensors: syntheticTensors(config, 5), ids: [1, 2, 3, 4] };
      const base = await baseline(c);
      const r = await check(c, base, 'Q8_0', opts);
      if (arch === 'mixtral') expect([...r.conv.types.keys()].some((n) => /^blk\.0\.ffn_gate\.3\.weight$/.test(n))).toBe(true);
      expect(r.rel).toBeLessThanOrEqual(QUANT_BOUND * r.epsW);
    }
  });

  it('prints the measured errors', () => {
    console.log(`GGUF logits vs the safetensors model (relative RMS; bound ${QUANT_BOUND} × ε_w):\n  ${report.join('\n  ')}`);
    expect(report.length).toBeGreaterThan(0);
    // Routing flips shorten the compared prefix (4-bit types flip most on these random routers);
    // each type must still be checked on a dozen token positions or more.
    for (const [type, [a, b]] of compared) expect(a, `${type}: ${a} of ${b} tokens compared`).toBeGreaterThanOrEqual(12);
  });
});
