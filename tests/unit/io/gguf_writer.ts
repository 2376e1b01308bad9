/**
 * Test-only: GGUF v3 files from tensors and metadata, block quantizers for Q8_0 / Q4_0 / Q4_K / Q6_K
 * (packing as ggml-quants.c's quantize_row_*_ref packs), and an HF → GGUF converter following
 * llama.cpp's convert_hf_to_gguf.py: gguf-py's tensor names, experts merged into
 * ffn_{gate,up,down}_exps, Q/K rows permuted for llama-style archs (LlamaModel.permute), 1-D
 * tensors and routers kept F32 as llama-quantize keeps them, F16 where a row does not fill blocks.
 *
 * Each quantizer also returns its own reconstruction of the values (from the integer codes and
 * scales it chose), so tests can compare the loader's dequantization against arithmetic that does
 * not go through it.
 */
import { GGUF_TYPE } from '../../../src/engine/io/gguf';
import { bf16ToF32, f16ToF32 } from '../../../src/engine/io/safetensors';
import { GGML, GGML_TYPES } from '../../../src/engine/quant/gguf-blocks';
import { bf16Bits, f16Bits } from './safetensors_writer';

// ---------------------------------------------------------------- file writer

export type MetaValue =
  | { type: number; value: number | bigint | boolean | string }
  | { type: typeof GGUF_TYPE.ARRAY; elem: number; values: Array<number | bigint | boolean | string> };

export const mv = {
  str: (value: string): MetaValue => ({ type: GGUF_TYPE.STRING, value }),
  u32: (value: number): MetaValue => ({ type: GGUF_TYPE.UINT32, value }),
  i32: (value: number): MetaValue => ({ type: GGUF_TYPE.INT32, value }),
  u64: (value: number | bigint): MetaValue => ({ type: GGUF_TYPE.UINT64, value }),
  f32: (value: number): MetaValue => ({ type: GGUF_TYPE.FLOAT32, value }),
  bool: (value: boolean): MetaValue => ({ type: GGUF_TYPE.BOOL, value }),
  strs: (values: string[]): MetaValue => ({ type: GGUF_TYPE.ARRAY, elem: GGUF_TYPE.STRING, values }),
  i32s: (values: number[]): MetaValue => ({ type: GGUF_TYPE.ARRAY, elem: GGUF_TYPE.INT32, values }),
  f32s: (values: number[]): MetaValue => ({ type: GGUF_TYPE.ARRAY, elem: GGUF_TYPE.FLOAT32, values }),
};

export interface GgufTensorSpec {
  name: string;
  /** ggml order: innermost first. */
  ne: number[];
  type: number;
  bytes: Uint8Array;
}

export interface WriteOptions {
  version?: number;
  alignment?: number;
  magic?: string;
  /** Overrides the data offset written for tensor i (to forge headers). */
  offsetOf?: (i: number, natural: number) => number | bigint;
  /** Overrides the written counts (to forge headers). */
  tensorCount?: number | bigint;
  kvCount?: number | bigint;
}

class Bytes {
  private chunks: Uint8Array[] = [];
  length = 0;
  push(b: Uint8Array): void {
    this.chunks.push(b);
    this.length += b.byteLength;
  }
  u32(v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    this.push(b);
  }
  u64(v: number | bigint): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
    this.push(b);
  }
  str(s: string): void {
    const t = new TextEncoder().encode(s);
    this.u64(t.byteLength);
    this.push(t);
  }
  pad(to: number): void {
    const n = (to - (this.length % to)) % to;
    if (n) this.push(new Uint8Array(n));
  }
  scalar(type: number, v: number | bigint | boolean | string): void {
    const b = new Uint8Array(8);
    const d = new DataView(b.buffer);
    switch (type) {
      case GGUF_TYPE.STRING: return this.str(v as string);
      case GGUF_TYPE.UINT8: d.setUint8(0, v as number); return this.push(b.subarray(0, 1));
      case GGUF_TYPE.INT8: d.setInt8(0, v as number); return this.push(b.subarray(0, 1));
      case GGUF_TYPE.BOOL: d.setUint8(0, typeof v === 'boolean' ? Number(v) : (v as number)); return this.push(b.subarray(0, 1));
      case GGUF_TYPE.UINT16: d.setUint16(0, v as number, true); return this.push(b.subarray(0, 2));
      case GGUF_TYPE.INT16: d.setInt16(0, v as number, true); return this.push(b.subarray(0, 2));
      case GGUF_TYPE.UINT32: d.setUint32(0, v as number, true); return this.push(b.subarray(0, 4));
      case GGUF_TYPE.INT32: d.setInt32(0, v as number, true); return this.push(b.subarray(0, 4));
      case GGUF_TYPE.FLOAT32: d.setFloat32(0, v as number, true); return this.push(b.subarray(0, 4));
      case GGUF_TYPE.UINT64: d.setBigUint64(0, BigInt(v as number), true); return this.push(b);
      case GGUF_TYPE.INT64: d.setBigInt64(0, BigInt(v as number), true); return this.push(b);
      case GGUF_TYPE.FLOAT64: d.setFloat64(0, v as number, true); return this.push(b);
      // An unknown type (to forge files): four zero bytes.
      default: return this.push(b.subarray(0, 4));
    }
  }
  join(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) (out.set(c, o), (o += c.byteLength));
    return out;
  }
}

