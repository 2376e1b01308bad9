/**
 * Generation and chat on the onnxruntime backend, with the same events as engine/session.ts's chat
 * on our own engine (prompt, token, routing, done), so the worker and the page treat both alike.
 * Tokens are picked on the CPU (sample.ts) from the last row of logits.
 */
import type { RoutingRecord } from '../model/model';
import { GREEDY, type SamplingParams, validateSampling } from '../model/sampling';
import { chatOn, type ChatBackend, type ChatOptions, type ChatTurn, type SessionEvent, type SessionTokenizer } from '../session';
import type { OrtDecoder } from './ort-backend';
import { sampleCpu } from './sample';

export interface OrtGenerateOptions {
  maxNewTokens: number;
  sampling?: SamplingParams;
  /** Generation stops after emitting one of these (it is still yielded). */
  stopIds?: number[];
  signal?: AbortSignal;
}

export interface OrtToken {
  id: number;
  prob: number;
  /** Routing of the tokens fed in the step that produced this one. */
  routing: RoutingRecord;
  ms: number;
}

/** Appends `promptIds` to the cache and yields new tokens until a stop id, the limit, the context's end or abort. */
export async function* ortGenerate(dec: OrtDecoder, promptIds: number[], opts: OrtGenerateOptions): AsyncGenerator<OrtToken> {
  const sampling = opts.sampling ?? GREEDY;
  validateSampling(sampling);
  const stop = new Set(opts.stopIds ?? []);
  if (opts.maxNewTokens < 1 || opts.signal?.aborted) return;
  if (dec.position + promptIds.length > dec.contextLength) return;
  const history = [...promptIds];
  let feed = promptIds;
  for (let step = 0; step < opts.maxNewTokens; step++) {
    const t0 = performance.now();
    const r = await dec.forward(feed);
    if (opts.signal?.aborted) return;
    const tok = sampleCpu(r.logits, history, sampling, step);
    yield { id: tok.id, prob: tok.prob, routing: r.routing, ms: performance.now() - t0 };
    if (stop.has(tok.id) || dec.position >= dec.contextLength) return;
    history.push(tok.id);
    feed = [tok.id];
  }
}

/** engine/session.ts's chat(), on an OrtDecoder. */
export function ortChat(dec: OrtDecoder, tok: SessionTokenizer | null, messages: ChatTurn[] | number[], opts: ChatOptions): AsyncGenerator<SessionEvent> {
  const backend: ChatBackend = {
    contextLength: dec.contextLength,
    get position() {
      return dec.position;
    },
    eosTokenIds: dec.meta.eosTokenIds,
    reset: () => dec.reset(),
    forward: (ids) => dec.forward(ids),
    generate: (ids, o) => ortGenerate(dec, ids, o),
  };
  return chatOn(backend, tok, messages, opts);
}
