import { describe, expect, it } from 'vitest';
import { CheckpointTooBigError, checkFits, footprint, type DeviceBudget } from '../../../src/engine/model/budget';
import { storedSlotBytes } from '../../../src/engine/model/weights';
import { base, randomWeights, slotsOf } from '../../gpu/tiny_model';

const { slots } = slotsOf(base, randomWeights(base));
const roomy: DeviceBudget = { maxBufferSize: 2 ** 30, maxStorageBufferBindingSize: 2 ** 30, memoryBytes: null };

describe('GPU memory budget, checked before upload', () => {
  it('counts weights exactly per format (int8 = 1 byte + scales, int4 = ½ byte + scales)', () => {
    const f32 = footprint(base, slots, { format: 'f32', group: 32 }, 64);
    const n = slots.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
    expect(f32.weights).toBe(n * 4);
    const q = slots.find((s) => s.name === 'L0.experts.gate_up')!;
    const qn = q.shape.reduce((x, y) => x * y, 1);
    expect(storedSlotBytes(base, q, 'int8', 32).total).toBe(qn + (qn / 32) * 4);
    expect(storedSlotBytes(base, q, 'int4', 32).total).toBe(qn / 2 + (qn / 32) * 4);
    // The router and norms stay f32 in every format.
    const r = slots.find((s) => s.name === 'L0.router')!;
    expect(storedSlotBytes(base, r, 'int4', 32).total).toBe(r.shape[0]! * r.shape[1]! * 4);
    const i4 = footprint(base, slots, { format: 'int4', group: 32 }, 64);
    expect(i4.weights).toBeLessThan(f32.weights / 2);
    expect(i4.runtime).toBe(f32.runtime);
  });

  it('accepts a model that fits and returns its footprint', () => {
    expect(checkFits(base, slots, { format: 'f32', group: 32 }, roomy, 64).total).toBeGreaterThan(0);
  });

  it('refuses a model over the reported memory, naming its size and a format that fits', () => {
    const f32 = footprint(base, slots, { format: 'f32', group: 32 }, 64);
    const i8 = footprint(base, slots, { format: 'int8', group: 32 }, 64);
    const budget = { ...roomy, memoryBytes: Math.floor((f32.total + i8.total) / 2), memoryNote: 'test' };
    let err: unknown;
    try {
      checkFits(base, slots, { format: 'f32', group: 32 }, budget, 64);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CheckpointTooBigError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/^This checkpoint needs [\d.]+ KiB on the GPU as f32 \(weights/);
    expect(msg).toMatch(/more than the [\d.]+ KiB this device has \(test\)/);
    expect(msg).toMatch(/As int8 \(group 32\) it needs [\d.]+ KiB and fits/);
    expect(msg).toContain('Nothing was uploaded');
    expect((err as CheckpointTooBigError).fits).toEqual({ format: 'int8', group: 32 });
  });

  it('refuses a buffer over the per-buffer limit and says when no format fits', () => {
    const budget = { maxBufferSize: 1024, maxStorageBufferBindingSize: 1024, memoryBytes: null };
    expect(() => checkFits(base, slots, { format: 'int4', group: 32 }, budget, 64)).toThrow(/over this adapter's limit of 1 KiB per buffer.*no weight format fits this device/);
  });

  it('names the logits scratch when a huge vocabulary is the largest buffer', () => {
    const wide = { ...base, vocabSize: 200_000, maxPositions: 4096 };
    const budget = { maxBufferSize: 2 ** 30, maxStorageBufferBindingSize: 128 * 2 ** 20, memoryBytes: null };
    expect(() => checkFits(wide, slotsOf(base, randomWeights(base)).slots, { format: 'int4', group: 32 }, budget, 1024)).toThrow(/the logits of a 256-token chunk/);
  });
});
