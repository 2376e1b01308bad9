/**
 * What trains in each mode, the gradient buffers for it, and the way back from our weight slots to
 * the checkpoint's tensors (exporting trained weights, comparing gradients with PyTorch's).
 *   full:   every weight (f32 only: a quantised matrix cannot take an update)
 *   router: the router weights of the MoE layers; everything else frozen (and may be quantised)
 *   lora:   the adapter's A and B; the base frozen (may be quantised)
 */
import { createStorage, readBuffer } from '../gpu/buffers';
import { type LayerSlot, type ModelSpec, type SlotName, type WeightSlot } from '../model/spec';
import type { LayerWeights, ModelWeights } from '../model/weights';
import type { GpuWeight } from '../quant/weight';
import type { LayerGrads, ModelGrads } from './graph';
import type { LoraAdapter } from './lora';
import type { TrainableParam } from './optim';

export type TrainMode = 'full' | 'router' | 'lora';
export const TRAIN_MODES: readonly TrainMode[] = ['full', 'router', 'lora'];

type Field = keyof LayerGrads & keyof LayerWeights;
const FIELDS: readonly Field[] = ['attnNorm', 'qkv', 'qkvBias', 'o', 'oBias', 'qNorm', 'kNorm', 'mlpNorm', 'router', 'expertsGateUp', 'expertsDown', 'sharedGateUp', 'sharedDown', 'sharedGate', 'mlpGateUp', 'mlpDown'];
/** No weight decay on norms, biases and the embedding (the usual AdamW grouping). */
const NO_DECAY = new Set<Field>(['attnNorm', 'qkvBias', 'oBias', 'qNorm', 'kNorm', 'mlpNorm']);

export interface TrainableSet {
  grads: ModelGrads;
  params: TrainableParam[];
  /** Every gradient buffer, cleared before each step's first micro-batch. */
  gradBuffers: GPUBuffer[];
  destroy(): void;
}

function f32Buffer(w: GPUBuffer | GpuWeight, what: string): GPUBuffer {
  if (!('format' in w)) return w;
  if (w.format !== 'f32') throw new Error(`full fine-tuning needs f32 weights, but ${what} is stored as ${w.format}: load the model as f32 (or train the router or a LoRA)`);
  return w.buffer;
}

/** The parameters and gradient buffers of a training mode. */
export function trainables(device: GPUDevice, spec: ModelSpec, w: ModelWeights, mode: TrainMode, lora?: LoraAdapter | null): TrainableSet {
  const params: TrainableParam[] = [];
  const gradBuffers: GPUBuffer[] = [];
  const own: GPUBuffer[] = [];
  const grads: ModelGrads = { layers: spec.layers.map(() => ({})) };
  const add = (name: string, param: GPUBuffer, weightDecay?: number): GPUBuffer => {
    const grad = createStorage(device, param.size, `${name}.grad`);
    own.push(grad);
    gradBuffers.push(grad);
    params.push({ name, param, grad, count: param.size / 4, ...(weightDecay !== undefined ? { weightDecay } : {}) });
    return grad;
  };
  if (mode === 'full') {
    grads.embed = add('embed', w.embed, 0);
    const head = f32Buffer(w.lmHead, 'lm_head');
    grads.lmHead = head === w.embed ? grads.embed : add('lm_head', head);
    grads.finalNorm = add('final_norm', w.finalNorm, 0);
    w.layers.forEach((lw, l) => {
      const g = grads.layers[l]!;
      for (const f of FIELDS) {
        const x = lw[f];
        if (x) g[f] = add(`L${l}.${f}`, f32Buffer(x, `layer ${l}'s ${f}`), NO_DECAY.has(f) ? 0 : undefined);
      }
    });
  } else if (mode === 'router') {
    w.layers.forEach((lw, l) => {
      if (lw.router) grads.layers[l]!.router = add(`L${l}.router`, lw.router);
    });
    if (!params.length) throw new Error(`router-only training: ${spec.arch} has no MoE layer with a router`);
  } else {
    if (!lora) throw new Error('LoRA training needs an adapter (createLora)');
    lora.layers.forEach((m, l) => {
      for (const [mod, p] of Object.entries(m)) {
        if (!p) continue;
        params.push({ name: `L${l}.${mod}.lora_A`, param: p.A, grad: p.gA, count: p.rank * p.inDim, weightDecay: 0 });
        params.push({ name: `L${l}.${mod}.lora_B`, param: p.B, grad: p.gB, count: p.outDim * p.rank, weightDecay: 0 });
        gradBuffers.push(p.gA, p.gB);
      }
    });
  }
  return { grads, params, gradBuffers, destroy: () => own.forEach((b) => b.destroy()) };
}

