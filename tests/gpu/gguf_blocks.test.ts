/**
 * GGUF tensors kept as their ggml blocks on the GPU (quant/ggml-pack.ts) and dequantised inside
 * the matmul kernels by shaders/wload_{f16,bf16,q8_0,q4_0,q4_k,q6_k}.wgsl:
 *  - blocks made by hand (negative scales, extreme nibbles, Q4_K's 6-bit scale packing, an f16
 *    subnormal) against values worked out here and against gguf-blocks.ts's CPU dequantizer, and
 *    read back through a matmul with the identity (each output is one weight times 1);
 *  - random blocks through every kernel that includes a weight loader — the 64×64 tile (M > 8), the
 *    matrix-vector kernels (M ≤ 8: main8 and the software per-column variant), the grouped expert
 *    GEMM / GEMV — against the CPU reference on the dequantised matrix;
 *  - a fixture converted to GGUF Q8_0 / Q4_0 loaded with its file blocks gives the logits of the
 *    same file loaded through the CPU dequantizer as f32.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/engine/io/checkpoint';
import { planFileBlocks } from '../../src/engine/io/gguf-file-blocks';
import type { GgufCheckpoint } from '../../src/engine/io/gguf-reader';
import { folderSources } from '../../src/engine/io/node-source';
import { SafetensorsCheckpoint } from '../../src/engine/io/safetensors';
import { memorySource } from '../../src/engine/io/source';
import { MoeModel } from '../../src/engine/model/model';
import type { WeightSlot } from '../../src/engine/model/spec';
import { uploadWeights } from '../../src/engine/model/weights';
import { createMoeScratch, encodeExperts } from '../../src/engine/moe/experts';
import { encodeMatmul } from '../../src/engine/ops/matmul';
import { GGML_LAYOUT } from '../../src/engine/quant/ggml-pack';
import { dequantize, GGML } from '../../src/engine/quant/gguf-blocks';
import type { GgmlFormat } from '../../src/engine/quant/pack';
import { uploadGgml } from '../../src/engine/quant/weight';
import { expertsRef, matmulRef, routeRef } from '../../src/engine/ref/ops';
import { maxAbsDiff, randomF32, rng } from '../../src/engine/ref/random';
import { SYNTHETIC, syntheticTensors } from '../unit/io/gguf_synthetic';
import { hfToGguf, type HfTensors } from '../unit/io/gguf_writer';
import { bf16Bits, f16Bits } from '../unit/io/safetensors_writer';
import { gpuKernels } from './device';
import { empty, f32, submit, up } from './run';

const FORMATS: GgmlFormat[] = ['f16', 'bf16', 'q8_0', 'q4_0', 'q4_k', 'q6_k'];

const setHalf = (b: Uint8Array, o: number, bits: number) => ((b[o] = bits & 0xff), (b[o + 1] = bits >> 8));
const identity = (n: number) => Float32Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? 1 : 0));
const maxAbs = (a: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
};
/** Largest error relative to the largest reference value. */
const relErr = (got: ArrayLike<number>, want: ArrayLike<number>) => maxAbsDiff(got, want) / Math.max(maxAbs(want), 1e-30);

/** The weights W[N, K] the GPU holds, read back as x = I_K times Wᵀ: y[m, n] = W[n, m], one product each. */
async function readBack(format: GgmlFormat, file: Uint8Array, N: number, K: number): Promise<Float32Array> {
  const k = await gpuKernels();
  const w = uploadGgml(k.device, format, file, N, K, 'w');
  const y = empty(k, K * N);
  submit(k, (enc) => encodeMatmul(k, enc, { x: up(k, identity(K)), w, y, M: K, N, K }));
  const t = await f32(k, y, K * N);
  const out = new Float32Array(N * K);
  for (let n = 0; n < N; n++) for (let m = 0; m < K; m++) out[n * K + m] = t[m * N + n]!;
  return out;
}

interface HandBlock {
  format: GgmlFormat;
  N: number;
  K: number;
  file: Uint8Array;
  /** Element index → the value worked out by hand from ggml's formulas. */
  want: Array<[number, number]>;
}

