/**
 * The training checkpoint file (checkpoint.ts) without a GPU: a hand-made snapshot survives
 * encode → decode exactly (tensors, state with its nulls for non-finite numbers, the caller's extra
 * metadata), and every malformed file is refused with a TrainCheckpointError that names the
 * problem: noise, a model's own safetensors, a missing moment, a bad state field, a cut file.
 * (The decoder is also a fuzz target: tests/fuzz/targets.ts.)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeTrainCheckpoint, encodeTrainCheckpoint, TRAIN_CHECKPOINT_FORMAT, TrainCheckpointError } from '../../../src/engine/train/checkpoint';
import { encodeSafetensors } from '../../../src/engine/train/params';
import type { TrainerSnapshot, TrainerState } from '../../../src/engine/train/trainer';
import { f16Bytes, f32Bytes, type TestTensor, writeSafetensors } from '../io/safetensors_writer';

const f32 = (...v: number[]) => Float32Array.from(v);

function sampleSnapshot(): TrainerSnapshot {
  const state: TrainerState = {
    step: 7, adamStep: 7, epochs: 3, cursor: 1, halvings: 1, stopped: false,
    // NaN / Infinity are kept as null (a diverged step's loss, an early stopper that has seen no check).
    losses: [5.5, 5.25, null, 4.75, 4.5, 4.25, 4],
    valLosses: [{ step: 2, loss: 6.5 }, { step: 4, loss: null }, { step: 6, loss: 6.25 }],
    stopper: { best: null, sinceBest: 2 },
    monitor: {
      history: [[[0.5, 0.25, 0.25, 0], [0, 0, 0.5, 0.5]], [[0.25, 0.25, 0.25, 0.25], [1, 0, 0, 0]]],
      lastProbe: { k: 2, idx: [[0, 1, 2, 3], [1, 3, 0, 2]] },
      shape: { layers: 2, experts: 4 },
      halvings: 1,
      lrScale: 0.5,
    },
    auxBias: [[0.01, -0.01, 0, 0.02], [-0.03, 0, 0, 0.03]],
    lastCold: 2,
    lastDead: 1,
  };
  return {
    state,
    tensors: [
      { name: 'L1.router', param: f32(0.5, -0.25, 1e-30, 3e38), m: f32(0.1, 0.2, -0.3, -0), v: f32(1e-8, 2e-8, 3e-8, 0) },
      { name: 'L0.router', param: f32(1, 2), m: f32(3, 4), v: f32(5, 6) },
      { name: 'L0.q_proj.lora_A', param: f32(), m: f32(), v: f32() },
    ],
  };
}

const byName = (s: TrainerSnapshot) => [...s.tensors].sort((a, b) => (a.name < b.name ? -1 : 1));

/** A file in the checkpoint's layout from raw parts: tensors by their stored names, and any state text. */
function forged(tensors: Array<{ name: string; data: Float32Array }>, state: string | null, format: string | null = TRAIN_CHECKPOINT_FORMAT): Uint8Array {
  const meta: Record<string, string> = {};
  if (format !== null) meta.format = format;
  if (state !== null) meta.state = state;
  return encodeSafetensors(tensors.map((t) => ({ ...t, shape: [t.data.length] })), meta);
}

function storedTensors(s: TrainerSnapshot): Array<{ name: string; data: Float32Array }> {
  return s.tensors.flatMap((t) => [{ name: `param/${t.name}`, data: t.param }, { name: `adam_m/${t.name}`, data: t.m }, { name: `adam_v/${t.name}`, data: t.v }]);
}

async function refusal(bytes: Uint8Array): Promise<TrainCheckpointError> {
  try {
    await decodeTrainCheckpoint(bytes);
  } catch (e) {
    expect(e).toBeInstanceOf(TrainCheckpointError);
    expect((e as Error).name).toBe('TrainCheckpointError');
    return e as TrainCheckpointError;
  }
  throw new Error('decoded a malformed checkpoint');
}

