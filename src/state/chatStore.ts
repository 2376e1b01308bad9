/**
 * The conversation, every token the model saw with its routing, and routing counts for the
 * heatmap. Fed by worker events; the UI reads it and never talks to the GPU.
 */
import { create } from 'zustand';
import type { ChatMessage, RoutingPayload, TokenPiece } from '../worker/protocol';

export interface TokenRecord extends TokenPiece {
  /** 'prompt': part of the templated input; 'reply': generated in the last run. */
  kind: 'prompt' | 'reply';
  prob: number | null;
  /** [moeLayer][k] expert ids and gate weights; null until the token has been fed. */
  experts: number[][] | null;
  gates: number[][] | null;
}

export interface RunStats {
  ttftMs: number;
  tokensPerSecond: number;
  tokens: number;
  reason: string;
}

export interface ChatState {
  messages: ChatMessage[];
  /** Tokens of the last run, in position order. */
  tokens: TokenRecord[];
  generating: boolean;
  stats: RunStats | null;
  /** [moeLayer][expert] routed slots over the last run (prompt + reply) and over the reply only. */
  counts: number[][];
  replyCounts: number[][];
  moeLayers: number[];
  selected: number | null;
  /** Earlier messages the last run left out to fit the model's context, and that context. */
  context: { dropped: number; length: number } | null;
}

export const emptyChat = (): Omit<ChatState, 'messages'> => ({
  tokens: [],
  generating: false,
  stats: null,
  counts: [],
  replyCounts: [],
  moeLayers: [],
  selected: null,
  context: null,
});

export const useChatStore = create<ChatState>()(() => ({ messages: [], ...emptyChat() }));

/** Attaches routing of positions start… to their tokens and adds it to the counts. */
export function applyRouting(s: ChatState, start: number, r: RoutingPayload): Partial<ChatState> {
  const tokens = s.tokens.slice();
  const fresh = () => r.layers.map(() => new Array<number>(r.numExperts).fill(0));
  const counts = s.counts.length ? s.counts.map((row) => row.slice()) : fresh();
  const replyCounts = s.replyCounts.length ? s.replyCounts.map((row) => row.slice()) : fresh();
  for (let t = 0; t < r.tokens; t++) {
    const tok = tokens[start + t];
    if (!tok) continue;
    const experts: number[][] = [], gates: number[][] = [];
    r.layers.forEach((_, m) => {
      const ids = Array.from(r.experts[m]!.subarray(t * r.topk, (t + 1) * r.topk));
      experts.push(ids);
      gates.push(Array.from(r.gates[m]!.subarray(t * r.topk, (t + 1) * r.topk)));
      for (const e of ids) {
        counts[m]![e]!++;
        if (tok.kind === 'reply') replyCounts[m]![e]!++;
      }
    });
    tokens[start + t] = { ...tok, experts, gates };
  }
  return { tokens, counts, replyCounts, moeLayers: r.layers };
}
