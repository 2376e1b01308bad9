// `npm run fuzz`: safetensors header (one file), FUZZ_RUNS cases (default 10⁵), with the 12 most frequent kinds of refusal.
import { describe } from 'vitest';
import { fuzzTests } from './suite';

describe('fuzz', () => fuzzTests(['safetensors header (one file)'], 100_000, 12));
