import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { builderFor, SUPPORTED_MODEL_TYPES } from '../../../src/engine/model/arch';
import { parseRope } from '../../../src/engine/model/arch/common';
import { qwen2Window } from '../../../src/engine/model/arch/qwen2_moe';
import { ConfigError, type ModelSpec } from '../../../src/engine/model/spec';
import { CONFIGS } from './configs';

type Cfg = Record<string, unknown>;
const parse = (c: Cfg) => builderFor(c).parseConfig(c);
const without = (c: Cfg, ...keys: string[]) => Object.fromEntries(Object.entries(c).filter(([k]) => !keys.includes(k)));
const rejects = (c: Cfg, msg: RegExp) => {
  expect(() => parse(c)).toThrow(ConfigError);
  expect(() => parse(c)).toThrow(msg);
};

describe('config.json → ModelSpec, one valid config per arch', () => {
  it('qwen2_moe', () => {
    expect(parse(CONFIGS.qwen2_moe)).toEqual({
      arch: 'qwen2_moe', vocabSize: 128, hiddenSize: 32, numLayers: 4, numHeads: 4, numKvHeads: 2, headDim: 8,
      rmsNormEps: 1e-6, ropeTheta: 1e6, ropeScaling: { type: 'default' }, maxPositions: 512, tieWordEmbeddings: false,
      qkvBias: true, oBias: false, qkNorm: 'none', embeddingMultiplier: 1, residualMultiplier: 1, attentionScale: null, logitsDivisor: 1,
      denseIntermediateSize: 64,
      moe: { numExperts: 8, topK: 2, normTopkProb: false, intermediateSize: 12, sharedExpert: { intermediateSize: 48, gated: true } },
      layers: [{ mlp: 'moe' }, { mlp: 'dense' }, { mlp: 'moe' }, { mlp: 'moe' }],
      bosTokenId: null, eosTokenIds: [151643],
    } satisfies ModelSpec);
  });
  it('qwen3_moe', () => {
    expect(parse(CONFIGS.qwen3_moe)).toEqual({
      arch: 'qwen3_moe', vocabSize: 128, hiddenSize: 32, numLayers: 4, numHeads: 4, numKvHeads: 2, headDim: 16,
      rmsNormEps: 1e-6, ropeTheta: 1e6, ropeScaling: { type: 'default' }, maxPositions: 256, tieWordEmbeddings: true,
      qkvBias: false, oBias: false, qkNorm: 'head', embeddingMultiplier: 1, residualMultiplier: 1, attentionScale: null, logitsDivisor: 1,
      denseIntermediateSize: 40,
      moe: { numExperts: 16, topK: 4, normTopkProb: true, intermediateSize: 12, sharedExpert: null },
      layers: [{ mlp: 'dense' }, { mlp: 'moe' }, { mlp: 'dense' }, { mlp: 'moe' }],
      bosTokenId: null, eosTokenIds: [151645, 151643],
    } satisfies ModelSpec);
  });
  it('mixtral', () => {
    expect(parse(CONFIGS.mixtral)).toEqual({
      arch: 'mixtral', vocabSize: 128, hiddenSize: 32, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 8,
      rmsNormEps: 1e-5, ropeTheta: 1e6, ropeScaling: { type: 'default' }, maxPositions: 131072, tieWordEmbeddings: false,
      qkvBias: false, oBias: false, qkNorm: 'none', embeddingMultiplier: 1, residualMultiplier: 1, attentionScale: null, logitsDivisor: 1,
      denseIntermediateSize: 24,
      moe: { numExperts: 4, topK: 2, normTopkProb: true, intermediateSize: 24, sharedExpert: null },
      layers: [{ mlp: 'moe' }, { mlp: 'moe' }],
      bosTokenId: 1, eosTokenIds: [2],
    } satisfies ModelSpec);
  });
  it('olmoe', () => {
    expect(parse(CONFIGS.olmoe)).toEqual({
      arch: 'olmoe', vocabSize: 128, hiddenSize: 32, numLayers: 2, numHeads: 4, numKvHeads: 4, headDim: 8,
      rmsNormEps: 1e-5, ropeTheta: 10000, ropeScaling: { type: 'linear', factor: 4 }, maxPositions: 4096, tieWordEmbeddings: false,
      qkvBias: false, oBias: false, qkNorm: 'full', embeddingMultiplier: 1, residualMultiplier: 1, attentionScale: null, logitsDivisor: 1,
      denseIntermediateSize: 12,
      moe: { numExperts: 8, topK: 8, normTopkProb: false, intermediateSize: 12, sharedExpert: null },
      layers: [{ mlp: 'moe' }, { mlp: 'moe' }],
      bosTokenId: null, eosTokenIds: [50279],
    } satisfies ModelSpec);
  });
  it('granitemoe', () => {
    expect(parse(CONFIGS.granitemoe)).toEqual({
      arch: 'granitemoe', vocabSize: 128, hiddenSize: 32, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 8,
      rmsNormEps: 1e-6, ropeTheta: 10000, ropeScaling: { type: 'default' }, maxPositions: 2048, tieWordEmbeddings: true,
      qkvBias: true, oBias: true, qkNorm: 'none', embeddingMultiplier: 12, residualMultiplier: 0.22, attentionScale: 0.015625, logitsDivisor: 6,
      denseIntermediateSize: 24,
      moe: { numExperts: 4, topK: 2, normTopkProb: true, intermediateSize: 24, sharedExpert: null },
      layers: [{ mlp: 'moe' }, { mlp: 'moe' }],
      bosTokenId: 0, eosTokenIds: [0],
    } satisfies ModelSpec);
  });

  it('reads every fixture config in tests/fixtures (transformers 5.17 output), when present', () => {
    const FIX = join(import.meta.dirname, '..', '..', 'fixtures');
    const names = existsSync(FIX) ? readdirSync(FIX).filter((n) => existsSync(join(FIX, n, 'config.json'))) : [];
    for (const n of names) {
      const c = JSON.parse(readFileSync(join(FIX, n, 'config.json'), 'utf8')) as Cfg;
      expect(parse(c).arch).toBe(c.model_type);
    }
  });
});

