import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deepseekV2, deepseekV3, deinterleaveRope, kvBForKernels } from '../../../src/engine/model/arch/deepseek';
import { ConfigError } from '../../../src/engine/model/spec';
import { invFreq } from '../../../src/engine/ops/rope';

const ROOT = join(import.meta.dirname, '..', '..', 'fixtures');
const FIXTURES = ['deepseek_v2_e8k2_greedy_legacy', 'deepseek_v2_e8k3_group_yarn', 'deepseek_v3_e16k4_g4_yarn', 'deepseek_v3_e8k2_nolora_legacy'];
const read = (name: string, file: string) => JSON.parse(readFileSync(join(ROOT, name, file), 'utf8')) as Record<string, unknown>;
const parse = (c: Record<string, unknown>) => (c.model_type === 'deepseek_v3' ? deepseekV3 : deepseekV2).parseConfig(c);

describe('DeepSeek config → spec', () => {
  for (const name of FIXTURES) {
    it(`${name}: RoPE frequencies and the attention scale are the ones transformers derived`, () => {
      const spec = parse(read(name, 'config.json'));
      const rope = read(name, 'reference.json').rope as { inv_freq: number[]; attention_scaling: number; attn_scaling: number };
      const inv = invFreq(spec.mla!.ropeDim, spec.ropeTheta, spec.ropeScaling);
      rope.inv_freq.forEach((f, i) => expect(Math.abs(inv[i]! - f) / f).toBeLessThan(1e-6));
      expect(spec.ropeScaling.type === 'yarn' ? spec.ropeScaling.attentionFactor : 1).toBeCloseTo(rope.attention_scaling, 6);
      expect(spec.attentionScale).toBeCloseTo(rope.attn_scaling, 7);
    });
  }

  it('routing rules: V3 sigmoid + bias + top-2 groups; V2 softmax greedy or max-valued groups, never renormalised', () => {
    expect(parse(read('deepseek_v3_e16k4_g4_yarn', 'config.json')).moe).toMatchObject({ scoring: 'sigmoid', nGroup: 4, topkGroup: 2, groupScore: 'top2sum', correctionBias: true, normTopkProb: true, routedScale: 2.5 });
    expect(parse(read('deepseek_v2_e8k3_group_yarn', 'config.json')).moe).toMatchObject({ scoring: 'softmax', nGroup: 4, topkGroup: 2, groupScore: 'max', correctionBias: false, normTopkProb: false });
    const greedy = parse({ ...read('deepseek_v2_e8k2_greedy_legacy', 'config.json'), norm_topk_prob: true, n_group: 4, topk_group: 1 });
    expect(greedy.moe).toMatchObject({ nGroup: 1, normTopkProb: false, routedScale: 1.5 });
    expect(greedy.layers.map((l) => l.mlp)).toEqual(['dense', 'moe', 'moe']);
    expect(greedy.mla).toEqual({ qLoraRank: null, kvLoraRank: 16, nopeDim: 8, ropeDim: 8, vDim: 12, ropeInterleaved: true });
    expect(parse(read('deepseek_v3_e8k2_nolora_legacy', 'config.json')).mla!.ropeInterleaved).toBe(false);
  });

  it('refuses what transformers would not run, naming the key', () => {
    const v2 = read('deepseek_v2_e8k2_greedy_legacy', 'config.json');
    const v3 = read('deepseek_v3_e16k4_g4_yarn', 'config.json');
    expect(() => parse({ ...v2, topk_method: 'noaux_tc' })).toThrow(/deepseek_v2 config.json: topk_method "noaux_tc" is not one/);
    expect(() => parse({ ...v3, n_group: 3 })).toThrow(/n_group 3 does not divide the 16 experts/);
    expect(() => parse({ ...v3, n_group: 16, topk_group: 2 })).toThrow(/groups of one expert/);
    expect(() => parse({ ...v3, topk_group: 5 })).toThrow(/topk_group 5 is more than n_group 4/);
    expect(() => parse({ ...v3, attention_bias: true })).toThrow(ConfigError);
    expect(() => parse({ ...v3, kv_lora_rank: null })).toThrow(/"kv_lora_rank" must be an integer/);
    expect(() => parse({ ...v3, first_k_dense_replace: 9 })).toThrow(/first_k_dense_replace 9 is more than the 3 layers/);
  });
});

describe('weight layouts for the kernels', () => {
  it('rope rows: interleaved pairs → halves, only in the last `rope` rows of each block', () => {
    const cols = 2;
    const rows = Float32Array.from({ length: 2 * 6 * cols }, (_, i) => Math.floor(i / cols)); // row r holds r
    const out = deinterleaveRope(rows, 12, cols, 6, 4);
    const order = Array.from({ length: 12 }, (_, r) => out[r * cols]);
    expect(order).toEqual([0, 1, 2, 4, 3, 5, 6, 7, 8, 10, 9, 11]);
  });
  it('kv_b: key rows kept, value rows transposed per head', () => {
    const [H, dn, dv, L] = [2, 1, 2, 3];
    const w = Float32Array.from({ length: H * (dn + dv) * L }, (_, i) => i);
    const out = kvBForKernels(w, H, dn, dv, L);
    // head 0: key row [0 1 2]; value rows [3 4 5], [6 7 8] → [L, dv] = 3 6 4 7 5 8
    expect(Array.from(out.slice(0, 9))).toEqual([0, 1, 2, 3, 6, 4, 7, 5, 8]);
    expect(Array.from(out.slice(9, 12))).toEqual([9, 10, 11]);
  });
});
