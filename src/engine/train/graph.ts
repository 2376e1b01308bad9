/**
 * The model-level training graph (issue #7): a forward over one sequence from position 0 that keeps
 * every activation the backward needs, the cross-entropy loss, and the backward through the whole
 * model into whichever gradients the caller asks for (full fine-tune, router only, LoRA).
 *
 * The forward records exactly the ops, in the same order and with the same arguments, that
 * MoeModel.runChunk records (src/engine/model/model.ts: encodeAttentionBlock, encodeMoeBlock,
 * encodeFfn) — embedding, RMSNorm, encodeMatmul, encodeQkvRope, encodeAttention, encodeRoute,
 * encodeExperts, encodeSwiGlu — so it is the inference model, not a fork of its maths; only the
 * buffers differ (one per layer instead of one reused scratch, and a "KV cache" per layer that
 * holds just this sequence). tests/gpu/train_grads.test.ts checks that its logits equal
 * MoeModel.forward's. The one change model code needed is ExpertsArgs.keepActivations.
 *
 * DeepSeek's latent attention has no backward yet and is refused by the constructor.
 */
import { copyBuffer, createStorage, endPass, readBuffer } from '../gpu/buffers';
import type { Kernels } from '../gpu/kernels';
import type { ModelSpec } from '../model/spec';
import type { LayerWeights, ModelWeights } from '../model/weights';
import { createMoeScratch, destroyMoeScratch, encodeExperts, type MoeScratch } from '../moe/experts';
import { createRouterTables, defaultRouter, encodeRoute, expertCapacity, type RouterConfig, type RouterTables, validateRouter, writeRouterTables } from '../moe/router';
import { attentionScratchBytes, encodeAttention } from '../ops/attention';
import { encodeAddScaled, encodeSwiGlu } from '../ops/elementwise';
import { encodeEmbedding } from '../ops/embedding';
import { encodeMatmul } from '../ops/matmul';
import { encodeAddRmsNorm, encodeRmsNorm } from '../ops/rmsnorm';
import { encodeQkvRope, ropeTable, uploadRopeTable, type GpuRopeTable } from '../ops/rope';
import type { GpuWeight } from '../quant/weight';
import type { LoraAdapter, LoraModule } from './lora';
import { attentionBackwardStatsFloats, encodeAttentionBackward } from './ops/attention';
import { encodeSwiGluBackward } from './ops/elementwise';
import { encodeEmbeddingBackward, type EmbeddingGradPlan } from './ops/embedding';
import { encodeGroupedLinearBackward, encodeScaleCopy, encodeSlotScatter, type ExpertPlan } from './ops/experts';
import { encodeLinearBackward } from './ops/linear';
import { encodeCrossEntropy } from './ops/loss';
import { encodeMoeCombineBackward } from './ops/moe';
import { encodeRmsNormBackward } from './ops/rmsnorm';
import { encodeCopyHeads, encodeRopeBackward } from './ops/rope';
import { encodeRouterBackward } from './ops/router';

/** Gradient buffers, shaped like the weights; a field left out is not computed (a frozen weight). */
export interface LayerGrads {
  attnNorm?: GPUBuffer;
  qkv?: GPUBuffer;
  qkvBias?: GPUBuffer;
  o?: GPUBuffer;
  oBias?: GPUBuffer;
  qNorm?: GPUBuffer;
  kNorm?: GPUBuffer;
  mlpNorm?: GPUBuffer;
  router?: GPUBuffer;
  expertsGateUp?: GPUBuffer;
  expertsDown?: GPUBuffer;
  sharedGateUp?: GPUBuffer;
  sharedDown?: GPUBuffer;
  sharedGate?: GPUBuffer;
  mlpGateUp?: GPUBuffer;
  mlpDown?: GPUBuffer;
}

export interface ModelGrads {
  embed?: GPUBuffer;
  /** The same buffer as `embed` when the embeddings are tied. */
  lmHead?: GPUBuffer;
  finalNorm?: GPUBuffer;
  layers: LayerGrads[];
}

/** What one MoE layer's forward routed (read back for balance losses and the monitor). */
export interface LayerRouting {
  /** Index into spec.layers. */
  layer: number;
  /** [T, E] the router's scores (encodeRoute's probs). */
  probs: Float32Array;
  /** [T, k] chosen experts. */
  idx: Uint32Array;
  /** [E] tokens each expert kept. */
  counts: Uint32Array;
  /** [T, E] the router's raw logits (before temperature and noise); only with GraphOptions.routerLogits. */
  logits?: Float32Array;
}

interface LayerActs {
  hIn: GPUBuffer;
  xAttn: GPUBuffer;
  qkv: GPUBuffer;
  q: GPUBuffer;
  k: GPUBuffer;
  v: GPUBuffer;
  attn: GPUBuffer;
  hMid: GPUBuffer;
  xMlp: GPUBuffer;
  /** MoE layers. */
  probs?: GPUBuffer;
  idx?: GPUBuffer;
  gates?: GPUBuffer;
  /** [T, E] raw router logits kept for the z-loss (GraphOptions.routerLogits). */
  rawLogits?: GPUBuffer;
  moe?: MoeScratch;
  /** Shared expert (MoE) or the dense MLP: gate/up output, activation, output, shared gate logits. */
  ffGateUp?: GPUBuffer;
  ffAct?: GPUBuffer;
  ffOut?: GPUBuffer;
  sharedGate?: GPUBuffer;
  /** LoRA inputs times A ([T, r]) per adapted module. */
  loraU: Partial<Record<LoraModule, GPUBuffer>>;
}

