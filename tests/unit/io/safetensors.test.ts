import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  assertFinite,
  bf16ToF32,
  duplicateTopLevelKey,
  f16ToF32,
  findNonFinite,
  readHeader,
  SafetensorsCheckpoint,
  SafetensorsError,
  toFloat32,
} from '../../../src/engine/io/safetensors';
import { memorySource, type ByteSource } from '../../../src/engine/io/source';
import { bf16Bits, bf16Bytes, f16Bits, f16Bytes, f32Bytes, shard, withHeader, writeSafetensors, type TestTensor } from './safetensors_writer';

const good = () => writeSafetensors({ a: { dtype: 'F32', shape: [2, 2], bytes: f32Bytes([1, 2, 3, 4]) }, b: { dtype: 'F32', shape: [3], bytes: f32Bytes([5, 6, 7]) } });
const file = (bytes: Uint8Array, name = 'model.safetensors') => memorySource(name, bytes);
const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

/** A source that records every read, to prove validation happens before any tensor byte is read. */
function spy(src: ByteSource): ByteSource & { reads: Array<[number, number]> } {
  const reads: Array<[number, number]> = [];
  return { name: src.name, size: src.size, reads, read: (o, l) => (reads.push([o, l]), src.read(o, l)) };
}

async function errorOf(p: Promise<unknown>): Promise<Error> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  if (!(e instanceof Error)) throw new Error('expected a rejection');
  return e;
}

describe('f16 / bf16 → f32', () => {
  it('converts every f16 bit pattern exactly (checked against the IEEE bit layout)', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const got = toFloat32('F16', new Uint8Array(all.buffer));
    const ref = new DataView(new ArrayBuffer(4));
    const wrong: number[] = [];
    for (let h = 0; h < 65536; h++) {
      const sign = h >> 15, exp = (h >> 10) & 31, frac = h & 1023;
      let want: number;
      if (exp === 0) want = (sign ? -1 : 1) * frac * 2 ** -24;
      else if (exp === 31) want = frac ? NaN : sign ? -Infinity : Infinity;
      else {
        ref.setUint32(0, (sign << 31) | ((exp - 15 + 127) << 23) | (frac << 13));
        want = ref.getFloat32(0);
      }
      const ok = Object.is(got[h], want) || (Number.isNaN(got[h]) && Number.isNaN(want));
      if (!ok || !(Object.is(f16ToF32(h), got[h]) || Number.isNaN(want))) wrong.push(h);
    }
    expect(wrong).toEqual([]);
  });

  it('converts every bf16 bit pattern to the f32 with those top 16 bits', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const got = toFloat32('BF16', new Uint8Array(all.buffer));
    const bits = new Uint32Array(got.buffer);
    const wrong = [...bits.keys()].filter((h) => bits[h] !== (h << 16) >>> 0);
    expect(wrong).toEqual([]);
    expect(bf16ToF32(0x3f80)).toBe(1);
    expect(bf16ToF32(0xc040)).toBe(-3);
  });

  it('handles unaligned input (a view at an odd offset)', () => {
    const raw = new Uint8Array(7);
    raw.set(f16Bytes([1.5, -2, 0.25]), 1);
    expect(Array.from(toFloat32('F16', raw.subarray(1)))).toEqual([1.5, -2, 0.25]);
    raw.set(f32Bytes([3.25]), 1);
    expect(Array.from(toFloat32('F32', raw.subarray(1, 5)))).toEqual([3.25]);
  });

  it('the test encoders round correctly (sanity for the round trips below)', () => {
    expect(f16Bits(1)).toBe(0x3c00);
    expect(f16Bits(65520)).toBe(0x7c00); // rounds to Inf
    expect(f16Bits(2 ** -24)).toBe(1);
    expect(bf16Bits(1)).toBe(0x3f80);
  });
});

