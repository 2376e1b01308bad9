/**
 * Puts a checkpoint's weights on the GPU: every slot's sources are checked (presence, shape,
 * adapter limits) before the first byte is read, then slots are loaded, checked for NaN/Inf and
 * uploaded one at a time, so a bad checkpoint fails before anything is half-loaded.
 */
import { uploadStorage } from '../gpu/buffers';
import { catchOom } from '../gpu/oom';
import { type FileBlockPlan, isGgufReader, planFileBlocks, readFileBlocks } from '../io/gguf-file-blocks';
import { canQuantize, quantize, type QuantizedMatrix, type WeightFormat } from '../quant/pack';
import { concatBuffers, concatRows, destroyWeight, type GpuWeight, uploadGgml, uploadQuantized, uploadWeight } from '../quant/weight';
import { layerSlot, type LayerSlot, type ModelSpec, type SlotName, type TensorReader, type WeightSlot } from './spec';

export interface LayerWeights {
  attnNorm: GPUBuffer;
  /** q, k and v projections stacked row-wise: [(heads + 2·kvHeads)·headDim, hidden] (not with latent attention). */
  qkv?: GpuWeight;
  o: GpuWeight;
  /** Latent attention (DeepSeek): q_proj, or q_a → q_a_norm → q_b; kv_a → [c | k_rope]; kv_a_norm on c; kv_b (f32, read by shaders/mla.wgsl). */
  q?: GpuWeight;
  qA?: GpuWeight;
  qANorm?: GPUBuffer;
  qB?: GpuWeight;
  kvA?: GpuWeight;
  kvANorm?: GPUBuffer;
  kvB?: GPUBuffer;
  qkvBias?: GPUBuffer;
  oBias?: GPUBuffer;
  qNorm?: GPUBuffer;
  kNorm?: GPUBuffer;
  mlpNorm: GPUBuffer;
  router?: GPUBuffer;
  /** DeepSeek-V3's e_score_correction_bias [E]: added to the scores for the choice only. */
  routerBias?: GPUBuffer;
  expertsGateUp?: GpuWeight;
  expertsDown?: GpuWeight;
  sharedGateUp?: GpuWeight;
  sharedDown?: GpuWeight;
  sharedGate?: GPUBuffer;
  mlpGateUp?: GpuWeight;
  mlpDown?: GpuWeight;
}

/** Matrices stored in the requested format; norms, biases, router, embeddings stay f32. */
const QUANTIZABLE = new Set<LayerSlot>(['q', 'k', 'v', 'o', 'q_a', 'q_b', 'kv_a', 'experts.gate_up', 'experts.down', 'shared.gate_up', 'shared.down', 'mlp.gate_up', 'mlp.down']);

export interface UploadOptions {
  onProgress?: (done: number, total: number, slot: SlotName) => void;
  /**
   * Storage of attention and expert matrices: f32, or int8/int4 group-wise (dequantised in the
   * kernels). With keepFileBlocks, the storage of those that do not keep their file's blocks.
   */
  format?: WeightFormat;
  /**
   * GGUF checkpoints only: attention and expert matrices (and an untied LM head) whose tensors are
   * F16, BF16, Q8_0, Q4_0, Q4_K or Q6_K keep the file's blocks on the GPU, dequantised inside the
   * kernels (io/gguf-file-blocks.ts); the rest are stored as `format`. Norms, biases, routers and
   * embeddings are dequantised to f32 on load as always.
   */
  keepFileBlocks?: boolean;
  /** With keepFileBlocks: the plan already made for sizing (fileBlockPlan), so it is not made twice. */
  fileBlockPlan?: FileBlockPlan;
  /** Group size along K for int8/int4 (32 or 128). */
  group?: number;
  /** Stops between slots; what was uploaded is freed. */
  signal?: AbortSignal;
  /** Keeps quantised matrices between loads, so a second load skips reading and quantising them. */
  cache?: QuantCache;
}

/** Packed matrices by slot name (the page keeps them in OPFS; see src/worker/opfs-cache.ts). */
export interface QuantCache {
  get(slot: SlotName): Promise<QuantizedMatrix | null>;
  put(slot: SlotName, q: QuantizedMatrix): Promise<void>;
}

