/**
 * A loaded checkpoint (ModelSpec + canonical f32 weight slots) as a plain ONNX decoder graph that
 * onnxruntime-web's WebGPU EP runs: standard opset-17 ops only (Gather, Gemm, MatMul, Softmax,
 * TopK, ScatterElements, …), a KV cache as past/present inputs and outputs, and the router logits
 * of every MoE layer as outputs `router_logits.{layer}` [T, E] so a runtime can show routing.
 *
 * The experts are computed densely: every expert runs on every token and the top-k gates (the
 * softmax → TopK → optional renormalisation HF does, scattered into a [T, E] matrix) weight their
 * outputs, zero for the experts not chosen. That reads all experts per token — fine for the small
 * models this is for, and it keeps the graph free of data-dependent shapes. The semantics are
 * those of ref/model.ts (our TypeScript forward pass, itself checked against HF transformers).
 */
import type { ModelSpec, SlotName, TensorReader, WeightSlot } from '../model/spec';
import { layerSlot, type LayerSlot } from '../model/spec';
import { ropeTable } from '../ops/rope';
import { DType, encodeModel, type Attr, type Node, type Tensor, type ValueInfo } from './proto';
import * as N from './names';

/** A checkpoint this exporter cannot turn into a graph, with the reason. */
export class OnnxExportError extends Error {
  override name = 'OnnxExportError';
}

/** Architectures whose block structure the graph reproduces (others are refused, by name). */
export const ONNX_EXPORT_ARCHS: readonly string[] = ['qwen2_moe', 'qwen3_moe', 'mixtral', 'olmoe', 'granitemoe'];

export interface ExportOptions {
  /** Positions the RoPE table (and so the graph) covers; default min(maxPositions, 4096). */
  contextLength?: number;
  /** Parameters of the checkpoint (for the metadata); default: counted from the slots. */
  parameters?: number;
  onProgress?: (done: number, total: number, slot: string) => void;
  signal?: AbortSignal;
}

export interface ExportedOnnx {
  bytes: Uint8Array;
  meta: N.OnnxDecoderMeta;
}

/** protobuf messages (and so ONNX files without external data) stop at 2 GiB. */
const PROTOBUF_LIMIT = 2 ** 31 - 1;

/** Refuses what the graph cannot express, naming it; the checks mirror the fields ref/model.ts reads. */
export function checkExportable(spec: ModelSpec): void {
  if (!ONNX_EXPORT_ARCHS.includes(spec.arch)) {
    throw new OnnxExportError(`ONNX export does not support architecture "${spec.arch}" (supported: ${ONNX_EXPORT_ARCHS.join(', ')})`);
  }
  const rs = spec.ropeScaling as { type: string };
  if (rs.type !== 'default' && rs.type !== 'linear') throw new OnnxExportError(`ONNX export does not support rope_scaling type "${rs.type}"`);
  if (spec.headDim % 2 !== 0) throw new OnnxExportError(`ONNX export needs an even head_dim, got ${spec.headDim}`);
  // Routing beyond softmax → top-k → renormalise (sigmoid scoring, expert groups, a routed scale, as
  // DeepSeek-style configs add) is not in the graph: refuse rather than export different routing.
  const moe = spec.moe as { scoring?: string; nGroup?: number; routedScale?: number };
  if ((moe.scoring ?? 'softmax') !== 'softmax' || (moe.nGroup ?? 1) !== 1 || (moe.routedScale ?? 1) !== 1) {
    throw new OnnxExportError(`ONNX export supports softmax top-k routing only; this ${spec.arch} config routes with ${moe.scoring ?? 'softmax'} scoring, ${moe.nGroup ?? 1} expert groups, scale ${moe.routedScale ?? 1}`);
  }
  if (spec.numHeads % spec.numKvHeads !== 0) throw new OnnxExportError(`num_attention_heads ${spec.numHeads} is not a multiple of num_key_value_heads ${spec.numKvHeads}`);
}

class Graph {
  readonly nodes: Node[] = [];
  readonly inits: Tensor[] = [];
  private n = 0;
  private consts = new Map<string, string>();