/** Blocks whose values are worked out by hand (ggml-common.h layouts, ggml-quants.c dequantize_row_*). */
function handBlocks(): HandBlock[] {
  const out: HandBlock[] = [];
  {
    // Q8_0, two rows of one block: d = 0.5 with codes at ±127/−128; d = −0.25 (a negative scale).
    const b = new Uint8Array(68);
    setHalf(b, 0, 0x3800);
    b.set([1, 0xfe, 127, 0x80], 2);
    setHalf(b, 34, 0xb400);
    for (let j = 0; j < 32; j++) b[36 + j] = (j - 16) & 0xff;
    out.push({ format: 'q8_0', N: 2, K: 32, file: b, want: [[0, 0.5], [1, -1], [2, 63.5], [3, -64], [4, 0], [32, 4], [32 + 16, -0], [32 + 31, -3.75]] });
  }
  {
    // Q4_0, one row of two blocks: d = 2 (nibbles 15, 9, 8, 0); d = −1 with byte j = j | (15 − j) << 4.
    const b = new Uint8Array(36);
    setHalf(b, 0, 0x4000);
    b[2] = 0x9f; // element 0: 15 → 14; element 16: 9 → 2
    b[3] = 0x08; // element 1: 8 → 0; element 17: 0 → −16
    setHalf(b, 18, 0xbc00);
    for (let j = 0; j < 16; j++) b[20 + j] = j | ((15 - j) << 4);
    out.push({ format: 'q4_0', N: 1, K: 64, file: b, want: [[0, 14], [16, 2], [1, 0], [17, -16], [2, -16], [32, 8], [32 + 15, -7], [48, -7], [63, 8]] });
  }
  {
    // Q4_K, two rows of one superblock. Row 0: d = 1, dmin = 0.5; sub-block 0 (sc 2, m 3), 1 (5, 2),
    // 4 (58, 21: its top bits from bytes 0 and 4), 3 and 7 at the 6-bit maximum 63 (7's top bits
    // from bytes 3 and 7). Row 1: d = −2, dmin = −1 (negative scales), sub-block 0 (sc 1, m 1).
    const b = new Uint8Array(288);
    setHalf(b, 0, 0x3c00);
    setHalf(b, 2, 0x3800);
    const s = b.subarray(4, 16);
    s[0] = 0xc2; s[4] = 0x43; s[1] = 0x05; s[5] = 0x02; s[8] = 0x5a;
    s[3] = 0xff; s[7] = 0xff; s[11] = 0xff;
    const qs = b.subarray(16, 144);
    qs[0] = 0x37; // element 0 (sub-block 0): 7; element 32 (sub-block 1): 3
    qs[64] = 0x0b; // element 128 (sub-block 4): 11
    qs[96 + 31] = 0xf0; // element 255 (sub-block 7, high nibble): 15; element 223 (sub-block 6): 0
    setHalf(b, 144, 0xc000);
    setHalf(b, 146, 0xbc00);
    b[148] = 1; b[152] = 1;
    b[160] = 0x0f; // element 0: 15; element 32: 0 (sub-block 1: sc 0, m 0)
    out.push({
      format: 'q4_k', N: 2, K: 256, file: b,
      want: [[0, 12.5], [1, -1.5], [32, 14], [33, -1], [128, 58 * 11 - 0.5 * 21], [255, 63 * 15 - 0.5 * 63], [224, -0.5 * 63], [96, -0.5 * 63],
        [256, -2 * 15 + 1], [257, 1], [256 + 32, 0]],
    });
  }
  {
    // Q6_K, two rows of one superblock. Row 0: d = 0.25, scales 3, 1, −2, …, codes from both halves
    // of ql and all four 2-bit fields of qh. Row 1: d = 1, scales[15] = −128, element 255 at the
    // largest code 63 (+31) and element 254 at the smallest 0 (−32).
    const b = new Uint8Array(420);
    setHalf(b, 208, 0x3400);
    const sc = (o: number, i: number, v: number) => (b[o + 192 + i] = v & 0xff);
    sc(0, 0, 3); sc(0, 1, 1); sc(0, 2, -2); sc(0, 4, 1); sc(0, 6, 4); sc(0, 8, 2);
    b[0] = 0x5a; b[32] = 0xc4; b[128] = 0x9e; b[64] = 0x01;
    setHalf(b, 210 + 208, 0x3c00);
    sc(210, 15, -128);
    b[210 + 127] = 0xf0; // ql[127] high nibble: element 255's low bits 15 (element 254: ql[126] = 0)
    b[210 + 128 + 63] = 0xc0; // qh[63] bits 6–7: element 255's high bits 3
    out.push({
      format: 'q6_k', N: 2, K: 256, file: b,
      want: [[0, 7.5], [32, -10], [64, -2.75], [96, 12], [16, -8], [128, -15.5], [1, -24], [256 + 255, -128 * 31], [256 + 254, -128 * -32]],
    });
  }
  {
    // F16: 1, −2, the largest finite 65504, the smallest subnormal 2⁻²⁴, −0, 0.5, 3, −7.
    const v = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x3800, 0x4200, 0xc700];
    const b = new Uint8Array(new Uint16Array(v).buffer);
    out.push({ format: 'f16', N: 1, K: 8, file: b, want: [[0, 1], [1, -2], [2, 65504], [3, 2 ** -24], [4, -0], [5, 0.5], [6, 3], [7, -7]] });
  }
  {
    // BF16: values a bf16 holds exactly, up to the largest finite one (0x7f7f).
    const bits = [0x3f80, 0xc040, 0x0380, 0x7f7f, 0xbe20, 0x40e0, 0x8000, 0x3f00];
    const b = new Uint8Array(new Uint16Array(bits).buffer);
    out.push({ format: 'bf16', N: 1, K: 8, file: b, want: [[0, 1], [1, -3], [2, 2 ** -120], [3, (2 - 2 ** -7) * 2 ** 127], [4, -0.15625], [5, 7], [6, -0], [7, 0.5]] });
  }
  return out;
}