export interface GraphOptions {
  /** Longest sequence the graph takes. */
  maxTokens: number;
  /** Router knobs (default: the checkpoint's own routing). */
  router?: RouterConfig;
  lora?: LoraAdapter | null;
  /** Keep each MoE layer's raw router logits for readRouting (the z-loss needs them). */
  routerLogits?: boolean;
}

export class TrainGraph {
  readonly maxTokens: number;
  readonly moeLayers: number[];
  readonly router: RouterConfig;
  /** The run's own noise, seed and ablations, which setRoutingOverrides adds to and returns to. */
  private readonly baseRouting: { noiseStd: number; seed: number; disabled: number[] };
  private readonly rope: GpuRopeTable;
  private readonly tables: RouterTables;
  private readonly acts: LayerActs[];
  private readonly own: GPUBuffer[] = [];
  private readonly scratches: MoeScratch[] = [];
  /** Per MoE layer selection bias (DeepSeek-V3's aux-free update); null: none. */
  readonly selectionBias: Array<GPUBuffer | null>;
  private readonly b: Record<string, GPUBuffer> = {};
  private readonly ids: GPUBuffer;
  readonly targets: GPUBuffer;
  readonly losses: GPUBuffer;
  readonly loss: GPUBuffer;
  readonly logits: GPUBuffer;
  private readonly hFinal: GPUBuffer;
  private readonly xFinal: GPUBuffer;
  private readonly attnScratch: GPUBuffer;
  /** Tokens of the last recorded forward. */
  private T = 0;

  constructor(
    readonly k: Kernels,
    readonly spec: ModelSpec,
    readonly weights: ModelWeights,
    opts: GraphOptions,
  ) {
    const s = spec;
    if (s.mla) throw new Error(`training ${s.arch}: DeepSeek's latent attention has no backward yet (the MHA architectures qwen2_moe, qwen3_moe, mixtral, olmoe and granitemoe train)`);
    const T = opts.maxTokens;
    if (!Number.isInteger(T) || T < 2 || T > s.maxPositions) throw new RangeError(`training sequence length must be a whole number from 2 to ${s.maxPositions}, got ${T}`);
    this.maxTokens = T;
    this.router = structuredClone(opts.router ?? defaultRouter(s));
    validateRouter(this.router, s.moe.numExperts);
    this.baseRouting = { noiseStd: this.router.noiseStd, seed: this.router.seed, disabled: [...this.router.disabled] };
    this.lora = opts.lora ?? null;
    const dev = k.device;
    const H = s.hiddenSize, D = s.headDim, nH = s.numHeads, nKV = s.numKvHeads, E = Math.max(1, s.moe.numExperts), K = this.router.topK;
    const W = (nH + 2 * nKV) * D;
    const buf = (floats: number, label: string) => {
      const b = createStorage(dev, Math.max(1, floats) * 4, label);
      this.own.push(b);
      return b;
    };
    this.moeLayers = s.layers.flatMap((l, i) => (l.mlp === 'moe' ? [i] : []));
    this.rope = uploadRopeTable(dev, ropeTable(T, D, s.ropeTheta, s.ropeScaling));
    this.own.push(this.rope.cos, this.rope.sin);
    this.tables = createRouterTables(dev, E);
    this.own.push(this.tables.bias, this.tables.enabled);
    writeRouterTables(dev, this.tables, this.router, E);
    const se = s.moe.sharedExpert;
    const I = s.moe.intermediateSize;
    this.acts = s.layers.map((layer, l) => {
      const a: LayerActs = {
        hIn: buf(T * H, `L${l}.h-in`), xAttn: buf(T * H, `L${l}.x-attn`), qkv: buf(T * W, `L${l}.qkv`),
        q: buf(T * nH * D, `L${l}.q`), k: buf(T * nKV * D, `L${l}.k`), v: buf(T * nKV * D, `L${l}.v`), attn: buf(T * nH * D, `L${l}.attn`),
        hMid: buf(T * H, `L${l}.h-mid`), xMlp: buf(T * H, `L${l}.x-mlp`), loraU: {},
      };
      if (layer.mlp === 'moe') {
        a.probs = buf(T * E, `L${l}.probs`);
        a.idx = buf(T * K, `L${l}.idx`);
        a.gates = buf(T * K, `L${l}.gates`);
        if (opts.routerLogits) a.rawLogits = buf(T * E, `L${l}.router-logits`);
        a.moe = createMoeScratch(dev, T * K, E, H, I);
        this.scratches.push(a.moe);
        if (se) {
          a.ffGateUp = buf(T * 2 * se.intermediateSize, `L${l}.shared-gate-up`);
          a.ffAct = buf(T * se.intermediateSize, `L${l}.shared-act`);
          a.ffOut = buf(T * H, `L${l}.shared-out`);
          if (se.gated) a.sharedGate = buf(T, `L${l}.shared-gate`);
        }
      } else {
        a.ffGateUp = buf(T * 2 * s.denseIntermediateSize, `L${l}.ff-gate-up`);
        a.ffAct = buf(T * s.denseIntermediateSize, `L${l}.ff-act`);
      }
      for (const [mod, m] of Object.entries(this.lora?.layers[l] ?? {})) if (m) a.loraU[mod as LoraModule] = buf(T * m.rank, `L${l}.lora-${mod}`);
      return a;
    });
    this.selectionBias = this.moeLayers.map(() => null);
    this.hFinal = buf(T * H, 'h-final');
    this.xFinal = buf(T * H, 'x-final');
    this.logits = buf(T * s.vocabSize, 'logits');
    this.ids = buf(T, 'ids');
    this.targets = buf(T, 'targets');
    this.losses = buf(T, 'losses');
    this.loss = buf(1, 'loss');
    this.attnScratch = createStorage(dev, attentionScratchBytes(T, nH, D, T), 'attn-splits');
    this.own.push(this.attnScratch);
    // Backward temporaries, shared by all layers (the backward walks them one at a time).
    const ffMax = Math.max(se?.intermediateSize ?? 0, s.layers.some((l) => l.mlp === 'dense') ? s.denseIntermediateSize : 0, 1);
    const S = T * K;
    const r = Math.max(1, ...(this.lora?.layers.flatMap((m) => Object.values(m).map((x) => x?.rank ?? 1)) ?? [1]));
    const sizes: Record<string, number> = {
      mlpOut: T * H, proj: T * H, dh: T * H, dx: T * H, dBranch: T * H, dXf: T * H,
      dAttn: T * nH * D, dq: T * nH * D, dk: T * nKV * D, dv: T * nKV * D, dqkv: T * W, deltaFull: T * W, delta: T * Math.max(W, H),
      qRaw: T * nH * D, kRaw: T * nKV * D, dqn: T * nH * D, dkn: T * nKV * D, dqRaw: T * nH * D, dkRaw: T * nKV * D,
      rstd: T * Math.max(nH, nKV, 1), stats: attentionBackwardStatsFloats(T, nH),
      dGate: S, dRouter: T * E, dProbs: T * E, dY: S * H, dAct: S * I, dGU: S * 2 * I, dA: S * H,
      dFfOut: T * H, dFfAct: T * ffMax, dFfGU: T * 2 * ffMax, dSharedGate: T,
      du: T * r, dDelta: T * Math.max(W, H),
    };
    for (const [name, n] of Object.entries(sizes)) this.b[name] = buf(n, `bwd-${name}`);
  }