  op(op: string, inputs: string[], attrs?: Record<string, Attr>, out?: string): string {
    const o = out ?? `${op.toLowerCase()}_${this.n++}`;
    this.nodes.push({ op, inputs, outputs: [o], attrs });
    return o;
  }

  ops(op: string, inputs: string[], outs: number, attrs?: Record<string, Attr>): string[] {
    const o = Array.from({ length: outs }, (_, i) => `${op.toLowerCase()}_${this.n}_${i}`);
    this.n++;
    this.nodes.push({ op, inputs, outputs: o, attrs });
    return o;
  }

  f32(name: string, dims: number[], data: Float32Array): string {
    // A copy that starts at offset 0 of its own buffer: raw_data is the whole little-endian array.
    const copy = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice();
    this.inits.push({ name, dtype: DType.FLOAT, dims, raw: new Uint8Array(copy.buffer, 0, copy.byteLength) });
    return name;
  }

  /** A shared int64 constant (shapes, axes, indices). */
  i64(values: number[], scalar = false): string {
    const key = `i64:${scalar ? 's' : ''}${values.join(',')}`;
    let name = this.consts.get(key);
    if (!name) {
      name = `const_i64_${this.consts.size}`;
      this.inits.push({ name, dtype: DType.INT64, dims: scalar ? [] : [values.length], raw: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer) });
      this.consts.set(key, name);
    }
    return name;
  }

  /** A shared float scalar constant. */
  scalar(v: number): string {
    const key = `f32:${v}`;
    let name = this.consts.get(key);
    if (!name) {
      name = `const_f32_${this.consts.size}`;
      this.inits.push({ name, dtype: DType.FLOAT, dims: [], raw: new Uint8Array(Float32Array.of(v).buffer) });
      this.consts.set(key, name);
    }
    return name;
  }
}

/** [E, R, C] → [E, C, R] (per-expert transpose), for x · Wᵀ as a batched MatMul. */
function transposeExperts(w: Float32Array, E: number, R: number, C: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let e = 0; e < E; e++) {
    const base = e * R * C;
    for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) out[base + c * R + r] = w[base + r * C + c]!;
  }
  return out;
}

/**
 * The decoder graph of `spec` with the weights of `slots` (read through `reader`, as f32).
 * Inputs: input_ids [1, T] int64, position_ids [1, T] int64, past_key_values.{l}.key/value
 * [1, kvHeads, P, headDim]. Outputs: logits [1, T, vocab], present.{l}.key/value [1, kvHeads, P+T,
 * headDim], router_logits.{l} [T, experts] for each MoE layer l. Batch 1; positions must be P … P+T−1.
 */
