import { describe, expect, it } from 'vitest';
import { fitConversation, replyRoom, type ChatTurn } from '../../src/engine/session';

// One token per word, plus one per message for its role marker: enough to count positions.
const tok = { chatIds: (ms: ChatTurn[]) => ms.flatMap((m) => [0, ...m.content.split(' ').map((w) => w.length)]) };
const words = (n: number, w = 'x') => Array.from({ length: n }, () => w).join(' ');

describe('a conversation past the context slides', () => {
  it('keeps everything while it fits', () => {
    const ms: ChatTurn[] = [{ role: 'user', content: words(10) }];
    expect(fitConversation(tok, ms, 64, 16)).toEqual({ ids: tok.chatIds(ms), dropped: 0 });
  });

  it('drops whole exchanges from the start, keeping the system message and the last user message', () => {
    const ms: ChatTurn[] = [
      { role: 'system', content: words(5, 'sys') },
      { role: 'user', content: words(20) },
      { role: 'assistant', content: words(20) },
      { role: 'user', content: words(20) },
      { role: 'assistant', content: words(20) },
      { role: 'user', content: words(10, 'last') },
    ];
    // 6 + 21·4 + 11 = 101 positions; 64 − 16 = 48 fit: sys (6) + last (11) + one exchange (42) is too many.
    const { ids, dropped } = fitConversation(tok, ms, 64, 16);
    expect(dropped).toBe(4);
    expect(ids).toEqual(tok.chatIds([ms[0]!, ms[5]!]));
    // With room for one more exchange, only the first goes.
    expect(fitConversation(tok, ms, 80, 16).dropped).toBe(2);
  });

  it('refuses a last message that alone is over the context, with the numbers', () => {
    const ms: ChatTurn[] = [{ role: 'user', content: words(5) }, { role: 'assistant', content: 'ok' }, { role: 'user', content: words(100) }];
    expect(() => fitConversation(tok, ms, 64, 16)).toThrow('The last message is too long for this model: with it the prompt is 101 tokens, and the context of 64 holds at most 48 with 16 left for the reply');
  });

  it('keeps at most half the context for the reply', () => {
    expect(replyRoom(1024, 48)).toBe(48);
    expect(replyRoom(64, 1000)).toBe(32);
    expect(replyRoom(1, 5)).toBe(1);
  });
});