  readonly lora: LoraAdapter | null;

  destroy(): void {
    for (const b of this.own) b.destroy();
    for (const m of this.scratches) destroyMoeScratch(m);
  }

  /** Writes DeepSeek-V3-style per-layer selection biases (aux-free balancing), one array of E per MoE layer. */
  setSelectionBias(m: number, bias: ArrayLike<number>): void {
    let b = this.selectionBias[m];
    if (!b) {
      b = createStorage(this.k.device, this.spec.moe.numExperts * 4, `selection-bias-${m}`);
      this.own.push(b);
      this.selectionBias[m] = b;
    }
    this.k.device.queue.writeBuffer(b, 0, Float32Array.from(bias));
  }

  /**
   * Training-time routing changes (noisy top-k, expert dropout) on top of the run's knobs; call with
   * {} to route as the knobs say (validation, the flip-rate probe). Lands before the next submit.
   */
  setRoutingOverrides(o: { noiseStd?: number; seed?: number; disabled?: readonly number[] }): void {
    const r = this.router;
    r.noiseStd = o.noiseStd ?? this.baseRouting.noiseStd;
    r.seed = o.seed ?? this.baseRouting.seed;
    r.disabled = [...new Set([...this.baseRouting.disabled, ...(o.disabled ?? [])])].sort((a, b) => a - b);
    validateRouter(r, this.spec.moe.numExperts);
    writeRouterTables(this.k.device, this.tables, r, Math.max(1, this.spec.moe.numExperts));
  }

  /** Uploads one sequence (ids) and its targets (already shifted; −100 = no target). */
  writeSequence(ids: ArrayLike<number>, targets: ArrayLike<number>): void {
    const T = ids.length;
    if (T < 1 || T > this.maxTokens) throw new RangeError(`a training sequence has 1 … ${this.maxTokens} tokens, got ${T}`);
    if (targets.length !== T) throw new RangeError(`${T} ids but ${targets.length} targets`);
    for (let t = 0; t < T; t++) {
      const id = ids[t]!;
      if (!(Number.isInteger(id) && id >= 0 && id < this.spec.vocabSize)) throw new RangeError(`token id ${id} at position ${t} is outside the vocabulary of ${this.spec.vocabSize}`);
      const y = targets[t]!;
      if (y !== -100 && !(Number.isInteger(y) && y >= 0 && y < this.spec.vocabSize)) throw new RangeError(`target ${y} at position ${t} is outside the vocabulary of ${this.spec.vocabSize}`);
    }
    this.k.device.queue.writeBuffer(this.ids, 0, Uint32Array.from(ids));
    this.k.device.queue.writeBuffer(this.targets, 0, Int32Array.from(targets));
    this.T = T;
  }