export interface ModelWeights {
  embed: GPUBuffer;
  /** The same buffer as `embed` when embeddings are tied; else stored like the other matrices (f32 or quantised). */
  lmHead: GPUBuffer | GpuWeight;
  finalNorm: GPUBuffer;
  layers: LayerWeights[];
  bytes: number;
}

/** Where each slot lands before q/k/v (and their biases) are stacked into `qkv`. */
const FIELD: Record<LayerSlot, keyof LayerWeights | 'k' | 'v' | 'qBias' | 'kBias' | 'vBias'> = {
  attn_norm: 'attnNorm', q: 'q', q_bias: 'qBias', k: 'k', k_bias: 'kBias', v: 'v', v_bias: 'vBias', o: 'o', o_bias: 'oBias',
  q_norm: 'qNorm', k_norm: 'kNorm', mlp_norm: 'mlpNorm', router: 'router', router_bias: 'routerBias',
  q_a: 'qA', q_a_norm: 'qANorm', q_b: 'qB', kv_a: 'kvA', kv_a_norm: 'kvANorm', kv_b: 'kvB',
  'experts.gate_up': 'expertsGateUp', 'experts.down': 'expertsDown',
  'shared.gate_up': 'sharedGateUp', 'shared.down': 'sharedDown', shared_gate: 'sharedGate',
  'mlp.gate_up': 'mlpGateUp', 'mlp.down': 'mlpDown',
};

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * Whether a slot is stored in the requested format (int8/int4) rather than f32: attention and
 * expert matrices, and an untied LM head (OLMoE's is 412 MB as f32, more than its eight experts in
 * int4); tied, the head is the embedding table, which stays f32 like norms, biases and the router.
 */
export function quantizableSlot(spec: ModelSpec, name: SlotName): boolean {
  const layerSlotName = name.slice(name.indexOf('.') + 1) as LayerSlot;
  return (name.startsWith('L') && QUANTIZABLE.has(layerSlotName)) || (name === 'lm_head' && !spec.tieWordEmbeddings);
}

/** Throws naming the first problem: a missing tensor, a wrong shape, or a slot too big for the adapter. */
export function validateSlots(slots: WeightSlot[], reader: TensorReader, limits: { maxStorageBufferBindingSize: number }, storedBytes: (slot: WeightSlot) => number = (s) => numel(s.shape) * 4): void {
  for (const slot of slots) {
    for (const src of slot.sources) {
      if (!reader.has(src.name)) throw new Error(`Checkpoint is missing tensor "${src.name}" (needed for ${slot.name})`);
      const got = reader.shape(src.name);
      if (got.length !== src.shape.length || got.some((d, i) => d !== src.shape[i])) {
        throw new Error(`Tensor "${src.name}" has shape [${got.join(', ')}] but the config implies [${src.shape.join(', ')}]`);
      }
    }
    const bytes = storedBytes(slot);
    if (bytes > limits.maxStorageBufferBindingSize) {
      const f32 = bytes === numel(slot.shape) * 4;
      throw new Error(
        `Weight ${slot.name} needs ${(bytes / 2 ** 20).toFixed(0)} MiB${f32 ? ' as f32' : ''}, over this adapter's ` +
          `${(limits.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)} MiB storage-binding limit${f32 ? '; load it quantised (int8/int4)' : ''}`,
      );
    }
  }
}

export function assertFinite(name: string, data: Float32Array): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) throw new Error(`Weight ${name} holds ${data[i]} at element ${i}: the checkpoint is corrupt`);
  }
}