describe('safetensors round trip', () => {
  it('reads F32, F16 and BF16 tensors as f32 with shapes and metadata', async () => {
    const x = [1, -2, 1 / 3, 2 ** -24, 65504, -0, 0.1];
    const y = [1, -3, 0, 3.140625, -1e30, 2 ** -130];
    const bytes = writeSafetensors(
      { x: { dtype: 'F16', shape: [7], bytes: f16Bytes(x) }, y: { dtype: 'BF16', shape: [2, 3], bytes: bf16Bytes(y) }, z: { dtype: 'F32', shape: [1, 1], bytes: f32Bytes([0.25]) }, empty: { dtype: 'F32', shape: [0, 4], bytes: new Uint8Array(0) } },
      undefined,
      { format: 'pt', note: 'hi' },
    );
    const ck = await SafetensorsCheckpoint.open([file(bytes)]);
    const gx = await ck.read('x');
    x.forEach((v, i) => expect(gx[i]).toBe(f16ToF32(f16Bits(v))));
    expect(gx[0]).toBe(1);
    expect(gx[2]).toBeCloseTo(1 / 3, 3);
    expect(Object.is(gx[5], -0)).toBe(true);
    expect(Array.from(await ck.read('y'))).toEqual(y.map((v) => bf16ToF32(bf16Bits(v))));
    expect(Array.from(await ck.read('z'))).toEqual([0.25]);
    expect((await ck.read('empty')).length).toBe(0);
    expect(ck.shape('y')).toEqual([2, 3]);
    expect(ck.info('x').dtype).toBe('F16');
    expect(ck.metadata.get('model.safetensors')).toEqual({ format: 'pt', note: 'hi' });
    expect(ck.names().sort()).toEqual(['empty', 'x', 'y', 'z']);
    expect(() => ck.shape('nope')).toThrow(/no tensor "nope" \(files: model.safetensors\)/);
  });

  it('round-trips random f32 data exactly (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.float({ noNaN: true, noDefaultInfinity: true }), { maxLength: 64 }), async (vals) => {
        const ck = await SafetensorsCheckpoint.open([file(writeSafetensors({ t: { dtype: 'F32', shape: [vals.length], bytes: f32Bytes(vals) } }))]);
        expect(Array.from(await ck.read('t'))).toEqual(Array.from(Float32Array.from(vals)));
      }),
      { numRuns: 100 },
    );
  });

  it('reads only the header while validating', async () => {
    const s = spy(file(good()));
    await readHeader(s);
    const headerEnd = 8 + Number(new DataView(good().buffer).getBigUint64(0, true));
    expect(s.reads.every(([o, l]) => o + l <= headerEnd)).toBe(true);
  });
});

describe('NaN / Inf detection', () => {
  const bad = () => writeSafetensors({ ok: { dtype: 'F32', shape: [2], bytes: f32Bytes([1, 2]) }, w: { dtype: 'F16', shape: [3], bytes: new Uint8Array(new Uint16Array([0x3c00, 0x7e00, 0]).buffer) }, inf: { dtype: 'BF16', shape: [1], bytes: new Uint8Array(new Uint16Array([0xff80]).buffer) } });
  it('names the tensor and the file', async () => {
    const ck = await SafetensorsCheckpoint.open([file(bad())]);
    await expect(ck.read('ok')).resolves.toHaveLength(2);
    await expect(ck.read('w')).rejects.toThrow(/^model\.safetensors: tensor "w" holds NaN at element 1/);
    await expect(ck.read('inf')).rejects.toThrow(/tensor "inf" holds -Infinity at element 0/);
  });
  it('can be turned off, and is available on its own', async () => {
    const ck = await SafetensorsCheckpoint.open([file(bad())], { checkFinite: false });
    expect(Number.isNaN((await ck.read('w'))[1])).toBe(true);
    expect(findNonFinite(Float32Array.from([0, -0, 3.4e38, 1e-45]))).toBe(-1);
    expect(findNonFinite(Float32Array.from([0, 1, Infinity]))).toBe(2);
    expect(() => assertFinite('L0.q', Float32Array.from([NaN]))).toThrow(/tensor "L0.q" holds NaN at element 0/);
  });
});