describe('training checkpoint file', () => {
  it('round-trips a snapshot exactly, with the extra metadata', async () => {
    const snap = sampleSnapshot();
    const bytes = encodeTrainCheckpoint(snap, { settings: '{"lr":0.001}', name: 'run é' });
    const { snapshot, extra } = await decodeTrainCheckpoint(bytes);
    expect(extra).toEqual({ settings: '{"lr":0.001}', name: 'run é' });
    expect(snapshot.state).toEqual(snap.state);
    expect(byName(snapshot)).toEqual(byName(snap));
    // Bit for bit (toEqual would let -0 pass as 0).
    const neg = byName(snapshot).find((t) => t.name === 'L1.router')!.m[3]!;
    expect(Object.is(neg, -0)).toBe(true);
    // And the decoded snapshot encodes to the same file (tensors sorted by name either way).
    expect(encodeTrainCheckpoint(snapshot, extra)).toEqual(bytes);
    // A run before its first step: nothing but zeros and empty lists.
    const fresh: TrainerSnapshot = { state: { ...snap.state, step: 0, adamStep: 0, epochs: 0, cursor: 0, halvings: 0, losses: [], valLosses: [], stopper: { best: null, sinceBest: 0 }, monitor: null, auxBias: null, lastCold: 0, lastDead: 0 }, tensors: [] };
    const back = await decodeTrainCheckpoint(encodeTrainCheckpoint(fresh));
    expect(back).toEqual({ snapshot: fresh, extra: {} });
  });

  it('will not let extra metadata take the keys it needs itself', () => {
    expect(() => encodeTrainCheckpoint(sampleSnapshot(), { format: 'x' })).toThrow(TrainCheckpointError);
    expect(() => encodeTrainCheckpoint(sampleSnapshot(), { state: '{}' })).toThrow(/"format" or "state"/);
  });

  it('refuses noise, an empty file and a cut file', async () => {
    let x = 12345;
    const noise = Uint8Array.from({ length: 4096 }, () => ((x = (x * 1103515245 + 12345) >>> 0) >>> 24));
    expect((await refusal(noise)).message).toMatch(/^not a training checkpoint/);
    expect((await refusal(new Uint8Array(0))).message).toMatch(/^not a training checkpoint/);
    const whole = encodeTrainCheckpoint(sampleSnapshot());
    for (const cut of [1, 8, 100, whole.length - 4]) {
      const e = await refusal(whole.subarray(0, cut));
      expect(e.message.length).toBeGreaterThan(10);
    }
    // Cut inside the tensor data: the header parses, a tensor does not fit.
    expect((await refusal(whole.subarray(0, whole.length - 4))).message).toMatch(/not a training checkpoint|tensor/);
  });

  it("refuses a model's own safetensors file, naming its format", async () => {
    const model = new Uint8Array(readFileSync(join(import.meta.dirname, '..', '..', 'fixtures', 'qwen2_moe_e8k2_shared', 'model.safetensors')));
    expect((await refusal(model)).message).toBe('not a training checkpoint (format "pt")');
    expect((await refusal(forged([], null, null))).message).toBe('not a training checkpoint (format null)');
  });

  it('refuses a parameter without one of its moments, and moments of another size', async () => {
    const stored = storedTensors(sampleSnapshot());
    const state = JSON.stringify(sampleSnapshot().state);
    expect((await refusal(forged(stored.filter((t) => t.name !== 'adam_v/L0.router'), state))).message).toBe('parameter L0.router has no adam_v tensor');
    expect((await refusal(forged(stored.filter((t) => t.name !== 'param/L1.router'), state))).message).toBe('parameter L1.router has no param tensor');
    const short = stored.map((t) => (t.name === 'adam_m/L1.router' ? { ...t, data: t.data.subarray(1) } : t));
    expect((await refusal(forged(short, state))).message).toMatch(/L1\.router: moments and values differ in size/);
    expect((await refusal(forged([...stored, { name: 'model.embed_tokens.weight', data: f32(1) }], state))).message).toBe('unexpected tensor "model.embed_tokens.weight"');
    // A non-finite parameter is a corrupt file (the trainer never stores one: such a step is skipped).
    const nan = stored.map((t) => (t.name === 'param/L0.router' ? { ...t, data: f32(1, NaN) } : t));
    expect((await refusal(forged(nan, state))).message).toMatch(/param\/L0\.router.*NaN/);
  });

  it('refuses a tensor stored in another dtype', async () => {
    // F16 is a dtype the safetensors reader takes (it converts to f32), but not one this file stores.
    const tensors: Record<string, TestTensor> = {};
    for (const t of storedTensors(sampleSnapshot())) tensors[t.name] = t.name === 'adam_m/L0.router' ? { dtype: 'F16', shape: [2], bytes: f16Bytes([3, 4]) } : { dtype: 'F32', shape: [t.data.length], bytes: f32Bytes(t.data) };
    const bytes = writeSafetensors(tensors, undefined, { format: TRAIN_CHECKPOINT_FORMAT, state: JSON.stringify(sampleSnapshot().state) });
    expect((await refusal(bytes)).message).toBe('tensor "adam_m/L0.router" is F16, not F32');
  });

  it('refuses a state that is missing, not JSON, or has a bad field, naming the field', async () => {
    const stored = storedTensors(sampleSnapshot());
    const good = sampleSnapshot().state;
    const withState = (patch: Record<string, unknown>) => forged(stored, JSON.stringify({ ...good, ...patch }));
    expect((await refusal(forged(stored, null))).message).toBe('the trainer state is not JSON');
    expect((await refusal(forged(stored, '{"step": 1'))).message).toBe('the trainer state is not JSON');
    expect((await refusal(withState({ step: -1 }))).message).toMatch(/^the trainer state step: /);
    expect((await refusal(withState({ step: '3' }))).message).toMatch(/^the trainer state step: /);
    expect((await refusal(withState({ cursor: 1.5 }))).message).toMatch(/^the trainer state cursor: /);
    expect((await refusal(withState({ stopped: 'no' }))).message).toMatch(/^the trainer state stopped: /);
    expect((await refusal(withState({ losses: [1, 'x'] }))).message).toMatch(/^the trainer state losses\.1: /);
    expect((await refusal(withState({ valLosses: [{ step: 2 }] }))).message).toMatch(/^the trainer state valLosses\.0\.loss: /);
    expect((await refusal(withState({ monitor: { ...good.monitor, lastProbe: { k: 0, idx: [] } } }))).message).toMatch(/^the trainer state monitor\.lastProbe\.k: /);
    expect((await refusal(withState({ auxBias: [[0, 'x']] }))).message).toMatch(/^the trainer state auxBias\.0\.1: /);
    const { lastDead: _, ...noDead } = good;
    expect((await refusal(forged(stored, JSON.stringify(noDead)))).message).toMatch(/^the trainer state lastDead: /);
    expect((await refusal(forged(stored, '[1, 2]'))).message).toMatch(/^the trainer state /);
    expect((await refusal(forged(stored, 'null'))).message).toMatch(/^the trainer state /);
  });

  it('refuses numbers JSON cannot hold as such: a state number that overflows to Infinity', async () => {
    const stored = storedTensors(sampleSnapshot());
    const text = JSON.stringify(sampleSnapshot().state);
    // The encoder writes non-finite numbers as null; 1e400 only comes from a forged or damaged file.
    for (const [from, to, field] of [['"lrScale":0.5', '"lrScale":1e400', /monitor\.lrScale/], ['"auxBias":[[0.01', '"auxBias":[[1e400', /auxBias\.0\.0/], ['"losses":[5.5', '"losses":[-1e400', /losses\.0/]] as const) {
      expect(text).toContain(from);
      expect((await refusal(forged(stored, text.replace(from, to)))).message).toMatch(field);
    }
  });
});
