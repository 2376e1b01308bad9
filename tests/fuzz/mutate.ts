/**
 * Input generators for the fuzz targets: structured mutations of valid inputs (bytes, JSON
 * documents, JSON text, strings) and pure noise. Every generator bounds the size of what it makes
 * (a few hundred KiB at most), since a synchronous parser cannot be interrupted: an unbounded input
 * could turn a slow-but-finite parse into a hang the per-case timer cannot stop.
 */
import fc from 'fast-check';

const enc = new TextEncoder();

// ------------------------------------------------------------------ bytes

/** Values a forged 64-bit length, count or offset takes: edges of every integer width and of JS numbers. */
export const forgedU64: fc.Arbitrary<bigint> = fc.oneof(
  fc.constantFrom(0n, 1n, 2n, 7n, 8n, 0x7fn, 0xffn, 0xffffn, 0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n, 100_000_000n, 100_000_001n, (1n << 53n) - 1n, 1n << 53n, (1n << 53n) + 1n, (1n << 63n) - 1n, 1n << 63n, (1n << 64n) - 1n),
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  fc.bigInt({ min: 0n, max: 1n << 20n }),
);

export type ByteOp =
  | { kind: 'set'; at: number; v: number }
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'cut'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'u64'; at: number; v: bigint }
  | { kind: 'u32'; at: number; v: number }
  | { kind: 'copy'; from: number; to: number; len: number };

export const byteOp: fc.Arbitrary<ByteOp> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), v: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ maxLength: 16 }) }),
  fc.record({ kind: fc.constant('u64' as const), at: fc.nat(), v: forgedU64 }),
  fc.record({ kind: fc.constant('u32' as const), at: fc.nat(), v: fc.oneof(fc.constantFrom(0, 1, 0x7fffffff, 0xffffffff), fc.nat()) }),
  fc.record({ kind: fc.constant('copy' as const), from: fc.nat(), to: fc.nat(), len: fc.integer({ min: 1, max: 64 }) }),
);

export function mutateBytes(seed: Uint8Array, ops: readonly ByteOp[]): Uint8Array {
  let b = seed.slice();
  for (const op of ops) {
    const at = (x: number) => (b.length ? x % (b.length + 1) : 0);
    if (op.kind === 'set' || op.kind === 'flip') {
      const i = at(op.at);
      if (i < b.length) b[i] = op.kind === 'set' ? op.v : b[i]! ^ (1 << op.bit);
    } else if (op.kind === 'cut') b = b.slice(0, at(op.at));
    else if (op.kind === 'insert') {
      const i = at(op.at);
      const nb = new Uint8Array(b.length + op.bytes.length);
      nb.set(b.subarray(0, i));
      nb.set(op.bytes, i);
      nb.set(b.subarray(i), i + op.bytes.length);
      b = nb;
    } else if (op.kind === 'u64' || op.kind === 'u32') {
      const w = op.kind === 'u64' ? 8 : 4;
      const i = at(op.at);
      if (i + w <= b.length) {
        const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
        if (op.kind === 'u64') dv.setBigUint64(i, op.v, true);
        else dv.setUint32(i, op.v, true);
      }
    } else if (b.length) {
      const from = op.from % b.length;
      const to = op.to % b.length;
      b.copyWithin(to, from, Math.min(b.length, from + op.len));
    }
  }
  return b;
}

/** Mutations of one of `seeds` (weight 4) or random bytes (weight 1). */
export function bytesFrom(seeds: readonly Uint8Array[], maxOps = 6): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.tuple(fc.nat(seeds.length - 1), fc.array(byteOp, { minLength: 1, maxLength: maxOps })).map(([i, ops]) => mutateBytes(seeds[i]!, ops)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 512 }) },
  );
}

// ------------------------------------------------------------------ JSON documents

/**
 * Placeholders a mutation puts into a document where the hostile thing cannot be a JS value: JSON
 * text nested 100 000 deep (JSON.stringify itself would overflow), numbers that JSON.parse turns
 * into Infinity or rounds, raw control characters. `jsonText` swaps them in after stringifying.
 */
