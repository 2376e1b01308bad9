/**
 * DeepSeek-V2 and -V3, after transformers' modeling_deepseek_v2.py / modeling_deepseek_v3.py (5.x):
 * multi-head latent attention (optional q LoRA, kv_lora_rank latent, decoupled rope key shared by the
 * heads, v_head_dim values), YaRN with mscale_all_dim² on the attention logits, the first
 * `first_k_dense_replace` layers dense, shared experts (ungated) on the others.
 * Routing — V2: softmax; "greedy" top-k, or "group_limited_greedy" (groups valued by their best
 * expert, the topk_group best kept); weights × routed_scaling_factor, never renormalised (HF ignores
 * norm_topk_prob for V2). V3: sigmoid; e_score_correction_bias added for the choice only; groups
 * valued by the sum of their two best; weights renormalised iff norm_topk_prob, × routed_scaling_factor.
 */
import * as v from 'valibot';
import { ConfigError, layerSlot, type ArchBuilder, type ArchName, type ModelSpec, type SlotName, type WeightSlot } from '../spec';
import { aliasedInt, attentionSpec, baseEntries, bool, checkExpertTotal, checkTopK, expertSlots, globalSlots, int, mlpSlots, num, parseWith, projNames, single, yarnLogitGain } from './common';

const schema = (arch: 'deepseek_v2' | 'deepseek_v3') =>
  v.looseObject({
    ...baseEntries(arch === 'deepseek_v3' ? { rmsNormEps: 1e-6, maxPositions: 4096, bos: 0, eos: 1 } : { rmsNormEps: 1e-6, maxPositions: 2048, bos: 1, eos: 2 }),
    num_experts_per_tok: int(),
    moe_intermediate_size: int(),
    intermediate_size: int(),
    n_shared_experts: v.nullish(int(0), arch === 'deepseek_v3' ? 1 : 2),
    first_k_dense_replace: v.nullish(int(0), arch === 'deepseek_v3' ? 3 : 0),
    kv_lora_rank: int(),
    q_lora_rank: v.optional(v.nullable(int()), 1536),
    qk_nope_head_dim: int(),
    qk_rope_head_dim: int(),
    v_head_dim: int(),
    routed_scaling_factor: v.nullish(num(true), arch === 'deepseek_v3' ? 2.5 : 1),
    n_group: v.nullish(int(), arch === 'deepseek_v3' ? 8 : 1),
    topk_group: v.nullish(int(), arch === 'deepseek_v3' ? 4 : 1),
    norm_topk_prob: v.nullish(bool(), arch === 'deepseek_v3'),
    topk_method: v.nullish(v.string('a string'), 'greedy'),
    rope_interleave: v.nullish(bool(), true),
    attention_bias: v.nullish(bool(), false),
    mlp_bias: v.nullish(bool(), false),
  });