describe('HF defaults for keys left out', () => {
  it('use each class default (kv heads, eps, context, theta, eos, top-k, biases, norm_topk_prob)', () => {
    const q2 = parse({ ...without(CONFIGS.qwen2_moe, 'num_key_value_heads', 'rms_norm_eps', 'max_position_embeddings', 'rope_parameters', 'eos_token_id', 'num_experts_per_tok', 'qkv_bias', 'mlp_only_layers', 'norm_topk_prob', 'decoder_sparse_step'), num_attention_heads: 16, hidden_size: 128 });
    expect(q2).toMatchObject({ numKvHeads: 16, headDim: 8, rmsNormEps: 1e-6, maxPositions: 32768, ropeTheta: 10000, eosTokenIds: [], qkvBias: true, moe: { topK: 4, normTopkProb: false } });
    expect(q2.layers.every((l) => l.mlp === 'moe')).toBe(true);
    const mx = parse({ ...without(CONFIGS.mixtral, 'num_key_value_heads', 'rms_norm_eps', 'rope_parameters', 'bos_token_id', 'eos_token_id', 'num_experts_per_tok'), num_attention_heads: 8 });
    expect(mx).toMatchObject({ numKvHeads: 8, headDim: 4, rmsNormEps: 1e-5, ropeTheta: 1e6, bosTokenId: 1, eosTokenIds: [2], moe: { topK: 2 } });
    expect(parse({ ...without(CONFIGS.qwen3_moe, 'num_key_value_heads', 'head_dim', 'attention_bias', 'num_experts_per_tok'), hidden_size: 256 })).toMatchObject({ numKvHeads: 4, headDim: 64, qkvBias: false, oBias: false, moe: { topK: 8 } });
    expect(parse(without(CONFIGS.granitemoe, 'num_key_value_heads', 'embedding_multiplier', 'attention_multiplier', 'residual_multiplier', 'logits_scaling', 'attention_bias'))).toMatchObject({
      numKvHeads: 4, embeddingMultiplier: 1, attentionScale: 1, residualMultiplier: 1, logitsDivisor: 1, qkvBias: false, oBias: false,
    });
    expect(parse(without(CONFIGS.olmoe, 'eos_token_id', 'norm_topk_prob'))).toMatchObject({ eosTokenIds: [50279], moe: { normTopkProb: false } });
  });
  it('null means none / "as many as the query heads" / the default', () => {
    expect(parse({ ...CONFIGS.mixtral, eos_token_id: null, bos_token_id: null, num_key_value_heads: null, head_dim: null })).toMatchObject({ eosTokenIds: [], bosTokenId: null, numKvHeads: 4, headDim: 8 });
    expect(parse({ ...CONFIGS.granitemoe, logits_scaling: null, mlp_only_layers: null })).toMatchObject({ logitsDivisor: 1 });
    expect(parse({ ...CONFIGS.qwen2_moe, mlp_only_layers: null }).layers.every((l) => l.mlp === 'moe')).toBe(true);
  });
  it('eos_token_id as an int or a list', () => {
    expect(parse({ ...CONFIGS.olmoe, eos_token_id: 7 }).eosTokenIds).toEqual([7]);
    expect(parse({ ...CONFIGS.olmoe, eos_token_id: [7, 9] }).eosTokenIds).toEqual([7, 9]);
    expect(parse({ ...CONFIGS.olmoe, bos_token_id: [3, 4] }).bosTokenId).toBe(3);
  });
});