export async function uploadWeights(device: GPUDevice, spec: ModelSpec, slots: WeightSlot[], reader: TensorReader, opts: UploadOptions = {}): Promise<ModelWeights> {
  const requested = opts.format ?? 'f32';
  const group = opts.group ?? 32;
  // ggml formats come from a file's own blocks (keepFileBlocks), never from converting values.
  if (requested !== 'f32' && requested !== 'int8' && requested !== 'int4') throw new RangeError(`Weights can be stored as f32, int8 or int4, not ${requested} (keepFileBlocks keeps a GGUF file's own formats)`);
  const format: 'f32' | QuantizedMatrix['format'] = requested;
  if (format !== 'f32' && group !== 32 && group !== 128) throw new RangeError(`Quantisation group must be 32 or 128, got ${group}`);
  let kept: FileBlockPlan = new Map();
  if (opts.keepFileBlocks) {
    if (!isGgufReader(reader)) throw new Error('Keeping the file\'s blocks needs a GGUF checkpoint');
    // Presence and shapes first: planning loads each slot's row layout, which needs both right.
    validateSlots(slots, reader, { maxStorageBufferBindingSize: Infinity });
    kept = opts.fileBlockPlan ?? (await fileBlockPlan(spec, slots, reader));
  }
  validateSlots(slots, reader, device.limits, (slot) => storedSlotBytes(spec, slot, format, group, kept).largest);
  const bufs = new Map<SlotName, GPUBuffer>();
  const mats = new Map<SlotName, GpuWeight>();
  let bytes = 0;
  try {
    for (const [i, slot] of slots.entries()) {
      opts.signal?.throwIfAborted();
      const blocks = kept.get(slot.name);
      if (blocks && isGgufReader(reader)) {
        const file = await readFileBlocks(reader, blocks);
        await catchOom(device, `uploading ${slot.name}`, () => {
          const w = uploadGgml(device, blocks.format, file, blocks.rows, blocks.K, slot.name);
          mats.set(slot.name, w);
          bytes += w.bytes;
        });
        opts.onProgress?.(i + 1, slots.length, slot.name);
        continue;
      }
      const quantizable = quantizableSlot(spec, slot.name);
      const K = slot.shape[slot.shape.length - 1]!;
      const packs = quantizable && format !== 'f32' && canQuantize(K, group);
      const cached = packs ? await opts.cache?.get(slot.name) : null;
      if (cached && cached.format === format && cached.group === group && cached.K === K && cached.rows * K === numel(slot.shape)) {
        // The buffer is registered before the scope is checked, so a failed one is freed with the rest.
        await catchOom(device, `uploading ${slot.name}`, () => {
          const w = uploadQuantized(device, cached, slot.name);
          mats.set(slot.name, w);
          bytes += w.bytes;
        });
        opts.onProgress?.(i + 1, slots.length, slot.name);
        continue;
      }
      const data = await slot.load(reader);
      if (data.length !== numel(slot.shape)) throw new Error(`Weight ${slot.name}: loaded ${data.length} values, expected ${numel(slot.shape)}`);
      assertFinite(slot.name, data);
      const q = packs ? quantize(data, data.length / K, K, format, group) : null;
      if (q) await opts.cache?.put(slot.name, q);
      // Synchronous inside the scope: no other GPU work can slip in between push and pop.
      await catchOom(device, `uploading ${slot.name}`, () => {
        if (q) {
          const w = uploadQuantized(device, q, slot.name);
          mats.set(slot.name, w);
          bytes += w.bytes;
        } else if (quantizable) {
          const w = uploadWeight(device, data, data.length / K, K, 'f32', group, slot.name);
          mats.set(slot.name, w);
          bytes += w.bytes;
        } else {
          bufs.set(slot.name, uploadStorage(device, data, slot.name));
          bytes += data.byteLength;
        }
      });
      opts.onProgress?.(i + 1, slots.length, slot.name);
    }
  } catch (e) {
    for (const b of bufs.values()) b.destroy();
    for (const w of mats.values()) destroyWeight(w);
    throw e;
  }
  const need = (name: SlotName) => {
    const b = bufs.get(name);
    if (!b) throw new Error(`The ${spec.arch} builder gave no weight for ${name}`);
    return b;
  };
  const layers: LayerWeights[] = [];
  for (let l = 0; l < spec.numLayers; l++) {
    const lw: Record<string, GPUBuffer | GpuWeight> = {};
    for (const [slot, field] of Object.entries(FIELD) as Array<[LayerSlot, keyof LayerWeights]>) {
      const b = mats.get(layerSlot(l, slot)) ?? bufs.get(layerSlot(l, slot));
      if (b) lw[field] = b;
    }
    for (const [f, slot] of [['attnNorm', 'attn_norm'], ['o', 'o'], ['mlpNorm', 'mlp_norm']] as const) {
      if (!lw[f]) need(layerSlot(l, slot));
    }
    if (spec.mla) {
      if (!lw.kvA || !lw.kvANorm || !lw.kvB || !(lw.q || (lw.qA && lw.qANorm && lw.qB))) throw new Error(`The ${spec.arch} builder gave layer ${l} an incomplete latent attention`);
    } else {
      for (const [f, slot] of [['q', 'q'], ['k', 'k'], ['v', 'v']] as const) if (!lw[f]) need(layerSlot(l, slot));
      // One projection instead of three (the parts are freed).
      const [q, kk, v] = [lw.q, lw.k, lw.v] as GpuWeight[];
      lw.qkv = concatRows(device, [q!, kk!, v!], `L${l}.qkv`);
      const biases = [lw.qBias, lw.kBias, lw.vBias] as Array<GPUBuffer | undefined>;
      if (biases.some(Boolean)) {
        if (!biases.every(Boolean)) throw new Error(`Layer ${l} has biases on only some of q, k and v`);
        lw.qkvBias = concatBuffers(device, biases as GPUBuffer[], `L${l}.qkv-bias`);
      }
      for (const f of ['q', 'k', 'v', 'qBias', 'kBias', 'vBias']) delete lw[f];
    }
    layers.push(lw as unknown as LayerWeights);
  }
  const embed = need('embed');
  const lmHead = spec.tieWordEmbeddings ? bufs.get('lm_head') ?? embed : mats.get('lm_head');
  if (!lmHead) throw new Error(`The ${spec.arch} builder gave no weight for lm_head`);
  return { embed, lmHead, finalNorm: need('final_norm'), layers, bytes };
}