  get tokens(): number {
    return this.T;
  }

  /** Records the forward of the sequence writeSequence uploaded; logits [T, V] land in `logits`. */
  encodeForward(enc: GPUCommandEncoder): void {
    const s = this.spec, k = this.k, T = this.T, w = this.weights;
    const H = s.hiddenSize;
    if (T === 0) throw new Error('TrainGraph: writeSequence first');
    encodeEmbedding(k, enc, { ids: this.ids, table: w.embed, out: this.acts[0]!.hIn, tokens: T, dim: H, vocab: s.vocabSize, scale: s.embeddingMultiplier });
    let moeIndex = 0;
    for (let l = 0; l < s.numLayers; l++) {
      const a = this.acts[l]!, lw = w.layers[l]!;
      const next = l + 1 < s.numLayers ? this.acts[l + 1]!.hIn : this.hFinal;
      encodeRmsNorm(k, enc, { x: a.hIn, weight: lw.attnNorm, y: a.xAttn, rows: T, dim: H, eps: s.rmsNormEps });
      this.encodeAttention(enc, l, lw, a);
      // model.ts adds the branch into h in place; here h before and after stay apart for the backward.
      copyBuffer(enc, a.hIn, 0, a.hMid, 0, T * H * 4);
      encodeAddRmsNorm(k, enc, { h: a.hMid, y: this.b.proj!, alpha: s.residualMultiplier, weight: lw.mlpNorm, x: a.xMlp, rows: T, dim: H, eps: s.rmsNormEps });
      if (s.layers[l]!.mlp === 'moe') this.encodeMoe(enc, lw, a, moeIndex++);
      else encodeFfnForward(k, enc, a.xMlp, lw.mlpGateUp!, lw.mlpDown!, s.denseIntermediateSize, a.ffGateUp!, a.ffAct!, this.b.mlpOut!, T, H);
      copyBuffer(enc, a.hMid, 0, next, 0, T * H * 4);
      encodeAddScaled(k, enc, { h: next, y: this.b.mlpOut!, n: T * H, alpha: s.residualMultiplier });
    }
    encodeRmsNorm(k, enc, { x: this.hFinal, weight: w.finalNorm, y: this.xFinal, rows: T, dim: H, eps: s.rmsNormEps });
    encodeMatmul(k, enc, { x: this.xFinal, w: w.lmHead, y: this.logits, M: T, N: s.vocabSize, K: H, alpha: 1 / s.logitsDivisor });
  }

  /**
   * Records the mean cross-entropy over the counted targets into `loss`, and its gradient (times
   * `gradScale`: 1/micro-batches under accumulation) over the logits, in place.
   */
  encodeLoss(enc: GPUCommandEncoder, gradScale = 1): void {
    // The head computes logits = (x·Wᵀ) / divisor: the divisor goes into the gradient here, so the
    // linear backward of the head needs no scale of its own.
    encodeCrossEntropy(this.k, enc, {
      logits: this.logits, targets: this.targets, dlogits: this.logits, losses: this.losses, loss: this.loss,
      tokens: this.T, vocab: this.spec.vocabSize, gradScale: gradScale / this.spec.logitsDivisor,
    });
  }

  /** Reads back each MoE layer's routing of the last forward (after its encoder was submitted). */
  async readRouting(): Promise<LayerRouting[]> {
    const T = this.T, E = this.spec.moe.numExperts, K = this.router.topK;
    const out: LayerRouting[] = [];
    for (const l of this.moeLayers) {
      const a = this.acts[l]!;
      const [probs, idx, counts, logits] = await Promise.all([
        readBuffer(this.k.device, a.probs!, T * E * 4), readBuffer(this.k.device, a.idx!, T * K * 4), readBuffer(this.k.device, a.moe!.counts, E * 4),
        a.rawLogits ? readBuffer(this.k.device, a.rawLogits, T * E * 4) : Promise.resolve(null),
      ]);
      out.push({ layer: l, probs: new Float32Array(probs), idx: new Uint32Array(idx), counts: new Uint32Array(counts), ...(logits ? { logits: new Float32Array(logits) } : {}) });
    }
    return out;
  }

