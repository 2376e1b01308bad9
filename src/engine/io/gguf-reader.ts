/**
 * A GGUF file as a TensorReader over HF tensor names, so the architecture builders (model/arch/*)
 * map it onto weight slots exactly as they map a safetensors checkpoint. llama.cpp's names become
 * HF's (gguf-py's tensor_mapping.py, read backwards), tensors come back as f32 in HF's [out, in]
 * layout (ggml's ne reversed), merged expert tensors (ffn_{gate,up,down}_exps, [E, I, H] in HF
 * order) become transformers 5's fused `experts.gate_up_proj` [E, 2I, H] / `experts.down_proj`,
 * and for llama-style archs the Q/K row permutation convert_hf_to_gguf.py applies is undone.
 * `rawSources` hands out the undecoded blocks and their ggml type for a GPU dequantizer.
 */
import { dequantize, isSupported, SUPPORTED_NAMES } from '../quant/gguf-blocks';
import type { TensorReader } from '../model/spec';
import { GgufError, type GgufHeader, type GgufTensorInfo } from './gguf';
import type { ByteSource } from './source';

/** How a GGUF arch lays out its tensors beyond the common names. */
export interface GgufLayout {
  /** HF module holding the router and experts ("mlp", or Granite's "block_sparse_moe"). */
  moe: string;
  /** HF module of the shared expert ("mlp.shared_expert"; DeepSeek's "mlp.shared_experts"). */
  shared: string;
  /** HF name of the router under `moe` ("gate.weight", or Granite's "router.weight"). */
  router: string;
  /** Q/K rows were permuted for ggml's interleaved RoPE (LlamaModel.permute): undo it. */
  unpermuteQK: { numHeads: number; numKvHeads: number } | null;
}

type Source =
  /** One GGUF tensor; `unpermute`: heads to undo LlamaModel.permute over (rows = heads × head_dim). */
  | { kind: 'single'; gguf: string; shape: number[]; unpermute?: number }
  /** Experts: per expert e, the e-th slab of each part in turn (gate rows then up rows). Each part is one
   * merged [E, rows, cols] tensor, or E per-expert tensors (pre-2024 llama.cpp files). */
  | { kind: 'experts'; E: number; parts: Array<{ merged: string } | { perExpert: string[] }>; shape: number[] }
  /** DeepSeek's kv_b_proj [H·(dn+dv), L] rebuilt from newer llama.cpp's split attn_k_b (HF [H, L, dn]) and attn_v_b ([H, dv, L]). */
  | { kind: 'kv_b'; kb: string; vb: string; heads: number; nope: number; vDim: number; lora: number; shape: number[] };

const reversed = (ne: number[]) => [...ne].reverse();