export function writeGguf(metadata: Array<[string, MetaValue]>, tensors: GgufTensorSpec[], o: WriteOptions = {}): Uint8Array {
  const align = o.alignment ?? 32;
  const b = new Bytes();
  b.push(new TextEncoder().encode(o.magic ?? 'GGUF'));
  b.u32(o.version ?? 3);
  b.u64(o.tensorCount ?? tensors.length);
  b.u64(o.kvCount ?? metadata.length);
  for (const [k, v] of metadata) {
    b.str(k);
    b.u32(v.type);
    if ('elem' in v) {
      b.u32(v.elem);
      b.u64(v.values.length);
      for (const x of v.values) b.scalar(v.elem, x);
    } else b.scalar(v.type, v.value);
  }
  let off = 0;
  tensors.forEach((t, i) => {
    b.str(t.name);
    b.u32(t.ne.length);
    for (const d of t.ne) b.u64(d);
    b.u32(t.type);
    b.u64(o.offsetOf ? o.offsetOf(i, off) : off);
    off += Math.ceil(t.bytes.byteLength / align) * align;
  });
  b.pad(align);
  for (const t of tensors) {
    b.push(t.bytes);
    b.pad(align);
  }
  return b.join();
}

// ---------------------------------------------------------------- block quantizers

const f = Math.fround;
const h16 = (x: number) => f16ToF32(f16Bits(x));
// `+ 0` turns Math.round's −0 into the +0 an integer code decodes to.
const nearest = (x: number) => Math.round(x) + 0;

export interface Quantized {
  bytes: Uint8Array;
  /** The values the blocks encode, computed here from the codes and scales. */
  recon: Float32Array;
}

function setHalf(b: Uint8Array, o: number, x: number): number {
  const h = f16Bits(x);
  b[o] = h & 0xff;
  b[o + 1] = h >> 8;
  return f16ToF32(h);
}

/** Q8_0: d = amax/127 (as f16), q = round(x/d). */
function q8_0(x: Float32Array): Quantized {
  const nb = x.length / 32;
  const bytes = new Uint8Array(nb * 34);
  const recon = new Float32Array(x.length);
  for (let i = 0; i < nb; i++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[i * 32 + j]!));
    const d = setHalf(bytes, i * 34, amax / 127);
    for (let j = 0; j < 32; j++) {
      const q = d === 0 ? 0 : Math.max(-127, Math.min(127, nearest(x[i * 32 + j]! / d)));
      bytes[i * 34 + 2 + j] = q & 0xff;
      recon[i * 32 + j] = f(q * d);
    }
  }
  return { bytes, recon };
}

/** Q4_0: d = (signed value of largest magnitude)/−8, q = round(x/d) + 8 ∈ [0, 15]; elements j and j+16 share byte j. */
function q4_0(x: Float32Array): Quantized {
  const nb = x.length / 32;
  const bytes = new Uint8Array(nb * 18);
  const recon = new Float32Array(x.length);
  for (let i = 0; i < nb; i++) {
    let max = 0;
    for (let j = 0; j < 32; j++) if (Math.abs(x[i * 32 + j]!) > Math.abs(max)) max = x[i * 32 + j]!;
    const d = setHalf(bytes, i * 18, max / -8);
    const q = (j: number) => (d === 0 ? 8 : Math.max(0, Math.min(15, nearest(x[i * 32 + j]! / d) + 8)));
    for (let j = 0; j < 16; j++) {
      const lo = q(j), hi = q(j + 16);
      bytes[i * 18 + 2 + j] = lo | (hi << 4);
      recon[i * 32 + j] = f((lo - 8) * d);
      recon[i * 32 + j + 16] = f((hi - 8) * d);
    }
  }
  return { bytes, recon };
}

