import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { builderFor } from '../../../src/engine/model/arch';
import { ConfigError } from '../../../src/engine/model/spec';

const FIX = join(import.meta.dirname, '..', '..', 'fixtures');
const config = (name: string) => JSON.parse(readFileSync(join(FIX, name, 'config.json'), 'utf8')) as Record<string, unknown>;
const parse = (c: Record<string, unknown>) => builderFor(c).parseConfig(c);

describe('config.json → ModelSpec', () => {
  it('reads every fixture config (transformers 5 spellings: rope_parameters, num_local_experts)', () => {
    for (const name of readdirSync(FIX)) expect(() => parse(config(name))).not.toThrow();
    const q3 = parse(config('qwen3_moe_e16k4_step2'));
    expect(q3).toMatchObject({ headDim: 16, qkNorm: 'head', ropeTheta: 1e6, moe: { numExperts: 16, topK: 4, normTopkProb: true } });
    expect(q3.layers.map((l) => l.mlp)).toEqual(['dense', 'moe', 'dense']);
    expect(parse(config('qwen2_moe_e4k1_dense_legacy')).layers.map((l) => l.mlp)).toEqual(['moe', 'dense']);
    expect(parse(config('granitemoe_e4k2'))).toMatchObject({ embeddingMultiplier: 6, residualMultiplier: 0.4, attentionScale: 0.125, logitsDivisor: 4 });
    expect(parse(config('olmoe_e8k2_tied'))).toMatchObject({ qkNorm: 'full', tieWordEmbeddings: true });
    expect(parse(config('mixtral_e4k2_legacy')).moe.normTopkProb).toBe(true);
  });
  it('reads transformers 4 spellings too (rope_theta, rope_scaling)', () => {
    const c = { ...config('qwen2_moe_e8k2_shared'), rope_parameters: undefined, rope_theta: 123, rope_scaling: { type: 'linear', factor: 2 } };
    expect(parse(c)).toMatchObject({ ropeTheta: 123, ropeScaling: { type: 'linear', factor: 2 } });
  });
  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ['an unknown model_type', { model_type: 'llama' }, /model_type "llama" is not supported; supported: qwen2_moe, qwen3_moe, mixtral, olmoe, granitemoe/],
    ['no model_type', {}, /no "model_type"/],
    ['a missing key', { ...config('olmoe_e8k2_tied'), hidden_size: undefined }, /olmoe config.json is missing "hidden_size"/],
    ['a wrong type', { ...config('mixtral_e4k2_legacy'), num_experts_per_tok: 'two' }, /"num_experts_per_tok" must be an integer/],
    ['heads that do not divide', { ...config('mixtral_e4k2_legacy'), num_key_value_heads: 3 }, /not a multiple of num_key_value_heads 3/],
    ['an unsupported rope type', { ...config('qwen2_moe_e8k2_shared'), rope_parameters: { rope_type: 'yarn', rope_theta: 1e4 } }, /rope_scaling type "yarn" is not supported/],
    ['sliding-window attention', { ...config('qwen2_moe_e8k2_shared'), use_sliding_window: true }, /use_sliding_window: sliding-window attention is not supported/],
    ['clip_qkv', { ...config('olmoe_e8k2_tied'), clip_qkv: 8 }, /clip_qkv/],
  ];
  for (const [what, c, msg] of bad) {
    it(`rejects ${what}, naming it`, () => {
      expect(() => parse(c)).toThrow(ConfigError);
      expect(() => parse(c)).toThrow(msg);
    });
  }
});