const LAYER_NAMES: Record<string, (layout: GgufLayout) => string> = {
  'attn_norm.weight': () => 'input_layernorm.weight',
  'ffn_norm.weight': () => 'post_attention_layernorm.weight',
  'attn_q.weight': () => 'self_attn.q_proj.weight',
  'attn_q.bias': () => 'self_attn.q_proj.bias',
  'attn_k.weight': () => 'self_attn.k_proj.weight',
  'attn_k.bias': () => 'self_attn.k_proj.bias',
  'attn_v.weight': () => 'self_attn.v_proj.weight',
  'attn_v.bias': () => 'self_attn.v_proj.bias',
  'attn_output.weight': () => 'self_attn.o_proj.weight',
  'attn_output.bias': () => 'self_attn.o_proj.bias',
  'attn_q_norm.weight': () => 'self_attn.q_norm.weight',
  'attn_k_norm.weight': () => 'self_attn.k_norm.weight',
  'ffn_gate_inp.weight': (l) => `${l.moe}.${l.router}`,
  'ffn_gate_shexp.weight': (l) => `${l.shared}.gate_proj.weight`,
  'ffn_up_shexp.weight': (l) => `${l.shared}.up_proj.weight`,
  'ffn_down_shexp.weight': (l) => `${l.shared}.down_proj.weight`,
  'ffn_gate_inp_shexp.weight': () => 'mlp.shared_expert_gate.weight',
  'ffn_gate.weight': () => 'mlp.gate_proj.weight',
  'ffn_up.weight': () => 'mlp.up_proj.weight',
  'ffn_down.weight': () => 'mlp.down_proj.weight',
  // DeepSeek (deepseek2): latent attention and the V3 selection bias.
  'attn_q_a.weight': () => 'self_attn.q_a_proj.weight',
  'attn_q_a_norm.weight': () => 'self_attn.q_a_layernorm.weight',
  'attn_q_b.weight': () => 'self_attn.q_b_proj.weight',
  'attn_kv_a_mqa.weight': () => 'self_attn.kv_a_proj_with_mqa.weight',
  'attn_kv_a_norm.weight': () => 'self_attn.kv_a_layernorm.weight',
  'attn_kv_b.weight': () => 'self_attn.kv_b_proj.weight',
  'exp_probs_b.bias': (l) => `${l.moe}.gate.e_score_correction_bias`,
};
const GLOBAL_NAMES: Record<string, string> = {
  'token_embd.weight': 'model.embed_tokens.weight',
  'output_norm.weight': 'model.norm.weight',
  'output.weight': 'lm_head.weight',
};
/** Tensors llama.cpp computes with that change the model in ways not supported here. */
const REFUSED: Record<string, string> = {
  'rope_freqs.weight': 'per-dimension RoPE frequency factors (llama3/longrope-style RoPE scaling)',
};

export class GgufCheckpoint implements TensorReader {
  private readonly sources = new Map<string, Source>();
  /** GGUF tensors no HF name maps to (kept out of the model; listed for diagnostics). */
  readonly unmapped: string[] = [];
  readonly files: ByteSource[];

  constructor(readonly file: ByteSource, readonly header: GgufHeader, layout: GgufLayout, private readonly checkFinite = true) {
    this.files = [file];
    const t = header.tensors;
    for (const [name, why] of Object.entries(REFUSED)) if (t.has(name)) this.fail(`holds "${name}": ${why} is not supported`);
    const perExpert = new Map<string, Map<number, string>>();
    for (const info of t.values()) {
      const g = GLOBAL_NAMES[info.name];
      if (g) {
        this.sources.set(g, { kind: 'single', gguf: info.name, shape: reversed(info.ne) });
        continue;
      }
      const m = /^blk\.(\d+)\.(.+)$/.exec(info.name);
      const rest = m?.[2];
      if (!m || rest === undefined) {
        this.unmapped.push(info.name);
        continue;
      }
      const p = `model.layers.${Number(m[1])}`;
      const legacy = /^ffn_(gate|up|down)\.(\d+)\.weight$/.exec(rest);
      if (legacy) {
        const key = `${p}|${legacy[1]}`;
        const byE = perExpert.get(key) ?? new Map<number, string>();
        byE.set(Number(legacy[2]), info.name);
        perExpert.set(key, byE);
        continue;
      }
      if (/^ffn_(gate|up|down)_exps\.weight$/.test(rest)) continue; // gathered below, per layer
      const hf = LAYER_NAMES[rest];
      if (!hf) {
        this.unmapped.push(info.name);
        continue;
      }
      const hfName = `${p}.${hf(layout)}`;
      let shape = reversed(info.ne);
      // HF's shared_expert_gate is a [1, H] linear; llama.cpp stores it as [H] (or [H, 1]).
      if (rest === 'ffn_gate_inp_shexp.weight' && info.ne.length <= 2 && (info.ne[1] ?? 1) === 1) shape = [1, info.ne[0]!];
      const src: Source = { kind: 'single', gguf: info.name, shape };
      const u = layout.unpermuteQK;
      if (u && /^attn_[qk]\.(weight|bias)$/.test(rest)) src.unpermute = rest.startsWith('attn_q') ? u.numHeads : u.numKvHeads;
      this.sources.set(hfName, src);
    }
    this.gatherMergedExperts(layout);
    this.gatherPerExpert(layout, perExpert);
    this.gatherSplitKvB(layout);
  }

