/**
 * safetensors (single file, or sharded through model.safetensors.index.json). Each header is parsed
 * and checked in full before any tensor byte is read: header length against the file size, JSON
 * well-formed, no duplicate names, dtypes supported, shape × dtype size = byte span, spans inside
 * the data and not overlapping. Every error names the file and the tensor.
 */
import type { TensorReader } from '../model/spec';
import { previewValue } from './preview';
import { baseName, readJson, type ByteSource } from './source';

export type DType = 'F32' | 'F16' | 'BF16';

/** Bytes per element of the dtypes this loader converts to f32. */
export const SUPPORTED_DTYPES: Readonly<Record<DType, number>> = { F32: 4, F16: 2, BF16: 2 };

/** Other dtypes safetensors defines: recognised so the error can say "unsupported", not "unknown". */
const OTHER_DTYPES = new Set(['F64', 'I64', 'U64', 'I32', 'U32', 'I16', 'U16', 'I8', 'U8', 'BOOL', 'C64', 'F8_E4M3', 'F8_E5M2', 'F8_E8M0', 'F6_E2M3', 'F6_E3M2', 'F4']);

/** Headers past this are refused as corrupt (the reference implementation's limit is 100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

export const INDEX_FILE = 'model.safetensors.index.json';

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
  file: ByteSource;
}

export interface SafetensorsHeader {
  tensors: Map<string, TensorInfo>;
  /** `__metadata__` (string values only), {} when absent. */
  metadata: Record<string, string>;
}

export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The first key that occurs twice in the top-level object of a JSON text already known to parse
 * (JSON.parse keeps the last silently), or null.
 */
export function duplicateTopLevelKey(text: string): string | null {
  const seen = new Set<string>();
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (seen.has(key)) return key;
        seen.add(key);
        expectKey = false;
      }
      i = j;
    } else if (ch === '{' || ch === '[') {
      depth++;
      expectKey = depth === 1 && ch === '{';
    } else if (ch === '}' || ch === ']') depth--;
    else if (ch === ',' && depth === 1) expectKey = true;
  }
  return null;
}