describe('ggml blocks made by hand: CPU dequantizer and the GPU loaders', () => {
  for (const h of handBlocks()) {
    it(`${h.format}: worked values; GPU reads exactly the CPU dequantization`, async () => {
      const cpu = dequantize(GGML_LAYOUT[h.format].type, h.file, h.N * h.K);
      for (const [i, v] of h.want) expect(cpu[i], `element ${i}`).toBe(v);
      const gpu = await readBack(h.format, h.file, h.N, h.K);
      // Q4_K's d·sc·q − dmin·m may be fused into one FMA on the GPU (one rounding instead of two).
      if (h.format === 'q4_k') expect(relErr(gpu, cpu)).toBeLessThanOrEqual(2 ** -23);
      else expect(maxAbsDiff(gpu, cpu)).toBe(0); // (a sum with +0 turns −0 into +0, hence not toEqual)
    });
  }
});

/**
 * `n` elements of random blocks: every byte random (so all nibbles, 6-bit scales and sign bits
 * occur), then the f16 scales replaced by finite values of either sign (a random half could be
 * Inf/NaN, which the loader refuses).
 */
function randomFile(format: GgmlFormat, n: number, seed: number): Uint8Array {
  const r = rng(seed);
  const l = GGML_LAYOUT[format];
  if (format === 'f16' || format === 'bf16') {
    const bits = Array.from(randomF32(n, seed), format === 'f16' ? f16Bits : bf16Bits);
    return new Uint8Array(new Uint16Array(bits).buffer);
  }
  const b = Uint8Array.from({ length: (n / l.blockSize) * l.fileBytes }, () => Math.floor(r() * 256));
  const scale = () => f16Bits((r() * 2 - 1) * (format === 'q8_0' ? 0.01 : 0.05));
  for (let o = 0; o < b.length; o += l.fileBytes) {
    if (format === 'q6_k') setHalf(b, o + 208, f16Bits((r() * 2 - 1) * 0.002));
    else setHalf(b, o, scale());
    if (format === 'q4_k') setHalf(b, o + 2, scale());
  }
  return b;
}

/** Row length for a format's tests: a few blocks (K-quants: two superblocks). */
const kFor = (f: GgmlFormat, blocks = 2) => Math.max(GGML_LAYOUT[f].blockSize, 8) * blocks * (GGML_LAYOUT[f].blockSize === 1 ? 5 : 1);
/** Relative tolerance of an f32 matmul against the CPU reference (summation order differs). */
const REL_TOL = 1e-5;
/** Measured errors (largest |GPU − CPU| / largest |CPU|) per format and kernel, printed at the end. */
const measured = new Map<GgmlFormat, Record<string, string>>();
const note = (f: GgmlFormat, what: string, e: number) => {
  const row = measured.get(f) ?? {};
  row[what] = Math.max(Number(row[what] ?? 0), e).toExponential(1);
  measured.set(f, row);
  return e;
};
afterAll(() => console.table(Object.fromEntries(measured)));

