/**
 * GGUF metadata → the HF config.json the same model would have, so the existing architecture
 * builders (model/arch/*) parse it and MoE semantics stay in one place. Keys follow gguf-py's
 * constants (`<arch>.block_count`, `.expert_count`, …); where a llama.cpp arch hard-codes a choice
 * HF keeps in config (renormalising the top-k weights, which layers are dense, q/k/v biases) the
 * GGUF's own key wins when present, else llama.cpp's choice, else the tensors present decide.
 */
import type { ArchName } from '../model/spec';
import { GgufError, type GgufHeader, GgufMetadata } from './gguf';
import type { GgufLayout } from './gguf-reader';

interface ArchInfo {
  hf: ArchName;
  /** llama.cpp's norm_w for this arch's build_moe_ffn (renormalise top-k), when the file does not say. */
  normTopk: boolean;
  /** convert_hf_to_gguf.py permutes Q/K rows for this arch (LlamaModel and its subclasses). */
  permuted: boolean;
  layout: Pick<GgufLayout, 'moe' | 'router' | 'shared'>;
}

const MLP = { moe: 'mlp', router: 'gate.weight', shared: 'mlp.shared_expert' };

/** GGUF architectures read here, by general.architecture. */
export const GGUF_ARCHS: Readonly<Record<string, ArchInfo>> = {
  qwen2moe: { hf: 'qwen2_moe', normTopk: false, permuted: false, layout: MLP },
  qwen3moe: { hf: 'qwen3_moe', normTopk: true, permuted: false, layout: MLP },
  // Mixtral converts as arch "llama" with experts.
  llama: { hf: 'mixtral', normTopk: true, permuted: true, layout: MLP },
  olmoe: { hf: 'olmoe', normTopk: false, permuted: false, layout: MLP },
  granitemoe: { hf: 'granitemoe', normTopk: true, permuted: true, layout: { moe: 'block_sparse_moe', router: 'router.weight', shared: 'mlp.shared_expert' } },
  // DeepSeek-V2 and -V3 (the sigmoid gating / exp_probs_b tells them apart). llama.cpp's default for
  // expert_weights_norm is false.
  deepseek2: { hf: 'deepseek_v2', normTopk: false, permuted: false, layout: { ...MLP, shared: 'mlp.shared_experts' } },
};

export interface GgufModelConfig {
  /** general.architecture */
  ggufArch: string;
  config: Record<string, unknown>;
  layout: GgufLayout;
}

/** Token ids the file names as end of generation (eos, and eot/eom where given). */
export function eogIds(meta: GgufMetadata): number[] {
  const ids = ['tokenizer.ggml.eos_token_id', 'tokenizer.ggml.eot_token_id', 'tokenizer.ggml.eom_token_id'].map((k) => meta.uint(k)).filter((x): x is number => x !== undefined);
  return [...new Set(ids)];
}

