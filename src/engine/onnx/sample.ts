/**
 * The next token from one row of logits, on the CPU: what shaders/sample.wgsl does on the GPU for
 * our own engine, step for step (repetition penalty → greedy argmax, or top-k candidates →
 * softmax / temperature → top-p → a draw from the same counter-based hash of seed and step), for
 * the onnxruntime backend, whose logits come back to the CPU anyway.
 */
import type { SamplingParams } from '../model/sampling';

const CANDIDATES = 256;

/** The PCG-style integer hash of sample.wgsl, in u32 arithmetic. */
function hash(a: number): number {
  const s = (Math.imul(a >>> 0, 747796405) + 2891336453) >>> 0;
  const w = Math.imul(((s >>> ((s >>> 28) + 4)) ^ s) >>> 0, 277803737) >>> 0;
  return ((w >>> 22) ^ w) >>> 0;
}

/** `history`: every id seen so far (prompt included), for the repetition penalty. */
export function sampleCpu(logits: Float32Array, history: ArrayLike<number>, p: SamplingParams, step: number): { id: number; prob: number } {
  const V = logits.length;
  const work = Float32Array.from(logits);
  if (p.repetitionPenalty !== 1) {
    for (let i = 0; i < history.length; i++) {
      const id = history[i]!;
      if (id < V) {
        const l = logits[id]!;
        work[id] = l > 0 ? l / p.repetitionPenalty : l * p.repetitionPenalty;
      }
    }
  }
  if (p.temperature <= 0) {
    let best = 0;
    for (let v = 1; v < V; v++) if (work[v]! > work[best]!) best = v; // ties: the lower id, as torch.argmax
    return { id: best, prob: 1 };
  }
  const k = Math.min(p.topK === 0 || p.topK > CANDIDATES ? CANDIDATES : p.topK, V);
  // The k best, best first (ties to the lower id), via one sort of the indices.
  const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => work[b]! - work[a]! || a - b).slice(0, k);
  const vals = order.map((i) => Math.fround(work[i]! / p.temperature));
  const top = vals[0]!;
  const ex = vals.map((x) => Math.exp(x - top));
  const z = ex.reduce((a, b) => a + b, 0);
  let keep = k;
  let cum = 0;
  for (let j = 0; j < k; j++) {
    cum += ex[j]! / z;
    if (cum >= p.topP) {
      keep = j + 1;
      break;
    }
  }
  let zk = 0;
  for (let j = 0; j < keep; j++) zk += ex[j]!;
  const u = ((hash((p.seed ^ hash((step + 0x9e3779b9) >>> 0)) >>> 0) >>> 8) / 16777216) * zk;
  let acc = 0;
  let pick = keep - 1;
  for (let j = 0; j < keep; j++) {
    acc += ex[j]!;
    if (u < acc) {
      pick = j;
      break;
    }
  }
  return { id: order[pick]!, prob: ex[pick]! / zk };
}
