/**
 * safetensors (single file or sharded through model.safetensors.index.json): the header is parsed
 * and checked in full before any tensor byte is read — dtypes, shapes against byte spans, offsets
 * inside the file, no overlaps — and every error names the file and the tensor.
 */
import type { TensorReader } from '../model/spec';
import { readJson, type ByteSource } from './source';

export type DType = 'F32' | 'F16' | 'BF16';
const SUPPORTED: Record<DType, number> = { F32: 4, F16: 2, BF16: 2 };
const KNOWN_SIZES: Record<string, number> = { ...SUPPORTED, F64: 8, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, F8_E4M3: 1, F8_E5M2: 1, U16: 2, U32: 4, U64: 8 };

/** Headers past this are refused as corrupt (real ones are well under a few MiB). */
export const MAX_HEADER_BYTES = 100 * 2 ** 20;

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
  file: ByteSource;
}

export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

/** Reads and validates one file's header. */
export async function readHeader(file: ByteSource): Promise<Map<string, TensorInfo>> {
  const fail = (why: string): never => {
    throw new SafetensorsError(`${file.name}: ${why}`);
  };
  if (file.size < 8) fail(`only ${file.size} bytes: too short for a safetensors header`);
  const lenBytes = await file.read(0, 8);
  const len = Number(new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true));
  if (len < 2 || len > MAX_HEADER_BYTES) fail(`header length ${len} is not plausible (corrupt or not a safetensors file)`);
  if (8 + len > file.size) fail(`header length ${len} runs past the end of the file (${file.size} bytes): truncated?`);
  let json: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(await file.read(8, len));
    json = JSON.parse(text);
  } catch (e) {
    fail(`header is not valid UTF-8 JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('header is not a JSON object');
  const dataStart = 8 + len;
  const dataLen = file.size - dataStart;
  const out = new Map<string, TensorInfo>();
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') continue;
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) fail(`tensor "${name}": entry is not an object`);
    if (typeof e.dtype !== 'string') fail(`tensor "${name}": missing dtype`);
    const dtype = e.dtype as string;
    if (!(dtype in SUPPORTED)) {
      fail(`tensor "${name}": dtype ${dtype} is ${dtype in KNOWN_SIZES ? 'not supported (F32, F16 and BF16 are)' : 'unknown'}`);
    }
    if (!Array.isArray(e.shape) || e.shape.some((d) => !Number.isSafeInteger(d) || (d as number) < 0)) fail(`tensor "${name}": shape must be a list of non-negative integers`);
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || offs.some((o) => !Number.isSafeInteger(o) || (o as number) < 0)) fail(`tensor "${name}": data_offsets must be two non-negative integers`);
    const [b, en] = offs as [number, number];
    const shape = e.shape as number[];
    const bytes = shape.reduce((a, d) => a * d, 1) * SUPPORTED[dtype as DType];
    if (en < b) fail(`tensor "${name}": data_offsets [${b}, ${en}] run backwards`);
    if (en - b !== bytes) fail(`tensor "${name}": shape [${shape.join(', ')}] × ${dtype} is ${bytes} bytes but data_offsets span ${en - b}`);
    if (en > dataLen) fail(`tensor "${name}": data ends at ${en}, past the ${dataLen} data bytes in the file (truncated?)`);
    out.set(name, { name, dtype: dtype as DType, shape, begin: dataStart + b, end: dataStart + en, file });
  }
  const sorted = [...out.values()].sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.begin < sorted[i - 1]!.end) fail(`tensors "${sorted[i - 1]!.name}" and "${sorted[i]!.name}" overlap`);
  }
  return out;
}

/** bf16 → f32 is a 16-bit shift; f16 → f32 needs the exponent rebiased (subnormals included). */
export function toFloat32(dtype: DType, bytes: Uint8Array): Float32Array {
  if (dtype === 'F32') {
    const copy = new Uint8Array(bytes.byteLength);
    copy.set(bytes);
    return new Float32Array(copy.buffer);
  }
  const n = bytes.byteLength / 2;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  if (dtype === 'BF16') {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) u[i] = dv.getUint16(i * 2, true) << 16;
    return out;
  }
  for (let i = 0; i < n; i++) out[i] = f16ToF32(dv.getUint16(i * 2, true));
  return out;
}

export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** All tensors of a checkpoint, from one file or from shards listed in an index. */
export class SafetensorsCheckpoint implements TensorReader {
  private constructor(readonly tensors: Map<string, TensorInfo>) {}

  static async open(files: ByteSource[]): Promise<SafetensorsCheckpoint> {
    const byName = new Map(files.map((f) => [f.name, f]));
    const index = byName.get('model.safetensors.index.json');
    if (index) {
      const json = (await readJson(index)) as { weight_map?: unknown };
      const map = json.weight_map;
      if (typeof map !== 'object' || map === null) throw new SafetensorsError(`${index.name}: no "weight_map" object`);
      const shards = new Map<string, Map<string, TensorInfo>>();
      for (const shard of new Set(Object.values(map as Record<string, unknown>))) {
        if (typeof shard !== 'string') throw new SafetensorsError(`${index.name}: weight_map values must be file names`);
        const f = byName.get(shard);
        if (!f) throw new SafetensorsError(`${index.name} lists shard "${shard}", which is missing`);
        shards.set(shard, await readHeader(f));
      }
      const tensors = new Map<string, TensorInfo>();
      for (const [name, shard] of Object.entries(map as Record<string, string>)) {
        const t = shards.get(shard)!.get(name);
        if (!t) throw new SafetensorsError(`${index.name} puts tensor "${name}" in ${shard}, which does not hold it`);
        tensors.set(name, t);
      }
      return new SafetensorsCheckpoint(tensors);
    }
    const single = byName.get('model.safetensors') ?? files.find((f) => f.name.endsWith('.safetensors'));
    if (!single) throw new SafetensorsError(`No weights: expected model.safetensors or model.safetensors.index.json among ${[...byName.keys()].join(', ') || 'no files'}`);
    return new SafetensorsCheckpoint(await readHeader(single));
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  shape(name: string): number[] {
    const t = this.tensors.get(name);
    if (!t) throw new SafetensorsError(`Checkpoint has no tensor "${name}"`);
    return t.shape;
  }

  async read(name: string): Promise<Float32Array> {
    const t = this.tensors.get(name);
    if (!t) throw new SafetensorsError(`Checkpoint has no tensor "${name}"`);
    return toFloat32(t.dtype, await t.file.read(t.begin, t.end - t.begin));
  }
}
