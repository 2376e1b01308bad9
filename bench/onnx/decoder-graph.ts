/**
 * The peer's version of a bench shape (bench/synth.ts): the same OLMoE-style decoder as an ONNX
 * graph in the form onnxruntime-web runs fastest on WebGPU — MatMulNBits (int4, block 32) for the
 * attention and LM-head matrices, com.microsoft.QMoE (int4, block 32, SwiGLU) for the experts,
 * GroupQueryAttention with rotary embedding and a KV cache, SimplifiedLayerNormalization (fused
 * with the residual adds by ORT's optimiser), and ArgMax in the graph so one id comes back per step.
 * Weights are random, like ours.
 */
import type { ModelSpec } from '../../src/engine/model/spec';
import { DType, encodeModel, type Node, type Tensor, type ValueInfo } from '../../src/engine/onnx/proto';

const BLOCK = 32;

/** Fast seeded bytes (xorshift32): hundreds of MB of weights in about a second. */
function randomBytes(n: number, seed: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(n / 4));
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return new Uint8Array(words.buffer, 0, n);
}

function f32(name: string, dims: number[], fill: (i: number) => number): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = fill(i);
  return { name, dtype: DType.FLOAT, dims, raw: new Uint8Array(a.buffer) };
}

export interface PeerGraph {
  model: Uint8Array;
  /** Names of the per-layer cache inputs and outputs. */
  pastKey: (l: number) => string;
  pastValue: (l: number) => string;
  presentKey: (l: number) => string;
  presentValue: (l: number) => string;
}

/**
 * How the experts are expressed: 'qmoe' — com.microsoft.QMoE (int4, block 32, SwiGLU fused); 'dense'
 * — a plain graph of standard ops plus MatMulNBits: every expert's gate/up in one MatMulNBits
 * (N = E·2I), SwiGLU, the routing weights scattered into a dense [T, E] gate that scales each
 * expert's activation, and one down MatMulNBits over K = E·I. No data-dependent shapes, but it
 * reads all E experts per token (what an export without the MoE op computes).
 */
export type PeerMoe = 'qmoe' | 'dense';