/** Q4_K: 8 sub-blocks of 32, x ≈ d·sc·q − dmin·m with 6-bit sc, m and 4-bit q. */
function q4_K(x: Float32Array): Quantized {
  const nb = x.length / 256;
  const bytes = new Uint8Array(nb * 144);
  const recon = new Float32Array(x.length);
  for (let i = 0; i < nb; i++) {
    const o = i * 144;
    const xs = x.subarray(i * 256, (i + 1) * 256);
    const scale: number[] = [], mins: number[] = [];
    for (let j = 0; j < 8; j++) {
      const sub = xs.subarray(32 * j, 32 * j + 32);
      const lo = Math.min(0, ...sub), hi = Math.max(...sub);
      scale.push((hi - lo) / 15);
      mins.push(-lo);
    }
    const d = setHalf(bytes, o, Math.max(...scale) / 63);
    const dmin = setHalf(bytes, o + 2, Math.max(...mins) / 63);
    const L = new Uint8Array(256);
    for (let j = 0; j < 8; j++) {
      const ls = d === 0 ? 0 : Math.min(63, nearest(scale[j]! / d));
      const lm = dmin === 0 ? 0 : Math.min(63, nearest(mins[j]! / dmin));
      // quantize_row_q4_K_ref's packing of the 6-bit scales and mins.
      if (j < 4) {
        bytes[o + 4 + j] = ls;
        bytes[o + 4 + j + 4] = lm;
      } else {
        bytes[o + 4 + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
        bytes[o + 4 + j - 4] = bytes[o + 4 + j - 4]! | (ls >> 4) << 6;
        bytes[o + 4 + j] = bytes[o + 4 + j]! | (lm >> 4) << 6;
      }
      const dl = f(d * ls), ml = f(dmin * lm);
      for (let l = 0; l < 32; l++) {
        const q = dl === 0 ? 0 : Math.max(0, Math.min(15, nearest((xs[32 * j + l]! + ml) / dl)));
        L[32 * j + l] = q;
        recon[i * 256 + 32 * j + l] = f(f(dl * q) - ml);
      }
    }
    for (let j = 0; j < 256; j += 64) for (let l = 0; l < 32; l++) bytes[o + 16 + j / 2 + l] = L[j + l]! | (L[j + l + 32]! << 4);
  }
  return { bytes, recon };
}

/** Q6_K: 16 sub-blocks of 16 with int8 scales, 6-bit q − 32 (low 4 bits in ql, high 2 in qh). */
function q6_K(x: Float32Array): Quantized {
  const nb = x.length / 256;
  const bytes = new Uint8Array(nb * 210);
  const recon = new Float32Array(x.length);
  for (let i = 0; i < nb; i++) {
    const o = i * 210;
    const xs = x.subarray(i * 256, (i + 1) * 256);
    const sub: number[] = [];
    for (let j = 0; j < 16; j++) sub.push(Math.max(...Array.from(xs.subarray(16 * j, 16 * j + 16), Math.abs)) / 31);
    const d = setHalf(bytes, o + 208, Math.max(...sub) / 127);
    const L = new Uint8Array(256);
    for (let j = 0; j < 16; j++) {
      const sc = d === 0 ? 0 : Math.min(127, nearest(sub[j]! / d));
      bytes[o + 192 + j] = sc & 0xff;
      const ds = f(d * sc);
      for (let l = 0; l < 16; l++) {
        const q = ds === 0 ? 0 : Math.max(-32, Math.min(31, nearest(xs[16 * j + l]! / ds)));
        L[16 * j + l] = q + 32;
        recon[i * 256 + 16 * j + l] = f(ds * q);
      }
    }
    for (let n = 0; n < 2; n++) {
      const ql = o + 64 * n, qh = o + 128 + 32 * n, j = 128 * n;
      for (let l = 0; l < 32; l++) {
        bytes[ql + l] = (L[j + l]! & 0xf) | ((L[j + l + 64]! & 0xf) << 4);
        bytes[ql + l + 32] = (L[j + l + 32]! & 0xf) | ((L[j + l + 96]! & 0xf) << 4);
        bytes[qh + l] = (L[j + l]! >> 4) | ((L[j + l + 32]! >> 4) << 2) | ((L[j + l + 64]! >> 4) << 4) | ((L[j + l + 96]! >> 4) << 6);
      }
    }
  }
  return { bytes, recon };
}

/** `x` (whole rows of ne0 values, ne0 a multiple of the block size) in a ggml type. */
export function quantizeAs(type: number, x: Float32Array): Quantized {
  switch (type) {
    case GGML.F32: return { bytes: new Uint8Array(Float32Array.from(x).buffer), recon: Float32Array.from(x) };
    case GGML.F16: return { bytes: new Uint8Array(Uint16Array.from(x, f16Bits).buffer), recon: Float32Array.from(x, h16) };
    case GGML.BF16: {
      const bits = Uint16Array.from(x, bf16Bits);
      return { bytes: new Uint8Array(bits.buffer), recon: Float32Array.from(bits, bf16ToF32) };
    }
    case GGML.Q8_0: return q8_0(x);
    case GGML.Q4_0: return q4_0(x);
    case GGML.Q4_K: return q4_K(x);
    case GGML.Q6_K: return q6_K(x);
    default: throw new Error(`writer: no quantizer for type ${type}`);
  }
}

// ---------------------------------------------------------------- HF → GGUF (convert_hf_to_gguf.py)

export type HfTensors = Map<string, { shape: number[]; data: Float32Array }>;

export const HF_TO_GGUF_ARCH: Record<string, string> = { qwen2_moe: 'qwen2moe', qwen3_moe: 'qwen3moe', mixtral: 'llama', olmoe: 'olmoe', granitemoe: 'granitemoe', deepseek_v2: 'deepseek2', deepseek_v3: 'deepseek2' };
/** llama.cpp's build_moe_ffn norm_w per arch (what a file without expert_weights_norm means). */
const LLAMA_CPP_NORM: Record<string, boolean> = { qwen2moe: false, qwen3moe: true, llama: true, olmoe: false, granitemoe: true, deepseek2: false };

export interface TokenizerMeta {
  model: 'gpt2' | 'llama';
  tokens: string[];
  types: number[];
  merges?: string[];
  scores?: number[];
  bos?: number;
  eos?: number;
  unk?: number;
  pre?: string;
  chatTemplate?: string;
  addBos?: boolean;
}

export interface ConvertOptions {
  /** Type for matrices (2-D and up, routers excepted). */
  type: number;
  /** Per HF tensor, a type other than `type` (mixed files, as llama-quantize's Q4_K_M writes attn_v as Q6_K). */
  typeFor?: (hfName: string) => number | undefined;
  tokenizer?: TokenizerMeta;
  /** Mixtral only: one tensor per expert (blk.N.ffn_gate.E.weight), as llama.cpp wrote before 2024. */
  perExpert?: boolean;
  /** Leave Q/K rows unpermuted (to show the loader's un-permutation matters). */
  skipPermute?: boolean;
  /** Write the shared-expert gate as [H] (llama.cpp's create_tensor shape) rather than [H, 1]. */
  flatSharedGate?: boolean;
  /** DeepSeek: write kv_b as newer llama.cpp does, split into attn_k_b (key part transposed) and attn_v_b only. */
  splitKvB?: boolean;
}

export interface Converted {
  bytes: Uint8Array;
  /** HF name → the values the file holds for it (after quantization), HF layout. */
  recon: HfTensors;
  /** GGUF tensor name → ggml type name used. */
  types: Map<string, string>;
}

/** convert_hf_to_gguf.py's LlamaModel.permute: reshape(n_head, 2, D/2, cols).swapaxes(1, 2). */
export function permuteRows<T extends { length: number; subarray(a: number, b: number): T }>(rows: T[], nHead: number): T[] {
  const D = rows.length / nHead;
  const out: T[] = new Array<T>(rows.length);
  for (let h = 0; h < nHead; h++) for (let j = 0; j < D / 2; j++) for (let i = 0; i < 2; i++) out[h * D + 2 * j + i] = rows[h * D + i * (D / 2) + j]!;
  return out;
}

const cfgNum = (c: Record<string, unknown>, k: string) => c[k] as number;

/** The last `rope` rows of each `block` from halves (x0, x2, …, x1, x3, …) to interleaved pairs. */
function interleaveRope<T>(rows: T[], block: number, rope: number): T[] {
  const out = [...rows];
  for (let b = 0; b + block <= rows.length; b += block) {
    const r0 = b + block - rope;
    for (let j = 0; j < rope / 2; j++) {
      out[r0 + 2 * j] = rows[r0 + j]!;
      out[r0 + 2 * j + 1] = rows[r0 + rope / 2 + j]!;
    }
  }
  return out;
}

function ggufName(hf: string, arch: string): string | null {
  const g: Record<string, string> = { 'model.embed_tokens.weight': 'token_embd.weight', 'model.norm.weight': 'output_norm.weight', 'lm_head.weight': 'output.weight' };
  if (g[hf]) return g[hf]!;
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hf);
  if (!m) return null;
  const map: Record<string, string> = {
    'input_layernorm.weight': 'attn_norm.weight',
    'post_attention_layernorm.weight': 'ffn_norm.weight',
    'self_attn.q_proj.weight': 'attn_q.weight', 'self_attn.q_proj.bias': 'attn_q.bias',
    'self_attn.k_proj.weight': 'attn_k.weight', 'self_attn.k_proj.bias': 'attn_k.bias',
    'self_attn.v_proj.weight': 'attn_v.weight', 'self_attn.v_proj.bias': 'attn_v.bias',
    'self_attn.o_proj.weight': 'attn_output.weight', 'self_attn.o_proj.bias': 'attn_output.bias',
    'self_attn.q_norm.weight': 'attn_q_norm.weight', 'self_attn.k_norm.weight': 'attn_k_norm.weight',
    'mlp.gate.weight': 'ffn_gate_inp.weight', 'block_sparse_moe.gate.weight': 'ffn_gate_inp.weight', 'block_sparse_moe.router.layer.weight': 'ffn_gate_inp.weight',
    'mlp.shared_expert.gate_proj.weight': 'ffn_gate_shexp.weight', 'mlp.shared_expert.up_proj.weight': 'ffn_up_shexp.weight', 'mlp.shared_expert.down_proj.weight': 'ffn_down_shexp.weight',
    'mlp.shared_expert_gate.weight': 'ffn_gate_inp_shexp.weight',
    'mlp.gate_proj.weight': 'ffn_gate.weight', 'mlp.up_proj.weight': 'ffn_up.weight', 'mlp.down_proj.weight': 'ffn_down.weight',
    'mlp.shared_experts.gate_proj.weight': 'ffn_gate_shexp.weight', 'mlp.shared_experts.up_proj.weight': 'ffn_up_shexp.weight', 'mlp.shared_experts.down_proj.weight': 'ffn_down_shexp.weight',
    'mlp.gate.e_score_correction_bias': 'exp_probs_b.bias',
    'self_attn.q_a_proj.weight': 'attn_q_a.weight', 'self_attn.q_a_layernorm.weight': 'attn_q_a_norm.weight', 'self_attn.q_b_proj.weight': 'attn_q_b.weight',
    'self_attn.kv_a_proj_with_mqa.weight': 'attn_kv_a_mqa.weight', 'self_attn.kv_a_layernorm.weight': 'attn_kv_a_norm.weight', 'self_attn.kv_b_proj.weight': 'attn_kv_b.weight',
  };
  void arch;
  return map[m[2]!] ? `blk.${m[1]}.${map[m[2]!]}` : null;
}