  /**
   * Records the backward of the last forward + encodeLoss into `g` (every gradient is added to:
   * clear them before a step's first micro-batch). `dProbs[m]` [T, E], when given, is the gradient
   * of extra losses on MoE layer m's router scores (balance losses); `dLogits[m]` [T, E] that of
   * losses on its raw logits (the z-loss), added to what flows back through the scores.
   */
  encodeBackward(enc: GPUCommandEncoder, g: ModelGrads, dProbs?: ReadonlyArray<GPUBuffer | null>, dLogits?: ReadonlyArray<GPUBuffer | null>): void {
    const s = this.spec, k = this.k, T = this.T, w = this.weights, b = this.b;
    const H = s.hiddenSize;
    const needInput = (l: number) => !!g.embed || anyBelow(g, this.lora, l);
    encodeLinearBackward(k, enc, { dy: this.logits, x: this.xFinal, w: w.lmHead, dx: b.dXf!, dw: g.lmHead, M: T, N: s.vocabSize, K: H, accumulate: { dw: true } });
    encodeRmsNormBackward(k, enc, { x: this.hFinal, weight: w.finalNorm, dy: b.dXf!, dx: b.dh!, rstd: b.rstd!, dweight: g.finalNorm, rows: T, dim: H, eps: s.rmsNormEps, accumulate: { dweight: true } });
    let moeIndex = this.moeLayers.length;
    for (let l = s.numLayers - 1; l >= 0; l--) {
      if (!needInput(l + 1) && !hasLayerGrads(g.layers[l], this.lora?.layers[l])) {
        if (s.layers[l]!.mlp === 'moe') moeIndex--;
        continue;
      }
      const a = this.acts[l]!, lw = w.layers[l]!, lg = g.layers[l] ?? {};
      // ---- MLP branch: next = hMid + r·mlp(xMlp)
      const dBranch = this.scaled(enc, b.dh!, s.residualMultiplier, T * H);
      if (s.layers[l]!.mlp === 'moe') {
        moeIndex--;
        this.moeBackward(enc, lw, lg, a, dBranch, dProbs?.[moeIndex] ?? null, dLogits?.[moeIndex] ?? null);
      }
      else this.ffnBackward(enc, a.xMlp, lw.mlpGateUp!, lw.mlpDown!, s.denseIntermediateSize, a.ffGateUp!, a.ffAct!, dBranch, lg.mlpGateUp, lg.mlpDown, false);
      encodeRmsNormBackward(k, enc, { x: a.hMid, weight: lw.mlpNorm, dy: b.dx!, dx: b.dh!, rstd: b.rstd!, dweight: lg.mlpNorm, rows: T, dim: H, eps: s.rmsNormEps, accumulate: { dx: true, dweight: true } });
      // ---- attention branch: hMid = hIn + r·o(attn(xAttn))
      this.attentionBackward(enc, l, lw, lg, a, this.scaled(enc, b.dh!, s.residualMultiplier, T * H));
      if (l > 0 || g.embed) {
        encodeRmsNormBackward(k, enc, { x: a.hIn, weight: lw.attnNorm, dy: b.dx!, dx: b.dh!, rstd: b.rstd!, dweight: lg.attnNorm, rows: T, dim: H, eps: s.rmsNormEps, accumulate: { dx: true, dweight: true } });
      } else if (lg.attnNorm) {
        // Layer 0 without an embedding gradient: only the norm weight's gradient is wanted; dx goes to a spare buffer.
        encodeRmsNormBackward(k, enc, { x: a.hIn, weight: lw.attnNorm, dy: b.dx!, dx: b.dBranch!, rstd: b.rstd!, dweight: lg.attnNorm, rows: T, dim: H, eps: s.rmsNormEps, accumulate: { dweight: true } });
      }
    }
    if (g.embed) {
      encodeEmbeddingBackward(k, enc, { plan: this.embedPlan!, dout: b.dh!, dTable: g.embed, dim: H, scale: s.embeddingMultiplier, accumulate: true });
    }
  }

  /** The token grouping the embedding backward needs (set by the trainer per sequence when the embedding trains). */
  embedPlan: EmbeddingGradPlan | null = null;

  // ------------------------------------------------------------------ forward pieces

  private encodeAttention(enc: GPUCommandEncoder, l: number, lw: LayerWeights, a: LayerActs): void {
    const s = this.spec, k = this.k, T = this.T;
    const H = s.hiddenSize, D = s.headDim, nH = s.numHeads, nKV = s.numKvHeads, W = (nH + 2 * nKV) * D;
    if (!lw.qkv) throw new Error(`Layer ${l} has no q/k/v projection`);
    encodeMatmul(k, enc, { x: a.xAttn, w: lw.qkv, bias: lw.qkvBias, y: a.qkv, M: T, N: W, K: H });
    const lora = this.lora?.layers[l];
    if (lora && (lora.q_proj || lora.k_proj || lora.v_proj)) {
      endPass(enc);
      enc.clearBuffer(this.b.deltaFull!, 0, T * W * 4);
      for (const [mod, off, heads] of [['q_proj', 0, nH], ['k_proj', nH * D, nKV], ['v_proj', (nH + nKV) * D, nKV]] as const) {
        const m = lora[mod];
        if (!m) continue;
        encodeMatmul(k, enc, { x: a.xAttn, w: m.A, y: a.loraU[mod]!, M: T, N: m.rank, K: H });
        encodeMatmul(k, enc, { x: a.loraU[mod]!, w: m.B, y: this.b.delta!, M: T, N: heads * D, K: m.rank });
        encodeCopyHeads(k, enc, { src: { buffer: this.b.delta! }, dst: { buffer: this.b.deltaFull!, stride: W, offset: off }, tokens: T, heads, headDim: D });
      }
      encodeAddScaled(k, enc, { h: a.qkv, y: this.b.deltaFull!, n: T * W, alpha: this.lora!.scale });
    }
    encodeQkvRope(k, enc, {
      qkv: a.qkv, qOut: a.q, kCache: a.k, vCache: a.v, table: this.rope,
      norm: s.qkNorm, qNorm: lw.qNorm, kNorm: lw.kNorm, eps: s.rmsNormEps, tokens: T, heads: nH, kvHeads: nKV, headDim: D, start: 0,
    });
    encodeAttention(k, enc, { q: a.q, kCache: a.k, vCache: a.v, out: a.attn, scratch: this.attnScratch, tokens: T, heads: nH, kvHeads: nKV, headDim: D, start: 0, scale: this.attnScale });
    encodeMatmul(k, enc, { x: a.attn, w: lw.o, bias: lw.oBias, y: this.b.proj!, M: T, N: H, K: nH * D });
    const o = lora?.o_proj;
    if (o) {
      encodeMatmul(k, enc, { x: a.attn, w: o.A, y: a.loraU.o_proj!, M: T, N: o.rank, K: nH * D });
      encodeMatmul(k, enc, { x: a.loraU.o_proj!, w: o.B, y: this.b.delta!, M: T, N: H, K: o.rank });
      encodeAddScaled(k, enc, { h: this.b.proj!, y: this.b.delta!, n: T * H, alpha: this.lora!.scale });
    }
  }

