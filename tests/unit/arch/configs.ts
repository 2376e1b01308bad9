/** Small config.json per arch, spelled as transformers writes them (4.x and 5.x spellings mixed on purpose). */
export const CONFIGS = {
  qwen2_moe: {
    model_type: 'qwen2_moe', architectures: ['Qwen2MoeForCausalLM'], vocab_size: 128, hidden_size: 32, num_hidden_layers: 4,
    num_attention_heads: 4, num_key_value_heads: 2, rms_norm_eps: 1e-6, rope_parameters: { rope_type: 'default', rope_theta: 1e6 },
    max_position_embeddings: 512, tie_word_embeddings: false, qkv_bias: true, intermediate_size: 64, num_experts: 8,
    num_experts_per_tok: 2, norm_topk_prob: false, moe_intermediate_size: 12, shared_expert_intermediate_size: 48,
    mlp_only_layers: [1], decoder_sparse_step: 1, use_sliding_window: false, sliding_window: 0, max_window_layers: 28,
    hidden_act: 'silu', bos_token_id: null, eos_token_id: 151643, transformers_version: '5.17.0',
  },
  qwen3_moe: {
    model_type: 'qwen3_moe', vocab_size: 128, hidden_size: 32, num_hidden_layers: 4, num_attention_heads: 4,
    num_key_value_heads: 2, head_dim: 16, rope_theta: 1e6, rope_scaling: null, max_position_embeddings: 256,
    tie_word_embeddings: true, attention_bias: false, intermediate_size: 40, num_local_experts: 16, num_experts_per_tok: 4,
    norm_topk_prob: true, moe_intermediate_size: 12, decoder_sparse_step: 2, mlp_only_layers: [], use_sliding_window: false,
    sliding_window: null, eos_token_id: [151645, 151643],
  },
  mixtral: {
    model_type: 'mixtral', vocab_size: 128, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4,
    num_key_value_heads: 2, rms_norm_eps: 1e-5, rope_parameters: { rope_type: 'default', rope_theta: 1e6 },
    intermediate_size: 24, num_local_experts: 4, num_experts_per_tok: 2, bos_token_id: 1, eos_token_id: 2, sliding_window: null,
    head_dim: null, router_jitter_noise: 0,
  },
  olmoe: {
    model_type: 'olmoe', vocab_size: 128, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, rope_theta: 10000,
    rope_scaling: { type: 'linear', factor: 4 }, intermediate_size: 12, num_experts: 8, norm_topk_prob: false, clip_qkv: null,
  },
  granitemoe: {
    model_type: 'granitemoe', vocab_size: 128, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4,
    num_key_value_heads: 2, tie_word_embeddings: true, attention_bias: true, embedding_multiplier: 12, residual_multiplier: 0.22,
    attention_multiplier: 0.015625, logits_scaling: 6, intermediate_size: 24, num_local_experts: 4, num_experts_per_tok: 2,
    bos_token_id: 0, eos_token_id: 0, rope_parameters: { rope_theta: 10000, rope_type: 'default' },
  },
} satisfies Record<string, Record<string, unknown>>;