/**
 * The slots of a GGUF checkpoint that keep their file's blocks (UploadOptions.keepFileBlocks):
 * matrices stored in the requested format otherwise, with q, k and v of a layer kept only together
 * in one format, since they are stacked into one matrix.
 */
export function fileBlockPlan(spec: ModelSpec, slots: WeightSlot[], reader: Parameters<typeof planFileBlocks>[1]): Promise<FileBlockPlan> {
  const qkv = spec.mla ? [] : Array.from({ length: spec.numLayers }, (_, l) => (['q', 'k', 'v'] as const).map((s) => layerSlot(l, s)));
  return planFileBlocks(slots.filter((s) => quantizableSlot(spec, s.name)), reader, qkv);
}

/** Bytes of the GPU buffers a slot becomes in `format` (or as its file's blocks, where `kept` says so): the largest one, and all of them. */
export function storedSlotBytes(spec: ModelSpec, slot: WeightSlot, format: WeightFormat, group: number, kept?: FileBlockPlan): { largest: number; total: number } {
  const n = numel(slot.shape);
  const K = slot.shape[slot.shape.length - 1]!;
  const blocks = kept?.get(slot.name);
  if (blocks) return { largest: blocks.bytes, total: blocks.bytes };
  if ((format === 'int8' || format === 'int4') && quantizableSlot(spec, slot.name) && canQuantize(K, group)) {
    // int8 packs 4 values per u32, int4 8; one f32 scale per (row, group). See quant/pack.ts.
    const data = format === 'int8' ? n : n / 2;
    const scales = (n / group) * 4;
    return { largest: Math.max(data, scales), total: data + scales };
  }
  return { largest: n * 4, total: n * 4 };
}

export function destroyWeights(w: ModelWeights): void {
  const seen = new Set<GPUBuffer>([w.embed, w.finalNorm]);
  if ('format' in w.lmHead) destroyWeight(w.lmHead);
  else seen.add(w.lmHead);
  for (const l of w.layers) {
    for (const b of Object.values(l) as Array<GPUBuffer | GpuWeight | undefined>) {
      if (!b) continue;
      if ('format' in b) destroyWeight(b);
      else seen.add(b);
    }
  }
  for (const b of seen) b.destroy();
}
