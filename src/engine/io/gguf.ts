/**
 * GGUF (v3, and v2 which has the same layout) headers: metadata key/values, tensor infos, alignment,
 * the data section. Everything is checked before any tensor byte is read, and every count or length
 * is checked against the bytes left in the file before anything is allocated for it, so a forged
 * header is refused rather than exhausting memory.
 *
 * Hand-written rather than @huggingface/gguf: that library reads through `fetch` (a URL, or a local
 * path in Node only) rather than from our ByteSource (a dropped File, memory, a range-read URL), and
 * it trusts the counts it reads (an array length of 2^40 sends it looping through reads until the
 * file ends); here each count is bounded by the file size first, and each error names the problem.
 */
import { GGML_TYPES, type GgmlType } from '../quant/gguf-blocks';
import type { ByteSource } from './source';

export class GgufError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GgufError';
  }
}

/** GGUF metadata value types (gguf.h's enum gguf_type). */
export const GGUF_TYPE = { UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12 } as const;
const TYPE_NAMES = Object.fromEntries(Object.entries(GGUF_TYPE).map(([k, v]) => [v, k])) as Record<number, string>;
/** Bytes of a scalar of each fixed-size type; strings take at least 8 (their length). */
const SCALAR_BYTES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

export type GgufScalar = number | bigint | boolean | string;
export interface GgufKV {
  /** GGUF_TYPE of the value (of its elements, for arrays). */
  type: number;
  isArray: boolean;
  value: GgufScalar | GgufScalar[];
}

export interface GgufTensorInfo {
  name: string;
  /** ggml's ne: the innermost (contiguous) dimension first; reversed from PyTorch/HF order. */
  ne: number[];
  type: GgmlType;
  elements: number;
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
}

export interface GgufHeader {
  version: number;
  metadata: Map<string, GgufKV>;
  tensors: Map<string, GgufTensorInfo>;
  alignment: number;
  /** Absolute offset of the data section. */
  dataOffset: number;
}

const MAGIC = 0x46554747; // "GGUF" little-endian
/** ggml's GGML_MAX_DIMS and GGML_MAX_NAME (a tensor name is at most 63 bytes plus its NUL). */
const MAX_DIMS = 4;
const MAX_NAME = 64;
/** Smallest encodings: a key/value is key length + ≥1 key byte + type + ≥1 value byte; a tensor info
 * is name length + n_dims + one dim + type + offset. */
const MIN_KV_BYTES = 8 + 1 + 4 + 1;
const MIN_TENSOR_INFO_BYTES = 8 + 4 + 8 + 4 + 8;
/** Bytes fetched at a time while parsing the header. */
const CHUNK = 1 << 20;

/** Sequential little-endian reads over a ByteSource, fetched in chunks, every read bounds-checked. */
class Cursor {
  pos = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private bufStart = 0;
  private readonly utf8 = new TextDecoder('utf-8', { fatal: true });

  constructor(private readonly file: ByteSource, private readonly fail: (why: string) => never) {}

  get left(): number {
    return this.file.size - this.pos;
  }

  private async bytes(n: number, what: string): Promise<Uint8Array> {
    if (n > this.left) this.fail(`${what} at byte ${this.pos} needs ${n} bytes but only ${this.left} are left (truncated?)`);
    const off = this.pos - this.bufStart;
    if (off < 0 || off + n > this.buf.byteLength) {
      const len = Math.min(Math.max(n, CHUNK), this.left);
      this.buf = await this.file.read(this.pos, len);
      this.bufStart = this.pos;
    }
    const o = this.pos - this.bufStart;
    this.pos += n;
    return this.buf.subarray(o, o + n);
  }

  private async view(n: number, what: string): Promise<DataView> {
    const b = await this.bytes(n, what);
    return new DataView(b.buffer, b.byteOffset, n);
  }

  async u32(what: string): Promise<number> {
    return (await this.view(4, what)).getUint32(0, true);
  }