const RAW = '\u0000raw:';
const rawText: string[] = [
  '['.repeat(100_000) + ']'.repeat(100_000),
  '{"a":'.repeat(50_000) + '1' + '}'.repeat(50_000),
  '['.repeat(5_000) + '"x"' + ']'.repeat(5_000),
  '1e400',
  '-1e400',
  '-0',
  '123456789012345678901234567890',
  '9007199254740993',
  '0.' + '0'.repeat(400) + '1',
  '1' + '0'.repeat(400),
  '[' + Array(20_000).fill('0').join(',') + ']',
  '{' + Array.from({ length: 5_000 }, (_, i) => `"k${i}":${i}`).join(',') + '}',
  '"' + 'x'.repeat(100_000) + '"',
  '"\\ud800"',
  '"\\u0000"',
];
export const raw = (i: number) => `${RAW}${i}`;

/** Keys that mean something to JavaScript objects. Set as own data properties (never through `obj[k] =`, which for __proto__ changes the prototype). */
export const PROTO_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__'];

/** Values that break naive readers of a field: wrong types, edges of every bound, numbers as strings. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom<unknown>(-1, 0, 1, 2, 3, 1.5, -0.5, 1e-300, 1e308, -1e308, 2 ** 24, 2 ** 24 + 1, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 1023, 1024, 1025, 4096, 4097, 65536, 'NaN', 'Infinity', '-1', '1e309', '32', '0x20', '', ' ', '__proto__', 'constructor', 'null', 'true', null, true, false, [], {}, [[]], [null], [1, 'x'], { __proto__: null }, 'x'.repeat(300)) },
  { weight: 2, arbitrary: fc.nat(rawText.length - 1).map(raw) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.double(), fc.string({ maxLength: 20 })) },
);

export type JsonOp =
  | { kind: 'set'; path: number; value: unknown }
  | { kind: 'delete'; path: number }
  | { kind: 'swap'; path: number; other: number }
  | { kind: 'retype'; path: number }
  | { kind: 'protoKey'; path: number; key: string; value: unknown }
  | { kind: 'wrap'; path: number; depth: number }
  | { kind: 'scale'; factor: number };

export function jsonOp(values: fc.Arbitrary<unknown> = hostileValue): fc.Arbitrary<JsonOp> {
  return fc.oneof(
    { weight: 5, arbitrary: fc.record({ kind: fc.constant('set' as const), path: fc.nat(), value: values }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), path: fc.nat() }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('swap' as const), path: fc.nat(), other: fc.nat() }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('retype' as const), path: fc.nat() }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('protoKey' as const), path: fc.nat(), key: fc.constantFrom(...PROTO_KEYS), value: values }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('wrap' as const), path: fc.nat(), depth: fc.integer({ min: 1, max: 64 }) }) },
    // Every size at once: bounds checked one field at a time can still multiply into an enormous whole.
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('scale' as const), factor: fc.constantFrom(2, 3, 16, 64, 128, 512, 4096, 2 ** 20) }) },
  );
}

type Path = Array<string | number>;

/** Paths of `v` (its nodes; at most a few thousand, and at most 64 items of any array). */
function paths(v: unknown, at: Path = [], out: Path[] = []): Path[] {
  out.push(at);
  if (out.length > 4000 || at.length > 32) return out;
  if (Array.isArray(v)) v.slice(0, 64).forEach((x, i) => paths(x, [...at, i], out));
  else if (v && typeof v === 'object') for (const k of Object.keys(v)) paths((v as Record<string, unknown>)[k], [...at, k], out);
  return out;
}

const get = (doc: unknown, path: Path): unknown => path.reduce<unknown>((o, k) => (o as Record<string | number, unknown>)[k], doc);

function put(doc: unknown, path: Path, value: unknown): unknown {
  if (path.length === 0) return value;
  const parent = get(doc, path.slice(0, -1)) as Record<string | number, unknown>;
  // defineProperty: a key "__proto__" must become an own data property, as JSON.parse makes it.
  Object.defineProperty(parent, path[path.length - 1]!, { value, enumerable: true, writable: true, configurable: true });
  return doc;
}