describe('matmuls with ggml-block weights vs the CPU reference on the dequantised matrix', () => {
  for (const format of FORMATS) {
    const K = kFor(format);
    // M > 8: the 64×64 tile kernel; M ≤ 8: matrix-vector, main8 (gpu) or per-column (software).
    for (const [M, N, profile] of [[70, 65, 'gpu'], [1, 37, 'gpu'], [3, 40, 'gpu'], [1, 37, 'software'], [5, 9, 'software']] as const) {
      it(`${format} M=${M} N=${N} K=${K} (${profile})`, async () => {
        const k = await gpuKernels(profile);
        const file = randomFile(format, N * K, N + K);
        const x = randomF32(M * K, M + 1), bias = randomF32(N, 2);
        const w = uploadGgml(k.device, format, file, N, K, 'w');
        expect(w.bytes).toBe(Math.ceil((N * K / GGML_LAYOUT[format].blockSize) * GGML_LAYOUT[format].gpuBytes / 4) * 4);
        const y = empty(k, M * N);
        submit(k, (enc) => encodeMatmul(k, enc, { x: up(k, x), w, bias: up(k, bias), y, M, N, K }));
        const want = matmulRef(x, dequantize(GGML_LAYOUT[format].type, file, N * K), bias, M, N, K);
        const kernel = M > 8 ? 'tile' : profile === 'software' ? 'gemv per-column' : 'gemv main8';
        expect(note(format, kernel, relErr(await f32(k, y, M * N), want))).toBeLessThanOrEqual(REL_TOL);
      });
    }
  }
});

describe('routed experts with ggml-block expert weights', () => {
  for (const format of FORMATS) {
    // gate/up [E·2I, H] and down [E·H, I] both need rows of whole blocks.
    const H = kFor(format, 1), I = kFor(format, 1);
    for (const [T, profile] of [[1, 'gpu'], [2, 'software'], [20, 'gpu']] as const) {
      it(`${format} T=${T} E=4 top-2 H=${H} I=${I} (${profile})`, async () => {
        const k = await gpuKernels(profile);
        const [E, topk] = [4, 2];
        const x = randomF32(T * H, T + 3);
        const { idx, weights } = routeRef(randomF32(T * E, T + 4, 3), T, E, topk, true);
        const fgu = randomFile(format, E * 2 * I * H, 11), fd = randomFile(format, E * H * I, 12);
        const out = empty(k, T * H);
        submit(k, (enc) => encodeExperts(k, enc, {
          x: up(k, x), idx: up(k, idx), gates: up(k, weights), out,
          wGateUp: uploadGgml(k.device, format, fgu, E * 2 * I, H, 'gu'), wDown: uploadGgml(k.device, format, fd, E * H, I, 'd'),
          tokens: T, topk, experts: E, hidden: H, inter: I, capacity: 0, scratch: createMoeScratch(k.device, T * topk, E, H, I),
        }));
        const type = GGML_LAYOUT[format].type;
        const want = expertsRef(x, idx, weights, dequantize(type, fgu, E * 2 * I * H), dequantize(type, fd, E * H * I), T, topk, H, I);
        expect(note(format, T > 8 ? 'experts tile' : 'experts gemv', relErr(await f32(k, out, T * H), want))).toBeLessThanOrEqual(REL_TOL);
      });
    }
  }
});

const ROOT = join(import.meta.dirname, '..', 'fixtures');

async function ggufOf(name: string, type: number, perExpert = false): Promise<Uint8Array> {
  const st = await SafetensorsCheckpoint.open(await folderSources(join(ROOT, name)));
  const tensors: HfTensors = new Map();
  for (const n of st.names()) tensors.set(n, { shape: st.shape(n), data: await st.read(n) });
  const config = JSON.parse(readFileSync(join(ROOT, name, 'config.json'), 'utf8')) as Record<string, unknown>;
  return hfToGguf(config, tensors, { type, perExpert }).bytes;
}