export function ggufModelConfig(header: GgufHeader, fileName: string): GgufModelConfig {
  const meta = new GgufMetadata(header.metadata, fileName);
  const fail = (why: string): never => {
    throw new GgufError(`${fileName}: ${why}`);
  };
  const arch = meta.string('general.architecture');
  if (arch === undefined) fail('has no "general.architecture"');
  const info = Object.hasOwn(GGUF_ARCHS, arch!) ? GGUF_ARCHS[arch!] : undefined;
  if (!info) fail(`architecture "${arch}" is not supported (supported: ${Object.keys(GGUF_ARCHS).join(', ')})`);
  const k = (key: string) => `${arch}.${key}`;
  const need = (key: string): number => meta.uniformUint(k(key)) ?? fail(`is missing "${k(key)}"`);
  const tensors = header.tensors;
  const has = (n: string) => tensors.has(n);
  const ne = (n: string) => tensors.get(n)?.ne;

  const numLayers = need('block_count');
  const hidden = need('embedding_length');
  const numHeads = need('attention.head_count');
  const numKvHeads = meta.uniformUint(k('attention.head_count_kv')) ?? numHeads;
  const numExperts = meta.uint(k('expert_count')) ?? 0;
  if (numExperts === 0) fail(`"${arch}" without experts ("${k('expert_count')}" is ${numExperts === 0 && meta.has(k('expert_count')) ? '0' : 'absent'}): not a mixture-of-experts model`);
  const topK = need('expert_used_count');
  const eps = meta.number(k('attention.layer_norm_rms_epsilon')) ?? fail(`is missing "${k('attention.layer_norm_rms_epsilon')}"`);
  const mla = arch === 'deepseek2';
  // Latent-attention files written for llama.cpp's absorbed attention give the MQA widths in
  // key_length/value_length and the per-head ones in *_mla.
  const keyLen = (mla ? meta.uint(k('attention.key_length_mla')) : undefined) ?? meta.uint(k('attention.key_length'));
  const valueLen = (mla ? meta.uint(k('attention.value_length_mla')) : undefined) ?? meta.uint(k('attention.value_length'));
  if (!mla && keyLen !== undefined && valueLen !== undefined && keyLen !== valueLen) fail(`key_length ${keyLen} ≠ value_length ${valueLen} is not supported`);
  const headDim = keyLen ?? Math.floor(hidden / numHeads);
  const ropeDims = meta.uint(k('rope.dimension_count'));

  const embd = ne('token_embd.weight') ?? fail('has no token_embd.weight');
  const vocab = embd[1] ?? fail(`token_embd.weight has shape [${embd.join(', ')}], expected [hidden, vocab]`);
  // Sizes that set how much is built before any tensor shape is checked must agree with the
  // tensors first: a forged block_count or expert_count must not allocate by itself.
  if (embd[0] !== hidden) fail(`"${k('embedding_length')}" is ${hidden} but token_embd.weight is [${embd.join(', ')}] (hidden size first)`);
  let blocks = 0;
  for (const name of tensors.keys()) {
    const m = /^blk\.(\d+)\./.exec(name);
    if (m) blocks = Math.max(blocks, Number(m[1]) + 1);
  }
  if (numLayers !== blocks) fail(`"${k('block_count')}" is ${numLayers} but the file has tensors for ${blocks} blocks`);

  // Which layers are routed: those with a router tensor (llama.cpp has no key for dense layers).
  const dense: number[] = [];
  for (let l = 0; l < numLayers; l++) if (!has(`blk.${l}.ffn_gate_inp.weight`)) dense.push(l);
  if (dense.length === numLayers) fail('has no layer with experts (no blk.<n>.ffn_gate_inp.weight)');
  const firstMoe = [...Array(numLayers).keys()].find((l) => !dense.includes(l))!;
  const routerRows = ne(`blk.${firstMoe}.ffn_gate_inp.weight`)![1] ?? 1;
  if (routerRows !== numExperts) fail(`"${k('expert_count')}" is ${numExperts} but blk.${firstMoe}.ffn_gate_inp.weight routes to ${routerRows} experts`);
  if (numHeads > hidden || numKvHeads > numHeads) fail(`${numHeads} attention heads (${numKvHeads} for keys/values) cannot split a hidden size of ${hidden}`);
  const expertWidth = meta.uint(k('expert_feed_forward_length')) ?? ne(`blk.${firstMoe}.ffn_gate_exps.weight`)?.[1] ?? ne(`blk.${firstMoe}.ffn_gate.0.weight`)?.[1];
  const ffn = meta.uniformUint(k('feed_forward_length')) ?? (dense.length ? ne(`blk.${dense[0]}.ffn_gate.weight`)?.[1] : undefined);
  const sharedWidth = meta.uint(k('expert_shared_feed_forward_length')) ?? ne(`blk.${firstMoe}.ffn_gate_shexp.weight`)?.[1] ?? 0;

  const bias = (n: string) => has(`blk.0.attn_${n}.bias`);
  const normTopk = meta.bool(k('expert_weights_norm')) ?? info!.normTopk;
  const eos = eogIds(meta);
  const bos = meta.uint('tokenizer.ggml.bos_token_id');

  const ropeType = meta.string(k('rope.scaling.type'));
  const ropeFactor = meta.number(k('rope.scaling.factor')) ?? meta.number(k('rope.scale_linear'));
  let ropeScaling: Record<string, unknown> | null = null;
  if (ropeType !== undefined && ropeType !== 'none') ropeScaling = { rope_type: ropeType, factor: ropeFactor };
  else if (ropeType === undefined && ropeFactor !== undefined && ropeFactor !== 1) ropeScaling = { rope_type: 'linear', factor: ropeFactor };

  const config: Record<string, unknown> = {
    model_type: info!.hf,
    vocab_size: vocab,
    hidden_size: hidden,
    num_hidden_layers: numLayers,
    num_attention_heads: numHeads,
    num_key_value_heads: numKvHeads,
    head_dim: headDim,
    rms_norm_eps: eps,
    max_position_embeddings: meta.uint(k('context_length')) ?? 4096,
    tie_word_embeddings: !has('output.weight'),
    // llama.cpp's default when the file gives none.
    rope_theta: meta.number(k('rope.freq_base')) ?? 10000,
    rope_scaling: ropeScaling,
    bos_token_id: bos ?? null,
    eos_token_id: eos.length ? eos : null,
    num_experts_per_tok: topK,
  };
  if (!mla && ropeDims !== undefined && ropeDims !== headDim) config.partial_rotary_factor = ropeDims / headDim;
  if (expertWidth === undefined) fail(`is missing "${k('expert_feed_forward_length')}" and has no expert tensors to infer it from`);

  switch (info!.hf) {
    case 'qwen2_moe':
    case 'qwen3_moe':
      Object.assign(config, {
        num_experts: numExperts,
        moe_intermediate_size: expertWidth,
        intermediate_size: ffn ?? null,
        decoder_sparse_step: 1,
        mlp_only_layers: dense,
        norm_topk_prob: normTopk,
        use_sliding_window: false,
      });
      if (info!.hf === 'qwen2_moe') Object.assign(config, { shared_expert_intermediate_size: sharedWidth, qkv_bias: bias('q') });
      else config.attention_bias = bias('q') || bias('output');
      break;
    case 'mixtral':
      if (!normTopk) fail(`sets "${k('expert_weights_norm')}" false, but Mixtral always renormalises its top-k weights`);
      if (dense.length) fail(`layers ${dense.join(', ')} have no experts: a llama file with dense layers is not Mixtral`);
      Object.assign(config, { num_local_experts: numExperts, intermediate_size: expertWidth, sliding_window: null });
      break;
    case 'olmoe':
      Object.assign(config, { num_experts: numExperts, intermediate_size: expertWidth, norm_topk_prob: normTopk, attention_bias: bias('q'), clip_qkv: meta.number(k('attention.clamp_kqv')) ?? null });
      break;
    case 'deepseek_v2':
      Object.assign(config, deepseekConfig(meta, k, tensors, { numExperts, expertWidth: expertWidth!, ffn, dense, normTopk, headDim, ropeDims, valueLen }, fail));
      break;
    case 'granitemoe':
      Object.assign(config, {
        num_local_experts: numExperts,
        intermediate_size: expertWidth,
        attention_bias: bias('q'),
        embedding_multiplier: meta.number(k('embedding_scale')) ?? 1,
        attention_multiplier: meta.number(k('attention.scale')) ?? 1 / Math.sqrt(headDim),
        residual_multiplier: meta.number(k('residual_scale')) ?? 1,
        logits_scaling: meta.number(k('logit_scale')) ?? 1,
      });
      break;
  }
  return {
    ggufArch: arch!,
    config,
    layout: { ...info!.layout, unpermuteQK: info!.permuted ? { numHeads, numKvHeads } : null },
  };
}

