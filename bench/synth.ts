/**
 * Real-size MoE models with random weights made on the GPU (no download, no multi-GB upload): the
 * spec comes from an HF-style config through our own arch builders, so the forward pass is the one
 * users run; only the weight values are synthetic. Speed does not depend on them, and the routing
 * of random router weights spreads tokens over all experts, as trained routers roughly do.
 */
import { createStorage, dispatch } from '../src/engine/gpu/buffers';
import type { Kernels } from '../src/engine/gpu/kernels';
import { builderFor } from '../src/engine/model/arch';
import { kvBytesPerToken } from '../src/engine/model/shapes';
import type { ModelSpec } from '../src/engine/model/spec';
import type { LayerWeights, ModelWeights } from '../src/engine/model/weights';
import { canQuantize, type WeightFormat } from '../src/engine/quant/pack';
import type { GpuWeight } from '../src/engine/quant/weight';

/** HF config.json contents of the shapes the performance issue names (plus a tiny one for smoke tests). */
export const SHAPES: Record<string, Record<string, unknown>> = {
  // allenai/OLMoE-1B-7B-0924
  olmoe: {
    model_type: 'olmoe', vocab_size: 50304, hidden_size: 2048, intermediate_size: 1024, num_hidden_layers: 16,
    num_attention_heads: 16, num_key_value_heads: 16, max_position_embeddings: 4096, rope_theta: 10000,
    num_experts: 64, num_experts_per_tok: 8, norm_topk_prob: false, rms_norm_eps: 1e-5, tie_word_embeddings: false,
  },
  // The same, 4 of its 16 layers: what onnxruntime-web can hold (its wasm heap takes the whole
  // model file, 4 GiB at most), so the peer comparison runs both engines on this slice.
  'olmoe-4l': {
    model_type: 'olmoe', vocab_size: 50304, hidden_size: 2048, intermediate_size: 1024, num_hidden_layers: 4,
    num_attention_heads: 16, num_key_value_heads: 16, max_position_embeddings: 4096, rope_theta: 10000,
    num_experts: 64, num_experts_per_tok: 8, norm_topk_prob: false, rms_norm_eps: 1e-5, tie_word_embeddings: false,
  },
  // Qwen/Qwen3-30B-A3B, 8 of its 48 layers (bytes per token and time scale per layer)
  'qwen3-30b-a3b-8l': {
    model_type: 'qwen3_moe', vocab_size: 151936, hidden_size: 2048, intermediate_size: 6144, moe_intermediate_size: 768,
    num_hidden_layers: 8, num_attention_heads: 32, num_key_value_heads: 4, head_dim: 128, max_position_embeddings: 40960,
    rope_theta: 1000000, num_experts: 128, num_experts_per_tok: 8, norm_topk_prob: true, rms_norm_eps: 1e-6,
    tie_word_embeddings: false, decoder_sparse_step: 1, mlp_only_layers: [],
  },
  // deepseek-ai/DeepSeek-V2-Lite: latent attention (kv_lora_rank 512 + 64 rope dims cached per
  // position), 2 shared + 64 routed experts (top-6), first layer dense, YaRN ×40
  'deepseek-v2-lite': {
    model_type: 'deepseek_v2', vocab_size: 102400, hidden_size: 2048, intermediate_size: 10944, moe_intermediate_size: 1408,
    num_hidden_layers: 27, num_attention_heads: 16, num_key_value_heads: 16, n_shared_experts: 2, n_routed_experts: 64,
    num_experts_per_tok: 6, routed_scaling_factor: 1.0, topk_method: 'greedy', n_group: 1, topk_group: 1, first_k_dense_replace: 1,
    kv_lora_rank: 512, q_lora_rank: null, qk_rope_head_dim: 64, qk_nope_head_dim: 128, v_head_dim: 128,
    max_position_embeddings: 163840, rope_theta: 10000, rms_norm_eps: 1e-6, tie_word_embeddings: false,
    rope_scaling: { type: 'yarn', factor: 40, original_max_position_embeddings: 4096, beta_fast: 32, beta_slow: 1, mscale: 0.707, mscale_all_dim: 0.707 },
  },
  // SwiftShader smoke test: the same code path at a size a CPU runs in seconds
  tiny: {
    model_type: 'olmoe', vocab_size: 512, hidden_size: 64, intermediate_size: 32, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 512, rope_theta: 10000,
    num_experts: 8, num_experts_per_tok: 2, norm_topk_prob: false, rms_norm_eps: 1e-5, tie_word_embeddings: false,
  },
  // ... and DeepSeek-V3's path (latent attention with q LoRA, sigmoid + bias, groups, shared expert)
  'tiny-mla': {
    model_type: 'deepseek_v3', vocab_size: 512, hidden_size: 64, intermediate_size: 96, moe_intermediate_size: 32,
    num_hidden_layers: 2, num_attention_heads: 4, n_shared_experts: 1, n_routed_experts: 8, num_experts_per_tok: 2,
    n_group: 2, topk_group: 1, first_k_dense_replace: 1, kv_lora_rank: 32, q_lora_rank: 48, qk_rope_head_dim: 16,
    qk_nope_head_dim: 16, v_head_dim: 16, max_position_embeddings: 512, rope_theta: 10000, rms_norm_eps: 1e-6,
  },
};