/** A tensor in "row space": rows of its last dim, each already encoded (so permuting/merging moves whole rows of blocks). */
interface Encoded {
  type: number;
  cols: number;
  rows: Uint8Array[];
  recon: Float32Array;
}

function encode(data: Float32Array, shape: number[], wanted: number, oneDim: boolean): Encoded {
  const cols = shape[shape.length - 1]!;
  const bs = GGML_TYPES.get(wanted)!.blockSize;
  // llama-quantize: 1-D tensors stay F32; a row that is not whole blocks falls back (to F16 here).
  const type = oneDim ? GGML.F32 : cols % bs === 0 ? wanted : GGML.F16;
  const q = quantizeAs(type, data);
  const rowBytes = q.bytes.byteLength / (data.length / cols);
  const rows = Array.from({ length: data.length / cols }, (_, r) => q.bytes.subarray(r * rowBytes, (r + 1) * rowBytes));
  return { type, cols, rows, recon: q.recon };
}

const cat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let o = 0;
  for (const p of parts) (out.set(p, o), (o += p.byteLength));
  return out;
};

export function hfToGguf(config: Record<string, unknown>, tensors: HfTensors, opts: ConvertOptions): Converted {
  const hfArch = config.model_type as string;
  const arch = HF_TO_GGUF_ARCH[hfArch]!;
  const c = config;
  const nHead = cfgNum(c, 'num_attention_heads');
  const nKv = (c.num_key_value_heads as number | undefined) ?? nHead;
  const permuted = (arch === 'llama' || arch === 'granitemoe') && !opts.skipPermute;
  const tie = c.tie_word_embeddings === true;
  const out: GgufTensorSpec[] = [];
  const recon: HfTensors = new Map();
  const types = new Map<string, string>();
  const add = (name: string, e: Encoded, ne: number[]) => {
    out.push({ name, ne, type: e.type, bytes: cat(e.rows) });
    types.set(name, GGML_TYPES.get(e.type)!.name);
  };
  // Experts gathered per layer and kind, merged once all are seen (as modify_tensors does).
  const experts = new Map<string, Map<number, Encoded>>();
  for (const [name, t] of tensors) {
    if (tie && name === 'lm_head.weight') continue;
    const isRouter = /\.(mlp\.gate|block_sparse_moe\.gate|block_sparse_moe\.router\.layer|mlp\.shared_expert_gate)\.weight$/.test(name);
    const e = encode(t.data, t.shape, opts.typeFor?.(name) ?? opts.type, t.shape.length === 1 || isRouter);
    recon.set(name, { shape: t.shape, data: e.recon });
    const layer = /^model\.layers\.(\d+)\./.exec(name)?.[1];
    const ex = /\.experts\.(\d+)\.(gate_proj|up_proj|down_proj|w1|w3|w2)\.weight$/.exec(name);
    if (ex) {
      const kind = { gate_proj: 'gate', w1: 'gate', up_proj: 'up', w3: 'up', down_proj: 'down', w2: 'down' }[ex[2]!]!;
      const key = `${layer}|${kind}`;
      const byE = experts.get(key) ?? new Map<number, Encoded>();
      byE.set(Number(ex[1]), e);
      experts.set(key, byE);
      continue;
    }
    if (/\.block_sparse_moe\.(input|output)_linear\.weight$/.test(name)) {
      // GraniteMoeModel.modify_tensors: input_linear [E, 2I, H] split into gate [:, :I] and up [:, I:].
      const [E, R, H] = t.shape as [number, number, number];
      const perE = R;
      const slab = (from: number, to: number) => ({ ...e, rows: Array.from({ length: E }, (_, x) => e.rows.slice(x * perE + from, x * perE + to)).flat() });
      if (name.endsWith('input_linear.weight')) {
        add(`blk.${layer}.ffn_gate_exps.weight`, slab(0, R / 2), [H, R / 2, E]);
        add(`blk.${layer}.ffn_up_exps.weight`, slab(R / 2, R), [H, R / 2, E]);
      } else add(`blk.${layer}.ffn_down_exps.weight`, e, [H, R, E]);
      continue;
    }
    const g = ggufName(name, arch);
    if (!g) throw new Error(`writer: no GGUF name for ${name}`);
    let rows = e.rows;
    if (permuted && /self_attn\.[qk]_proj\.(weight|bias)$/.test(name)) {
      const heads = name.includes('q_proj') ? nHead : nKv;
      if (t.shape.length === 1) {
        // A bias: one value per row; permute its values like rows.
        const vals = permuteRows(Array.from({ length: t.shape[0]! }, (_, i) => t.data.subarray(i, i + 1)), heads);
        const data = Float32Array.from(vals, (v) => v[0]!);
        rows = [quantizeAs(GGML.F32, data).bytes];
      } else rows = permuteRows(e.rows, heads);
    }
    // llama.cpp rotates DeepSeek's rope dims as interleaved pairs; a checkpoint laid out in halves
    // (rope_interleave false) has its rope rows interleaved on conversion.
    if (arch === 'deepseek2' && c.rope_interleave === false && /self_attn\.(q_proj|q_b_proj|kv_a_proj_with_mqa)\.weight$/.test(name)) {
      const rope = cfgNum(c, 'qk_rope_head_dim');
      const block = name.includes('kv_a') ? rows.length : cfgNum(c, 'qk_nope_head_dim') + rope;
      rows = interleaveRope(rows, block, rope);
    }
    if (arch === 'deepseek2' && opts.splitKvB && name.endsWith('self_attn.kv_b_proj.weight')) {
      const [dn, dv, L] = [cfgNum(c, 'qk_nope_head_dim'), cfgNum(c, 'v_head_dim'), t.shape[1]!];
      const kb: Float32Array[] = [], vb: Float32Array[] = [];
      for (let h = 0; h < nHead; h++) {
        const base = h * (dn + dv);
        // k_b: [H, L, dn] (kv_b's key rows transposed per head); v_b: [H, dv, L].
        for (let l = 0; l < L; l++) kb.push(Float32Array.from({ length: dn }, (_, d) => e.recon[(base + d) * L + l]!));
        for (let j = 0; j < dv; j++) vb.push(e.recon.slice((base + dn + j) * L, (base + dn + j + 1) * L));
      }
      const kEnc = encode(Float32Array.from(kb.flatMap((r) => [...r])), [nHead * L, dn], opts.type, false);
      const vEnc = encode(Float32Array.from(vb.flatMap((r) => [...r])), [nHead * dv, L], opts.type, false);
      add(`blk.${layer}.attn_k_b.weight`, kEnc, [dn, L, nHead]);
      add(`blk.${layer}.attn_v_b.weight`, vEnc, [L, dv, nHead]);
      continue;
    }
    let ne = [...t.shape].reverse();
    if (g.endsWith('ffn_gate_inp_shexp.weight') && opts.flatSharedGate) ne = [ne[0]!];
    add(g, { ...e, rows }, ne);
  }
  for (const [key, byE] of experts) {
    const [layer, kind] = key.split('|') as [string, string];
    const E = byE.size;
    const first = byE.get(0)!;
    const rowsPer = first.rows.length;
    if (opts.perExpert) {
      for (let x = 0; x < E; x++) add(`blk.${layer}.ffn_${kind}.${x}.weight`, byE.get(x)!, [first.cols, rowsPer]);
    } else {
      add(`blk.${layer}.ffn_${kind}_exps.weight`, { ...first, rows: Array.from({ length: E }, (_, x) => byE.get(x)!.rows).flat() }, [first.cols, rowsPer, E]);
    }
  }

  const k = (s: string) => `${arch}.${s}`;
  const numExperts = (c.num_experts ?? c.num_local_experts ?? c.n_routed_experts) as number;
  const deepseek = arch === 'deepseek2';
  const headDim = deepseek ? cfgNum(c, 'qk_nope_head_dim') + cfgNum(c, 'qk_rope_head_dim') : (c.head_dim as number | undefined) ?? cfgNum(c, 'hidden_size') / nHead;
  const rope = (c.rope_parameters as { rope_theta?: number } | undefined)?.rope_theta ?? (c.rope_theta as number | undefined) ?? 10000;
  const meta: Array<[string, MetaValue]> = [
    ['general.architecture', mv.str(arch)],
    ['general.name', mv.str(`test ${hfArch}`)],
    [k('context_length'), mv.u32(cfgNum(c, 'max_position_embeddings'))],
    [k('embedding_length'), mv.u32(cfgNum(c, 'hidden_size'))],
    [k('block_count'), mv.u32(cfgNum(c, 'num_hidden_layers'))],
    [k('attention.head_count'), mv.u32(nHead)],
    [k('attention.head_count_kv'), mv.u32(nKv)],
    [k('rope.freq_base'), mv.f32(rope)],
    [k('rope.dimension_count'), mv.u32(deepseek ? cfgNum(c, 'qk_rope_head_dim') : headDim)],
    [k('attention.layer_norm_rms_epsilon'), mv.f32(cfgNum(c, 'rms_norm_eps'))],
    [k('expert_count'), mv.u32(numExperts)],
    [k('expert_used_count'), mv.u32(cfgNum(c, 'num_experts_per_tok'))],
  ];
  if (c.intermediate_size != null) meta.push([k('feed_forward_length'), mv.u32(cfgNum(c, 'intermediate_size'))]);
  if (deepseek) {
    // What convert_hf_to_gguf.py's DeepseekV2Model writes (V3 converts as the same arch).
    const rp = (c.rope_scaling ?? c.rope_parameters) as Record<string, number | string> | null | undefined;
    meta.push(
      [k('attention.key_length'), mv.u32(headDim)], [k('attention.value_length'), mv.u32(cfgNum(c, 'v_head_dim'))],
      [k('attention.kv_lora_rank'), mv.u32(cfgNum(c, 'kv_lora_rank'))],
      [k('leading_dense_block_count'), mv.u32(cfgNum(c, 'first_k_dense_replace'))],
      [k('expert_shared_count'), mv.u32(cfgNum(c, 'n_shared_experts'))],
      [k('expert_weights_scale'), mv.f32(cfgNum(c, 'routed_scaling_factor'))],
      [k('expert_gating_func'), mv.u32(hfArch === 'deepseek_v3' ? 2 : 1)],
    );
    if (c.q_lora_rank != null) meta.push([k('attention.q_lora_rank'), mv.u32(cfgNum(c, 'q_lora_rank'))]);
    const grouped = hfArch === 'deepseek_v3' || c.topk_method === 'group_limited_greedy';
    if (grouped) meta.push([k('expert_group_count'), mv.u32(cfgNum(c, 'n_group'))], [k('expert_group_used_count'), mv.u32(cfgNum(c, 'topk_group'))]);
    if (rp && (rp.rope_type ?? rp.type) === 'yarn') {
      meta.push([k('rope.scaling.type'), mv.str('yarn')], [k('rope.scaling.factor'), mv.f32(rp.factor as number)], [k('rope.scaling.original_context_length'), mv.u32(rp.original_max_position_embeddings as number)]);
      if (rp.mscale_all_dim) meta.push([k('rope.scaling.yarn_log_multiplier'), mv.f32(0.1 * (rp.mscale_all_dim as number))]);
    }
  } else if (c.head_dim != null) meta.push([k('attention.key_length'), mv.u32(headDim)], [k('attention.value_length'), mv.u32(headDim)]);
  if (c.moe_intermediate_size != null) meta.push([k('expert_feed_forward_length'), mv.u32(cfgNum(c, 'moe_intermediate_size'))]);
  if (c.shared_expert_intermediate_size != null) meta.push([k('expert_shared_feed_forward_length'), mv.u32(cfgNum(c, 'shared_expert_intermediate_size'))]);
  // HF's DeepSeek-V2 never renormalises, whatever its config says.
  const norm = hfArch === 'deepseek_v2' ? false : typeof c.norm_topk_prob === 'boolean' ? c.norm_topk_prob : LLAMA_CPP_NORM[arch]!;
  if (norm !== LLAMA_CPP_NORM[arch]) meta.push([k('expert_weights_norm'), mv.bool(norm)]);
  if (arch === 'granitemoe') {
    // convert_hf_to_gguf.py writes these only when config.json has them; written here always (HF's
    // class default 1 when absent) because llama.cpp reads a missing attention.scale as 1/√head_dim.
    for (const [hk, gk] of [['attention_multiplier', 'attention.scale'], ['embedding_multiplier', 'embedding_scale'], ['residual_multiplier', 'residual_scale'], ['logits_scaling', 'logit_scale']] as const) {
      meta.push([k(gk), mv.f32(typeof c[hk] === 'number' ? (c[hk] as number) : 1)]);
    }
  }
  const tk = opts.tokenizer;
  if (tk) {
    meta.push(['tokenizer.ggml.model', mv.str(tk.model)], ['tokenizer.ggml.tokens', mv.strs(tk.tokens)], ['tokenizer.ggml.token_type', mv.i32s(tk.types)]);
    if (tk.pre) meta.push(['tokenizer.ggml.pre', mv.str(tk.pre)]);
    if (tk.merges) meta.push(['tokenizer.ggml.merges', mv.strs(tk.merges)]);
    if (tk.scores) meta.push(['tokenizer.ggml.scores', mv.f32s(tk.scores)]);
    if (tk.bos !== undefined) meta.push(['tokenizer.ggml.bos_token_id', mv.u32(tk.bos)]);
    if (tk.eos !== undefined) meta.push(['tokenizer.ggml.eos_token_id', mv.u32(tk.eos)]);
    if (tk.unk !== undefined) meta.push(['tokenizer.ggml.unknown_token_id', mv.u32(tk.unk)]);
    if (tk.addBos !== undefined) meta.push(['tokenizer.ggml.add_bos_token', mv.bool(tk.addBos)]);
    if (tk.chatTemplate) meta.push(['tokenizer.chat_template', mv.str(tk.chatTemplate)]);
  }
  return { bytes: writeGguf(meta, out), recon, types };
}
