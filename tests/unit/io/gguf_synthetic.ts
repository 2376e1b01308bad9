/** Test-only: random checkpoints 256 wide (so every ggml block type fits their rows), one per arch. */
import { builderFor } from '../../../src/engine/model/arch';
import type { TensorReader } from '../../../src/engine/model/spec';
import { rng } from '../../../src/engine/ref/random';
import type { HfTensors } from './gguf_writer';

/** Random weights for `config`, named as its builder expects a hub checkpoint to name them. */
export function syntheticTensors(config: Record<string, unknown>, seed: number): HfTensors {
  const builder = builderFor(config);
  const spec = builder.parseConfig(config);
  const none: TensorReader = { has: () => false, shape: () => [], read: async () => new Float32Array(0) };
  const r = rng(seed);
  const out: HfTensors = new Map();
  for (const slot of builder.weightSlots(spec, none)) {
    for (const src of slot.sources) {
      const n = src.shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n);
      const fanIn = src.shape[src.shape.length - 1]!;
      const isNorm = /norm\.weight$/.test(src.name);
      const a = isNorm ? 0.2 : src.shape.length === 1 ? 0.1 : Math.sqrt(3 / fanIn);
      for (let i = 0; i < n; i++) data[i] = (isNorm ? 1 : 0) + (r() * 2 - 1) * a;
      out.set(src.name, { shape: src.shape, data });
    }
  }
  return out;
}

const common = { vocab_size: 96, hidden_size: 256, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, rms_norm_eps: 1e-6, max_position_embeddings: 64, num_experts_per_tok: 2 };
export const SYNTHETIC: Record<string, Record<string, unknown>> = {
  qwen2_moe: { ...common, model_type: 'qwen2_moe', num_experts: 4, moe_intermediate_size: 256, shared_expert_intermediate_size: 256, intermediate_size: 512, mlp_only_layers: [1], qkv_bias: true, norm_topk_prob: false, rope_theta: 10000 },
  qwen3_moe: { ...common, model_type: 'qwen3_moe', num_experts: 4, moe_intermediate_size: 256, head_dim: 64, norm_topk_prob: true, rope_theta: 1e6 },
  mixtral: { ...common, model_type: 'mixtral', num_local_experts: 4, intermediate_size: 256, rope_theta: 1e6 },
  olmoe: { ...common, model_type: 'olmoe', num_experts: 4, num_key_value_heads: 4, intermediate_size: 256, tie_word_embeddings: true },
  granitemoe: { ...common, model_type: 'granitemoe', num_local_experts: 4, intermediate_size: 256, embedding_multiplier: 2, attention_multiplier: 0.1, residual_multiplier: 0.5, logits_scaling: 4 },
};