export function synthSpec(shape: string): ModelSpec {
  const config = SHAPES[shape];
  if (!config) throw new Error(`Unknown bench shape "${shape}" (known: ${Object.keys(SHAPES).join(', ')})`);
  return builderFor(config).parseConfig(config);
}

/** Fills `buf` (n 32-bit words) with seeded random bits, or f32 uniform in offset ± scale. */
function fill(k: Kernels, buf: GPUBuffer, n: number, seed: number, f?: { scale: number; offset: number }): void {
  const params = k.uniform([{ u32: n }, { u32: f ? 1 : 0 }, { u32: seed }, { u32: 0 }, { f32: f?.scale ?? 0 }, { f32: f?.offset ?? 0 }, { f32: 0 }, { f32: 0 }]);
  dispatch(k.device, k.pipelines.get('bench_fill.wgsl'), [params, buf], [Math.min(65535, Math.ceil(n / 256))]);
}

class Maker {
  private seed = 1;
  bytes = 0;
  constructor(private readonly k: Kernels, private readonly format: WeightFormat, private readonly group: number) {}

  /** f32 vector/matrix of `n` values around `offset`. */
  vec(n: number, label: string, scale: number, offset = 0): GPUBuffer {
    const b = createStorage(this.k.device, n * 4, label);
    fill(this.k, b, n, this.seed++, { scale, offset });
    this.bytes += n * 4;
    return b;
  }

  /** A [rows, K] matrix in the bench's format, values ~ U(±1/√K) as a trained layer's would be. */
  mat(rows: number, K: number, label: string): GpuWeight {
    const a = 1 / Math.sqrt(K);
    if (this.format === 'f32' || !canQuantize(K, this.group)) {
      const buffer = this.vec(rows * K, label, a);
      return { format: 'f32', buffer, scales: null, group: 0, bytes: buffer.size };
    }
    const per = this.format === 'int4' ? 8 : 4;
    const words = (rows * K) / per;
    const buffer = createStorage(this.k.device, words * 4, label);
    fill(this.k, buffer, words, this.seed++);
    const qmax = this.format === 'int4' ? 7 : 127;
    const scales = this.vec((rows * K) / this.group, `${label}-scales`, 0.1 * (a / qmax), a / qmax);
    this.bytes += words * 4;
    return { format: this.format, buffer, scales, group: this.group, bytes: buffer.size + scales.size };
  }
}

