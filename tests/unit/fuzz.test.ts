/**
 * A few thousand fuzz cases per parser on every `npm test` (`npm run fuzz` runs 10⁵ each, see
 * tests/fuzz/). Inputs that once broke a parser are kept in fuzz_crashers.test.ts.
 */
import { describe } from 'vitest';
import { fuzzTests } from '../fuzz/suite';
import { TARGETS } from '../fuzz/targets';

describe('parsers under fuzzing', () => {
  fuzzTests(TARGETS.map((t) => t.name), 3000);
});
