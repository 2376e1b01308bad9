/**
 * Inputs that broke a parser under fuzzing (tests/fixtures/crashers/, see its README), replayed
 * with the error each must now get; inputs too big to keep as files are generated here.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CheckpointError, openCheckpoint } from '../../src/engine/io/checkpoint';
import { previewValue } from '../../src/engine/io/preview';
import { SafetensorsCheckpoint, SafetensorsError } from '../../src/engine/io/safetensors';
import { memorySource } from '../../src/engine/io/source';
import { HfTokenizer, TokenizerError } from '../../src/engine/io/tokenizer';
import { builderFor } from '../../src/engine/model/arch';
import { MAX_EXPERT_TOTAL } from '../../src/engine/model/arch/common';
import { ConfigError } from '../../src/engine/model/spec';
import type { RouterConfig } from '../../src/engine/moe/router';
import { decodePreset, encodePreset, MAX_MODEL_URL_LENGTH, MAX_QUERY_LENGTH, PresetError } from '../../src/preset/preset';
import { CONFIGS } from './arch/configs';

const root = join(import.meta.dirname, '..', '..');
const crasher = (name: string) => readFileSync(join(root, 'tests/fixtures/crashers', name));
const fixture = (dir: string, name: string) => readFileSync(join(root, 'tests/fixtures', dir, name));
const enc = new TextEncoder();
/** JSON text of an array nested `depth` deep: JSON.parse takes it, JSON.stringify of the result overflows the stack. */
const deepText = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
const deep = (depth = 100_000) => JSON.parse(deepText(depth)) as unknown;