  /**
   * Newer llama.cpp conversions of DeepSeek split kv_b_proj into attn_k_b (its key part transposed,
   * for the absorbed attention llama.cpp runs) and attn_v_b; where kv_b itself is absent it is rebuilt.
   */
  private gatherSplitKvB(layout: GgufLayout): void {
    const t = this.header.tensors;
    for (const info of t.values()) {
      const m = /^blk\.(\d+)\.attn_k_b\.weight$/.exec(info.name);
      if (!m) continue;
      const hf = `model.layers.${Number(m[1])}.self_attn.kv_b_proj.weight`;
      this.unmapped.splice(this.unmapped.indexOf(info.name), 1);
      const vb = t.get(`blk.${m[1]}.attn_v_b.weight`);
      if (vb) this.unmapped.splice(this.unmapped.indexOf(vb.name), 1);
      if (this.sources.has(hf)) continue;
      if (!vb) this.fail(`layer ${m[1]} has attn_k_b but no attn_v_b`);
      // ne is reversed: k_b [dn, L, H] (HF [H, L, dn]), v_b [L, dv, H] (HF [H, dv, L]).
      const [nope, lora, heads] = info.ne as [number, number, number];
      const [vLora, vDim, vHeads] = vb!.ne as [number, number, number];
      if (info.ne.length !== 3 || vb!.ne.length !== 3 || vLora !== lora || vHeads !== heads) {
        this.fail(`layer ${m[1]}: attn_k_b [${info.ne.join(', ')}] and attn_v_b [${vb!.ne.join(', ')}] do not fit together`);
      }
      void layout;
      this.sources.set(hf, { kind: 'kv_b', kb: info.name, vb: vb!.name, heads, nope, vDim, lora, shape: [heads * (nope + vDim), lora] });
    }
  }

  private fail(why: string): never {
    throw new GgufError(`${this.file.name}: ${why}`);
  }

  private gatherMergedExperts(layout: GgufLayout): void {
    const t = this.header.tensors;
    for (const info of t.values()) {
      const m = /^blk\.(\d+)\.ffn_gate_exps\.weight$/.exec(info.name);
      if (!m) continue;
      const b = `blk.${m[1]}`;
      const up = t.get(`${b}.ffn_up_exps.weight`);
      const down = t.get(`${b}.ffn_down_exps.weight`);
      if (!up || !down) this.fail(`layer ${m[1]} has ffn_gate_exps but no ${up ? 'ffn_down_exps' : 'ffn_up_exps'}`);
      const gne = info.ne;
      if (gne.length !== 3 || up!.ne.join() !== gne.join()) this.fail(`layer ${m[1]}: ffn_gate_exps [${gne.join(', ')}] and ffn_up_exps [${up!.ne.join(', ')}] must be the same 3-D shape`);
      const [H, I, E] = gne as [number, number, number];
      const p = `model.layers.${Number(m[1])}.${layout.moe}.experts`;
      this.sources.set(`${p}.gate_up_proj`, { kind: 'experts', E, parts: [{ merged: info.name }, { merged: up!.name }], shape: [E, 2 * I, H] });
      this.sources.set(`${p}.down_proj`, { kind: 'experts', E, parts: [{ merged: down!.name }], shape: reversed(down!.ne) });
    }
    for (const info of t.values()) {
      const m = /^blk\.(\d+)\.ffn_(up|down)_exps\.weight$/.exec(info.name);
      if (m && !t.has(`blk.${m[1]}.ffn_gate_exps.weight`)) this.fail(`layer ${m[1]} has ffn_${m[2]}_exps but no ffn_gate_exps`);
    }
  }

