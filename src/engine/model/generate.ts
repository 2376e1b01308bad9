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

/** Appends `promptIds` to the model's cache and yields new tokens until a stop id, the limit or abort. */
export async function* generate(model: MoeModel, promptIds: ArrayLike<number>, opts: GenerateOptions): AsyncGenerator<GeneratedToken> {
  const sampling = opts.sampling ?? GREEDY;
  const stop = new Set(opts.stopIds ?? []);
  let feed: ArrayLike<number> = promptIds;
  for (let step = 0; step < opts.maxNewTokens; step++) {
    if (opts.signal?.aborted) return;
    if (model.position + feed.length > model.contextLength) return;
    const t0 = performance.now();
    const r = await model.forward(feed, { sample: { params: sampling, step } });
    const tok = r.token!;
    yield { id: tok.id, prob: tok.prob, routing: r.routing, ms: performance.now() - t0 };
    if (stop.has(tok.id)) return;
    feed = [tok.id];
  }
}