  private get attnScale(): number {
    return this.spec.attentionScale ?? 1 / Math.sqrt(this.spec.headDim);
  }

  private encodeMoe(enc: GPUCommandEncoder, lw: LayerWeights, a: LayerActs, m: number): void {
    const s = this.spec, k = this.k, T = this.T, r = this.router;
    const H = s.hiddenSize, E = s.moe.numExperts;
    // The router logits are not needed after routing: the backward's dRouter buffer holds them meanwhile.
    encodeMatmul(k, enc, { x: a.xMlp, w: lw.router!, y: this.b.dRouter!, M: T, N: E, K: H });
    if (a.rawLogits) copyBuffer(enc, this.b.dRouter!, 0, a.rawLogits, 0, T * E * 4);
    const layerBias = this.selectionBias[m] ?? lw.routerBias;
    encodeRoute(k, enc, { logits: this.b.dRouter!, tables: this.tables, layerBias, probs: a.probs!, idx: a.idx!, weights: a.gates!, tokens: T, experts: E, position: 0, router: r });
    let shared: { out: GPUBuffer; gateLogits?: GPUBuffer } | undefined;
    const se = s.moe.sharedExpert;
    if (se) {
      encodeFfnForward(k, enc, a.xMlp, lw.sharedGateUp!, lw.sharedDown!, se.intermediateSize, a.ffGateUp!, a.ffAct!, a.ffOut!, T, H);
      shared = { out: a.ffOut! };
      if (se.gated) {
        encodeMatmul(k, enc, { x: a.xMlp, w: lw.sharedGate!, y: a.sharedGate!, M: T, N: 1, K: H });
        shared.gateLogits = a.sharedGate!;
      }
    }
    encodeExperts(k, enc, {
      x: a.xMlp, idx: a.idx!, gates: a.gates!, wGateUp: lw.expertsGateUp!, wDown: lw.expertsDown!, shared,
      out: this.b.mlpOut!, tokens: T, topk: r.topK, experts: E, hidden: H, inter: s.moe.intermediateSize, scratch: a.moe!,
      capacity: expertCapacity(r, T, E), keepActivations: true,
    });
  }

  // ------------------------------------------------------------------ backward pieces

  /** alpha · x into a spare buffer, or x itself when alpha is 1. */
  private scaled(enc: GPUCommandEncoder, x: GPUBuffer, alpha: number, n: number): GPUBuffer {
    if (alpha === 1) return x;
    encodeScaleCopy(this.k, enc, { x, y: this.b.dBranch!, n, alpha });
    return this.b.dBranch!;
  }