  /** A u64 that must fit a safe integer (counts, lengths, dims, offsets). */
  async u64(what: string): Promise<number> {
    const v = (await this.view(8, what)).getBigUint64(0, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} is ${v}, beyond any plausible size`);
    return Number(v);
  }

  async string(what: string, maxBytes = this.left): Promise<string> {
    const len = await this.u64(`${what} length`);
    if (len > Math.min(maxBytes, this.left)) this.fail(`${what} claims ${len} bytes${len > this.left ? `, more than the ${this.left} left in the file (truncated, or corrupt)` : ` (limit ${maxBytes})`}`);
    const b = await this.bytes(len, what);
    try {
      return this.utf8.decode(b);
    } catch {
      return this.fail(`${what} is not valid UTF-8`);
    }
  }

  async scalar(type: number, what: string): Promise<GgufScalar> {
    if (type === GGUF_TYPE.STRING) return this.string(what);
    const n = SCALAR_BYTES[type];
    if (n === undefined) return this.fail(`${what} has unknown value type ${type}`);
    const v = await this.view(n, what);
    switch (type) {
      case GGUF_TYPE.UINT8: return v.getUint8(0);
      case GGUF_TYPE.INT8: return v.getInt8(0);
      case GGUF_TYPE.UINT16: return v.getUint16(0, true);
      case GGUF_TYPE.INT16: return v.getInt16(0, true);
      case GGUF_TYPE.UINT32: return v.getUint32(0, true);
      case GGUF_TYPE.INT32: return v.getInt32(0, true);
      case GGUF_TYPE.FLOAT32: return v.getFloat32(0, true);
      case GGUF_TYPE.FLOAT64: return v.getFloat64(0, true);
      case GGUF_TYPE.BOOL: {
        const b = v.getUint8(0);
        if (b > 1) this.fail(`${what} is a bool stored as ${b} (must be 0 or 1)`);
        return b === 1;
      }
      case GGUF_TYPE.UINT64: {
        const x = v.getBigUint64(0, true);
        return x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x;
      }
      default: {
        const x = v.getBigInt64(0, true);
        return x <= BigInt(Number.MAX_SAFE_INTEGER) && x >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(x) : x;
      }
    }
  }
}

/** Reads and validates a GGUF file's header; reads no tensor data. */
export async function readGgufHeader(file: ByteSource): Promise<GgufHeader> {
  const fail = (why: string): never => {
    throw new GgufError(`${file.name}: ${why}`);
  };
  if (file.size < 24) fail(`only ${file.size} bytes: too short for a GGUF header (truncated, or not a GGUF file)`);
  const c = new Cursor(file, fail);
  const magic = await c.u32('magic');
  if (magic !== MAGIC) {
    const b = [magic & 0xff, (magic >> 8) & 0xff, (magic >> 16) & 0xff, magic >>> 24];
    fail(`not a GGUF file: the magic is ${JSON.stringify(String.fromCharCode(...b))} (0x${magic.toString(16).padStart(8, '0')}), not "GGUF"`);
  }
  const version = await c.u32('version');
  if (version === 0x03000000 || version === 0x02000000) fail('a big-endian GGUF file: only little-endian files are supported');
  if (version === 1) fail('GGUF version 1 (32-bit counts, from 2023) is not supported; convert it again with a current llama.cpp');
  if (version !== 2 && version !== 3) fail(`unknown GGUF version ${version} (versions 2 and 3 are supported)`);
  const nTensors = await c.u64('tensor count');
  const nKv = await c.u64('metadata count');
  if (nKv * MIN_KV_BYTES > c.left) fail(`metadata count ${nKv} cannot fit in the ${c.left} bytes left (truncated, or a corrupt header)`);
  if (nTensors * MIN_TENSOR_INFO_BYTES > c.left) fail(`tensor count ${nTensors} cannot fit in the ${c.left} bytes left (truncated, or a corrupt header)`);

  const metadata = new Map<string, GgufKV>();
  for (let i = 0; i < nKv; i++) {
    const key = await c.string(`metadata key #${i}`);
    if (key.length === 0) fail(`metadata key #${i} is empty`);
    if (metadata.has(key)) fail(`metadata key "${key}" appears twice`);
    const type = await c.u32(`type of "${key}"`);
    if (type === GGUF_TYPE.ARRAY) {
      const et = await c.u32(`element type of "${key}"`);
      if (et === GGUF_TYPE.ARRAY) fail(`"${key}" is an array of arrays (not supported)`);
      const min = et === GGUF_TYPE.STRING ? 8 : SCALAR_BYTES[et];
      if (min === undefined) fail(`"${key}" is an array of unknown value type ${et}`);
      const n = await c.u64(`length of "${key}"`);
      if (n * min! > c.left) fail(`"${key}" claims ${n} elements of ${TYPE_NAMES[et]}, more than the ${c.left} bytes left hold (truncated, or corrupt)`);
      const values: GgufScalar[] = new Array<GgufScalar>(n);
      for (let j = 0; j < n; j++) values[j] = await c.scalar(et, `"${key}"[${j}]`);
      metadata.set(key, { type: et, isArray: true, value: values });
    } else {
      if (type !== GGUF_TYPE.STRING && SCALAR_BYTES[type] === undefined) fail(`"${key}" has unknown value type ${type}`);
      metadata.set(key, { type, isArray: false, value: await c.scalar(type, `"${key}"`) });
    }
  }

  let alignment = 32;
  const al = metadata.get('general.alignment');
  if (al) {
    const a = al.value;
    if (al.isArray || al.type !== GGUF_TYPE.UINT32 || typeof a !== 'number') fail('general.alignment must be a uint32');
    if (typeof a === 'number' && (a === 0 || (a & (a - 1)) !== 0)) fail(`general.alignment ${a} is not a power of two`);
    alignment = a as number;
  }