describe('GGUF checkpoints with their file blocks on the GPU vs the same file dequantised to f32 on load', () => {
  // Q/K un-permutation (mixtral: llama arch) from per-expert tensors, a shared expert (qwen2_moe), rope
  // rows de-interleaved and latent attention (deepseek), a tied head (olmoe). Rows that are not
  // whole 32-blocks (the experts' K = 12, 16, 24 here) were written as F16 and keep those blocks.
  // The adapter's kernels (SwiftShader: the per-column variants, which read wv()) and the GPU ones
  // (main8, which reads wdot8() and sums in another order).
  const cases: Array<[string, number, boolean, 'gpu' | undefined]> = [
    ['mixtral_e4k2_legacy', GGML.Q4_0, true, undefined],
    ['qwen2_moe_e8k2_shared', GGML.Q4_0, false, undefined],
    ['qwen2_moe_e8k2_shared', GGML.Q8_0, false, 'gpu'],
    ['olmoe_e8k2_tied', GGML.Q8_0, false, undefined],
    ['deepseek_v3_e16k4_g4_yarn', GGML.Q4_0, false, 'gpu'],
  ];
  for (const [name, type, perExpert, profile] of cases) {
    it(`${name} ${type === GGML.Q8_0 ? 'Q8_0' : 'Q4_0'}${perExpert ? ' (per-expert tensors)' : ''}${profile ? ` (${profile} kernels)` : ''}: same logits`, async () => {
      const k = await gpuKernels(profile);
      const ref = JSON.parse(readFileSync(join(ROOT, name, 'reference.json'), 'utf8')) as { input_ids: number[] };
      const ck = await openCheckpoint([memorySource(`${name}.gguf`, await ggufOf(name, type, perExpert))], k.device.limits);
      const run = async (keepFileBlocks: boolean) => {
        const weights = await uploadWeights(k.device, ck.spec, ck.slots, ck.reader, { keepFileBlocks });
        const model = new MoeModel(k, ck.spec, weights, { contextLength: 64, chunkTokens: 32 });
        // Prefill (tiled kernels), then the last token alone (decode: matrix-vector kernels).
        const prefill = (await model.forward(ref.input_ids, { allLogits: true })).logits;
        model.reset();
        await model.forward(ref.input_ids.slice(0, -1));
        const decode = (await model.forward(ref.input_ids.slice(-1), { allLogits: true })).logits;
        model.destroy();
        return { logits: Float32Array.from([...prefill, ...decode]), weights };
      };
      const f32Run = await run(false);
      const blocks = await run(true);
      // The matrices really are the file's blocks, and take less memory than f32.
      const l0 = blocks.weights.layers[ck.spec.layers.findIndex((l) => l.mlp === 'moe')]!;
      const want = type === GGML.Q8_0 ? 'q8_0' : 'q4_0';
      expect(l0.expertsGateUp?.format).toBe(want);
      expect((l0.qkv ?? l0.kvA)?.format).toBe(want);
      expect(blocks.weights.bytes).toBeLessThan(f32Run.weights.bytes);
      const err = maxAbsDiff(blocks.logits, f32Run.logits);
      console.log(`${name} ${want}${perExpert ? ' per-expert' : ''}${profile ? ` ${profile}` : ''}: max |Δlogit| ${err.toExponential(2)}, weights ${(blocks.weights.bytes / 1024).toFixed(0)} KiB vs ${(f32Run.weights.bytes / 1024).toFixed(0)} KiB f32`);
      expect(err).toBeLessThanOrEqual(1e-4);
    });
  }
});

/** Logits of `ids` (prefill, then the last token again as a decode step) from the file loaded with and without its blocks kept. */
async function bothWays(k: Awaited<ReturnType<typeof gpuKernels>>, file: Uint8Array, name: string, ids: number[]) {
  const ck = await openCheckpoint([memorySource(`${name}.gguf`, file)], k.device.limits);
  const run = async (keepFileBlocks: boolean) => {
    const weights = await uploadWeights(k.device, ck.spec, ck.slots, ck.reader, { keepFileBlocks });
    const model = new MoeModel(k, ck.spec, weights, { contextLength: 64, chunkTokens: 32 });
    const prefill = (await model.forward(ids, { allLogits: true })).logits;
    model.reset();
    await model.forward(ids.slice(0, -1));
    const decode = (await model.forward(ids.slice(-1), { allLogits: true })).logits;
    model.destroy();
    return { logits: Float32Array.from([...prefill, ...decode]), weights };
  };
  return { ck, f32: await run(false), blocks: await run(true) };
}