describe('the sparse-layer rule: i ∉ mlp_only_layers && num_experts > 0 && (i + 1) % decoder_sparse_step == 0', () => {
  const table: Array<[Cfg, string]> = [
    [{ decoder_sparse_step: 1, mlp_only_layers: [] }, 'MMMM'],
    [{ decoder_sparse_step: 2, mlp_only_layers: [] }, 'DMDM'],
    [{ decoder_sparse_step: 3, mlp_only_layers: [] }, 'DDMD'],
    [{ decoder_sparse_step: 1, mlp_only_layers: [0, 3, 9] }, 'DMMD'],
    [{ decoder_sparse_step: 2, mlp_only_layers: [1] }, 'DDDM'],
    [{ decoder_sparse_step: 1, mlp_only_layers: [], num_experts: 0 }, 'DDDD'],
  ];
  for (const arch of ['qwen2_moe', 'qwen3_moe'] as const) {
    for (const [over, want] of table) {
      it(`${arch} ${JSON.stringify(over)} → ${want}`, () => {
        const s = parse({ ...CONFIGS[arch], ...over });
        expect(s.layers.map((l) => (l.mlp === 'moe' ? 'M' : 'D')).join('')).toBe(want);
      });
    }
  }
  it('needs intermediate_size only when some layer is dense', () => {
    expect(parse(without({ ...CONFIGS.qwen3_moe, decoder_sparse_step: 1 }, 'intermediate_size')).denseIntermediateSize).toBe(0);
    rejects(without(CONFIGS.qwen3_moe, 'intermediate_size'), /qwen3_moe config.json is missing "intermediate_size"/);
  });
});

describe('RoPE settings', () => {
  const rope = (c: Cfg, theta = 10000) => parseRope('x', c, theta);
  it('reads transformers 5 rope_parameters and 4.x rope_theta / rope_scaling', () => {
    expect(rope({ rope_parameters: { rope_type: 'default', rope_theta: 5e5 } })).toEqual({ ropeTheta: 5e5, ropeScaling: { type: 'default' } });
    expect(rope({ rope_theta: 123 })).toEqual({ ropeTheta: 123, ropeScaling: { type: 'default' } });
    expect(rope({ rope_theta: 123, rope_scaling: { type: 'linear', factor: 2 } })).toEqual({ ropeTheta: 123, ropeScaling: { type: 'linear', factor: 2 } });
    expect(rope({ rope_parameters: { rope_type: 'linear', factor: 8, rope_theta: 1e4 } })).toEqual({ ropeTheta: 1e4, ropeScaling: { type: 'linear', factor: 8 } });
    // rope_scaling wins over rope_parameters, as in transformers' convert_rope_params_to_dict.
    expect(rope({ rope_scaling: { rope_type: 'linear', factor: 3 }, rope_parameters: { rope_type: 'default', rope_theta: 7 } }).ropeScaling).toEqual({ type: 'linear', factor: 3 });
    expect(rope({ rope_scaling: null, rope_parameters: null }, 1e6)).toEqual({ ropeTheta: 1e6, ropeScaling: { type: 'default' } });
    expect(rope({ rope_parameters: { full_attention: { rope_type: 'default', rope_theta: 99 } } })).toEqual({ ropeTheta: 99, ropeScaling: { type: 'default' } });
    expect(rope({ partial_rotary_factor: 1 }).ropeTheta).toBe(10000);
  });
  it('reads YaRN as HF derives it: attention factor from mscale / mscale_all_dim, else from the factor', () => {
    const y = (rp: Record<string, unknown>) => rope({ rope_parameters: { rope_type: 'yarn', rope_theta: 1e4, original_max_position_embeddings: 32, ...rp } }).ropeScaling;
    expect(y({ factor: 4 })).toEqual({ type: 'yarn', factor: 4, originalMaxPositions: 32, betaFast: 32, betaSlow: 1, attentionFactor: 0.1 * Math.log(4) + 1, truncate: true });
    expect(y({ factor: 4, mscale: 1, mscale_all_dim: 1 })).toMatchObject({ attentionFactor: 1 });
    expect(y({ factor: 40, mscale: 0.707, mscale_all_dim: 1, beta_fast: 16, truncate: false })).toMatchObject({ attentionFactor: (0.0707 * Math.log(40) + 1) / (0.1 * Math.log(40) + 1), betaFast: 16, truncate: false });
    expect(y({ factor: 4, attention_factor: 0.5 })).toMatchObject({ attentionFactor: 0.5 });
    // No factor: the context's ratio to the pretraining context (DeepSeek-V3's convention in HF).
    expect(rope({ max_position_embeddings: 128, rope_parameters: { rope_type: 'yarn', original_max_position_embeddings: 32 } }).ropeScaling).toMatchObject({ factor: 4 });
  });

  it('refuses other scaling types and partial rotary by name', () => {
    expect(() => rope({ rope_parameters: { rope_type: 'longrope', factor: 4, rope_theta: 1e4 } })).toThrow(/x config.json "rope_parameters": RoPE scaling type "longrope" is not supported \(none, "default", "linear" and "yarn" are\)/);
    expect(() => rope({ rope_parameters: { rope_type: 'yarn', factor: 4, rope_theta: 1e4 } })).toThrow(/"rope_parameters.original_max_position_embeddings" must be a number > 0 for YaRN, got undefined/);
    expect(() => rope({ rope_scaling: { type: 'dynamic', factor: 2 } })).toThrow(/"rope_scaling": RoPE scaling type "dynamic" is not supported/);
    expect(() => rope({ rope_scaling: { type: 'linear' } })).toThrow(/"rope_scaling.factor" must be a number > 0 for linear RoPE scaling, got undefined/);
    expect(() => rope({ rope_theta: -1 })).toThrow(/"rope_theta" must be a number > 0, got -1/);
    expect(() => rope({ rope_scaling: 'linear' })).toThrow(/"rope_scaling" must be an object/);
    expect(() => rope({ partial_rotary_factor: 0.5 })).toThrow(/"partial_rotary_factor" 0.5 is not supported/);
    expect(() => rope({ rope_parameters: { sliding_attention: { rope_theta: 1 } } })).toThrow(/sliding_attention layers only/);
    rejects({ ...CONFIGS.qwen2_moe, rope_parameters: { rope_type: 'llama3', rope_theta: 1e4, factor: 8 } }, /qwen2_moe config.json "rope_parameters": RoPE scaling type "llama3" is not supported/);
  });
});