function parse(arch: 'deepseek_v2' | 'deepseek_v3', config: Record<string, unknown>): ModelSpec {
  const c = parseWith(arch, schema(arch), config);
  const fail = (why: string): never => {
    throw new ConfigError(`${arch} config.json: ${why}`);
  };
  if (c.attention_bias) fail('"attention_bias": true is not supported (DeepSeek checkpoints have none)');
  if (c.mlp_bias) fail('"mlp_bias": true is not supported');
  const base = attentionSpec(arch, { ...c, head_dim: c.qk_rope_head_dim, num_key_value_heads: null }, config, { defaultTheta: 10000, defaultKvHeads: null });
  if (c.qk_rope_head_dim % 2 !== 0) fail(`qk_rope_head_dim ${c.qk_rope_head_dim} must be even for RoPE`);
  const numExperts = aliasedInt(arch, config, ['n_routed_experts', 'num_local_experts', 'num_experts'], 1);
  checkTopK(arch, c.num_experts_per_tok, numExperts);
  checkExpertTotal(arch, base.numLayers, numExperts);
  if (c.first_k_dense_replace > base.numLayers) fail(`first_k_dense_replace ${c.first_k_dense_replace} is more than the ${base.numLayers} layers`);

  let routing: Pick<ModelSpec['moe'], 'scoring' | 'nGroup' | 'topkGroup' | 'groupScore' | 'correctionBias'>;
  if (arch === 'deepseek_v3') {
    if (numExperts % c.n_group !== 0) fail(`n_group ${c.n_group} does not divide the ${numExperts} experts`);
    if (c.topk_group > c.n_group) fail(`topk_group ${c.topk_group} is more than n_group ${c.n_group}`);
    // HF values each group by the sum of its two best (topk(2) fails on a group of one).
    if (numExperts / c.n_group < 2) fail(`n_group ${c.n_group} leaves groups of one expert; V3 routing needs at least two per group`);
    routing = { scoring: 'sigmoid', nGroup: c.n_group, topkGroup: c.topk_group, groupScore: 'top2sum', correctionBias: true };
  } else if (c.topk_method === 'greedy') {
    routing = { scoring: 'softmax', nGroup: 1, topkGroup: 1, groupScore: 'max', correctionBias: false };
  } else if (c.topk_method === 'group_limited_greedy') {
    if (numExperts % c.n_group !== 0) fail(`n_group ${c.n_group} does not divide the ${numExperts} experts`);
    if (c.topk_group > c.n_group) fail(`topk_group ${c.topk_group} is more than n_group ${c.n_group}`);
    routing = { scoring: 'softmax', nGroup: c.n_group, topkGroup: c.topk_group, groupScore: 'max', correctionBias: false };
  } else {
    return fail(`topk_method "${c.topk_method}" is not one transformers' DeepSeek-V2 runs ("greedy", "group_limited_greedy")`);
  }
  const qkDim = c.qk_nope_head_dim + c.qk_rope_head_dim;
  return {
    arch,
    ...base,
    numKvHeads: base.numHeads,
    headDim: qkDim,
    embeddingMultiplier: 1,
    residualMultiplier: 1,
    attentionScale: qkDim ** -0.5 * yarnLogitGain(config),
    logitsDivisor: 1,
    qkvBias: false,
    oBias: false,
    qkNorm: 'none',
    denseIntermediateSize: c.intermediate_size,
    moe: {
      numExperts,
      topK: c.num_experts_per_tok,
      normTopkProb: arch === 'deepseek_v3' ? c.norm_topk_prob : false,
      intermediateSize: c.moe_intermediate_size,
      sharedExpert: c.n_shared_experts > 0 ? { intermediateSize: c.moe_intermediate_size * c.n_shared_experts, gated: false } : null,
      routedScale: c.routed_scaling_factor,
      ...routing,
    },
    mla: {
      qLoraRank: c.q_lora_rank,
      kvLoraRank: c.kv_lora_rank,
      nopeDim: c.qk_nope_head_dim,
      ropeDim: c.qk_rope_head_dim,
      vDim: c.v_head_dim,
      // V2 always rotates interleaved pairs (complex multiply); V3 when rope_interleave (its default).
      ropeInterleaved: arch === 'deepseek_v2' || c.rope_interleave,
    },
    layers: Array.from({ length: base.numLayers }, (_, i) => ({ mlp: i >= c.first_k_dense_replace ? 'moe' : 'dense' })),
  } satisfies ModelSpec;
}

/**
 * Reorders the rope part of each `block`-row group (its last `rope` rows) from interleaved pairs
 * (x0, x1), (x2, x3), … to halves (x0, x2, …, x1, x3, …). Queries and keys get the same order, so
 * their dot products — all attention uses — are unchanged, and the kernels can rotate halves as for
 * every other model.
 */
export function deinterleaveRope(data: Float32Array, rows: number, cols: number, block: number, rope: number): Float32Array {
  const out = new Float32Array(data);
  const half = rope / 2;
  for (let b = 0; b + block <= rows; b += block) {
    const r0 = b + block - rope;
    for (let j = 0; j < half; j++) {
      out.set(data.subarray((r0 + 2 * j) * cols, (r0 + 2 * j + 1) * cols), (r0 + j) * cols);
      out.set(data.subarray((r0 + 2 * j + 1) * cols, (r0 + 2 * j + 2) * cols), (r0 + half + j) * cols);
    }
  }
  return out;
}

/**
 * kv_b [H·(dn+dv), L] as shaders/mla.wgsl reads it: per head, the key rows [dn, L] as stored, then
 * the value rows transposed to [L, dv] (both products then read consecutive addresses per thread).
 */