describe('synthetic 256-wide checkpoints as Q4_K, Q6_K and mixed GGUF files', () => {
  const ids = [3, 17, 42, 5, 88, 61];
  // Mixed as llama-quantize's Q4_K_M mixes: attn_v and ffn_down Q6_K, the rest Q4_K; the head BF16.
  const mixed = (hf: string) => (/v_proj|down_proj|w2/.test(hf) ? GGML.Q6_K : hf === 'lm_head.weight' ? GGML.BF16 : undefined);
  const cases: Array<[string, number, ((hf: string) => number | undefined) | undefined, 'gpu' | undefined]> = [
    ['mixtral', GGML.Q4_K, undefined, undefined],
    ['qwen3_moe', GGML.Q4_K, mixed, 'gpu'],
  ];
  for (const [arch, type, typeFor, profile] of cases) {
    it(`${arch} ${type === GGML.Q4_K ? 'Q4_K' : 'Q6_K'}${typeFor ? ' mixed with Q6_K and BF16' : ''}${profile ? ` (${profile} kernels)` : ''}: same logits as dequantised to f32`, async () => {
      const k = await gpuKernels(profile);
      const config = SYNTHETIC[arch]!;
      const file = hfToGguf(config, syntheticTensors(config, 7), { type, typeFor }).bytes;
      const { ck, f32: plain, blocks } = await bothWays(k, file, arch, ids);
      const l = blocks.weights.layers[ck.spec.layers.findIndex((x) => x.mlp === 'moe')]!;
      if (typeFor) {
        // q/k (Q4_K) and v (Q6_K) cannot be stacked as blocks: they fall back to f32 together.
        expect([l.qkv?.format, l.expertsGateUp?.format, l.expertsDown?.format]).toEqual(['f32', 'q4_k', 'q6_k']);
        expect('format' in blocks.weights.lmHead && blocks.weights.lmHead.format).toBe('bf16');
      } else {
        const want = type === GGML.Q4_K ? 'q4_k' : 'q6_k';
        expect([l.qkv?.format, l.o.format, l.expertsGateUp?.format, l.expertsDown?.format]).toEqual([want, want, want, want]);
      }
      expect(blocks.weights.bytes).toBeLessThan(plain.weights.bytes / 2);
      const err = maxAbsDiff(blocks.logits, plain.logits);
      console.log(`synthetic ${arch}${typeFor ? ' mixed' : ''} ${type === GGML.Q4_K ? 'Q4_K' : 'Q6_K'}${profile ? ` ${profile}` : ''}: max |Δlogit| ${err.toExponential(2)} (logits up to ${maxAbs(plain.logits).toFixed(2)}), weights ${(blocks.weights.bytes / 2 ** 20).toFixed(2)} MiB vs ${(plain.weights.bytes / 2 ** 20).toFixed(2)} MiB f32`);
      expect(err).toBeLessThanOrEqual(1e-4);
    });
  }

  it('a safetensors checkpoint cannot keep file blocks; a slot whose assembly mixes rows does not', async () => {
    const k = await gpuKernels();
    const st = await openCheckpoint(await folderSources(join(ROOT, 'olmoe_e8k2_tied')), k.device.limits);
    await expect(uploadWeights(k.device, st.spec, st.slots, st.reader, { keepFileBlocks: true })).rejects.toThrow(/needs a GGUF checkpoint/);
    const ck = await openCheckpoint([memorySource('o.gguf', await ggufOf('olmoe_e8k2_tied', GGML.Q8_0))], k.device.limits);
    const o = ck.slots.find((x) => x.name === 'L0.o')!;
    const [R, C] = o.shape as [number, number];
    // The same tensor transposed on load (R = C here): no longer rows of the file.
    const transposed: WeightSlot = {
      ...o,
      async load(r) {
        const d = await o.load(r);
        return Float32Array.from({ length: R * C }, (_, i) => d[(i % C) * C + Math.floor(i / C)]!);
      },
    };
    expect(R).toBe(C);
    expect((await planFileBlocks([o], ck.reader as GgufCheckpoint)).get(o.name)?.format).toBe('q8_0');
    const alone = await planFileBlocks([transposed], ck.reader as GgufCheckpoint);
    expect(alone.size).toBe(0);
  });
});