describe('sharded checkpoints', () => {
  const tensors: Record<string, TestTensor> = {
    a: { dtype: 'F32', shape: [1], bytes: f32Bytes([1]) },
    b: { dtype: 'F16', shape: [2], bytes: f16Bytes([2, 3]) },
    c: { dtype: 'BF16', shape: [2, 1], bytes: bf16Bytes([4, 5]) },
  };
  const files = () => shard(tensors, 2).map((f) => file(f.bytes, f.name));

  it('joins shards through model.safetensors.index.json', async () => {
    const ck = await SafetensorsCheckpoint.open(files());
    expect(Array.from(await ck.read('a'))).toEqual([1]);
    expect(Array.from(await ck.read('b'))).toEqual([2, 3]);
    expect(Array.from(await ck.read('c'))).toEqual([4, 5]);
    expect(ck.info('c').file.name).toBe('model-00002-of-00002.safetensors');
    expect(ck.files.map((f) => f.name)).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
  });

  it('names a missing shard and the files that are there', async () => {
    const f = files().filter((x) => x.name !== 'model-00002-of-00002.safetensors');
    const e = await errorOf(SafetensorsCheckpoint.open(f));
    expect(e.message).toMatch(/model\.safetensors\.index\.json lists shard "model-00002-of-00002\.safetensors", which is missing \(files present: model-00001-of-00002\.safetensors, model\.safetensors\.index\.json\)/);
  });

  it('names a tensor the index puts in a shard that does not hold it', async () => {
    const idx = json({ weight_map: { a: 'model-00001-of-00002.safetensors', c: 'model-00001-of-00002.safetensors' } });
    const f = [...files().filter((x) => !x.name.endsWith('.json')), file(idx, 'model.safetensors.index.json')];
    await expect(SafetensorsCheckpoint.open(f)).rejects.toThrow(/puts tensor "c" in model-00001-of-00002\.safetensors, which does not hold it/);
  });

  it('validates every shard header, naming the shard', async () => {
    const f = files();
    const s2 = f.find((x) => x.name === 'model-00002-of-00002.safetensors')!;
    const bytes = await s2.read(0, s2.size);
    f[f.indexOf(s2)] = file(bytes.subarray(0, bytes.length - 1), s2.name);
    await expect(SafetensorsCheckpoint.open(f)).rejects.toThrow(/^model-00002-of-00002\.safetensors: tensor "c": data ends at 4, past the 3 data bytes/);
  });

  it('rejects a malformed index', async () => {
    const shards = files().filter((x) => !x.name.endsWith('.json'));
    const open = (idx: unknown) => SafetensorsCheckpoint.open([...shards, file(typeof idx === 'string' ? new TextEncoder().encode(idx) : json(idx), 'model.safetensors.index.json')]);
    await expect(open('{nope')).rejects.toThrow(/model\.safetensors\.index\.json is not valid JSON/);
    await expect(open({ metadata: {} })).rejects.toThrow(/no "weight_map" object/);
    await expect(open({ weight_map: { a: 7 } })).rejects.toThrow(/weight_map\["a"\] must be a file name, got 7/);
  });

  it('without an index: model.safetensors, else every *.safetensors (no tensor in two files)', async () => {
    const one = writeSafetensors({ a: tensors.a! });
    const two = writeSafetensors({ b: tensors.b! });
    const ck = await SafetensorsCheckpoint.open([file(one, 'part1.safetensors'), file(two, 'part2.safetensors'), file(json({}), 'config.json')]);
    expect(ck.names().sort()).toEqual(['a', 'b']);
    const pref = await SafetensorsCheckpoint.open([file(one, 'model.safetensors'), file(two, 'adapter_model.safetensors')]);
    expect(pref.names()).toEqual(['a']);
    await expect(SafetensorsCheckpoint.open([file(one, 'x.safetensors'), file(one, 'y.safetensors')])).rejects.toThrow(/tensor "a" is in both x\.safetensors and y\.safetensors/);
    await expect(SafetensorsCheckpoint.open([file(json({}), 'config.json'), file(json({}), 'tokenizer.json')])).rejects.toThrow(/No weights: expected model\.safetensors or model\.safetensors\.index\.json among the files \(found: config\.json, tokenizer\.json\)/);
  });
});