  private gatherPerExpert(layout: GgufLayout, perExpert: Map<string, Map<number, string>>): void {
    const layers = new Set([...perExpert.keys()].map((k) => k.split('|')[0]!));
    for (const p of layers) {
      const kinds = ['gate', 'up', 'down'].map((k) => perExpert.get(`${p}|${k}`));
      const E = kinds[0]?.size ?? 0;
      const names = kinds.map((byE, i) => {
        const list = Array.from({ length: E }, (_, e) => byE?.get(e));
        if (!byE || byE.size !== E || list.some((n) => n === undefined)) this.fail(`${p}: per-expert tensors ffn_${['gate', 'up', 'down'][i]}.<e>.weight are not numbered 0…${E - 1} like ffn_gate`);
        return list as string[];
      });
      const shape0 = (n: string) => reversed(this.header.tensors.get(n)!.ne);
      const [gs, us, ds] = [shape0(names[0]![0]!), shape0(names[1]![0]!), shape0(names[2]![0]!)];
      for (const [i, list] of names.entries()) {
        const s = [gs, us, ds][i]!;
        for (const n of list) if (shape0(n).join() !== s.join()) this.fail(`per-expert tensor "${n}" has shape [${shape0(n).join(', ')}], unlike expert 0's [${s.join(', ')}]`);
      }
      if (gs.length !== 2 || gs.join() !== us.join() || ds.length !== 2) this.fail(`${p}: per-expert gate/up/down tensors have inconsistent shapes`);
      const base = `${p}.${layout.moe}.experts`;
      this.sources.set(`${base}.gate_up_proj`, { kind: 'experts', E, parts: [{ perExpert: names[0]! }, { perExpert: names[1]! }], shape: [E, 2 * gs[0]!, gs[1]!] });
      this.sources.set(`${base}.down_proj`, { kind: 'experts', E, parts: [{ perExpert: names[2]! }], shape: [E, ds[0]!, ds[1]!] });
    }
  }

  /** HF names this file provides. */
  names(): string[] {
    return [...this.sources.keys()];
  }

  has(name: string): boolean {
    return this.sources.has(name);
  }

  private source(name: string): Source {
    const s = this.sources.get(name);
    if (!s) this.fail(`has no tensor for "${name}" (GGUF tensors: ${[...this.header.tensors.keys()].slice(0, 12).join(', ')}${this.header.tensors.size > 12 ? ', …' : ''})`);
    return s!;
  }

  shape(name: string): number[] {
    return [...this.source(name).shape];
  }

  /** The GGUF tensors behind an HF name, with their ggml types (for a GPU-side dequantizer). */
  rawSources(name: string): GgufTensorInfo[] {
    const s = this.source(name);
    if (s.kind === 'single') return [this.header.tensors.get(s.gguf)!];
    if (s.kind === 'kv_b') return [this.header.tensors.get(s.kb)!, this.header.tensors.get(s.vb)!];
    return s.parts.flatMap((p) => ('merged' in p ? [p.merged] : p.perExpert)).map((n) => this.header.tensors.get(n)!);
  }

