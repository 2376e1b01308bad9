import { dispatch, createStorage } from '../gpu/buffers';
import type { Kernels } from '../gpu/kernels';

/** How the next token is picked. temperature 0 = greedy. */
export interface SamplingParams {
  temperature: number;
  /** 0 = off (the 256 most likely tokens are the candidates then). */
  topK: number;
  /** 1 = off. */
  topP: number;
  /** 1 = off; HF's repetition_penalty over every id seen so far (prompt included). */
  repetitionPenalty: number;
  seed: number;
}

export const GREEDY: SamplingParams = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 };

export function validateSampling(s: SamplingParams): void {
  const bad = (what: string) => {
    throw new RangeError(`Invalid sampling setting: ${what}`);
  };
  if (!(s.temperature >= 0 && s.temperature <= 100)) bad(`temperature ${s.temperature} (0 … 100)`);
  if (!Number.isInteger(s.topK) || s.topK < 0) bad(`top_k ${s.topK} (a whole number ≥ 0)`);
  if (!(s.topP > 0 && s.topP <= 1)) bad(`top_p ${s.topP} (0 < p ≤ 1)`);
  if (!(s.repetitionPenalty > 0 && s.repetitionPenalty <= 10)) bad(`repetition_penalty ${s.repetitionPenalty} (0 < r ≤ 10)`);
  if (!Number.isInteger(s.seed) || s.seed < 0 || s.seed > 0xffffffff) bad(`seed ${s.seed} (a 32-bit whole number)`);
}

export interface SamplerBuffers {
  work: GPUBuffer;
  /** [0] token id, [1] its probability as f32 bits. */
  out: GPUBuffer;
  /** Rewritten before each step: the step and settings change every call. */
  params: GPUBuffer;
}

export function createSamplerBuffers(device: GPUDevice, vocab: number): SamplerBuffers {
  return {
    work: createStorage(device, vocab * 4, 'sample-work'),
    out: createStorage(device, 8, 'sample-out'),
    params: device.createBuffer({ label: 'sample-params', size: 32, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST }),
  };
}

/**
 * Records the choice of one token from `logits` (one row of `vocab`). The parameters are written
 * through the queue, so submit this encoder before recording the next sample.
 */
export function encodeSample(
  k: Kernels,
  enc: GPUCommandEncoder,
  a: { logits: GPUBuffer; history: GPUBuffer; historyLength: number; vocab: number; step: number; params: SamplingParams; bufs: SamplerBuffers },
): void {
  const s = a.params;
  const words = new DataView(new ArrayBuffer(32));
  [a.vocab, a.historyLength, s.topK, a.step].forEach((v, i) => words.setUint32(i * 4, v, true));
  words.setFloat32(16, s.temperature, true);
  words.setFloat32(20, s.topP, true);
  words.setFloat32(24, s.repetitionPenalty, true);
  words.setUint32(28, s.seed >>> 0, true);
  k.device.queue.writeBuffer(a.bufs.params, 0, words.buffer);
  dispatch(k.device, k.pipelines.get('sample.wgsl'), [a.bufs.params, a.logits, a.history, a.bufs.work, a.bufs.out], [1], enc);
}