/**
 * deepseek2 metadata → DeepSeek-V2/V3 config keys. V3 when the gating is sigmoid
 * (expert_gating_func 2) or the file has the selection bias (exp_probs_b). Group-limited routing
 * only when the file gives expert_group_count (llama.cpp ran plain top-k before it had the key).
 * RoPE: llama.cpp rotates DeepSeek's rope dims as interleaved pairs, as HF does, and the
 * conversion leaves the rows in that order (rope_interleave). YaRN: yarn_log_multiplier is
 * 0.1 · mscale_all_dim; mscale is taken equal (DeepSeek's configs have them equal).
 */
function deepseekConfig(
  meta: GgufMetadata,
  k: (key: string) => string,
  tensors: GgufHeader['tensors'],
  d: { numExperts: number; expertWidth: number; ffn: number | undefined; dense: number[]; normTopk: boolean; headDim: number; ropeDims: number | undefined; valueLen: number | undefined },
  fail: (why: string) => never,
): Record<string, unknown> {
  const rope = d.ropeDims ?? fail(`is missing "${k('rope.dimension_count')}" (DeepSeek's rope head dim)`);
  const kvNorm = tensors.get('blk.0.attn_kv_a_norm.weight');
  const kvLora = meta.uint(k('attention.kv_lora_rank')) ?? kvNorm?.ne[0] ?? fail(`is missing "${k('attention.kv_lora_rank')}"`);
  const qA = tensors.get('blk.0.attn_q_a.weight');
  const qLora = meta.uint(k('attention.q_lora_rank')) || (qA ? qA.ne[1] : null) || null;
  const gating = meta.uint(k('expert_gating_func'));
  const v3 = gating === 2 || [...tensors.keys()].some((n) => n.endsWith('.exp_probs_b.bias'));
  const groups = meta.uint(k('expert_group_count')) ?? 1;
  const groupsUsed = meta.uint(k('expert_group_used_count')) ?? groups;
  const yarn = meta.string(k('rope.scaling.type')) === 'yarn';
  const mscale = (meta.number(k('rope.scaling.yarn_log_multiplier')) ?? 0) / 0.1;
  if (d.headDim <= rope) fail(`key_length ${d.headDim} leaves no room for ${rope} rope dims`);
  const out: Record<string, unknown> = {
    model_type: v3 ? 'deepseek_v3' : 'deepseek_v2',
    n_routed_experts: d.numExperts,
    moe_intermediate_size: d.expertWidth,
    intermediate_size: d.ffn ?? d.expertWidth,
    n_shared_experts: meta.uint(k('expert_shared_count')) ?? 0,
    first_k_dense_replace: meta.uint(k('leading_dense_block_count')) ?? d.dense.length,
    routed_scaling_factor: meta.number(k('expert_weights_scale')) ?? 1,
    norm_topk_prob: d.normTopk,
    n_group: groups,
    topk_group: groupsUsed,
    kv_lora_rank: kvLora,
    q_lora_rank: qLora,
    qk_rope_head_dim: rope,
    qk_nope_head_dim: d.headDim - rope,
    v_head_dim: d.valueLen ?? fail(`is missing "${k('attention.value_length')}"`),
    rope_interleave: true,
  };
  if (!v3) out.topk_method = groups > 1 ? 'group_limited_greedy' : 'greedy';
  if (yarn) {
    out.rope_scaling = {
      rope_type: 'yarn',
      factor: meta.number(k('rope.scaling.factor')) ?? fail(`is missing "${k('rope.scaling.factor')}"`),
      original_max_position_embeddings: meta.uint(k('rope.scaling.original_context_length')) ?? fail(`is missing "${k('rope.scaling.original_context_length')}"`),
      ...(mscale > 0 ? { mscale, mscale_all_dim: mscale } : {}),
    };
  }
  return out;
}