/** A slot's floats inside a buffer (q, k and v live in one stacked qkv buffer). */
interface SlotView {
  buffer: GPUBuffer;
  offset: number;
  count: number;
}

const SLOT_FIELD: Partial<Record<LayerSlot, Field>> = {
  attn_norm: 'attnNorm', o: 'o', o_bias: 'oBias', q_norm: 'qNorm', k_norm: 'kNorm', mlp_norm: 'mlpNorm', router: 'router',
  'experts.gate_up': 'expertsGateUp', 'experts.down': 'expertsDown', 'shared.gate_up': 'sharedGateUp', 'shared.down': 'sharedDown',
  shared_gate: 'sharedGate', 'mlp.gate_up': 'mlpGateUp', 'mlp.down': 'mlpDown',
};

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * Where slot `slot` lives among buffers laid out like the weights: `pick(l, field)` gives a layer's
 * buffer (weights or gradients), `globals` the embedding / head / final norm. Null when absent.
 */
export function slotView(spec: ModelSpec, slot: WeightSlot, pick: (l: number, f: Field) => GPUBuffer | undefined, globals: { embed?: GPUBuffer; lmHead?: GPUBuffer; finalNorm?: GPUBuffer }): SlotView | null {
  const count = numel(slot.shape);
  if (slot.name === 'embed') return globals.embed ? { buffer: globals.embed, offset: 0, count } : null;
  if (slot.name === 'lm_head') return globals.lmHead ? { buffer: globals.lmHead, offset: 0, count } : null;
  if (slot.name === 'final_norm') return globals.finalNorm ? { buffer: globals.finalNorm, offset: 0, count } : null;
  const m = /^L(\d+)\.(.+)$/.exec(slot.name);
  if (!m) return null;
  const l = Number(m[1]);
  const name = m[2] as LayerSlot;
  const H = spec.hiddenSize, D = spec.headDim, nq = spec.numHeads * D, nk = spec.numKvHeads * D;
  const qkvRow: Partial<Record<LayerSlot, number>> = { q: 0, k: nq, v: nq + nk };
  const biasAt: Partial<Record<LayerSlot, number>> = { q_bias: 0, k_bias: nq, v_bias: nq + nk };
  if (qkvRow[name] !== undefined) {
    const b = pick(l, 'qkv');
    return b ? { buffer: b, offset: qkvRow[name]! * H, count } : null;
  }
  if (biasAt[name] !== undefined) {
    const b = pick(l, 'qkvBias');
    return b ? { buffer: b, offset: biasAt[name]!, count } : null;
  }
  const f = SLOT_FIELD[name];
  const b = f ? pick(l, f) : undefined;
  return b ? { buffer: b, offset: 0, count } : null;
}

async function readView(device: GPUDevice, v: SlotView): Promise<Float32Array> {
  if (v.offset === 0) return new Float32Array(await readBuffer(device, v.buffer, v.count * 4));
  const all = new Float32Array(await readBuffer(device, v.buffer, (v.offset + v.count) * 4));
  return all.slice(v.offset, v.offset + v.count);
}

