/**
 * The fuzz harness itself must be able to fail: parsers broken on purpose in each way the property
 * forbids (an untyped error, a giant allocation or an out-of-bounds read hidden behind a typed
 * error, a hang, a slow case, a wrong result) are each reported, and a correct one passes.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { guardedSource } from '../fuzz/guards';
import { runFuzz, type FuzzTarget } from '../fuzz/run';

class OurError extends Error {
  override name = 'OurError';
}

const target = (run: (n: number) => unknown, check?: (r: unknown) => void): FuzzTarget<number> => ({ name: 'broken on purpose', input: fc.nat(100), run, typed: [OurError], check });

/** Turns whatever went wrong into our typed error, as the real parsers do. */
const wrapped = (f: () => unknown) => async () => {
  try {
    await f();
  } catch (e) {
    throw new OurError(`wrapped: ${(e as Error).message}`);
  }
};

describe('fuzz harness', () => {
  it('passes a parser that loads or throws its typed error', async () => {
    const r = await runFuzz(target((n) => { if (n % 2) throw new OurError('odd'); return n; }), 200);
    expect(r.failure).toBeNull();
    expect(r.loaded + (r.refused.OurError ?? 0)).toBe(200);
  });
  it('fails an untyped error, and a typed one without a message', async () => {
    expect((await runFuzz(target((n) => { if (n > 50) throw new TypeError('x.y is undefined'); }), 500)).failure).toMatch(/^untyped error TypeError: x.y is undefined/);
    expect((await runFuzz(target(() => { throw new OurError(''); }), 10)).failure).toMatch(/^typed error without a message/);
  });
  it('fails a giant allocation even when the parser wraps the refusal into its typed error', async () => {
    const r = await runFuzz(target((n) => wrapped(() => new Float32Array(2 ** 24 + n))()), 10);
    expect(r.failure).toMatch(/^giant allocation: new Float32Array\(\d+\)/);
    expect((await runFuzz(target(() => wrapped(() => Array.from({ length: 2 ** 30 }))()), 10)).failure).toMatch(/^giant allocation: Array.from/);
  });
  it('fails a read past the end of a file, wrapped or not', async () => {
    const r = await runFuzz(target((n) => wrapped(() => guardedSource('f.bin', new Uint8Array(8)).read(n, 8))()), 100);
    expect(r.failure).toMatch(/^out-of-bounds read: f.bin: read of 8 bytes at \d+ is past its end \(8 bytes\)/);
  });
  it('fails a hang (a promise that never settles) and a slow case', async () => {
    expect((await runFuzz(target(() => new Promise(() => {})), 3, { timeoutMs: 200 })).failure).toMatch(/^no answer after 200 ms/);
    const busy = () => {
      const end = performance.now() + 60;
      while (performance.now() < end);
    };
    expect((await runFuzz(target(busy), 3, { slowMs: 30 })).failure).toMatch(/^took \d+ ms \(limit 30\)/);
  });
  it('fails a result that loaded but is wrong', async () => {
    const r = await runFuzz(target((n) => n, (x) => { if ((x as number) > 90) throw new Error('too big'); }), 1000);
    expect(r.failure).toMatch(/^loaded, but the result is wrong: too big/);
  });
});