describe('bad files are refused before any tensor is read, naming the file and the tensor', () => {
  const overlap = (h: Record<string, unknown>) => {
    (h.b as { data_offsets: number[] }).data_offsets = [4, 12];
  };
  const cases: Array<[string, () => Uint8Array, RegExp]> = [
    ['a truncated file', () => good().subarray(0, good().length - 3), /tensor "b": data ends at 28, past the 25 data bytes in the file \(truncated\?\)/],
    ['a header length past the end', () => good().subarray(0, 40), /header length \d+ runs past the end of the file \(40 bytes\): truncated\?/],
    ['a tiny file', () => new Uint8Array(5), /only 5 bytes: too short for a safetensors header/],
    ['an empty file', () => new Uint8Array(0), /only 0 bytes/],
    ['a huge header length', () => { const b = good(); new DataView(b.buffer).setBigUint64(0, 1n << 40n, true); return b; }, /header length 1099511627776 is not plausible/],
    ['a header length of 2^64-1', () => { const b = good(); new DataView(b.buffer).setBigUint64(0, (1n << 64n) - 1n, true); return b; }, /header length 18446744073709551615 is not plausible/],
    ['a zero header length', () => new Uint8Array(16), /header length 0 is not plausible/],
    ['bad JSON', () => withHeader('{"a": {"dtype": "F32",', []), /header is not valid UTF-8 JSON/],
    ['invalid UTF-8', () => { const b = withHeader('{"xx": 1}', []); b[10] = 0xff; return b; }, /header is not valid UTF-8 JSON/],
    ['a JSON array', () => withHeader('[1, 2]', []), /header is not a JSON object/],
    ['a duplicate tensor name', () => withHeader('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', [f32Bytes([1, 2])]), /tensor "a" is listed twice in the header/],
    ['an entry that is not an object', () => withHeader('{"a": [1]}', []), /tensor "a": entry is not an object/],
    ['a missing dtype', () => withHeader('{"a": {"shape": [1], "data_offsets": [0, 4]}}', [f32Bytes([1])]), /tensor "a": missing dtype/],
    ['an unsupported dtype', () => writeSafetensors({ w: { dtype: 'I8', shape: [4], bytes: new Uint8Array(4) } }), /unsupported dtype I8 for tensor "w" \(this loader reads F32, F16 and BF16\)/],
    ['an unsupported F64', () => writeSafetensors({ w: { dtype: 'F64', shape: [1], bytes: new Uint8Array(8) } }), /unsupported dtype F64 for tensor "w"/],
    ['an unsupported U8', () => writeSafetensors({ w: { dtype: 'U8', shape: [1], bytes: new Uint8Array(1) } }), /unsupported dtype U8 for tensor "w"/],
    ['an unknown dtype', () => writeSafetensors({ w: { dtype: 'Q7', shape: [4], bytes: new Uint8Array(4) } }), /unknown dtype "Q7" for tensor "w"/],
    ['a dtype named like a prototype key', () => writeSafetensors({ w: { dtype: 'toString', shape: [1], bytes: new Uint8Array(4) } }), /unknown dtype "toString" for tensor "w"/],
    ['a bad shape', () => writeSafetensors({ w: { dtype: 'F32', shape: [1], bytes: f32Bytes([1]) } }, (h) => { (h.w as { shape: unknown }).shape = [1.5]; }), /tensor "w": shape must be a list of non-negative integers/],
    ['a negative dimension', () => writeSafetensors({ w: { dtype: 'F32', shape: [1], bytes: f32Bytes([1]) } }, (h) => { (h.w as { shape: unknown }).shape = [-1]; }), /tensor "w": shape must be a list of non-negative integers/],
    ['a shape that disagrees with its bytes', () => writeSafetensors({ w: { dtype: 'F32', shape: [3, 2], bytes: f32Bytes([1, 2, 3, 4]) } }), /tensor "w": shape \[3, 2\] × F32 is 24 bytes but data_offsets \[0, 16\] span 16/],
    ['an absurd shape', () => writeSafetensors({ w: { dtype: 'F32', shape: [1], bytes: f32Bytes([1]) } }, (h) => { (h.w as { shape: unknown }).shape = [2 ** 40, 2 ** 40]; }), /tensor "w": shape \[1099511627776, 1099511627776\] is too large/],
    ['offsets that run backwards', () => writeSafetensors({ w: { dtype: 'F32', shape: [0], bytes: f32Bytes([]) } }, (h) => { (h.w as { data_offsets: number[] }).data_offsets = [4, 0]; }), /tensor "w": data_offsets \[4, 0\] run backwards/],
    ['negative offsets', () => writeSafetensors({ w: { dtype: 'F32', shape: [1], bytes: f32Bytes([1]) } }, (h) => { (h.w as { data_offsets: number[] }).data_offsets = [-4, 0]; }), /tensor "w": data_offsets must be two non-negative integers/],
    ['offsets past the data', () => writeSafetensors({ w: { dtype: 'F32', shape: [1], bytes: f32Bytes([1]) } }, (h) => { (h.w as { data_offsets: number[] }).data_offsets = [4, 8]; }), /tensor "w": data ends at 8, past the 4 data bytes/],
    ['overlapping tensors', () => writeSafetensors({ a: { dtype: 'F32', shape: [2], bytes: f32Bytes([1, 2]) }, b: { dtype: 'F32', shape: [2], bytes: f32Bytes([3, 4]) } }, overlap), /tensors "a" and "b" overlap \(bytes 0-8 and 4-12\)/],
    ['bad __metadata__', () => withHeader('{"__metadata__": [1]}', []), /__metadata__ is not a JSON object/],
  ];
  for (const [what, make, msg] of cases) {
    it(`rejects ${what}`, async () => {
      const s = spy(file(make()));
      const e = await errorOf(readHeader(s));
      expect(e).toBeInstanceOf(SafetensorsError);
      expect(e.message).toMatch(/^model\.safetensors: /);
      expect(e.message).toMatch(msg);
      await expect(SafetensorsCheckpoint.open([s])).rejects.toThrow(msg);
    });
  }

  it('accepts what the format allows: {} header, zero-size tensors, gaps', async () => {
    expect((await readHeader(file(withHeader('{}', [])))).tensors.size).toBe(0);
    const gap = withHeader('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}, "z": {"dtype": "F16", "shape": [0], "data_offsets": [4, 4]}}', [f32Bytes([9, 1])]);
    const ck = await SafetensorsCheckpoint.open([file(gap)]);
    expect(Array.from(await ck.read('a'))).toEqual([1]);
  });

  it('finds duplicate keys only at the top level', () => {
    expect(duplicateTopLevelKey('{"a": {"x": 1, "x": 2}, "b": ["a", "a"], "c\\"": 1}')).toBeNull();
    expect(duplicateTopLevelKey('{"a": 1, "b": {"a": 2}, "a": 3}')).toBe('a');
    expect(duplicateTopLevelKey('{"\\u0061": 1, "a": 2}')).toBe('a');
  });
});

