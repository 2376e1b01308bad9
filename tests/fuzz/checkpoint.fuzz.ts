// `npm run fuzz`: checkpoint (config.json + weights + tokenizer files), FUZZ_RUNS cases (default 10⁵), with the 12 most frequent kinds of refusal.
import { describe } from 'vitest';
import { fuzzTests } from './suite';

describe('fuzz', () => fuzzTests(['checkpoint (config.json + weights + tokenizer files)'], 100_000, 12));