describe('sliding windows: context capped at the window, where full attention is exact', () => {
  it('mixtral sliding_window', () => {
    expect(parse({ ...CONFIGS.mixtral, sliding_window: 4096 }).maxPositions).toBe(4096);
    expect(parse({ ...CONFIGS.mixtral, sliding_window: null }).maxPositions).toBe(131072);
  });
  it('qwen3_moe: only with use_sliding_window', () => {
    expect(parse({ ...CONFIGS.qwen3_moe, use_sliding_window: true, sliding_window: 100 }).maxPositions).toBe(100);
    expect(parse({ ...CONFIGS.qwen3_moe, use_sliding_window: false, sliding_window: 100 }).maxPositions).toBe(256);
  });
  it('qwen2_moe: only when some layer slides (layer_types, or HF default types from max_window_layers)', () => {
    expect(parse({ ...CONFIGS.qwen2_moe, use_sliding_window: true, sliding_window: 64 }).maxPositions).toBe(64);
    expect(parse({ ...CONFIGS.qwen2_moe, use_sliding_window: true, sliding_window: 64, layer_types: ['full_attention', 'full_attention', 'full_attention', 'full_attention'] }).maxPositions).toBe(512);
    expect(qwen2Window({ use_sliding_window: true, sliding_window: 9, max_window_layers: 0, num_hidden_layers: 4 })).toBeNull();
    expect(qwen2Window({ use_sliding_window: true, sliding_window: 9, max_window_layers: 1, num_hidden_layers: 4 })).toBe(9);
    rejects({ ...CONFIGS.qwen2_moe, layer_types: ['full_attention'] }, /"layer_types" has 1 entries for 4 layers/);
  });
});

