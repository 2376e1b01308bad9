/**
 * A conversation over a loaded model: applies the chat template, prefills, streams tokens as text,
 * and reports routing for every token the model sees. No DOM, no worker: the worker and the CLI
 * both drive it.
 */
import { generate } from './model/generate';
import type { MoeModel, RoutingRecord } from './model/model';
import type { SamplingParams } from './model/sampling';
import { TokenStream } from './io/tokenizer';

export interface ChatTurn {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** What the session needs from a tokenizer (io/tokenizer.ts provides it). */
export interface SessionTokenizer {
  encode(text: string): number[];
  decode(ids: number[]): string;
  /** Ids of the templated conversation, ending with the assistant's generation prompt. */
  chatIds(messages: ChatTurn[]): number[];
  eosTokenIds: number[];
}

export type SessionEvent =
  /** `dropped`: earlier messages left out so the conversation fits the context (oldest first). */
  | { type: 'prompt'; ids: number[]; pieces: string[]; dropped: number }
  | { type: 'token'; id: number; text: string; prob: number; ms: number }
  | { type: 'routing'; start: number; routing: RoutingRecord }
  | { type: 'done'; reason: 'stop-token' | 'max-tokens' | 'stopped' | 'context-full'; tokens: number; ttftMs: number; tokensPerSecond: number };

export interface ChatOptions {
  sampling: SamplingParams;
  maxNewTokens: number;
  signal?: AbortSignal;
}

/** Positions kept free for the reply: what was asked for, but never more than half the context. */
export function replyRoom(contextLength: number, maxNewTokens: number): number {
  return Math.max(1, Math.min(maxNewTokens, Math.floor(contextLength / 2)));
}

/**
 * The templated ids of the longest tail of `messages` that leaves `room` positions free in a
 * context of `contextLength`: a conversation past the context slides, dropping its oldest turns
 * (from one user message to the next, so roles still alternate) and keeping a leading system
 * message. Throws when even the last user message alone is too long, saying by how much.
 */
export function fitConversation(tok: Pick<SessionTokenizer, 'chatIds'>, messages: ChatTurn[], contextLength: number, room: number): { ids: number[]; dropped: number } {
  const budget = contextLength - room;
  const system = messages[0]?.role === 'system' ? [messages[0]] : [];
  const rest = messages.slice(system.length);
  let ids = tok.chatIds(messages);
  if (ids.length <= budget) return { ids, dropped: 0 };
  // Candidate starts: every user message after the first; the last one must stay.
  const starts = rest.flatMap((m, i) => (m.role === 'user' && i > 0 ? [i] : []));
  for (const start of starts) {
    ids = tok.chatIds([...system, ...rest.slice(start)]);
    if (ids.length <= budget) return { ids, dropped: start };
  }
  throw new Error(
    `The last message is too long for this model: with it the prompt is ${ids.length} tokens, and the context of ${contextLength} ` +
      `holds at most ${budget} with ${room} left for the reply. Shorten the message or ask for fewer new tokens.`,
  );
}

/** What a chat runs on: our engine (MoeModel) or another backend (the ONNX decoder). */
export interface ChatBackend {
  readonly contextLength: number;
  /** Tokens in the cache. */
  readonly position: number;
  /** The model's own end-of-turn ids, used when the tokenizer names none. */
  readonly eosTokenIds: number[];
  reset(): void;
  /** Feeds `ids` (no sampling); their routing. */
  forward(ids: number[]): Promise<{ routing: RoutingRecord }>;
  generate(ids: number[], opts: { maxNewTokens: number; sampling: SamplingParams; stopIds: number[]; signal?: AbortSignal }): AsyncIterable<{ id: number; prob: number; ms: number; routing: RoutingRecord }>;
}

export function engineBackend(model: MoeModel): ChatBackend {
  return {
    contextLength: model.contextLength,
    get position() {
      return model.position;
    },
    eosTokenIds: model.spec.eosTokenIds,
    reset: () => model.reset(),
    forward: (ids) => model.forward(ids),
    generate: (ids, o) => generate(model, ids, o),
  };
}

export function chat(model: MoeModel, tok: SessionTokenizer | null, messages: ChatTurn[] | number[], opts: ChatOptions): AsyncGenerator<SessionEvent> {
  return chatOn(engineBackend(model), tok, messages, opts);
}

export async function* chatOn(model: ChatBackend, tok: SessionTokenizer | null, messages: ChatTurn[] | number[], opts: ChatOptions): AsyncGenerator<SessionEvent> {
  const room = replyRoom(model.contextLength, opts.maxNewTokens);
  let ids: number[];
  let dropped = 0;
  if (Array.isArray(messages) && typeof messages[0] === 'number') {
    ids = messages as number[];
    if (ids.length + room > model.contextLength) {
      throw new Error(`The prompt is ${ids.length} tokens; the context of ${model.contextLength} holds at most ${model.contextLength - room} with ${room} left for the reply`);
    }
  } else {
    if (!tok) throw new Error('This model has no tokenizer: send token ids instead of text');
    ({ ids, dropped } = fitConversation(tok, messages as ChatTurn[], model.contextLength, room));
  }
  if (ids.length === 0) throw new Error('The prompt is empty');
  model.reset();
  yield { type: 'prompt', ids, pieces: ids.map((id) => (tok ? tok.decode([id]) : `<${id}>`)), dropped };
  const decoder = tok ? new TokenStream((ids) => tok.decode(ids)) : null;
  const t0 = performance.now();
  let ttft = 0;
  let n = 0;
  let last: number | null = null;
  let reason: 'stop-token' | 'max-tokens' | 'stopped' | 'context-full' = 'max-tokens';
  const stop = tok?.eosTokenIds.length ? tok.eosTokenIds : model.eosTokenIds;
  for await (const t of model.generate(ids, { maxNewTokens: opts.maxNewTokens, sampling: opts.sampling, stopIds: stop, signal: opts.signal })) {
    yield { type: 'routing', start: t.routing.start, routing: t.routing };
    if (n === 0) ttft = performance.now() - t0;
    n++;
    last = t.id;
    // The end-of-turn token ends the reply; it is not part of its text.
    const text = stop.includes(t.id) ? '' : decoder ? decoder.push(t.id) : `<${t.id}>`;
    yield { type: 'token', id: t.id, text, prob: t.prob, ms: t.ms };
    if (stop.includes(t.id)) reason = 'stop-token';
  }
  if (opts.signal?.aborted) reason = 'stopped';
  else if (reason !== 'stop-token' && n < opts.maxNewTokens) reason = 'context-full';
  // The last token was never fed back; feed it so its routing is known too (unless it ended the reply).
  if (last !== null && reason !== 'stop-token' && model.position < model.contextLength) {
    const r = await model.forward([last]);
    yield { type: 'routing', start: r.routing.start, routing: r.routing };
  }
  const elapsed = performance.now() - t0;
  yield { type: 'done', reason, tokens: n, ttftMs: ttft, tokensPerSecond: n > 1 ? (n - 1) / ((elapsed - ttft) / 1000) : 0 };
}