describe('header parser fuzzing: only SafetensorsError, never a crash or a hang', () => {
  /** Whatever readHeader accepts must be self-consistent. */
  async function check(bytes: Uint8Array): Promise<void> {
    try {
      const { tensors } = await readHeader(file(bytes));
      const spans = [...tensors.values()].filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
      for (const t of tensors.values()) {
        expect(t.end).toBeLessThanOrEqual(bytes.length);
        expect(t.end - t.begin).toBe(t.shape.reduce((a, d) => a * d, 1) * (t.dtype === 'F32' ? 4 : 2));
      }
      for (let i = 1; i < spans.length; i++) expect(spans[i]!.begin).toBeGreaterThanOrEqual(spans[i - 1]!.end);
    } catch (e) {
      if (!(e instanceof SafetensorsError)) throw e;
      expect(e.message).toMatch(/^model\.safetensors: /);
    }
  }

  it('random bytes', async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), (b) => check(b)), { numRuns: 500 });
  });

  it('random bytes behind a plausible length prefix', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), fc.nat(320), async (body, len) => {
        const b = new Uint8Array(8 + body.length);
        new DataView(b.buffer).setBigUint64(0, BigInt(len), true);
        b.set(body, 8);
        await check(b);
      }),
      { numRuns: 500 },
    );
  });

  it('byte edits and truncations of a valid file', async () => {
    const base = good();
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(base.length - 1), fc.nat(255)), { minLength: 1, maxLength: 8 }), fc.nat(base.length), async (edits, cut) => {
        const b = base.slice(0, cut);
        for (const [i, v] of edits) if (i < b.length) b[i] = v;
        await check(b);
      }),
      { numRuns: 500 },
    );
  });

  it('structurally random headers (dtypes, shapes, offsets, odd values)', async () => {
    const anyJson = fc.oneof(fc.constant(null), fc.boolean(), fc.integer(), fc.double(), fc.string(), fc.array(fc.integer({ min: -2, max: 40 }), { maxLength: 3 }));
    const entry = fc.record(
      {
        dtype: fc.oneof(fc.constantFrom('F32', 'F16', 'BF16', 'I8', 'F64', 'BOOL', 'X', '__proto__'), anyJson),
        shape: fc.oneof(fc.array(fc.integer({ min: -1, max: 6 }), { maxLength: 3 }), anyJson),
        data_offsets: fc.oneof(fc.tuple(fc.integer({ min: -1, max: 64 }), fc.integer({ min: -1, max: 64 })), anyJson),
      },
      { requiredKeys: [] },
    );
    const header = fc.dictionary(fc.oneof(fc.string({ maxLength: 4 }), fc.constant('__metadata__'), fc.constant('__proto__')), fc.oneof(entry, anyJson), { maxKeys: 5 });
    await fc.assert(
      fc.asyncProperty(header, fc.nat(64), async (h, dataLen) => {
        await check(withHeader(JSON.stringify(h), [], dataLen));
      }),
      { numRuns: 1000 },
    );
  });
});