  /** dout [T, H] of the MoE block → b.dx [T, H] (gradient of xMlp), and the block's weight gradients. */
  private moeBackward(enc: GPUCommandEncoder, lw: LayerWeights, lg: LayerGrads, a: LayerActs, dout: GPUBuffer, dProbs: GPUBuffer | null, dLogits: GPUBuffer | null): void {
    const s = this.spec, k = this.k, T = this.T, b = this.b, r = this.router;
    const H = s.hiddenSize, E = s.moe.numExperts, I = s.moe.intermediateSize, K = r.topK;
    const se = s.moe.sharedExpert;
    const sc = a.moe!;
    encodeMoeCombineBackward(k, enc, {
      gate: a.gates!, slotPos: sc.slotPos, y: sc.down, dout, dGate: b.dGate!, dY: b.dY!, tokens: T, topK: K, dim: H,
      shared: se ? { out: a.ffOut!, gateLogits: a.sharedGate, dOut: b.dFfOut!, dGateLogits: se.gated ? b.dSharedGate! : undefined } : undefined,
    });
    const plan: ExpertPlan = { sorted: sc.sorted, slotPos: sc.slotPos, counts: sc.counts, idx: a.idx!, tokens: T, topk: K, experts: E };
    encodeGroupedLinearBackward(k, enc, { plan, dy: b.dY!, w: lw.expertsDown!, dA: b.dAct!, a: sc.act, dW: lg.expertsDown, accumulateDw: true, N: H, K: I });
    encodeSwiGluBackward(k, enc, { gateUp: sc.gateUp, dout: b.dAct!, dGateUp: b.dGU!, rows: T * K, inter: I });
    encodeGroupedLinearBackward(k, enc, { plan, dy: b.dGU!, w: lw.expertsGateUp!, dA: b.dA!, a: a.xMlp, gather: true, dW: lg.expertsGateUp, accumulateDw: true, N: 2 * I, K: H });
    encodeSlotScatter(k, enc, { plan, dA: b.dA!, dx: b.dx!, dim: H });
    encodeRouterBackward(k, enc, { probs: a.probs!, idx: a.idx!, dGates: b.dGate!, dProbs: dProbs ?? undefined, dLogits: b.dRouter!, tokens: T, experts: E, topK: K, router: r });
    if (dLogits) encodeAddScaled(k, enc, { h: b.dRouter!, y: dLogits, n: T * E, alpha: 1 });
    encodeLinearBackward(k, enc, { dy: b.dRouter!, x: a.xMlp, w: lw.router!, dx: b.dx!, dw: lg.router, M: T, N: E, K: H, accumulate: { dx: true, dw: true } });
    if (se) {
      this.ffnBackward(enc, a.xMlp, lw.sharedGateUp!, lw.sharedDown!, se.intermediateSize, a.ffGateUp!, a.ffAct!, b.dFfOut!, lg.sharedGateUp, lg.sharedDown, true);
      if (se.gated) encodeLinearBackward(k, enc, { dy: b.dSharedGate!, x: a.xMlp, w: lw.sharedGate!, dx: b.dx!, dw: lg.sharedGate, M: T, N: 1, K: H, accumulate: { dx: true, dw: true } });
    }
  }

  /** SwiGLU MLP backward: dout → b.dx (added to when `accumulate`), weight gradients when given. */
  private ffnBackward(enc: GPUCommandEncoder, x: GPUBuffer, gateUp: GpuWeight, down: GpuWeight, inter: number, gu: GPUBuffer, act: GPUBuffer, dout: GPUBuffer, dGateUp: GPUBuffer | undefined, dDown: GPUBuffer | undefined, accumulate: boolean): void {
    const k = this.k, T = this.T, b = this.b, H = this.spec.hiddenSize;
    encodeLinearBackward(k, enc, { dy: dout, x: act, w: down, dx: b.dFfAct!, dw: dDown, M: T, N: H, K: inter, accumulate: { dw: true } });
    encodeSwiGluBackward(k, enc, { gateUp: gu, dout: b.dFfAct!, dGateUp: b.dFfGU!, rows: T, inter });
    encodeLinearBackward(k, enc, { dy: b.dFfGU!, x, w: gateUp, dx: b.dx!, dw: dGateUp, M: T, N: 2 * inter, K: H, accumulate: { dx: accumulate, dw: true } });
  }

