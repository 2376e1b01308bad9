/**
 * Weight slots kept as their GGUF file's ggml blocks (UploadOptions.keepFileBlocks): which slots
 * can be, and their bytes gathered row by row in the slot's HF layout.
 *
 * A slot is assembled by its architecture builder from HF tensors (q/k/v, gate+up rows, experts
 * stacked, DeepSeek's rope rows de-interleaved) and the GGUF reader maps those onto file tensors
 * (Q/K un-permuted, merged or per-expert experts). All of these move whole rows, and a row of a
 * ggml tensor is whole blocks, so a slot can take its file's blocks as long as we know which file
 * row each of its rows is. Rather than mirror every builder's reordering here, the slot is loaded
 * once through a reader that hands out row numbers instead of values (GgufCheckpoint.readRowIds):
 * the result says, row by row, where each row came from — or, where some step mixed elements of
 * different rows (a transpose, kv_b rebuilt from its split parts), that it cannot keep blocks.
 */
import type { SlotName, TensorReader, WeightSlot } from '../model/spec';
import { canKeepBlocks, firstNonFiniteBlock, GGML_LAYOUT, ggmlFormatOf, ggmlGpuBytes } from '../quant/ggml-pack';
import type { GgmlFormat } from '../quant/pack';
import { GgufError, type GgufTensorInfo } from './gguf';
import { GgufCheckpoint } from './gguf-reader';

export interface FileBlockSlot {
  format: GgmlFormat;
  /** The slot as a [rows, K] matrix. */
  rows: number;
  K: number;
  /** The GGUF tensors it is made of; their rows are numbered through in this order. */
  tensors: GgufTensorInfo[];
  /** For each row of the slot, the number of the file row it is. */
  rowIds: Uint32Array;
  /** Bytes on the GPU (quant/ggml-pack.ts's layout). */
  bytes: number;
}

export type FileBlockPlan = Map<SlotName, FileBlockSlot>;

export function isGgufReader(r: TensorReader): r is GgufCheckpoint {
  return r instanceof GgufCheckpoint;
}

/** Row numbers are carried as f32 values, exact up to 2²⁴. */
const MAX_ROWS = 2 ** 24;

/**
 * The slots among `candidates` that can keep their file's blocks: every GGUF tensor behind the
 * slot is of one type with a GPU loader (F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K; F32 is plain f32
 * anyway), with rows of the slot's K, and the slot's assembly moves whole rows. Each group in
 * `together` (q, k, v of a layer, stacked into one matrix) is kept only if all its slots are, in
 * one format; otherwise its slots take the ordinary path.
 */
export async function planFileBlocks(candidates: WeightSlot[], reader: GgufCheckpoint, together: SlotName[][] = []): Promise<FileBlockPlan> {
  const plan: FileBlockPlan = new Map();
  for (const slot of candidates) {
    const s = await planSlot(slot, reader);
    if (s) plan.set(slot.name, s);
  }
  for (const group of together) {
    const formats = new Set(group.map((n) => plan.get(n)?.format ?? null));
    if (formats.size !== 1 || formats.has(null)) for (const n of group) plan.delete(n);
  }
  return plan;
}

async function planSlot(slot: WeightSlot, reader: GgufCheckpoint): Promise<FileBlockSlot | null> {
  const K = slot.shape[slot.shape.length - 1]!;
  const n = slot.shape.reduce((a, b) => a * b, 1);
  const rows = n / K;
  if (!slot.sources.every((s) => reader.has(s.name))) return null; // validateSlots names what is missing
  const tensors = [...new Map(slot.sources.flatMap((s) => reader.rawSources(s.name)).map((t) => [t.name, t])).values()];
  const type = tensors[0]?.type.id;
  const format = type === undefined ? null : ggmlFormatOf(type);
  if (!format || !canKeepBlocks(format, K)) return null;
  if (tensors.some((t) => t.type.id !== type || t.ne[0] !== K)) return null;
  const first = new Map<string, number>();
  let fileRows = 0;
  for (const t of tensors) {
    first.set(t.name, fileRows);
    fileRows += t.elements / K;
  }
  if (fileRows > MAX_ROWS) return null;
  const trace = await slot.load({
    has: (name) => reader.has(name),
    shape: (name) => reader.shape(name),
    // A tensor the slot reads but did not declare gets −1: its rows are refused below.
    read: (name) => reader.readRowIds(name, (info) => first.get(info.name) ?? -1),
  });
  if (trace.length !== n) return null;
  const rowIds = new Uint32Array(rows);
  for (let r = 0; r < rows; r++) {
    const id = trace[r * K]!;
    if (!Number.isInteger(id) || id < 0 || id >= fileRows) return null;
    for (let c = 1; c < K; c++) if (trace[r * K + c] !== id) return null;
    rowIds[r] = id;
  }
  return { format, rows, K, tensors, rowIds, bytes: ggmlGpuBytes(format, n) };
}

/** The slot's blocks as in the file, row after row in the slot's order (what uploadGgml takes). */
export async function readFileBlocks(reader: GgufCheckpoint, s: FileBlockSlot): Promise<Uint8Array> {
  const l = GGML_LAYOUT[s.format];
  const rowBytes = (s.K / l.blockSize) * l.fileBytes;
  const starts: number[] = [];
  const raws: Uint8Array[] = [];
  let fileRows = 0;
  for (const t of s.tensors) {
    const raw = await reader.readRaw(t);
    const bad = firstNonFiniteBlock(s.format, raw);
    if (bad >= 0) throw new GgufError(`${reader.file.name}: tensor "${t.name}" holds a non-finite ${l.blockSize > 1 ? 'scale' : 'value'} in block ${bad} (corrupt)`);
    starts.push(fileRows);
    raws.push(raw);
    fileRows += t.elements / s.K;
  }
  const out = new Uint8Array(s.rows * rowBytes);
  let ti = 0;
  for (let r = 0; r < s.rows; ) {
    const id = s.rowIds[r]!;
    // Rows usually come in long runs from one tensor (often the whole tensor): copy runs at once.
    if (id < starts[ti]! || id >= starts[ti]! + raws[ti]!.byteLength / rowBytes) {
      ti = 0;
      while (id >= starts[ti]! + raws[ti]!.byteLength / rowBytes) ti++;
    }
    const end = starts[ti]! + raws[ti]!.byteLength / rowBytes;
    let len = 1;
    while (r + len < s.rows && s.rowIds[r + len] === id + len && id + len < end) len++;
    const from = (id - starts[ti]!) * rowBytes;
    out.set(raws[ti]!.subarray(from, from + len * rowBytes), r * rowBytes);
    r += len;
  }
  return out;
}
