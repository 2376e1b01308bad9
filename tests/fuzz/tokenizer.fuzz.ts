// `npm run fuzz`: tokenizer files (tokenizer.json, tokenizer_config.json, chat template), FUZZ_RUNS cases (default 10⁵), with the 12 most frequent kinds of refusal.
import { describe } from 'vitest';
import { fuzzTests } from './suite';

describe('fuzz', () => fuzzTests(['tokenizer files (tokenizer.json, tokenizer_config.json, chat template)'], 100_000, 12));