/** Reads and validates one file's header; reads only the first 8 + header-length bytes. */
export async function readHeader(file: ByteSource): Promise<SafetensorsHeader> {
  const fail = (why: string): never => {
    throw new SafetensorsError(`${file.name}: ${why}`);
  };
  if (file.size < 8) fail(`only ${file.size} bytes: too short for a safetensors header (truncated, or not a safetensors file)`);
  const lenBytes = await file.read(0, 8);
  const len64 = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
  if (len64 < 2n || len64 > BigInt(MAX_HEADER_BYTES)) fail(`header length ${len64} is not plausible (corrupt, or not a safetensors file)`);
  const len = Number(len64);
  if (8 + len > file.size) fail(`header length ${len} runs past the end of the file (${file.size} bytes): truncated?`);
  let text = '';
  let json: unknown;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(await file.read(8, len));
    json = JSON.parse(text);
  } catch (e) {
    fail(`header is not valid UTF-8 JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (!isObject(json)) fail('header is not a JSON object');
  const dup = duplicateTopLevelKey(text);
  if (dup !== null) fail(`tensor "${dup}" is listed twice in the header`);

  const dataStart = 8 + len;
  const dataLen = file.size - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (!isObject(entry)) fail('__metadata__ is not a JSON object');
      metadata = Object.fromEntries(Object.entries(entry as Record<string, unknown>).filter((kv): kv is [string, string] => typeof kv[1] === 'string'));
      continue;
    }
    const t = `tensor "${name}"`;
    if (!isObject(entry)) fail(`${t}: entry is not an object`);
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e.dtype !== 'string') fail(`${t}: missing dtype`);
    const dtype = e.dtype as string;
    if (!Object.hasOwn(SUPPORTED_DTYPES, dtype)) {
      fail(OTHER_DTYPES.has(dtype) ? `unsupported dtype ${dtype} for ${t} (this loader reads F32, F16 and BF16)` : `unknown dtype ${JSON.stringify(dtype)} for ${t}`);
    }
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) fail(`${t}: shape must be a list of non-negative integers`);
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)) fail(`${t}: data_offsets must be two non-negative integers`);
    const [b, en] = offs as [number, number];
    const shape = e.shape as number[];
    const bytes = shape.reduce((a, d) => a * d, 1) * SUPPORTED_DTYPES[dtype as DType];
    if (!Number.isSafeInteger(bytes)) fail(`${t}: shape [${shape.join(', ')}] is too large`);
    if (en < b) fail(`${t}: data_offsets [${b}, ${en}] run backwards`);
    if (en - b !== bytes) fail(`${t}: shape [${shape.join(', ')}] × ${dtype} is ${bytes} bytes but data_offsets [${b}, ${en}] span ${en - b}`);
    if (en > dataLen) fail(`${t}: data ends at ${en}, past the ${dataLen} data bytes in the file (truncated?)`);
    tensors.set(name, { name, dtype: dtype as DType, shape, begin: dataStart + b, end: dataStart + en, file });
  }
  const spans = [...tensors.values()].filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < spans.length; i++) {
    const [a, b] = [spans[i - 1]!, spans[i]!];
    if (b.begin < a.end) fail(`tensors "${a.name}" and "${b.name}" overlap (bytes ${a.begin - dataStart}-${a.end - dataStart} and ${b.begin - dataStart}-${b.end - dataStart})`);
  }
  return { tensors, metadata };
}

let f16Table: Float32Array | null = null;

/** All 65536 f16 bit patterns as f32 (256 KiB, built on first use). */
function f16Lut(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32(h);
  }
  return f16Table;
}

/** One IEEE half (as its 16 bits) to a number: subnormals, infinities and NaN included. */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** One bfloat16 (as its 16 bits) to a number: the top half of an f32. */
export function bf16ToF32(h: number): number {
  const u = new Uint32Array([h << 16]);
  return new Float32Array(u.buffer)[0]!;
}

/** Little-endian 16-bit words of `bytes` (a view when aligned, else a copy). */
function words16(bytes: Uint8Array): Uint16Array {
  if (bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
  return new Uint16Array(bytes.slice().buffer);
}

/** Raw little-endian tensor bytes to a fresh Float32Array. */
export function toFloat32(dtype: DType, bytes: Uint8Array): Float32Array {
  if (bytes.byteLength % SUPPORTED_DTYPES[dtype] !== 0) throw new RangeError(`${bytes.byteLength} bytes is not a whole number of ${dtype} values`);
  if (dtype === 'F32') return new Float32Array(bytes.slice().buffer);
  const w = words16(bytes);
  const n = w.length;
  const out = new Float32Array(n);
  if (dtype === 'BF16') {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) u[i] = w[i]! << 16;
    return out;
  }
  const lut = f16Lut();
  for (let i = 0; i < n; i++) out[i] = lut[w[i]!]!;
  return out;
}

/** Index of the first NaN or ±Inf in `data`, or -1. */
export function findNonFinite(data: Float32Array): number {
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    // v - v is NaN exactly for NaN and ±Inf, and 0 otherwise.
    if (v - v !== 0) return i;
  }
  return -1;
}

/** Throws naming the tensor (and where it came from) when `data` holds a NaN or an infinity. */
export function assertFinite(tensor: string, data: Float32Array, where?: string): void {
  const i = findNonFinite(data);
  if (i >= 0) throw new SafetensorsError(`${where ? `${where}: ` : ''}tensor "${tensor}" holds ${data[i]} at element ${i}: the checkpoint is corrupt`);
}

export interface OpenOptions {
  /** Check every tensor read for NaN/Inf (default true). */
  checkFinite?: boolean;
}

/** All tensors of a checkpoint, from one file or from shards listed in an index. */
export class SafetensorsCheckpoint implements TensorReader {
  private constructor(
    readonly tensors: Map<string, TensorInfo>,
    /** The safetensors files used, in the order opened. */
    readonly files: ByteSource[],
    /** `__metadata__` of each file, by file name. */
    readonly metadata: Map<string, Record<string, string>>,
    private readonly checkFinite: boolean,
  ) {}

  /**
   * Opens the weights among `files`: through model.safetensors.index.json when present (every
   * shard it names must be there and hold the tensors the index puts in it), else
   * model.safetensors, else every *.safetensors file (which must not share tensor names).
   */
  static async open(files: ByteSource[], opts: OpenOptions = {}): Promise<SafetensorsCheckpoint> {
    const checkFinite = opts.checkFinite ?? true;
    const byName = new Map(files.map((f) => [baseName(f.name), f]));
    const index = byName.get(INDEX_FILE);
    if (index) {
      const json = await readJson(index);
      const map = isObject(json) ? json.weight_map : undefined;
      if (!isObject(map)) throw new SafetensorsError(`${index.name}: no "weight_map" object`);
      const shardNames: string[] = [];
      for (const [tensor, shard] of Object.entries(map)) {
        if (typeof shard !== 'string' || shard === '') throw new SafetensorsError(`${index.name}: weight_map["${tensor}"] must be a file name, got ${previewValue(shard)}`);
        if (!shardNames.includes(shard)) shardNames.push(shard);
      }
      const missing = shardNames.filter((s) => !byName.has(baseName(s)));
      if (missing.length) {
        throw new SafetensorsError(`${index.name} lists shard${missing.length > 1 ? 's' : ''} ${missing.map((s) => `"${s}"`).join(', ')}, which ${missing.length > 1 ? 'are' : 'is'} missing (files present: ${[...byName.keys()].join(', ')})`);
      }
      const headers = new Map<string, SafetensorsHeader>();
      for (const s of shardNames) headers.set(s, await readHeader(byName.get(baseName(s))!));
      const tensors = new Map<string, TensorInfo>();
      for (const [name, shard] of Object.entries(map as Record<string, string>)) {
        const t = headers.get(shard)!.tensors.get(name);
        if (!t) throw new SafetensorsError(`${index.name} puts tensor "${name}" in ${shard}, which does not hold it`);
        tensors.set(name, t);
      }
      const used = shardNames.map((s) => byName.get(baseName(s))!);
      return new SafetensorsCheckpoint(tensors, used, new Map(shardNames.map((s) => [baseName(s), headers.get(s)!.metadata])), checkFinite);
    }
    const single = byName.get('model.safetensors');
    const chosen = single ? [single] : [...byName.values()].filter((f) => f.name.endsWith('.safetensors'));
    if (chosen.length === 0) {
      throw new SafetensorsError(`No weights: expected model.safetensors or ${INDEX_FILE} among the files (found: ${[...byName.keys()].join(', ') || 'none'})`);
    }
    const tensors = new Map<string, TensorInfo>();
    const metadata = new Map<string, Record<string, string>>();
    for (const f of chosen) {
      const h = await readHeader(f);
      metadata.set(f.name, h.metadata);
      for (const [name, t] of h.tensors) {
        const prev = tensors.get(name);
        if (prev) throw new SafetensorsError(`tensor "${name}" is in both ${prev.file.name} and ${f.name}, and there is no ${INDEX_FILE} to say which counts`);
        tensors.set(name, t);
      }
    }
    return new SafetensorsCheckpoint(tensors, chosen, metadata, checkFinite);
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new SafetensorsError(`The checkpoint has no tensor "${name}" (files: ${this.files.map((f) => f.name).join(', ')})`);
    return t;
  }

  shape(name: string): number[] {
    return [...this.info(name).shape];
  }

  /** The tensor as f32 (F16/BF16 converted), checked for NaN/Inf unless opened without. */
  async read(name: string): Promise<Float32Array> {
    const t = this.info(name);
    let bytes: Uint8Array;
    try {
      bytes = await t.file.read(t.begin, t.end - t.begin);
    } catch (e) {
      throw new SafetensorsError(`${t.file.name}: reading tensor "${name}" failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (bytes.byteLength !== t.end - t.begin) throw new SafetensorsError(`${t.file.name}: tensor "${name}": got ${bytes.byteLength} of its ${t.end - t.begin} bytes`);
    const data = toFloat32(t.dtype, bytes);
    if (this.checkFinite) assertFinite(name, data, t.file.name);
    return data;
  }
}