/** A plain copy that keeps own "__proto__" keys (structuredClone does; JSON round trips would not for raw placeholders). */
const clone = <T>(v: T): T => structuredClone(v);

/** `v` with every integer ≥ 1 in it multiplied by `factor`. */
function scaleInts(v: unknown, factor: number): unknown {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 1 ? v * factor : v;
  if (Array.isArray(v)) return v.map((x) => scaleInts(x, factor));
  if (v && typeof v === 'object') {
    for (const k of Object.keys(v)) put(v, [k], scaleInts((v as Record<string, unknown>)[k], factor));
    return v;
  }
  return v;
}

function retype(v: unknown): unknown {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return v.trim() !== '' && !Number.isNaN(Number(v)) ? Number(v) : [v];
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (v === null) return 0;
  if (Array.isArray(v)) return Object.fromEntries(v.map((x, i) => [String(i), x]));
  return Object.values(v as object);
}

export function mutateJson(seed: unknown, ops: readonly JsonOp[]): unknown {
  let doc: unknown = clone(seed);
  for (const op of ops) {
    if (op.kind === 'scale') {
      doc = scaleInts(doc, op.factor);
      continue;
    }
    const all = paths(doc);
    const path = all[op.path % all.length]!;
    const parentPath = path.slice(0, -1);
    if (op.kind === 'set') doc = put(doc, path, clone(op.value));
    else if (op.kind === 'retype') doc = put(doc, path, retype(get(doc, path)));
    else if (op.kind === 'wrap') {
      let v = get(doc, path);
      for (let i = 0; i < op.depth; i++) v = i % 2 ? { v } : [v];
      doc = put(doc, path, v);
    } else if (op.kind === 'swap') {
      const other = all[op.other % all.length]!;
      const [a, b] = [get(doc, path), get(doc, other)];
      // Swapping a node with its own ancestor would make a cycle.
      const nested = (p: Path, q: Path) => p.length <= q.length && p.every((k, i) => k === q[i]);
      if (!nested(path, other) && !nested(other, path)) {
        doc = put(doc, path, clone(b));
        doc = put(doc, other, clone(a));
      }
    } else if (op.kind === 'protoKey') {
      const target = get(doc, path);
      if (target && typeof target === 'object' && !Array.isArray(target)) put(doc, [...path, op.key], clone(op.value));
    } else if (path.length > 0) {
      const parent = get(doc, parentPath);
      const key = path[path.length - 1]!;
      if (Array.isArray(parent)) parent.splice(Number(key), 1);
      else delete (parent as Record<string, unknown>)[key];
    }
  }
  return doc;
}

/** JSON text of `doc` with the raw placeholders swapped in. */
export function jsonText(doc: unknown): string {
  const text = JSON.stringify(doc) ?? 'null';
  return text.includes('\\u0000raw:') ? text.replace(/"\\u0000raw:(\d+)"/g, (_, i: string) => rawText[Number(i)]!) : text;
}

export type TextOp =
  | { kind: 'cut'; at: number }
  | { kind: 'insert'; at: number; text: string }
  | { kind: 'dupKey'; at: number }
  | { kind: 'bom' }
  | { kind: 'pad'; n: number };

const JSON_BITS = ['{', '}', '[', ']', ',', ':', '"', '\\', '\\u', 'null', '-', '1e', '.', ' ', '\n', '\u2028', '\ud800', '\u0000', '"__proto__":1,'];
export const textOp: fc.Arbitrary<TextOp> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.oneof(fc.constantFrom(...JSON_BITS), fc.string({ maxLength: 8 })) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('dupKey' as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'bom' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('pad' as const), n: fc.integer({ min: 1, max: 10_000 }) }) },
);

