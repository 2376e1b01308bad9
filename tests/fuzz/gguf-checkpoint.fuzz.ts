// `npm run fuzz`: GGUF checkpoint (whole file), FUZZ_RUNS cases (default 10⁵), with the 12 most frequent kinds of refusal.
import { describe } from 'vitest';
import { fuzzTests } from './suite';

describe('fuzz', () => fuzzTests(['GGUF checkpoint (whole file: metadata → config, tensors, tokenizer)'], 100_000, 12));
