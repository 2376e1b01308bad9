/**
 * Token-by-token generation on a MoeModel: the prompt is prefilled, then each step feeds the last
 * token and samples the next on the GPU; only the token id (and routing) comes back per step.
 */
import type { MoeModel, RoutingRecord } from './model';
import { GREEDY, type SamplingParams } from './sampling';

export interface GenerateOptions {
  maxNewTokens: number;
  sampling?: SamplingParams;
  /** Generation stops after emitting one of these (it is still yielded). */
  stopIds?: number[];
  signal?: AbortSignal;
}

export interface GeneratedToken {
  id: number;
  /** Probability of this token under the sampling distribution (1 for greedy). */
  prob: number;
  /** Routing of the tokens fed in the step that produced this one. */
  routing: RoutingRecord;
  /** Milliseconds the step took. */
  ms: number;
}

/**
 * Appends `promptIds` to the model's cache and yields new tokens until a stop id, the limit or abort.
 * Decode steps are pipelined: step n+1 (fed the token step n sampled, on the GPU) is recorded and
 * submitted before step n's token is read back, so the CPU's recording overlaps the GPU's work.
 * When the token that comes back ends generation, that one speculative step is rolled back.
 */
export async function* generate(model: MoeModel, promptIds: ArrayLike<number>, opts: GenerateOptions): AsyncGenerator<GeneratedToken> {
  const sampling = opts.sampling ?? GREEDY;
  const stop = new Set(opts.stopIds ?? []);
  if (opts.maxNewTokens < 1 || opts.signal?.aborted) return;
  if (model.position + promptIds.length > model.contextLength) return;
  let t0 = performance.now();
  const first = await model.forward(promptIds, { sample: { params: sampling, step: 0 } });
  yield { id: first.token!.id, prob: first.token!.prob, routing: first.routing, ms: performance.now() - t0 };
  if (stop.has(first.token!.id)) return;
  const canStep = (step: number) => step < opts.maxNewTokens && model.position < model.contextLength;
  let pending = canStep(1) ? model.forwardSampled({ sample: { params: sampling, step: 1 } }) : null;
  for (let step = 1; pending; step++) {
    t0 = performance.now();
    const next = canStep(step + 1) ? model.forwardSampled({ sample: { params: sampling, step: step + 1 } }) : null;
    const r = await pending;
    const tok = r.token!;
    const done = stop.has(tok.id) || !!opts.signal?.aborted;
    if (done && next) {
      await next; // let the speculative step finish, then forget it
      model.truncate(model.position - 1);
    }
    if (opts.signal?.aborted) return;
    yield { id: tok.id, prob: tok.prob, routing: r.routing, ms: performance.now() - t0 };
    if (done) return;
    pending = next;
  }
}