export function decoderGraph(spec: ModelSpec, maxPositions: number, moe: PeerMoe = 'qmoe'): PeerGraph {
  const s = spec;
  if (s.arch !== 'olmoe') throw new Error(`The ONNX peer graph is written for olmoe-shaped models, not ${s.arch}`);
  const H = s.hiddenSize, D = s.headDim, nH = s.numHeads, nKV = s.numKvHeads, E = s.moe.numExperts, I = s.moe.intermediateSize, V = s.vocabSize;
  const nodes: Node[] = [];
  const inits: Tensor[] = [];
  let seed = 7;
  const norm = (name: string, n: number) => {
    inits.push(f32(name, [n], () => 1));
    return name;
  };
  /** MatMulNBits weight [N, K/32, 16] and scales [N·K/32] for y = x·Wᵀ. */
  const nbits = (name: string, N: number, K: number) => {
    inits.push({ name: `${name}.B`, dtype: DType.UINT8, dims: [N, K / BLOCK, BLOCK / 2], raw: randomBytes((N * K) / 2, seed++) });
    inits.push(f32(`${name}.scales`, [N * (K / BLOCK)], () => 1 / Math.sqrt(K) / 7));
    return [`${name}.B`, `${name}.scales`];
  };
  const mm = (x: string, name: string, N: number, K: number, y: string) => {
    nodes.push({ op: 'MatMulNBits', domain: 'com.microsoft', inputs: [x, ...nbits(name, N, K)], outputs: [y], attrs: { K, N, bits: 4, block_size: BLOCK, accuracy_level: 4 } });
  };
  const rms = (x: string, w: string, y: string) => nodes.push({ op: 'SimplifiedLayerNormalization', inputs: [x, w], outputs: [y], attrs: { axis: -1, epsilon: { float: s.rmsNormEps } } });

  // RoPE tables as GQA wants them: [positions, D/2].
  const half = D / 2;
  const inv = Array.from({ length: half }, (_, i) => 1 / s.ropeTheta ** ((2 * i) / D));
  inits.push(f32('cos_cache', [maxPositions, half], (i) => Math.cos(Math.floor(i / half) * inv[i % half]!)));
  inits.push(f32('sin_cache', [maxPositions, half], (i) => Math.sin(Math.floor(i / half) * inv[i % half]!)));
  inits.push(f32('embed', [V, H], (i) => ((i * 2654435761) % 1000) / 1000 - 0.5));
  if (moe === 'dense') {
    const i64 = (name: string, v: bigint[]) => inits.push({ name, dtype: DType.INT64, dims: [v.length], raw: new Uint8Array(new BigInt64Array(v).buffer) });
    i64('topk_k', [BigInt(s.moe.topK)]);
    i64('axis_last', [-1n]);
    i64('shape_teri', [-1n, BigInt(E), 2n, BigInt(I)]);
    i64('split_halves', [1n, 1n]);
    i64('shape_te11', [-1n, BigInt(E), 1n, 1n]);
    i64('shape_tei', [-1n, BigInt(E * I)]);
    inits.push(f32('zero', [1], () => 0));
  }
  inits.push({ name: 'shape2d', dtype: DType.INT64, dims: [2], raw: new Uint8Array(new BigInt64Array([-1n, BigInt(H)]).buffer) });
  inits.push({ name: 'shape3d', dtype: DType.INT64, dims: [3], raw: new Uint8Array(new BigInt64Array([1n, -1n, BigInt(H)]).buffer) });
  for (const [name, v] of [['last_start', -1n], ['last_end', 2n ** 62n], ['axis1', 1n]] as const) {
    inits.push({ name, dtype: DType.INT64, dims: [1], raw: new Uint8Array(new BigInt64Array([v]).buffer) });
  }

  const inputs: ValueInfo[] = [
    { name: 'input_ids', dtype: DType.INT64, shape: [1, 'seq'] },
    { name: 'seqlens_k', dtype: DType.INT32, shape: [1] },
    { name: 'total_sequence_length', dtype: DType.INT32, shape: [] },
  ];
  const outputs: ValueInfo[] = [{ name: 'next_token', dtype: DType.INT64, shape: [1] }];
  const g: PeerGraph = {
    model: new Uint8Array(),
    pastKey: (l) => `past_key_values.${l}.key`,
    pastValue: (l) => `past_key_values.${l}.value`,
    presentKey: (l) => `present.${l}.key`,
    presentValue: (l) => `present.${l}.value`,
  };

  nodes.push({ op: 'Gather', inputs: ['embed', 'input_ids'], outputs: ['h0'], attrs: { axis: 0 } });
  let h = 'h0';
  for (let l = 0; l < s.numLayers; l++) {
    const p = `L${l}`;
    inputs.push({ name: g.pastKey(l), dtype: DType.FLOAT, shape: [1, nKV, 'past', D] }, { name: g.pastValue(l), dtype: DType.FLOAT, shape: [1, nKV, 'past', D] });
    outputs.push({ name: g.presentKey(l), dtype: DType.FLOAT, shape: [1, nKV, 'total', D] }, { name: g.presentValue(l), dtype: DType.FLOAT, shape: [1, nKV, 'total', D] });
    rms(h, norm(`${p}.attn_norm`, H), `${p}.x0`);
    mm(`${p}.x0`, `${p}.q`, nH * D, H, `${p}.q`);
    mm(`${p}.x0`, `${p}.k`, nKV * D, H, `${p}.k`);
    mm(`${p}.x0`, `${p}.v`, nKV * D, H, `${p}.v`);
    // OLMoE normalises q and k over the whole projection, before RoPE (inside GQA here).
    rms(`${p}.q`, norm(`${p}.q_norm`, nH * D), `${p}.qn`);
    rms(`${p}.k`, norm(`${p}.k_norm`, nKV * D), `${p}.kn`);
    nodes.push({
      op: 'GroupQueryAttention', domain: 'com.microsoft',
      inputs: [`${p}.qn`, `${p}.kn`, `${p}.v`, g.pastKey(l), g.pastValue(l), 'seqlens_k', 'total_sequence_length', 'cos_cache', 'sin_cache'],
      outputs: [`${p}.attn`, g.presentKey(l), g.presentValue(l)],
      attrs: { num_heads: nH, kv_num_heads: nKV, do_rotary: 1, rotary_interleaved: 0, scale: { float: 1 / Math.sqrt(D) } },
    });
    mm(`${p}.attn`, `${p}.o`, H, nH * D, `${p}.o`);
    nodes.push({ op: 'Add', inputs: [h, `${p}.o`], outputs: [`${p}.h1`] });
    rms(`${p}.h1`, norm(`${p}.mlp_norm`, H), `${p}.x1`);
    nodes.push({ op: 'Reshape', inputs: [`${p}.x1`, 'shape2d'], outputs: [`${p}.x1f`] });
    inits.push(f32(`${p}.router`, [H, E], (i) => (((i * 40503) % 2001) / 1000 - 1) / Math.sqrt(H)));
    nodes.push({ op: 'MatMul', inputs: [`${p}.x1f`, `${p}.router`], outputs: [`${p}.rl`] });
    if (moe === 'qmoe') {
      // Experts: fc1 = gate/up interleaved (swiglu_fusion 1), [E, 2I, H/2] bytes; fc2 = down, [E, H, I/2].
      inits.push({ name: `${p}.fc1`, dtype: DType.UINT8, dims: [E, 2 * I, H / 2], raw: randomBytes(E * 2 * I * (H / 2), seed++) });
      inits.push(f32(`${p}.fc1_scales`, [E, 2 * I, H / BLOCK], () => 1 / Math.sqrt(H) / 7));
      inits.push({ name: `${p}.fc2`, dtype: DType.UINT8, dims: [E, H, I / 2], raw: randomBytes(E * H * (I / 2), seed++) });
      inits.push(f32(`${p}.fc2_scales`, [E, H, I / BLOCK], () => 1 / Math.sqrt(I) / 7));
      nodes.push({
        op: 'QMoE', domain: 'com.microsoft',
        inputs: [`${p}.x1f`, `${p}.rl`, `${p}.fc1`, `${p}.fc1_scales`, '', `${p}.fc2`, `${p}.fc2_scales`],
        outputs: [`${p}.moe`],
        attrs: {
          k: s.moe.topK, activation_type: 'swiglu', swiglu_fusion: 1, expert_weight_bits: 4, block_size: BLOCK,
          normalize_routing_weights: s.moe.normTopkProb ? 1 : 0, activation_alpha: { float: 1 }, activation_beta: { float: 0 }, swiglu_limit: { float: 1e30 },
        },
      });
    } else {
      // Dense routing weights: softmax → top-k → scattered into zeros [T, E] (renormalised when the model says so).
      nodes.push({ op: 'Softmax', inputs: [`${p}.rl`], outputs: [`${p}.probs`], attrs: { axis: -1 } });
      nodes.push({ op: 'TopK', inputs: [`${p}.probs`, 'topk_k'], outputs: [`${p}.tv`, `${p}.ti`], attrs: { axis: -1 } });
      let tv = `${p}.tv`;
      if (s.moe.normTopkProb) {
        nodes.push({ op: 'ReduceSum', inputs: [tv, 'axis_last'], outputs: [`${p}.tsum`], attrs: { keepdims: 1 } });
        nodes.push({ op: 'Div', inputs: [tv, `${p}.tsum`], outputs: [`${p}.tvn`] });
        tv = `${p}.tvn`;
      }
      nodes.push({ op: 'Mul', inputs: [`${p}.probs`, 'zero'], outputs: [`${p}.zeros`] });
      nodes.push({ op: 'ScatterElements', inputs: [`${p}.zeros`, `${p}.ti`, tv], outputs: [`${p}.gate`], attrs: { axis: 1 } });
      // All experts' gate/up rows [E·2I, H] (per expert: gate rows, then up rows).
      mm(`${p}.x1f`, `${p}.gate_up_all`, E * 2 * I, H, `${p}.gu`);
      nodes.push({ op: 'Reshape', inputs: [`${p}.gu`, 'shape_teri'], outputs: [`${p}.gu4`] });
      nodes.push({ op: 'Split', inputs: [`${p}.gu4`, 'split_halves'], outputs: [`${p}.g`, `${p}.u`], attrs: { axis: 2 } });
      nodes.push({ op: 'Sigmoid', inputs: [`${p}.g`], outputs: [`${p}.sg`] });
      nodes.push({ op: 'Mul', inputs: [`${p}.g`, `${p}.sg`], outputs: [`${p}.silu`] });
      nodes.push({ op: 'Mul', inputs: [`${p}.silu`, `${p}.u`], outputs: [`${p}.act`] });
      nodes.push({ op: 'Reshape', inputs: [`${p}.gate`, 'shape_te11'], outputs: [`${p}.gate4`] });
      nodes.push({ op: 'Mul', inputs: [`${p}.act`, `${p}.gate4`], outputs: [`${p}.actg`] });
      nodes.push({ op: 'Reshape', inputs: [`${p}.actg`, 'shape_tei'], outputs: [`${p}.actf`] });
      // Down projections side by side [H, E·I]: Σ_e g_e · act_e · W_eᵀ is one product over K = E·I.
      mm(`${p}.actf`, `${p}.down_all`, H, E * I, `${p}.moe`);
    }
    nodes.push({ op: 'Reshape', inputs: [`${p}.moe`, 'shape3d'], outputs: [`${p}.moe3`] });
    nodes.push({ op: 'Add', inputs: [`${p}.h1`, `${p}.moe3`], outputs: [`${p}.h`] });
    h = `${p}.h`;
  }
  rms(h, norm('final_norm', H), 'xf');
  nodes.push({ op: 'Slice', inputs: ['xf', 'last_start', 'last_end', 'axis1'], outputs: ['xlast'] });
  mm('xlast', 'lm_head', V, H, 'logits');
  nodes.push({ op: 'ArgMax', inputs: ['logits'], outputs: ['next3'], attrs: { axis: -1, keepdims: 0 } });
  nodes.push({ op: 'Reshape', inputs: ['next3', 'shape1'], outputs: ['next_token'] });
  inits.push({ name: 'shape1', dtype: DType.INT64, dims: [1], raw: new Uint8Array(new BigInt64Array([1n]).buffer) });
  g.model = encodeModel({ nodes, initializers: inits, inputs, outputs, opsets: { '': 21, 'com.microsoft': 1 } });
  return g;
}