  /** dProj [T, H] (gradient of the o-projection's output) → b.dx (gradient of xAttn), and weight gradients. */
  private attentionBackward(enc: GPUCommandEncoder, l: number, lw: LayerWeights, lg: LayerGrads, a: LayerActs, dProj: GPUBuffer): void {
    const s = this.spec, k = this.k, T = this.T, b = this.b;
    const H = s.hiddenSize, D = s.headDim, nH = s.numHeads, nKV = s.numKvHeads, nq = nH * D, nk = nKV * D, W = nq + 2 * nk;
    const lora = this.lora?.layers[l];
    const scale = this.lora?.scale ?? 1;
    encodeLinearBackward(k, enc, { dy: dProj, x: a.attn, w: lw.o, dx: b.dAttn!, dw: lg.o, db: lg.oBias, M: T, N: H, K: nq, accumulate: { dw: true, db: true } });
    if (lora?.o_proj) {
      const m = lora.o_proj;
      encodeScaleCopy(k, enc, { x: dProj, y: b.dDelta!, n: T * H, alpha: scale });
      encodeLinearBackward(k, enc, { dy: b.dDelta!, x: a.loraU.o_proj!, w: m.B, dx: b.du!, dw: m.gB, M: T, N: H, K: m.rank, accumulate: { dw: true } });
      encodeLinearBackward(k, enc, { dy: b.du!, x: a.attn, w: m.A, dx: b.dAttn!, dw: m.gA, M: T, N: m.rank, K: nq, accumulate: { dx: true, dw: true } });
    }
    encodeAttentionBackward(k, enc, { q: a.q, k: a.k, v: a.v, out: a.attn, dout: b.dAttn!, stats: b.stats!, dq: b.dq!, dk: b.dk!, dv: b.dv!, tokens: T, heads: nH, kvHeads: nKV, headDim: D, scale: this.attnScale });
    const table = this.rope;
    if (s.qkNorm === 'none') {
      encodeRopeBackward(k, enc, { dy: { buffer: b.dq! }, dx: { buffer: b.dqkv!, stride: W, offset: 0 }, table, tokens: T, heads: nH, headDim: D, start: 0 });
      encodeRopeBackward(k, enc, { dy: { buffer: b.dk! }, dx: { buffer: b.dqkv!, stride: W, offset: nq }, table, tokens: T, heads: nKV, headDim: D, start: 0 });
    } else {
      // q/k RMSNorm sits between the projection and RoPE (qkv_rope.wgsl): undo RoPE into plain
      // [T, heads, D] buffers, run the norm backward on contiguous copies of the raw q and k, and
      // put the result into d(qkv) through strided copies. 'head': rows of D; 'full': rows of heads·D.
      encodeRopeBackward(k, enc, { dy: { buffer: b.dq! }, dx: { buffer: b.dqn! }, table, tokens: T, heads: nH, headDim: D, start: 0 });
      encodeRopeBackward(k, enc, { dy: { buffer: b.dk! }, dx: { buffer: b.dkn! }, table, tokens: T, heads: nKV, headDim: D, start: 0 });
      encodeCopyHeads(k, enc, { src: { buffer: a.qkv, stride: W, offset: 0 }, dst: { buffer: b.qRaw! }, tokens: T, heads: nH, headDim: D });
      encodeCopyHeads(k, enc, { src: { buffer: a.qkv, stride: W, offset: nq }, dst: { buffer: b.kRaw! }, tokens: T, heads: nKV, headDim: D });
      const head = s.qkNorm === 'head';
      const eps = s.rmsNormEps;
      encodeRmsNormBackward(k, enc, { x: b.qRaw!, weight: lw.qNorm!, dy: b.dqn!, dx: b.dqRaw!, rstd: b.rstd!, dweight: lg.qNorm, rows: head ? T * nH : T, dim: head ? D : nq, eps, accumulate: { dweight: true } });
      encodeRmsNormBackward(k, enc, { x: b.kRaw!, weight: lw.kNorm!, dy: b.dkn!, dx: b.dkRaw!, rstd: b.rstd!, dweight: lg.kNorm, rows: head ? T * nKV : T, dim: head ? D : nk, eps, accumulate: { dweight: true } });
      encodeCopyHeads(k, enc, { src: { buffer: b.dqRaw! }, dst: { buffer: b.dqkv!, stride: W, offset: 0 }, tokens: T, heads: nH, headDim: D });
      encodeCopyHeads(k, enc, { src: { buffer: b.dkRaw! }, dst: { buffer: b.dqkv!, stride: W, offset: nq }, tokens: T, heads: nKV, headDim: D });
    }
    encodeCopyHeads(k, enc, { src: { buffer: b.dv! }, dst: { buffer: b.dqkv!, stride: W, offset: nq + nk }, tokens: T, heads: nKV, headDim: D });
    encodeLinearBackward(k, enc, { dy: b.dqkv!, x: a.xAttn, w: lw.qkv!, dx: b.dx!, dw: lg.qkv, db: lg.qkvBias, M: T, N: W, K: H, accumulate: { dw: true, db: true } });
    if (lora) {
      for (const [mod, off, heads] of [['q_proj', 0, nH], ['k_proj', nq, nKV], ['v_proj', nq + nk, nKV]] as const) {
        const m = lora[mod];
        if (!m) continue;
        encodeCopyHeads(k, enc, { src: { buffer: b.dqkv!, stride: W, offset: off }, dst: { buffer: b.delta! }, tokens: T, heads, headDim: D });
        encodeScaleCopy(k, enc, { x: b.delta!, y: b.dDelta!, n: T * heads * D, alpha: scale });
        encodeLinearBackward(k, enc, { dy: b.dDelta!, x: a.loraU[mod]!, w: m.B, dx: b.du!, dw: m.gB, M: T, N: heads * D, K: m.rank, accumulate: { dw: true } });
        encodeLinearBackward(k, enc, { dy: b.du!, x: a.xAttn, w: m.A, dx: b.dx!, dw: m.gA, M: T, N: m.rank, K: H, accumulate: { dx: true, dw: true } });
      }
    }
  }
}

/** x → SwiGLU MLP → out, as MoeModel.encodeFfn records it, keeping gate/up and the activation. */
function encodeFfnForward(k: Kernels, enc: GPUCommandEncoder, x: GPUBuffer, gateUp: GpuWeight, down: GpuWeight, inter: number, gu: GPUBuffer, act: GPUBuffer, out: GPUBuffer, T: number, H: number): void {
  encodeMatmul(k, enc, { x, w: gateUp, y: gu, M: T, N: 2 * inter, K: H });
  encodeSwiGlu(k, enc, { gateUp: gu, out: act, rows: T, inter });
  encodeMatmul(k, enc, { x: act, w: down, y: out, M: T, N: H, K: inter });
}

function hasLayerGrads(g: LayerGrads | undefined, lora: LoraAdapter['layers'][number] | undefined): boolean {
  return (!!g && Object.values(g).some(Boolean)) || (!!lora && Object.values(lora).some(Boolean));
}

/** Whether some layer below `l` (or the embedding) has a gradient, so the backward must reach it. */
function anyBelow(g: ModelGrads, lora: LoraAdapter | null, l: number): boolean {
  for (let i = 0; i < l; i++) if (hasLayerGrads(g.layers[i], lora?.layers[i])) return true;
  return false;
}

