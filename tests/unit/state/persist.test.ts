import { describe, expect, it } from 'vitest';
import { memoryStore, readRecord, writeRecord, type KeyValue } from '../../../src/state/persist';

const good = { version: 1 as const, savedAt: 1, messages: [{ role: 'user' as const, content: 'hi' }, { role: 'assistant' as const, content: '<b>x</b>' }] };

describe('saved state', () => {
  it('round-trips a conversation and a router preset', async () => {
    const kv = memoryStore();
    await writeRecord(kv, 'chat', good);
    await writeRecord(kv, 'router', { version: 1, savedAt: 2, model: 'demo', query: '?v=1&k=3' });
    expect((await readRecord(kv, 'chat')).value).toEqual(good);
    expect((await readRecord(kv, 'router')).value?.query).toBe('?v=1&k=3');
    expect((await readRecord(memoryStore(), 'chat')).value).toBeNull();
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['a string', 'garbage', /\(\(record\): /],
    ['null', null, /\(\(record\): /],
    ['a newer version', { ...good, version: 2 }, /version: unknown version/],
    ['a bad role', { ...good, messages: [{ role: 'root', content: 'x' }] }, /messages\.0\.role: must be system, user or assistant/],
    ['non-text content', { ...good, messages: [{ role: 'user', content: 42 }] }, /messages\.0\.content: must be text/],
    ['an extra field (prototype pollution attempt)', { ...good, messages: [{ role: 'user', content: 'x', __proto__x: 1 }] }, /messages\.0/],
    ['messages not a list', { ...good, messages: { 0: 'x' } }, /messages: must be a list/],
    ['too many messages', { ...good, messages: Array.from({ length: 10_001 }, () => ({ role: 'user', content: '' })) }, /more than 10000 messages/],
  ];
  for (const [label, raw, why] of bad) {
    it(`sets aside ${label}, keeping the data, and says where`, async () => {
      const kv = memoryStore({ chat: raw });
      const r = await readRecord(kv, 'chat');
      expect(r.value).toBeNull();
      expect(r.problem).toMatch(/^The saved conversation could not be used \(/);
      expect(r.problem).toMatch(why);
      const aside = [...kv.data.keys()].find((k) => k.startsWith('corrupt/chat/'));
      expect(r.problem).toContain(`set aside in the browser's storage as "${aside}"`);
      expect(kv.data.get(aside!)).toEqual(raw);
      expect(kv.data.has('chat')).toBe(false);
    });
  }

  it('reports a storage that cannot be read without throwing', async () => {
    const broken: KeyValue = { get: () => Promise.reject(new Error('IndexedDB is disabled')), set: () => Promise.resolve(), del: () => Promise.resolve() };
    const r = await readRecord(broken, 'chat');
    expect(r.value).toBeNull();
    expect(r.problem).toContain('could not be read from the browser\'s storage (IndexedDB is disabled)');
  });
});

describe('a huge corrupt value', () => {
  it('is quoted only in part in the message, and kept whole aside', async () => {
    const huge = 'x'.repeat(100_000);
    const kv = memoryStore({ chat: huge });
    const r = await readRecord(kv, 'chat');
    expect(r.problem!.length).toBeLessThan(600);
    expect([...kv.data.values()]).toContain(huge);
  });
});
