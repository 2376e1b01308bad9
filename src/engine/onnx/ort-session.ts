/**
 * Generation and chat on the onnxruntime backend, with the same events as engine/session.ts's chat
 * on our own engine (prompt, token, routing, done), so the worker and the page treat both alike.
 * Tokens are picked on the CPU (sample.ts) from the last row of logits.
 */
import type { RoutingRecord } from '../model/model';
import { GREEDY, type SamplingParams, validateSampling } from '../model/sampling';
import { TokenStream } from '../io/tokenizer';
import { fitConversation, replyRoom, type ChatOptions, type ChatTurn, type SessionEvent, type SessionTokenizer } from '../session';
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
export async function* ortChat(dec: OrtDecoder, tok: SessionTokenizer | null, messages: ChatTurn[] | number[], opts: ChatOptions): AsyncGenerator<SessionEvent> {
  const room = replyRoom(dec.contextLength, opts.maxNewTokens);
  let ids: number[];
  let dropped = 0;
  if (Array.isArray(messages) && typeof messages[0] === 'number') {
    ids = messages as number[];
    if (ids.length + room > dec.contextLength) {
      throw new Error(`The prompt is ${ids.length} tokens; the context of ${dec.contextLength} holds at most ${dec.contextLength - room} with ${room} left for the reply`);
    }
  } else {
    if (!tok) throw new Error('This model has no tokenizer: send token ids instead of text');
    ({ ids, dropped } = fitConversation(tok, messages as ChatTurn[], dec.contextLength, room));
  }
  if (ids.length === 0) throw new Error('The prompt is empty');
  dec.reset();
  yield { type: 'prompt', ids, pieces: ids.map((id) => (tok ? tok.decode([id]) : `<${id}>`)), dropped };
  const decoder = tok ? new TokenStream((x) => tok.decode(x)) : null;
  const t0 = performance.now();
  let ttft = 0;
  let n = 0;
  let last: number | null = null;
  let reason: 'stop-token' | 'max-tokens' | 'stopped' | 'context-full' = 'max-tokens';
  const stop = tok?.eosTokenIds.length ? tok.eosTokenIds : dec.meta.eosTokenIds;
  for await (const t of ortGenerate(dec, ids, { maxNewTokens: opts.maxNewTokens, sampling: opts.sampling, stopIds: stop, signal: opts.signal })) {
    yield { type: 'routing', start: t.routing.start, routing: t.routing };
    if (n === 0) ttft = performance.now() - t0;
    n++;
    last = t.id;
    const text = stop.includes(t.id) ? '' : decoder ? decoder.push(t.id) : `<${t.id}>`;
    yield { type: 'token', id: t.id, text, prob: t.prob, ms: t.ms };
    if (stop.includes(t.id)) reason = 'stop-token';
  }
  if (opts.signal?.aborted) reason = 'stopped';
  else if (reason !== 'stop-token' && n < opts.maxNewTokens) reason = 'context-full';
  // The last token was never fed; feed it so its routing is known too (unless it ended the reply).
  if (last !== null && reason !== 'stop-token' && dec.position < dec.contextLength) {
    const r = await dec.forward([last]);
    yield { type: 'routing', start: r.routing.start, routing: r.routing };
  }
  const elapsed = performance.now() - t0;
  yield { type: 'done', reason, tokens: n, ttftMs: ttft, tokensPerSecond: n > 1 ? (n - 1) / ((elapsed - ttft) / 1000) : 0 };
}
