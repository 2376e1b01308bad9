// `npm run fuzz`: config.json → arch builder, FUZZ_RUNS cases (default 10⁵), with the 12 most frequent kinds of refusal.
import { describe } from 'vitest';
import { fuzzTests } from './suite';

describe('fuzz', () => fuzzTests(['config.json → arch builder'], 100_000, 12));
