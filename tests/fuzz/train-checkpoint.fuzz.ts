// `npm run fuzz`: training checkpoint (trainer state + AdamW moments), FUZZ_RUNS cases (default 10⁵), with the 12 most frequent kinds of refusal.
import { describe } from 'vitest';
import { fuzzTests } from './suite';

describe('fuzz', () => fuzzTests(['training checkpoint (trainer state + AdamW moments)'], 100_000, 12));