  const infos: Array<Omit<GgufTensorInfo, 'begin' | 'end'> & { offset: number; bytes: number }> = [];
  const seen = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    const name = await c.string(`tensor #${i} name`, MAX_NAME - 1);
    const t = `tensor "${name}"`;
    if (seen.has(name)) fail(`${t} is listed twice`);
    seen.add(name);
    const nDims = await c.u32(`${t} dimension count`);
    if (nDims < 1 || nDims > MAX_DIMS) fail(`${t} has ${nDims} dimensions (1 to ${MAX_DIMS} allowed)`);
    const ne: number[] = [];
    for (let d = 0; d < nDims; d++) ne.push(await c.u64(`${t} dimension ${d}`));
    const typeId = await c.u32(`${t} type`);
    const type = GGML_TYPES.get(typeId);
    if (!type) fail(`${t} has unknown ggml type ${typeId}`);
    const offset = await c.u64(`${t} offset`);
    const elements = ne.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(elements)) fail(`${t} has too many elements ([${ne.join(', ')}])`);
    if (ne[0]! % type!.blockSize !== 0) fail(`${t} is ${type!.name} with rows of ${ne[0]} elements, not a multiple of its block size ${type!.blockSize}`);
    if (offset % alignment !== 0) fail(`${t} data offset ${offset} is not a multiple of the alignment ${alignment}`);
    infos.push({ name, ne, type: type!, elements, offset, bytes: (elements / type!.blockSize) * type!.typeSize });
  }

  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  const dataLen = file.size - dataOffset;
  const tensors = new Map<string, GgufTensorInfo>();
  for (const x of infos) {
    if (x.offset + x.bytes > dataLen) fail(`tensor "${x.name}" (${x.type.name} [${x.ne.join(', ')}], ${x.bytes} bytes at data offset ${x.offset}) runs past the end of the file (truncated?)`);
    tensors.set(x.name, { name: x.name, ne: x.ne, type: x.type, elements: x.elements, begin: dataOffset + x.offset, end: dataOffset + x.offset + x.bytes });
  }
  const spans = [...tensors.values()].filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < spans.length; i++) {
    const [a, b] = [spans[i - 1]!, spans[i]!];
    if (b.begin < a.end) fail(`tensors "${a.name}" and "${b.name}" overlap`);
  }
  return { version, metadata, tensors, alignment, dataOffset };
}

// ---------------------------------------------------------------- typed metadata access

/** Typed getters over a header's metadata; each error names the key and what it should be. */
export class GgufMetadata {
  constructor(private readonly kv: Map<string, GgufKV>, private readonly fileName: string) {}

  has(key: string): boolean {
    return this.kv.has(key);
  }

  private fail(key: string, why: string): never {
    throw new GgufError(`${this.fileName}: metadata "${key}" ${why}`);
  }

  private scalarOf(key: string): GgufKV | undefined {
    const e = this.kv.get(key);
    if (e?.isArray) this.fail(key, 'is an array, expected a single value');
    return e;
  }

  string(key: string): string | undefined {
    const e = this.scalarOf(key);
    if (e === undefined) return undefined;
    if (typeof e.value !== 'string') this.fail(key, `must be a string, got ${TYPE_NAMES[e.type]}`);
    return e.value as string;
  }

  /** A non-negative integer of any integer type. */
  uint(key: string): number | undefined {
    const e = this.scalarOf(key);
    if (e === undefined) return undefined;
    const v = e.value;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || e.type === GGUF_TYPE.FLOAT32 || e.type === GGUF_TYPE.FLOAT64) this.fail(key, `must be a non-negative integer, got ${String(v)}`);
    return v as number;
  }

  /** A finite number of any numeric type. */
  number(key: string): number | undefined {
    const e = this.scalarOf(key);
    if (e === undefined) return undefined;
    if (typeof e.value !== 'number' || !Number.isFinite(e.value)) this.fail(key, `must be a finite number, got ${String(e.value)}`);
    return e.value as number;
  }

  bool(key: string): boolean | undefined {
    const e = this.scalarOf(key);
    if (e === undefined) return undefined;
    if (typeof e.value !== 'boolean') this.fail(key, `must be a bool, got ${TYPE_NAMES[e.type]}`);
    return e.value as boolean;
  }

  stringArray(key: string): string[] | undefined {
    const e = this.kv.get(key);
    if (e === undefined) return undefined;
    if (!e.isArray || e.type !== GGUF_TYPE.STRING) this.fail(key, 'must be an array of strings');
    return e.value as string[];
  }

  numberArray(key: string): number[] | undefined {
    const e = this.kv.get(key);
    if (e === undefined) return undefined;
    if (!e.isArray || !(e.value as GgufScalar[]).every((x) => typeof x === 'number')) this.fail(key, 'must be an array of numbers');
    return e.value as number[];
  }

  /** An integer given once, or per layer as an array whose entries must then all agree. */
  uniformUint(key: string): number | undefined {
    const e = this.kv.get(key);
    if (e === undefined || !e.isArray) return this.uint(key);
    const arr = this.numberArray(key)!;
    if (arr.length === 0 || arr.some((x) => x !== arr[0] || !Number.isInteger(x) || x < 0)) this.fail(key, `differs between layers ([${arr.slice(0, 8).join(', ')}${arr.length > 8 ? ', …' : ''}]): per-layer values are not supported`);
    return arr[0];
  }
}