/** Edits of JSON text: truncation, stray tokens, a repeated `"key":` (JSON.parse keeps the last), a BOM, whitespace. */
export function mutateText(text: string, ops: readonly TextOp[]): string {
  let t = text;
  for (const op of ops) {
    if (op.kind === 'cut') t = t.slice(0, op.at % (t.length + 1));
    else if (op.kind === 'insert') {
      const i = op.at % (t.length + 1);
      t = t.slice(0, i) + op.text + t.slice(i);
    } else if (op.kind === 'dupKey') {
      // Repeat the first top-level member whose key starts at or after `at`.
      const m = /"([^"\\]{1,200})":/g;
      m.lastIndex = op.at % (t.length + 1);
      const hit = m.exec(t) ?? /"([^"\\]{1,200})":/.exec(t);
      if (hit && t.startsWith('{')) t = `{${hit[0]}0,${t.slice(1)}`;
    } else if (op.kind === 'bom') t = `\ufeff${t}`;
    else t = ' '.repeat(op.n) + t;
  }
  return t;
}

/**
 * JSON text from `seeds`: document mutations (weight 6), then sometimes text edits (weight 2), or
 * arbitrary JSON (1), or arbitrary text (1).
 */
export function jsonTextFrom(seeds: readonly unknown[], opts: { values?: fc.Arbitrary<unknown>; maxOps?: number } = {}): fc.Arbitrary<string> {
  const doc = fc.tuple(fc.nat(seeds.length - 1), fc.array(jsonOp(opts.values), { minLength: 1, maxLength: opts.maxOps ?? 4 })).map(([i, ops]) => jsonText(mutateJson(seeds[i], ops)));
  return fc.oneof(
    { weight: 6, arbitrary: doc },
    { weight: 2, arbitrary: fc.tuple(fc.oneof(doc, fc.nat(seeds.length - 1).map((i) => jsonText(seeds[i]))), fc.array(textOp, { minLength: 1, maxLength: 3 })).map(([t, ops]) => mutateText(t, ops)) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v) ?? 'null') },
    { weight: 1, arbitrary: fc.string({ maxLength: 300, unit: 'binary' }) },
  );
}

/** Text as file bytes, sometimes with invalid UTF-8 spliced in. */
export function fileBytes(text: fc.Arbitrary<string>): fc.Arbitrary<Uint8Array> {
  const badUtf8 = fc.constantFrom(Uint8Array.of(0xff), Uint8Array.of(0xc0, 0x80), Uint8Array.of(0xed, 0xa0, 0x80), Uint8Array.of(0xe2, 0x82), Uint8Array.of(0xef, 0xbb, 0xbf));
  return fc.oneof(
    { weight: 9, arbitrary: text.map((t) => enc.encode(t)) },
    { weight: 1, arbitrary: fc.tuple(text, fc.nat(), badUtf8).map(([t, at, bytes]) => mutateBytes(enc.encode(t), [{ kind: 'insert', at, bytes }])) },
  );
}

// ------------------------------------------------------------------ plain strings

/** Edits of a string: insert a piece (from `pieces` or random), cut a slice, repeat a slice. */
export function stringFrom(seeds: readonly string[], pieces: readonly string[], maxOps = 4): fc.Arbitrary<string> {
  const piece = fc.oneof(fc.constantFrom(...pieces), fc.string({ maxLength: 12 }), fc.string({ maxLength: 6, unit: 'binary' }));
  const op = fc.oneof(
    fc.tuple(fc.constant('insert' as const), fc.nat(), piece, fc.nat()),
    fc.tuple(fc.constant('cut' as const), fc.nat(), fc.nat(), fc.nat()),
    fc.tuple(fc.constant('repeat' as const), fc.nat(), fc.nat(), fc.integer({ min: 2, max: 200 })),
  );
  return fc.tuple(fc.constantFrom(...seeds), fc.array(op, { minLength: 1, maxLength: maxOps })).map(([s, ops]) =>
    ops.reduce((acc, [kind, a, b, c]) => {
      const i = a % (acc.length + 1);
      if (kind === 'insert') return acc.slice(0, i) + (b as string) + acc.slice(i);
      const j = Math.min(acc.length, i + ((b as number) % 40));
      if (kind === 'cut') return acc.slice(0, i) + acc.slice(j);
      return acc.slice(0, i) + acc.slice(i, j).repeat(c) + acc.slice(j);
    }, s),
  );
}