  /** One GGUF tensor's undecoded bytes (ggml blocks). */
  async readRaw(info: GgufTensorInfo): Promise<Uint8Array> {
    let bytes: Uint8Array;
    try {
      bytes = await this.file.read(info.begin, info.end - info.begin);
    } catch (e) {
      return this.fail(`reading tensor "${info.name}" failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (bytes.byteLength !== info.end - info.begin) this.fail(`tensor "${info.name}": got ${bytes.byteLength} of its ${info.end - info.begin} bytes`);
    return bytes;
  }

  private async decode(ggufName: string): Promise<Float32Array> {
    const info = this.header.tensors.get(ggufName)!;
    if (!isSupported(info.type.id)) this.fail(`tensor "${ggufName}" is ${info.type.name}, which this loader does not read (it reads ${SUPPORTED_NAMES.join(', ')})`);
    const data = dequantize(info.type.id, await this.readRaw(info), info.elements);
    if (this.checkFinite) {
      for (let i = 0; i < data.length; i++) {
        if (!Number.isFinite(data[i]!)) this.fail(`tensor "${ggufName}" holds ${data[i]} at element ${i} (corrupt, or overflowed when converted)`);
      }
    }
    return data;
  }

  /** The tensor as f32 in HF layout. */
  read(name: string): Promise<Float32Array> {
    return this.assemble(name, (g) => this.decode(g));
  }

  /**
   * The HF tensor laid out as read() lays it out, but with every element of row r of GGUF tensor
   * t holding the number firstRow(t) + r instead of its value: which file row each HF row came
   * from (Q/K un-permutation and expert merging move whole rows). Where some step mixes rows
   * (kv_b rebuilt from its transposed key part), rows hold several numbers, which the caller sees.
   */
  readRowIds(name: string, firstRow: (info: GgufTensorInfo) => number): Promise<Float32Array> {
    return this.assemble(name, async (g) => {
      const info = this.header.tensors.get(g)!;
      const cols = info.ne[0] ?? 1;
      const out = new Float32Array(info.elements);
      const base = firstRow(info);
      for (let r = 0, o = 0; o < out.length; r++, o += cols) out.fill(base + r, o, o + cols);
      return out;
    });
  }

  /** The HF tensor from its GGUF tensors, each decoded by `decode`. */
  private async assemble(name: string, decode: (ggufName: string) => Promise<Float32Array>): Promise<Float32Array> {
    const s = this.source(name);
    if (s.kind === 'single') {
      const d = await decode(s.gguf);
      return s.unpermute ? unpermuteRows(d, s.shape, s.unpermute) : d;
    }
    if (s.kind === 'kv_b') {
      const [kb, vb] = await Promise.all([decode(s.kb), decode(s.vb)]);
      const { heads, nope, vDim, lora } = s;
      const out = new Float32Array(heads * (nope + vDim) * lora);
      for (let h = 0; h < heads; h++) {
        const base = h * (nope + vDim) * lora;
        for (let d = 0; d < nope; d++) for (let l = 0; l < lora; l++) out[base + d * lora + l] = kb[(h * lora + l) * nope + d]!;
        out.set(vb.subarray(h * vDim * lora, (h + 1) * vDim * lora), base + nope * lora);
      }
      return out;
    }
    const parts = await Promise.all(s.parts.map(async (p) => ('merged' in p ? [await decode(p.merged)] : Promise.all(p.perExpert.map((n) => decode(n))))));
    const out = new Float32Array(s.shape.reduce((a, b) => a * b, 1));
    let o = 0;
    for (let e = 0; e < s.E; e++) {
      for (const part of parts) {
        const slab = part.length === 1 ? part[0]!.subarray((e * part[0]!.length) / s.E, ((e + 1) * part[0]!.length) / s.E) : part[e]!;
        out.set(slab, o);
        o += slab.length;
      }
    }
    if (o !== out.length) this.fail(`"${name}": its expert tensors hold ${o} values, not the ${out.length} of [${s.shape.join(', ')}]`);
    return out;
  }
}

/**
 * Undoes convert_hf_to_gguf.py's LlamaModel.permute: per head, HF's rows are [first half | second
 * half] of the rotary pairs (rotate_half RoPE); the GGUF interleaves them (row 2j+i of a head is HF
 * row i·D/2 + j), which is what ggml's non-NeoX RoPE pairs up.
 */
export function unpermuteRows(data: Float32Array, shape: number[], heads: number): Float32Array {
  const rows = shape[0]!;
  const cols = data.length / rows;
  const D = rows / heads;
  if (!Number.isInteger(D) || D % 2 !== 0) throw new GgufError(`cannot undo the Q/K permutation: ${rows} rows are not ${heads} heads of an even size`);
  const out = new Float32Array(data.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < D / 2; j++) {
        const src = (h * D + 2 * j + i) * cols;
        out.set(data.subarray(src, src + cols), (h * D + i * (D / 2) + j) * cols);
      }
    }
  }
  return out;
}
