/**
 * The vitest side of fuzzing, shared by `npm test` (tests/unit/fuzz.test.ts, a few thousand cases
 * per parser) and `npm run fuzz` (tests/fuzz/*.fuzz.ts, one file per parser so that vitest spreads
 * them over the cores; FUZZ_RUNS cases each). Each target prints its counts and the kinds of
 * refusal it met, and fails on the first bad case with the input (also saved to a file).
 */
import { expect, it } from 'vitest';
import { formatReport, runFuzz } from './run';
import { targetByName } from './targets';

export function fuzzTests(names: readonly string[], defaultRuns: number, detail = 0): void {
  const runs = Number(process.env.FUZZ_RUNS ?? defaultRuns);
  const seed = Number(process.env.FUZZ_SEED ?? 20261124);
  for (const name of names) {
    it(`${name} (${runs} cases)`, async () => {
      const r = await runFuzz(targetByName(name), runs, { seed });
      console.log(formatReport(r, Number(process.env.FUZZ_DETAIL ?? detail)));
      expect(r.failure).toBeNull();
    }, 3_600_000);
  }
}