export function kvBForKernels(data: Float32Array, heads: number, nope: number, vDim: number, lora: number): Float32Array {
  const out = new Float32Array(data);
  for (let h = 0; h < heads; h++) {
    const vb = (h * (nope + vDim) + nope) * lora;
    for (let j = 0; j < vDim; j++) for (let l = 0; l < lora; l++) out[vb + l * vDim + j] = data[vb + j * lora + l]!;
  }
  return out;
}

function ropeRows(slot: WeightSlot, block: number, rope: number, interleaved: boolean): WeightSlot {
  if (!interleaved) return slot;
  const [rows, cols] = slot.shape as [number, number];
  return { ...slot, load: async (r) => deinterleaveRope(await slot.load(r), rows, cols, block, rope) };
}

function weightSlots(s: ModelSpec, reader: Parameters<ArchBuilder['weightSlots']>[1]): WeightSlot[] {
  const m = s.mla;
  if (!m) throw new Error(`${s.arch} spec has no latent-attention settings`);
  const out = globalSlots(s);
  const H = s.hiddenSize, nH = s.numHeads, qk = m.nopeDim + m.ropeDim;
  s.layers.forEach((layer, l) => {
    const p = `model.layers.${l}`;
    const L = (slot: Parameters<typeof layerSlot>[1]): SlotName => layerSlot(l, slot);
    out.push(single(L('attn_norm'), `${p}.input_layernorm.weight`, [H]), single(L('mlp_norm'), `${p}.post_attention_layernorm.weight`, [H]));
    if (m.qLoraRank !== null) {
      out.push(single(L('q_a'), `${p}.self_attn.q_a_proj.weight`, [m.qLoraRank, H]));
      out.push(single(L('q_a_norm'), `${p}.self_attn.q_a_layernorm.weight`, [m.qLoraRank]));
      out.push(ropeRows(single(L('q_b'), `${p}.self_attn.q_b_proj.weight`, [nH * qk, m.qLoraRank]), qk, m.ropeDim, m.ropeInterleaved));
    } else {
      out.push(ropeRows(single(L('q'), `${p}.self_attn.q_proj.weight`, [nH * qk, H]), qk, m.ropeDim, m.ropeInterleaved));
    }
    const kvA = m.kvLoraRank + m.ropeDim;
    out.push(ropeRows(single(L('kv_a'), `${p}.self_attn.kv_a_proj_with_mqa.weight`, [kvA, H]), kvA, m.ropeDim, m.ropeInterleaved));
    out.push(single(L('kv_a_norm'), `${p}.self_attn.kv_a_layernorm.weight`, [m.kvLoraRank]));
    const kvB = single(L('kv_b'), `${p}.self_attn.kv_b_proj.weight`, [nH * (m.nopeDim + m.vDim), m.kvLoraRank]);
    out.push({ ...kvB, load: async (r) => kvBForKernels(await kvB.load(r), nH, m.nopeDim, m.vDim, m.kvLoraRank) });
    out.push(single(L('o'), `${p}.self_attn.o_proj.weight`, [H, nH * m.vDim]));
    if (layer.mlp === 'dense') {
      out.push(...mlpSlots(l, 'mlp', `${p}.mlp`, H, s.denseIntermediateSize));
      return;
    }
    const E = s.moe.numExperts;
    out.push(single(L('router'), `${p}.mlp.gate.weight`, [E, H]));
    if (s.moe.correctionBias) out.push(single(L('router_bias'), `${p}.mlp.gate.e_score_correction_bias`, [E]));
    out.push(...expertSlots(l, E, H, s.moe.intermediateSize, reader, `${p}.mlp.experts`, projNames(`${p}.mlp`)));
    const se = s.moe.sharedExpert;
    if (se) out.push(...mlpSlots(l, 'shared', `${p}.mlp.shared_experts`, H, se.intermediateSize));
  });
  return out;
}

const builder = (arch: ArchName & ('deepseek_v2' | 'deepseek_v3')): ArchBuilder => ({ arch, parseConfig: (config) => parse(arch, config), weightSlots });

export const deepseekV2 = builder('deepseek_v2');
export const deepseekV3 = builder('deepseek_v3');