/** Random weights for `spec` with attention and expert matrices in `format` (as uploadWeights would store them). */
export function synthWeights(k: Kernels, spec: ModelSpec, format: WeightFormat, group: number): ModelWeights {
  const s = spec;
  const m = new Maker(k, format, group);
  const H = s.hiddenSize, D = s.headDim, E = s.moe.numExperts, I = s.moe.intermediateSize;
  const qDim = s.numHeads * D, kvDim = s.numKvHeads * D;
  const layers: LayerWeights[] = s.layers.map((ls, l) => {
    const w: LayerWeights = { attnNorm: m.vec(H, `L${l}.attn_norm`, 0.05, 1), o: m.mat(H, s.mla ? s.numHeads * s.mla.vDim : qDim, `L${l}.o`), mlpNorm: m.vec(H, `L${l}.mlp_norm`, 0.05, 1) };
    const a = s.mla;
    if (a) {
      const qk = s.numHeads * (a.nopeDim + a.ropeDim);
      if (a.qLoraRank !== null) {
        w.qA = m.mat(a.qLoraRank, H, `L${l}.q_a`);
        w.qANorm = m.vec(a.qLoraRank, `L${l}.q_a_norm`, 0.05, 1);
        w.qB = m.mat(qk, a.qLoraRank, `L${l}.q_b`);
      } else w.q = m.mat(qk, H, `L${l}.q`);
      w.kvA = m.mat(a.kvLoraRank + a.ropeDim, H, `L${l}.kv_a`);
      w.kvANorm = m.vec(a.kvLoraRank, `L${l}.kv_a_norm`, 0.05, 1);
      w.kvB = m.vec(s.numHeads * (a.nopeDim + a.vDim) * a.kvLoraRank, `L${l}.kv_b`, 1 / Math.sqrt(a.kvLoraRank));
    } else w.qkv = m.mat(qDim + 2 * kvDim, H, `L${l}.qkv`);
    if (s.qkNorm !== 'none') {
      w.qNorm = m.vec(s.qkNorm === 'head' ? D : qDim, `L${l}.q_norm`, 0.05, 1);
      w.kNorm = m.vec(s.qkNorm === 'head' ? D : kvDim, `L${l}.k_norm`, 0.05, 1);
    }
    if (ls.mlp === 'moe') {
      w.router = m.vec(E * H, `L${l}.router`, 1 / Math.sqrt(H));
      w.expertsGateUp = m.mat(E * 2 * I, H, `L${l}.experts.gate_up`);
      w.expertsDown = m.mat(E * H, I, `L${l}.experts.down`);
      if (s.moe.correctionBias) w.routerBias = m.vec(E, `L${l}.router_bias`, 0.05);
      const se = s.moe.sharedExpert;
      if (se) {
        w.sharedGateUp = m.mat(2 * se.intermediateSize, H, `L${l}.shared.gate_up`);
        w.sharedDown = m.mat(H, se.intermediateSize, `L${l}.shared.down`);
        if (se.gated) w.sharedGate = m.vec(H, `L${l}.shared_gate`, 1 / Math.sqrt(H));
      }
    } else {
      w.mlpGateUp = m.mat(2 * s.denseIntermediateSize, H, `L${l}.mlp.gate_up`);
      w.mlpDown = m.mat(H, s.denseIntermediateSize, `L${l}.mlp.down`);
    }
    return w;
  });
  const embed = m.vec(s.vocabSize * H, 'embed', 1);
  const lmHead = m.mat(s.vocabSize, H, 'lm_head');
  const finalNorm = m.vec(H, 'final_norm', 0.05, 1);
  return { embed, lmHead, finalNorm, layers, bytes: m.bytes };
}

/** Bytes one decode step must read at a context of `ctx` positions: all but the unchosen experts, one embedding row, the KV cache. */
export function bytesPerDecodedToken(spec: ModelSpec, w: ModelWeights, topK: number, ctx: number): { weights: number; kv: number } {
  const E = spec.moe.numExperts;
  let weights = spec.hiddenSize * 4 + (w.lmHead === w.embed ? 0 : sizeOf(w.lmHead)) + w.finalNorm.size;
  for (const l of w.layers) {
    for (const [key, b] of Object.entries(l) as Array<[keyof LayerWeights, GPUBuffer | GpuWeight | undefined]>) {
      if (!b) continue;
      const bytes = sizeOf(b);
      weights += key === 'expertsGateUp' || key === 'expertsDown' ? (bytes * topK) / E : bytes;
    }
  }
  const kv = ctx * kvBytesPerToken(spec);
  return { weights, kv };
}

function sizeOf(b: GPUBuffer | GpuWeight): number {
  return 'format' in b ? b.bytes : b.size;
}