describe('crashers found by fuzzing', () => {
  it('config.json: a value nested 100 000 deep is a ConfigError quoting its start, not a stack overflow', () => {
    for (const key of ['hidden_size', 'num_experts', 'rope_theta']) {
      const c = { ...CONFIGS.olmoe, [key]: deep() };
      expect(() => builderFor(c).parseConfig(c)).toThrow(ConfigError);
      expect(() => builderFor(c).parseConfig(c)).toThrow(/got \[\[\[\[\[…\]\]\]\]\]/);
    }
    expect(() => builderFor({ model_type: deep() })).toThrow(/^config.json: "model_type" must be a string, got \[\[\[\[\[…\]\]\]\]\]$/);
  });

  it('config.json: layers × experts past the bound is refused before any weight slot is built', () => {
    const c = JSON.parse(crasher('config-layers-times-experts.json').toString()) as Record<string, unknown>;
    const t0 = performance.now();
    expect(() => builderFor(c).parseConfig(c)).toThrow(new ConfigError(`olmoe config.json: 1024 layers × 4096 experts is 4194304 experts in all, more than the ${MAX_EXPERT_TOTAL} this loader accepts`));
    expect(performance.now() - t0).toBeLessThan(100);
    // Today's largest shapes stay well inside (Qwen3-Next 48 × 512).
    const big = { ...CONFIGS.qwen3_moe, num_hidden_layers: 48, num_local_experts: 512, num_experts: 512 };
    expect(builderFor(big).parseConfig(big).moe.numExperts).toBe(512);
  });

  it('model.safetensors.index.json: a weight_map entry nested 100 000 deep is a SafetensorsError', async () => {
    const index = enc.encode(`{"weight_map":{"a":${deepText(100_000)}}}`);
    await expect(SafetensorsCheckpoint.open([memorySource('model.safetensors.index.json', index)])).rejects.toThrow(new SafetensorsError('model.safetensors.index.json: weight_map["a"] must be a file name, got [[[[[…]]]]]'));
  });

  it('previewValue stays short and cheap on any value', () => {
    expect(previewValue(deep())).toBe('[[[[[…]]]]]');
    expect(previewValue(Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, i])))).toMatch(/^\{"k0":0,.*\.\.\.$/);
    expect(previewValue('x'.repeat(1e6)).length).toBe(60);
    // The same text as JSON.stringify for what fits (the config tests' messages rely on it).
    for (const v of [1e308, 'two', 32.5, [1, 'x'], { a: null }, true, null]) expect(previewValue(v)).toBe(JSON.stringify(v));
    expect(previewValue(undefined)).toBe('undefined');
  });

  it('tokenizer.json: an id that is not an integer is refused at load (it used to load, then decode threw a plain Error)', () => {
    const json = JSON.parse(crasher('tokenizer-string-id.json').toString()) as Record<string, unknown>;
    expect(() => new HfTokenizer({ tokenizerJson: json, tokenizerConfig: null, chatTemplate: null })).toThrow(new TokenizerError('tokenizer.json: added_tokens[0] must have an integer "id" ≥ 0 and a string "content"'));
  });

  it('tokenizer.json: a model type the library only pretends to read is refused; encode never returns a non-id', () => {
    const wordLevel = JSON.parse(crasher('tokenizer-wordlevel.json').toString()) as Record<string, unknown>;
    expect(() => new HfTokenizer({ tokenizerJson: wordLevel, tokenizerConfig: null, chatTemplate: null })).toThrow(new TokenizerError('tokenizer.json: model type "WordLevel" is not supported (BPE, WordPiece, Unigram are)'));
    // WordPiece whose unk_token is not in its vocabulary: an unknown word has no id.
    const wordPiece = { version: '1.0', added_tokens: [], normalizer: null, pre_tokenizer: { type: 'BertPreTokenizer' }, post_processor: null, decoder: null, model: { type: 'WordPiece', unk_token: '[NOPE]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab: { hello: 0, world: 1 } } };
    const tok = new HfTokenizer({ tokenizerJson: wordPiece, tokenizerConfig: null, chatTemplate: null });
    expect(tok.encode('hello world')).toEqual([0, 1]);
    expect(() => tok.encode('hello there')).toThrow(new TokenizerError('tokenizer.json has no token for part of the text (id #1 is undefined: not in the vocabulary, and no unk_token)'));
  });

  it('generation_config.json: eos_token_id -1 is not taken as a stop token', async () => {
    const dir = 'qwen2_moe_e8k2_shared';
    const ck = await openCheckpoint([
      memorySource('config.json', fixture(dir, 'config.json')),
      memorySource('model.safetensors', fixture(dir, 'model.safetensors')),
      memorySource('generation_config.json', crasher('generation_config-negative-eos.json')),
    ]);
    expect(ck.spec.eosTokenIds.every((id) => Number.isSafeInteger(id) && id >= 0)).toBe(true);
  });

  it('a weight over the adapter limit is a CheckpointError (it was a plain Error)', async () => {
    const dir = 'olmoe_e8k2_tied';
    const files = [memorySource('config.json', fixture(dir, 'config.json')), memorySource('model.safetensors', fixture(dir, 'model.safetensors'))];
    await expect(openCheckpoint(files, { limits: { maxStorageBufferBindingSize: 1024 } })).rejects.toThrow(CheckpointError);
    await expect(openCheckpoint(files, { limits: { maxStorageBufferBindingSize: 1024 } })).rejects.toThrow(/over this adapter's 0 MiB storage-binding limit/);
  });

  const DEFAULTS: RouterConfig = { topK: 2, scoring: 'softmax', temperature: 1, noiseStd: 0, seed: 0, renormalize: false, nGroup: 1, topkGroup: 1, groupScore: 'max', bias: null, disabled: [], capacityFactor: 0, routedScale: 1 };
  it('URL preset: a link that opens re-encodes to a link that opens (the found one is now refused for its model URL)', () => {
    const link = crasher('preset-reencodes-too-long.txt').toString();
    expect(() => decodePreset(link, 'https://playground.example')).toThrow(new PresetError('model', `URL longer than ${MAX_MODEL_URL_LENGTH} characters`));
  });
  it('URL preset: the longest preset encodePreset can write fits MAX_QUERY_LENGTH and decodes back', () => {
    // Every value at its longest: 256 biases of 25 characters, 256 ablated ids, a model URL of
    // the maximum length made of characters URLSearchParams escapes.
    const bias = Array.from({ length: 256 }, (_, i) => -0.000001234567890123456 - i * 1e-22);
    expect(Math.max(...bias.map((b) => String(b).length))).toBeGreaterThanOrEqual(24);
    const url = `https://a.example/${"'".repeat(MAX_MODEL_URL_LENGTH - 18)}`;
    const router: RouterConfig = { topK: 256, scoring: 'sigmoid', temperature: 0.0123456789012345, noiseStd: 99.123456789012345, seed: 4294967295, renormalize: true, nGroup: 64, topkGroup: 63, groupScore: 'top2sum', bias, disabled: Array.from({ length: 256 }, (_, i) => i), capacityFactor: 63.123456789012345, routedScale: 99.123456789012345 };
    const link = encodePreset({ kind: 'url', url }, router, DEFAULTS);
    expect(link.length).toBeLessThanOrEqual(MAX_QUERY_LENGTH);
    const back = decodePreset(link, 'https://playground.example');
    expect({ ...DEFAULTS, ...back?.router }).toEqual(router);
    expect(back?.model).toEqual({ kind: 'url', url });
  });
});