export async function exportOnnx(spec: ModelSpec, slots: WeightSlot[], reader: TensorReader, opts: ExportOptions = {}): Promise<ExportedOnnx> {
  checkExportable(spec);
  const s = spec;
  const H = s.hiddenSize, D = s.headDim, nH = s.numHeads, nKV = s.numKvHeads, V = s.vocabSize;
  const rep = nH / nKV, half = D / 2;
  const E = s.moe.numExperts, K = s.moe.topK, I = s.moe.intermediateSize;
  const ctx = Math.max(1, Math.min(opts.contextLength ?? 4096, s.maxPositions));
  const bySlot = new Map(slots.map((x) => [x.name, x]));
  let done = 0;
  const g = new Graph();

  /** A slot's weights as an initializer named after the slot (optionally transformed). */
  const weight = async (name: SlotName, transform?: (w: Float32Array, shape: number[]) => { data: Float32Array; dims: number[] }): Promise<string> => {
    opts.signal?.throwIfAborted();
    const slot = bySlot.get(name);
    if (!slot) throw new OnnxExportError(`The checkpoint has no weight slot ${name}, which the ${s.arch} graph needs`);
    const data = await slot.load(reader);
    const n = slot.shape.reduce((a, b) => a * b, 1);
    if (data.length !== n) throw new OnnxExportError(`Slot ${name}: ${data.length} values for shape [${slot.shape.join(', ')}]`);
    opts.onProgress?.(++done, slots.length, name);
    const t = transform ? transform(data, slot.shape) : { data, dims: slot.shape };
    return g.f32(name, t.dims, t.data);
  };
  const L = (l: number, slot: LayerSlot) => layerSlot(l, slot);
  const has = (l: number, slot: LayerSlot) => bySlot.has(L(l, slot));

  const inputs: ValueInfo[] = [
    { name: N.INPUT_IDS, dtype: DType.INT64, shape: [1, 'sequence_length'] },
    { name: N.POSITION_IDS, dtype: DType.INT64, shape: [1, 'sequence_length'] },
  ];
  const outputs: ValueInfo[] = [{ name: N.LOGITS, dtype: DType.FLOAT, shape: [1, 'sequence_length', V] }];

  // y = x · Wᵀ (+ b) with W in HF's [out, in] layout: Gemm's transB keeps the weights as stored.
  const linear = (x: string, w: string, b?: string, out?: string) => g.op('Gemm', b ? [x, w, b] : [x, w], { transB: 1 }, out);
  const rms = (x: string, w: string) => {
    // HF's RMSNorm: x · rsqrt(mean(x²) + eps) · w, in f32.
    const ms = g.op('ReduceMean', [g.op('Mul', [x, x])], { axes: [-1], keepdims: 1 });
    const inv = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [ms, g.scalar(s.rmsNormEps)])])]);
    return g.op('Mul', [w, g.op('Mul', [x, inv])]);
  };
  const residual = (h: string, y: string) => g.op('Add', [h, s.residualMultiplier === 1 ? y : g.op('Mul', [y, g.scalar(s.residualMultiplier)])]);
  /** SwiGLU MLP over rows of x: gate_up [2I, H] (gate rows first), down [H, I]. */
  const ffn = (x: string, gateUp: string, down: string, inter: number) => {
    const [gate, up] = g.ops('Split', [linear(x, gateUp), g.i64([inter, inter])], 2, { axis: -1 });
    return linear(g.op('Mul', [g.op('Mul', [gate!, g.op('Sigmoid', [gate!])]), up!]), down);
  };

  // Embedding → hidden state kept as [T, H] (batch 1) between the blocks.
  const embed = await weight('embed');
  let h = g.op('Reshape', [g.op('Gather', [embed, N.INPUT_IDS], { axis: 0 }), g.i64([-1, H])]);
  if (s.embeddingMultiplier !== 1) h = g.op('Mul', [h, g.scalar(s.embeddingMultiplier)]);

  // RoPE tables as HF rounds them (ops/rope.ts), gathered at the given positions: [1, T, 1, D].
  const table = ropeTable(ctx, D, s.ropeTheta, s.ropeScaling);
  const pos = g.op('Reshape', [N.POSITION_IDS, g.i64([-1])]);
  const rope4 = (t: Float32Array, name: string) => {
    const rows = g.op('Gather', [g.f32(name, [ctx, half], t), pos], { axis: 0 });
    return g.op('Reshape', [g.op('Concat', [rows, rows], { axis: -1 }), g.i64([1, -1, 1, D])]);
  };
  const cos = rope4(table.cos, 'rope_cos'), sin = rope4(table.sin, 'rope_sin');
  /** rotate_half RoPE of x [1, T, heads, D]: x·cos + [−x₂, x₁]·sin. */
  const rope = (x: string) => {
    const [x1, x2] = g.ops('Split', [x, g.i64([half, half])], 2, { axis: -1 });
    const rot = g.op('Concat', [g.op('Neg', [x2!]), x1!], { axis: -1 });
    return g.op('Add', [g.op('Mul', [x, cos]), g.op('Mul', [rot, sin])]);
  };

  // Causal mask [T, S] over the whole cache: key position j is visible to a query at position p iff j ≤ p.
  const pastLen = g.op('Shape', [N.pastKey(0)], { start: 2, end: 3 });
  const newLen = g.op('Shape', [N.INPUT_IDS], { start: 1, end: 2 });
  const total = g.op('Squeeze', [g.op('Add', [pastLen, newLen]), g.i64([0])]);
  const keyPos = g.op('Range', [g.i64([0], true), total, g.i64([1], true)]);
  const future = g.op('Greater', [keyPos, g.op('Unsqueeze', [pos, g.i64([1])])]);
  // HF masks with the dtype's lowest value; softmax then gives those keys exactly 0.
  const mask = g.op('Where', [future, g.scalar(-3.4028234663852886e38), g.scalar(0)]);
  const scale = s.attentionScale ?? 1 / Math.sqrt(D);

  const moeLayers: number[] = [];
  for (let l = 0; l < s.numLayers; l++) {
    inputs.push({ name: N.pastKey(l), dtype: DType.FLOAT, shape: [1, nKV, 'past_sequence_length', D] }, { name: N.pastValue(l), dtype: DType.FLOAT, shape: [1, nKV, 'past_sequence_length', D] });
    outputs.push({ name: N.presentKey(l), dtype: DType.FLOAT, shape: [1, nKV, 'total_sequence_length', D] }, { name: N.presentValue(l), dtype: DType.FLOAT, shape: [1, nKV, 'total_sequence_length', D] });

    // Attention.
    const x = rms(h, await weight(L(l, 'attn_norm')));
    const bias = async (slot: LayerSlot) => (has(l, slot) ? weight(L(l, slot)) : undefined);
    let q = linear(x, await weight(L(l, 'q')), await bias('q_bias'));
    let k = linear(x, await weight(L(l, 'k')), await bias('k_bias'));
    const v = linear(x, await weight(L(l, 'v')), await bias('v_bias'));
    if (s.qkNorm === 'head') {
      q = rms(g.op('Reshape', [q, g.i64([-1, D])]), await weight(L(l, 'q_norm')));
      k = rms(g.op('Reshape', [k, g.i64([-1, D])]), await weight(L(l, 'k_norm')));
    } else if (s.qkNorm === 'full') {
      q = rms(q, await weight(L(l, 'q_norm')));
      k = rms(k, await weight(L(l, 'k_norm')));
    }
    const heads = (x: string, n: number) => g.op('Reshape', [x, g.i64([1, -1, n, D])]);
    const toBhsd = (x: string) => g.op('Transpose', [x], { perm: [0, 2, 1, 3] });
    const qt = toBhsd(rope(heads(q, nH)));
    const kt = toBhsd(rope(heads(k, nKV)));
    const vt = toBhsd(heads(v, nKV));
    const presentK = g.op('Concat', [N.pastKey(l), kt], { axis: 2 }, N.presentKey(l));
    const presentV = g.op('Concat', [N.pastValue(l), vt], { axis: 2 }, N.presentValue(l));
    // Grouped query heads: query head h uses kv head ⌊h / rep⌋ (HF's repeat_kv), by broadcasting.
    const qg = g.op('Reshape', [qt, g.i64([1, nKV, rep, -1, D])]);
    const kT = g.op('Reshape', [g.op('Transpose', [presentK], { perm: [0, 1, 3, 2] }), g.i64([1, nKV, 1, D, -1])]);
    const scores = g.op('Add', [g.op('Mul', [g.op('MatMul', [qg, kT]), g.scalar(scale)]), mask]);
    const probs = g.op('Softmax', [scores], { axis: -1 });
    const ctxv = g.op('MatMul', [probs, g.op('Reshape', [presentV, g.i64([1, nKV, 1, -1, D])])]);
    const attn = g.op('Reshape', [g.op('Transpose', [g.op('Reshape', [ctxv, g.i64([1, nH, -1, D])])], { perm: [0, 2, 1, 3] }), g.i64([-1, nH * D])]);
    h = residual(h, linear(attn, await weight(L(l, 'o')), await bias('o_bias')));

    // MLP: routed experts (+ shared) or a dense SwiGLU.
    const xm = rms(h, await weight(L(l, 'mlp_norm')));
    let out: string;
    if (s.layers[l]!.mlp === 'moe') {
      moeLayers.push(l);
      const rl = linear(xm, await weight(L(l, 'router')), undefined, N.routerLogits(l));
      outputs.push({ name: rl, dtype: DType.FLOAT, shape: ['sequence_length', E] });
      const p = g.op('Softmax', [rl], { axis: -1 });
      const [tv, ti] = g.ops('TopK', [p, g.i64([K])], 2, { axis: -1, largest: 1, sorted: 1 });
      let w = tv!;
      if (s.moe.normTopkProb) w = g.op('Div', [w, g.op('ReduceSum', [w, g.i64([-1])], { keepdims: 1 })]);
      const zeros = g.op('ConstantOfShape', [g.op('Shape', [rl])]);
      const gates = g.op('ScatterElements', [zeros, ti!, w], { axis: 1 });
      // Every expert on every token: [T, H] · [E, H, 2I] → [E, T, 2I] → SwiGLU → · [E, I, H] → [E, T, H].
      const gu = await weight(L(l, 'experts.gate_up'), (d, sh) => ({ data: transposeExperts(d, sh[0]!, sh[1]!, sh[2]!), dims: [sh[0]!, sh[2]!, sh[1]!] }));
      const dn = await weight(L(l, 'experts.down'), (d, sh) => ({ data: transposeExperts(d, sh[0]!, sh[1]!, sh[2]!), dims: [sh[0]!, sh[2]!, sh[1]!] }));
      const [eg, eu] = g.ops('Split', [g.op('MatMul', [xm, gu]), g.i64([I, I])], 2, { axis: -1 });
      const act = g.op('Mul', [g.op('Mul', [eg!, g.op('Sigmoid', [eg!])]), eu!]);
      const y = g.op('MatMul', [act, dn]);
      const gateE = g.op('Unsqueeze', [g.op('Transpose', [gates], { perm: [1, 0] }), g.i64([2])]);
      out = g.op('ReduceSum', [g.op('Mul', [y, gateE]), g.i64([0])], { keepdims: 0 });
      const se = s.moe.sharedExpert;
      if (se) {
        let shared = ffn(xm, await weight(L(l, 'shared.gate_up')), await weight(L(l, 'shared.down')), se.intermediateSize);
        if (se.gated) shared = g.op('Mul', [shared, g.op('Sigmoid', [linear(xm, await weight(L(l, 'shared_gate')))])]);
        out = g.op('Add', [out, shared]);
      }
    } else {
      out = ffn(xm, await weight(L(l, 'mlp.gate_up')), await weight(L(l, 'mlp.down')), s.denseIntermediateSize);
    }
    h = residual(h, out);
  }
  const xf = rms(h, await weight('final_norm'));
  let logits = linear(xf, s.tieWordEmbeddings ? embed : await weight('lm_head'));
  if (s.logitsDivisor !== 1) logits = g.op('Div', [logits, g.scalar(s.logitsDivisor)]);
  g.op('Reshape', [logits, g.i64([1, -1, V])], undefined, N.LOGITS);

  const bytes = g.inits.reduce((n, t) => n + t.raw.byteLength, 0);
  if (bytes > PROTOBUF_LIMIT - 2 ** 24) {
    throw new OnnxExportError(`The model's f32 weights take ${(bytes / 2 ** 30).toFixed(2)} GiB; a single .onnx file holds less than 2 GiB (protobuf's limit)`);
  }
  const parameters = opts.parameters ?? slots.reduce((n, x) => n + x.shape.reduce((a, b) => a * b, 1), 0);
  const meta: N.OnnxDecoderMeta = {
    arch: s.arch, numLayers: s.numLayers, moeLayers, numExperts: E, topK: K, normTopkProb: s.moe.normTopkProb,
    contextLength: ctx, vocabSize: V, hiddenSize: H, eosTokenIds: s.eosTokenIds, bosTokenId: s.bosTokenId, parameters,
  };
  const model = encodeModel({
    nodes: g.nodes, initializers: g.inits, inputs, outputs,
    // Opset 17: ReduceMean still takes its axes as an attribute, Shape has start/end, Split/ReduceSum/Unsqueeze take inputs.
    opsets: { '': 17 },
    name: `${s.arch}_decoder`,
    producer: 'moe-playground',
    metadata: N.metaProps(meta),
  });
  return { bytes: model, meta };
}
