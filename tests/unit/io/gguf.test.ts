/**
 * GGUF headers: a well-formed file read back (every value type, alignment, v2/v3), and every kind of
 * bad file refused with a GgufError naming the problem before anything is allocated for it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GGUF_TYPE, GgufError, GgufMetadata, readGgufHeader } from '../../../src/engine/io/gguf';
import { memorySource, type ByteSource } from '../../../src/engine/io/source';
import { GGML } from '../../../src/engine/quant/gguf-blocks';
import { mv, writeGguf, type GgufTensorSpec, type MetaValue, type WriteOptions } from './gguf_writer';

const f32s = (...v: number[]) => new Uint8Array(Float32Array.from(v).buffer);
const T = (name: string, ne: number[], type = GGML.F32, bytes?: Uint8Array): GgufTensorSpec => ({ name, ne, type, bytes: bytes ?? new Uint8Array(ne.reduce((a, b) => a * b, 1) * 4) });
const META: Array<[string, MetaValue]> = [
  ['general.architecture', mv.str('qwen2moe')],
  ['u8', { type: GGUF_TYPE.UINT8, value: 200 }],
  ['i8', { type: GGUF_TYPE.INT8, value: -100 }],
  ['u16', { type: GGUF_TYPE.UINT16, value: 60000 }],
  ['i16', { type: GGUF_TYPE.INT16, value: -30000 }],
  ['u32', mv.u32(4_000_000_000)],
  ['i32', mv.i32(-2_000_000_000)],
  ['f32', mv.f32(0.5)],
  ['bool', mv.bool(true)],
  ['u64', mv.u64(2n ** 60n)],
  ['i64', { type: GGUF_TYPE.INT64, value: -5n }],
  ['f64', { type: GGUF_TYPE.FLOAT64, value: 1e-300 }],
  ['strs', mv.strs(['a', 'é', ''])],
  ['ints', mv.i32s([1, -2, 3])],
  ['empty', mv.strs([])],
];
const file = (bytes: Uint8Array, name = 'm.gguf'): ByteSource => memorySource(name, bytes);
const build = (meta = META, tensors: GgufTensorSpec[] = [T('a.weight', [4, 2], GGML.F32, f32s(1, 2, 3, 4, 5, 6, 7, 8)), T('b', [3])], o: WriteOptions = {}) => writeGguf(meta, tensors, o);

async function refused(bytes: Uint8Array, pattern: RegExp): Promise<void> {
  const err = await readGgufHeader(file(bytes)).then(() => null, (e: unknown) => e);
  expect(err, `expected a GgufError matching ${pattern}`).toBeInstanceOf(GgufError);
  expect((err as Error).message).toMatch(pattern);
}

describe('GGUF header', () => {
  it('reads every value type, tensor infos and the data offset', async () => {
    const h = await readGgufHeader(file(build()));
    expect(h.version).toBe(3);
    const v = (k: string) => h.metadata.get(k)!.value;
    expect([v('u8'), v('i8'), v('u16'), v('i16'), v('u32'), v('i32'), v('f32'), v('bool'), v('u64'), v('i64'), v('f64')]).toEqual([200, -100, 60000, -30000, 4_000_000_000, -2_000_000_000, 0.5, true, 2n ** 60n, -5, 1e-300]);
    expect(v('strs')).toEqual(['a', 'é', '']);
    expect(v('ints')).toEqual([1, -2, 3]);
    expect(v('empty')).toEqual([]);
    expect(h.alignment).toBe(32);
    expect(h.dataOffset % 32).toBe(0);
    const a = h.tensors.get('a.weight')!;
    expect([a.ne, a.type.name, a.elements, a.end - a.begin]).toEqual([[4, 2], 'F32', 8, 32]);
    expect(a.begin).toBe(h.dataOffset);
    expect(h.tensors.get('b')!.begin).toBe(h.dataOffset + 32);
  });

  it('honours general.alignment and reads version 2', async () => {
    const h = await readGgufHeader(file(build([...META, ['general.alignment', mv.u32(64)]], undefined, { alignment: 64, version: 2 })));
    expect([h.version, h.alignment, h.dataOffset % 64, h.tensors.get('b')!.begin - h.dataOffset]).toEqual([2, 64, 0, 64]);
  });

  it('gives typed metadata, naming the key when a type is wrong', async () => {
    const h = await readGgufHeader(file(build()));
    const m = new GgufMetadata(h.metadata, 'm.gguf');
    expect([m.string('general.architecture'), m.uint('u32'), m.number('f32'), m.bool('bool'), m.stringArray('strs'), m.uint('missing')]).toEqual(['qwen2moe', 4_000_000_000, 0.5, true, ['a', 'é', ''], undefined]);
    expect(() => m.uint('i8')).toThrow(/metadata "i8" must be a non-negative integer/);
    expect(() => m.string('u32')).toThrow(/"u32" must be a string, got UINT32/);
    expect(() => m.uint('strs')).toThrow(/"strs" is an array/);
    expect(() => m.stringArray('ints')).toThrow(/"ints" must be an array of strings/);
    expect(m.uniformUint('u32')).toBe(4_000_000_000);
  });

  it('takes a per-layer array only when every layer agrees', async () => {
    const h = await readGgufHeader(file(build([['same', mv.i32s([8, 8, 8])], ['differs', mv.i32s([8, 4])]], [])));
    const m = new GgufMetadata(h.metadata, 'm.gguf');
    expect(m.uniformUint('same')).toBe(8);
    expect(() => m.uniformUint('differs')).toThrow(/"differs" differs between layers \(\[8, 4\]\)/);
  });
});

describe('GGUF header: bad files are refused by name', () => {
  const good = build();
  const patch = (at: number, bytes: number[] | Uint8Array) => {
    const b = good.slice();
    b.set(bytes, at);
    return b;
  };
  const u64 = (v: bigint) => new Uint8Array(new BigUint64Array([v]).buffer);
  it('wrong magic, versions, big-endian, too short', async () => {
    await refused(patch(0, [0x50, 0x4b, 3, 4]), /not a GGUF file: the magic is "PK\\u0003\\u0004"/);
    await refused(patch(4, [1, 0, 0, 0]), /GGUF version 1 .* not supported/);
    await refused(patch(4, [9, 0, 0, 0]), /unknown GGUF version 9/);
    await refused(patch(4, [0, 0, 0, 3]), /big-endian/);
    await refused(good.slice(0, 10), /only 10 bytes: too short/);
  });
  it('forged counts and lengths, before allocating', async () => {
    await refused(patch(8, u64(2n ** 40n)), /tensor count 1099511627776 cannot fit/);
    await refused(patch(16, u64(2n ** 50n)), /metadata count \d+ cannot fit/);
    await refused(patch(8, u64(2n ** 63n)), /tensor count is 9223372036854775808, beyond any plausible size/);
    // The first key's length.
    await refused(patch(24, u64(2n ** 45n)), /metadata key #0 claims 35184372088832 bytes, more than the \d+ left/);
    const arr = writeGguf([['toks', mv.strs(['a', 'b'])]], []);
    const at = 24 + 8 + 4 + 4 + 4; // key length, "toks", type, element type
    const forged = arr.slice();
    forged.set(u64(2n ** 32n), at);
    await refused(forged, /"toks" claims 4294967296 elements of STRING, more than the \d+ bytes left hold/);
  });
  it('truncated anywhere: a GgufError, never a RangeError', async () => {
    // Up to the end of the last tensor's data (what follows is alignment padding).
    const end = Math.max(...[...(await readGgufHeader(file(good))).tensors.values()].map((t) => t.end));
    for (let n = 24; n < end; n += 7) {
      const err = await readGgufHeader(file(good.slice(0, n))).then(() => null, (e: unknown) => e);
      expect(err, `cut at ${n}`).toBeInstanceOf(GgufError);
      expect((err as Error).message).toMatch(/truncated|too short/);
    }
  });
  it('bad metadata', async () => {
    await refused(build([['x', { type: 13, value: 0 }]], []), /"x" has unknown value type 13/);
    await refused(build([['x', mv.u32(1)], ['x', mv.u32(2)]], []), /metadata key "x" appears twice/);
    await refused(build([['', mv.u32(1)]], []), /metadata key #0 is empty/);
    await refused(build([['b', { type: GGUF_TYPE.BOOL, value: 7 }]], []), /"b" is a bool stored as 7/);
    await refused(build([['x', { type: GGUF_TYPE.ARRAY, elem: GGUF_TYPE.ARRAY, values: [] }]], []), /array of arrays/);
    await refused(build([['x', { type: GGUF_TYPE.ARRAY, elem: 77, values: [] }]], []), /array of unknown value type 77/);
    const bad = build([['k\u00e9', mv.u32(1)]], []);
    bad[24 + 8 + 1] = 0xff; // the key's second byte (first byte of "é")
    await refused(bad, /metadata key #0 is not valid UTF-8/);
    await refused(build([['general.alignment', mv.u32(48)]], []), /general.alignment 48 is not a power of two/);
    await refused(build([['general.alignment', mv.str('32')]], []), /general.alignment must be a uint32/);
  });
  it('bad tensor infos', async () => {
    await refused(build([], [T('a', [4]), T('a', [4])]), /tensor "a" is listed twice/);
    await refused(build([], [T('a', [1, 1, 1, 1, 1])]), /tensor "a" has 5 dimensions \(1 to 4 allowed\)/);
    await refused(build([], [{ name: 'q', ne: [48], type: GGML.Q4_K, bytes: new Uint8Array(144) }]), /"q" is Q4_K with rows of 48 elements, not a multiple of its block size 256/);
    await refused(build([], [{ name: 'u', ne: [4], type: 99, bytes: new Uint8Array(16) }]), /"u" has unknown ggml type 99/);
    await refused(build([], [T('x'.repeat(64), [4])]), /tensor #0 name claims 64 bytes \(limit 63\)/);
    await refused(build([], [T('a', [4]), T('b', [4])], { offsetOf: (i, n) => (i === 1 ? 8 : n) }), /"b" data offset 8 is not a multiple of the alignment 32/);
    await refused(build([], [T('a', [16]), T('b', [4])], { offsetOf: (i, n) => (i === 1 ? 32 : n) }), /tensors "a" and "b" overlap/);
    await refused(build([], [T('a', [4]), T('b', [4])], { offsetOf: (i, n) => (i === 1 ? 1 << 20 : n) }), /tensor "b" .* runs past the end of the file/);
    await refused(build([], [T('a', [2 ** 26, 2 ** 26, 2 ** 26], GGML.F32, new Uint8Array(4))]), /"a" has too many elements/);
    await refused(build([], [T('a', [2, 3])]).slice(0, -9), /runs past the end of the file/);
  });
  it('random corruption of a header: a GgufError or a valid header, nothing else', async () => {
    const headerEnd = (await readGgufHeader(file(good))).dataOffset;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(headerEnd - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), async (edits) => {
        const b = good.slice();
        for (const [i, v] of edits) b[i] = v;
        const err = await readGgufHeader(file(b)).then(() => null, (e: unknown) => e);
        if (err !== null) expect(err).toBeInstanceOf(GgufError);
      }),
      { numRuns: 400 },
    );
  });
});