describe('bad configs: a ConfigError naming the key and the model_type', () => {
  it('an unknown or missing model_type lists the supported ones', () => {
    rejects({ model_type: 'llama' }, /model_type "llama" is not supported; supported: qwen2_moe, qwen3_moe, mixtral, olmoe, granitemoe, deepseek_v2, deepseek_v3/);
    rejects({}, /config.json has no "model_type" \(supported: qwen2_moe, qwen3_moe, mixtral, olmoe, granitemoe, deepseek_v2, deepseek_v3\)/);
    rejects({ model_type: 3 }, /"model_type" must be a string, got 3/);
    rejects({ model_type: 'constructor' }, /model_type "constructor" is not supported/);
    expect(SUPPORTED_MODEL_TYPES).toEqual(['qwen2_moe', 'qwen3_moe', 'mixtral', 'olmoe', 'granitemoe', 'deepseek_v2', 'deepseek_v3']);
  });
  const required: Record<string, string[]> = {
    qwen2_moe: ['vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'moe_intermediate_size', 'shared_expert_intermediate_size'],
    qwen3_moe: ['vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'moe_intermediate_size'],
    mixtral: ['vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size'],
    olmoe: ['vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size'],
    granitemoe: ['vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size'],
  };
  for (const [arch, keys] of Object.entries(required)) {
    for (const key of keys) {
      it(`${arch} without ${key}`, () => rejects(without(CONFIGS[arch as keyof typeof CONFIGS], key), new RegExp(`^${arch} config.json is missing "${key}"`)));
    }
    it(`${arch} without its expert count (either spelling)`, () => rejects(without(CONFIGS[arch as keyof typeof CONFIGS], 'num_experts', 'num_local_experts'), new RegExp(`${arch} config.json is missing "num_(local_)?experts" \\(or "num_(local_)?experts"\\)`)));
  }
  it('the other spelling of the expert count is accepted', () => {
    expect(parse({ ...without(CONFIGS.qwen2_moe, 'num_experts'), num_local_experts: 6 }).moe.numExperts).toBe(6);
    expect(parse({ ...without(CONFIGS.mixtral, 'num_local_experts'), num_experts: 6 }).moe.numExperts).toBe(6);
  });
  it('wrong types and values, all named at once', () => {
    rejects({ ...CONFIGS.mixtral, num_experts_per_tok: 'two' }, /^mixtral config.json "num_experts_per_tok" must be an integer from 1 to 16777216, got "two"$/);
    rejects({ ...CONFIGS.mixtral, hidden_size: 32.5, vocab_size: 0 }, /^mixtral config.json "vocab_size" must be an integer from 1 to 16777216, got 0; "hidden_size" must be an integer from 1 to 16777216, got 32.5$/);
    rejects({ ...CONFIGS.qwen2_moe, mlp_only_layers: [1, 'x'] }, /"mlp_only_layers.1" must be an integer from 0 to 16777216, got "x"/);
    rejects({ ...CONFIGS.qwen2_moe, norm_topk_prob: 'yes' }, /"norm_topk_prob" must be true or false, got "yes"/);
    rejects({ ...CONFIGS.qwen2_moe, rms_norm_eps: 0 }, /"rms_norm_eps" must be a number > 0, got 0/);
    rejects({ ...CONFIGS.qwen2_moe, eos_token_id: 'x' }, /"eos_token_id" must be a token id or a list of token ids/);
    rejects({ ...CONFIGS.qwen2_moe, decoder_sparse_step: 0 }, /"decoder_sparse_step" must be an integer from 1 to 16777216, got 0/);
    // Forged sizes that JavaScript calls integers (fuzzing found num_experts: 1e308 reaching an array length).
    rejects({ ...CONFIGS.olmoe, num_experts: 1e308 }, /"num_experts" must be an integer from 1 to 4096, got 1e\+308/);
    rejects({ ...CONFIGS.mixtral, num_hidden_layers: 2 ** 40 }, /"num_hidden_layers" must be an integer from 1 to 1024/);
    rejects({ ...CONFIGS.mixtral, num_local_experts: 'x' }, /mixtral config.json "num_local_experts" must be an integer from 1 to 4096, got "x"/);
    rejects({ ...CONFIGS.mixtral, num_key_value_heads: 3 }, /num_attention_heads 4 is not a multiple of num_key_value_heads 3/);
    rejects({ ...CONFIGS.mixtral, num_experts_per_tok: 5 }, /num_experts_per_tok 5 is more than the 4 experts/);
    rejects({ ...CONFIGS.mixtral, head_dim: 7 }, /head_dim 7 must be even for RoPE/);
    rejects({ ...CONFIGS.mixtral, hidden_act: 'gelu' }, /"hidden_act" must be "silu" \(the expert kernels are SwiGLU\), got "gelu"/);
    expect(parse({ ...CONFIGS.mixtral, hidden_act: 'swish' }).arch).toBe('mixtral');
  });
  it('olmoe clip_qkv is refused unless null', () => {
    rejects({ ...CONFIGS.olmoe, clip_qkv: 8 }, /olmoe config.json sets "clip_qkv" to 8: clamping q\/k\/v is not supported/);
    expect(parse({ ...CONFIGS.olmoe, clip_qkv: null }).arch).toBe('olmoe');
  });
});
