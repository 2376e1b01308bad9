import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { f16ToF32, readHeader, SafetensorsCheckpoint, SafetensorsError } from '../../../src/engine/io/safetensors';
import { memorySource } from '../../../src/engine/io/source';
import { f32Bytes, writeSafetensors } from './safetensors_writer';

const good = () => writeSafetensors({ a: { dtype: 'F32', shape: [2, 2], bytes: f32Bytes([1, 2, 3, 4]) }, b: { dtype: 'F32', shape: [3], bytes: f32Bytes([5, 6, 7]) } });

describe('safetensors', () => {
  it('reads F32, F16 and BF16 tensors as f32', async () => {
    const f16 = new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x3555, 0x0001]).buffer); // 1, -2, ~0.3333, smallest subnormal
    const bf16 = new Uint8Array(new Uint16Array([0x3f80, 0xc040, 0x0000]).buffer); // 1, -3, 0
    const bytes = writeSafetensors({ x: { dtype: 'F16', shape: [4], bytes: f16 }, y: { dtype: 'BF16', shape: [3], bytes: bf16 }, z: { dtype: 'F32', shape: [1], bytes: f32Bytes([0.25]) } });
    const ck = await SafetensorsCheckpoint.open([memorySource('model.safetensors', bytes)]);
    const x = await ck.read('x');
    expect(x[0]).toBe(1);
    expect(x[1]).toBe(-2);
    expect(x[2]).toBeCloseTo(1 / 3, 3);
    expect(x[3]).toBe(2 ** -24);
    expect(Array.from(await ck.read('y'))).toEqual([1, -3, 0]);
    expect(Array.from(await ck.read('z'))).toEqual([0.25]);
    expect(ck.shape('x')).toEqual([4]);
    expect(f16ToF32(0x7c00)).toBe(Infinity);
  });

  it('joins shards through model.safetensors.index.json', async () => {
    const s1 = writeSafetensors({ a: { dtype: 'F32', shape: [1], bytes: f32Bytes([1]) } });
    const s2 = writeSafetensors({ b: { dtype: 'F32', shape: [2], bytes: f32Bytes([2, 3]) } });
    const index = new TextEncoder().encode(JSON.stringify({ weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' } }));
    const files = [memorySource('model.safetensors.index.json', index), memorySource('model-00001-of-00002.safetensors', s1), memorySource('model-00002-of-00002.safetensors', s2)];
    const ck = await SafetensorsCheckpoint.open(files);
    expect(Array.from(await ck.read('b'))).toEqual([2, 3]);
    await expect(SafetensorsCheckpoint.open(files.slice(0, 2))).rejects.toThrow(/lists shard "model-00002-of-00002.safetensors", which is missing/);
    const badIndex = new TextEncoder().encode(JSON.stringify({ weight_map: { a: 'model-00001-of-00002.safetensors', c: 'model-00001-of-00002.safetensors' } }));
    await expect(SafetensorsCheckpoint.open([memorySource('model.safetensors.index.json', badIndex), files[1]!])).rejects.toThrow(/tensor "c" in model-00001-of-00002.safetensors, which does not hold it/);
  });

  const cases: Array<[string, () => Uint8Array, RegExp]> = [
    ['a truncated file', () => good().subarray(0, good().length - 3), /data ends at .* past the .* data bytes in the file \(truncated\?\)/],
    ['a header length past the end', () => good().subarray(0, 40), /runs past the end of the file/],
    ['a tiny file', () => new Uint8Array(5), /too short for a safetensors header/],
    ['a huge header length', () => { const b = good(); new DataView(b.buffer).setBigUint64(0, 1n << 40n, true); return b; }, /header length .* is not plausible/],
    ['bad JSON', () => { const b = good(); b[8] = 0x5b; b[9] = 0x7d; return b; }, /header is not valid UTF-8 JSON/],
    ['an unsupported dtype', () => writeSafetensors({ a: { dtype: 'I8', shape: [4], bytes: new Uint8Array(4) } }), /tensor "a": dtype I8 is not supported/],
    ['an unknown dtype', () => writeSafetensors({ a: { dtype: 'Q7', shape: [4], bytes: new Uint8Array(4) } }), /dtype Q7 is unknown/],
    ['a shape that disagrees with its bytes', () => writeSafetensors({ a: { dtype: 'F32', shape: [3, 2], bytes: f32Bytes([1, 2, 3, 4]) } }), /shape \[3, 2\] × F32 is 24 bytes but data_offsets span 16/],
    ['overlapping tensors', () => writeSafetensors({ a: { dtype: 'F32', shape: [2], bytes: f32Bytes([1, 2]) }, b: { dtype: 'F32', shape: [2], bytes: f32Bytes([3, 4]) } }, (h) => { (h.b as { data_offsets: number[] }).data_offsets = [4, 12]; }), /tensors "a" and "b" overlap/],
    ['negative offsets', () => writeSafetensors({ a: { dtype: 'F32', shape: [1], bytes: f32Bytes([1]) } }, (h) => { (h.a as { data_offsets: number[] }).data_offsets = [-4, 0]; }), /data_offsets must be two non-negative integers/],
  ];
  for (const [what, make, msg] of cases) {
    it(`rejects ${what} before reading any tensor, naming the file`, async () => {
      const err = await readHeader(memorySource('model.safetensors', make())).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SafetensorsError);
      expect((err as Error).message).toMatch(/^model\.safetensors: /);
      expect((err as Error).message).toMatch(msg);
    });
  }

  it('never crashes or hangs on corrupted bytes (fuzz): only SafetensorsError', async () => {
    const base = good();
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(base.length - 1), fc.nat(255)), { minLength: 1, maxLength: 8 }), fc.nat(base.length), async (edits, cut) => {
        const b = base.slice(0, Math.max(cut, 0));
        for (const [i, v] of edits) if (i < b.length) b[i] = v;
        try {
          const t = await readHeader(memorySource('model.safetensors', b));
          for (const info of t.values()) expect(info.end).toBeLessThanOrEqual(b.length);
        } catch (e) {
          expect(e).toBeInstanceOf(SafetensorsError);
        }
      }),
      { numRuns: 500 },
    );
  });
});