/** The gradients of every slot that has one, read back, keyed by slot name (same layout as the slot). */
export async function readSlotGrads(device: GPUDevice, spec: ModelSpec, slots: WeightSlot[], g: ModelGrads): Promise<Map<SlotName, Float32Array>> {
  const out = new Map<SlotName, Float32Array>();
  for (const slot of slots) {
    const v = slotView(spec, slot, (l, f) => g.layers[l]?.[f], g);
    if (v) out.set(slot.name, await readView(device, v));
  }
  return out;
}

/** A slot's f32 weights on the GPU, or null (quantised, or no such buffer). */
function weightBuffer(x: GPUBuffer | GpuWeight | undefined): GPUBuffer | undefined {
  if (!x) return undefined;
  if (!('format' in x)) return x;
  return x.format === 'f32' ? x.buffer : undefined;
}

/**
 * Slot data back to the checkpoint's tensors: the sources in order (q | k | v rows, gate | up, one
 * expert after another), a fused expert tensor stored transposed turned back.
 */
export function splitSlot(slot: WeightSlot, data: Float32Array): Array<{ name: string; shape: number[]; data: Float32Array }> {
  if (slot.sources.length === 1) {
    const src = slot.sources[0]!;
    const [E, rows, cols] = slot.shape;
    const transposed = slot.shape.length === 3 && src.shape[1] === cols && src.shape[2] === rows && rows !== cols;
    if (transposed && E !== undefined && rows !== undefined && cols !== undefined) {
      const out = new Float32Array(data.length);
      for (let e = 0; e < E; e++) {
        const b = e * rows * cols;
        for (let i = 0; i < cols; i++) for (let j = 0; j < rows; j++) out[b + i * rows + j] = data[b + j * cols + i]!;
      }
      return [{ name: src.name, shape: src.shape, data: out }];
    }
    return [{ name: src.name, shape: src.shape, data }];
  }
  const out: Array<{ name: string; shape: number[]; data: Float32Array }> = [];
  let o = 0;
  for (const src of slot.sources) {
    const n = numel(src.shape);
    out.push({ name: src.name, shape: src.shape, data: data.slice(o, o + n) });
    o += n;
  }
  return out;
}

/** The trained weights of a mode under the checkpoint's tensor names (full: all; router: the routers). */
export async function exportWeights(device: GPUDevice, spec: ModelSpec, slots: WeightSlot[], w: ModelWeights, mode: 'full' | 'router'): Promise<Array<{ name: string; shape: number[]; data: Float32Array }>> {
  const out: Array<{ name: string; shape: number[]; data: Float32Array }> = [];
  for (const slot of slots) {
    if (mode === 'router' && !/^L\d+\.router$/.test(slot.name)) continue;
    const v = slotView(spec, slot, (l, f) => weightBuffer(w.layers[l]?.[f]), { embed: w.embed, lmHead: weightBuffer(w.lmHead), finalNorm: w.finalNorm });
    if (!v) throw new Error(`export: ${slot.name} is not stored as f32`);
    out.push(...splitSlot(slot, await readView(device, v)));
  }
  return out;
}

/** A safetensors file (all F32) from named tensors, names sorted as the Python writer does. */
export function encodeSafetensors(tensors: ReadonlyArray<{ name: string; shape: number[]; data: Float32Array }>, metadata: Record<string, string> = {}): Uint8Array {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = Object.keys(metadata).length ? { __metadata__: metadata } : {};
  let off = 0;
  for (const t of sorted) {
    if (t.data.length !== numel(t.shape)) throw new Error(`safetensors: ${t.name} holds ${t.data.length} values for shape [${t.shape.join(', ')}]`);
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + t.data.byteLength] };
    off += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  // The data should start 8-byte aligned: pad the header with spaces, as the reference writer does.
  json += ' '.repeat((8 - ((8 + new TextEncoder().encode(json).length) % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let o = 8 + head.length;
  for (const t of sorted) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), o);
    o += t.data.byteLength;
  }
  return out;
}

