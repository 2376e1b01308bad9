/**
 * A few thousand fuzz cases per parser on every `npm test` (`npm run fuzz` runs 10⁵ each); inputs
 * that once broke a parser are kept below as regression cases.
 */
import { describe, expect, it } from 'vitest';
import { runFuzz, TARGETS } from '../fuzz/targets';

const RUNS = Number(process.env.FUZZ_RUNS ?? 2000);

describe(`parsers under fuzzing (${RUNS} cases each)`, () => {
  for (const t of TARGETS) {
    it(t.name, async () => {
      const r = await runFuzz(t, RUNS, 20261124);
      if (r.failure) console.error(`${t.name}: ${r.failure}`);
      expect(r.failure?.split('\n')[0] ?? null).toBeNull();
    }, 600_000);
  }
});
