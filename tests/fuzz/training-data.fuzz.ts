// `npm run fuzz`: training data (JSONL chat / text / prompt-completion, plain text), FUZZ_RUNS cases (default 10⁵), with the 12 most frequent kinds of refusal.
import { describe } from 'vitest';
import { fuzzTests } from './suite';

describe('fuzz', () => fuzzTests(['training data (JSONL chat / text / prompt-completion, plain text)'], 100_000, 12));
