/**
 * The forward pass: one command encoder per chunk of tokens, every op on the GPU, KV cache kept
 * between calls. Routing (chosen experts, gate weights, per-expert counts) is copied into a capture
 * buffer during the same submit, so reading it never stalls decoding.
 */
import { copyBuffer, createStorage, encodeReadback, submitEncoder } from '../gpu/buffers';
import type { Kernels } from '../gpu/kernels';
import { createMoeScratch, destroyMoeScratch, encodeExperts, maxTiles, type MoeScratch } from '../moe/experts';
import { createRouterTables, defaultRouter, encodeRoute, expertCapacity, fusedKernelsFit, type RouterConfig, type RouterTables, validateRouter, writeRouterTables } from '../moe/router';
import { attentionScratchBytesUpTo, encodeAttention, MAX_HEAD_DIM } from '../ops/attention';
import { encodeAddScaled, encodeSwiGlu } from '../ops/elementwise';
import { encodeEmbedding } from '../ops/embedding';
import { encodeMatmul } from '../ops/matmul';
import { encodeAddRmsNorm, encodeRmsNorm } from '../ops/rmsnorm';
import { encodeQkvRope, ropeTable, uploadRopeTable, type GpuRopeTable } from '../ops/rope';
import { createSamplerBuffers, encodeSample, type SamplerBuffers, type SamplingParams, validateSampling } from './sampling';
import type { GpuWeight } from '../quant/weight';
import { encodeMlaCache, encodeMlaQuery, encodeMlaValue } from '../ops/mla';
import { attentionKeyDim, kvBytesPerToken } from './shapes';
import type { MlaSpec, ModelSpec } from './spec';
import type { LayerWeights, ModelWeights } from './weights';

export interface ModelOptions {
  /** KV-cache length (positions); defaults to min(maxPositions, 2048). */
  contextLength?: number;
  /** Most tokens recorded in one forward chunk (prefill is split into chunks of this size). */
  chunkTokens?: number;
}

/** What one forward call asks to get back. */
export interface ForwardRequest {
  /** Logits for every position (true) or only the last (false, generation). */
  allLogits?: boolean;
  /** Router logits of every MoE layer, [moeLayers][T][E] (parity tests, CLI --router-logits). */
  routerLogits?: boolean;
  /**
   * Pick the next token on the GPU from the last position's logits (penalising every token in the
   * cache); only the token comes back, not the logits. `step` varies the seeded draw.
   */
  sample?: { params: SamplingParams; step: number };
}

/** Routing of one forward call, per MoE layer. */
export interface RoutingRecord {
  /** Position of the first token. */
  start: number;
  tokens: number;
  topk: number;
  numExperts: number;
  /** Indices into spec.layers of the MoE layers, in order. */
  layers: number[];
  /** [moeLayer][t·k + j] expert id. */
  experts: Uint32Array[];
  /** [moeLayer][t·k + j] gate weight used. */
  gates: Float32Array[];
}

export interface ForwardResult {
  /** Row-major [rows, vocab]: every position or only the last; empty when sampling. */
  logits: Float32Array;
  rows: number;
  /** The sampled token and its probability under the sampling distribution, when asked. */
  token?: { id: number; prob: number };
  routerLogits?: Float32Array[];
  routing: RoutingRecord;
}

interface Scratch {
  T: number;
  K: number;
  ids: GPUBuffer;
  h: GPUBuffer;
  x: GPUBuffer;
  qkv: GPUBuffer;
  q: GPUBuffer;
  attn: GPUBuffer;
  attnSplits: GPUBuffer;
  proj: GPUBuffer;
  routerLogits: GPUBuffer;
  probs: GPUBuffer;
  idx: GPUBuffer;
  gates: GPUBuffer;
  moe: MoeScratch | null;
  mlpOut: GPUBuffer;
  ffGateUp: GPUBuffer;
  ffAct: GPUBuffer;
  sharedOut: GPUBuffer;
  sharedGate: GPUBuffer;
  lastRow: GPUBuffer;
  logits: GPUBuffer;
  capture: GPUBuffer;
  routerCapture: GPUBuffer | null;
  /** Latent attention only: q_a output and its norm [T, q_lora_rank], kv_a output [T, L+R], head values [T, H·dv]. */
  mlaQa: GPUBuffer | null;
  mlaQaNorm: GPUBuffer | null;
  mlaKv: GPUBuffer | null;
  mlaValues: GPUBuffer | null;
}

export class MoeModel {
  readonly contextLength: number;
  readonly chunkTokens: number;
  private readonly kCache: GPUBuffer[];
  private readonly vCache: GPUBuffer[];
  private readonly rope: GpuRopeTable;
  private readonly moeLayers: number[];
  private scratch: Scratch | null = null;
  /** Every token id in the cache, for the repetition penalty. */
  private readonly history: GPUBuffer;
  private readonly sampler: SamplerBuffers;
  private routerConfig: RouterConfig;
  /** The device can bind what the fused routing + plan kernel needs (router.ts fusedKernelsFit). */
  private readonly fused: boolean;
  private readonly routerTables: RouterTables;
  /** Positions already in the KV cache. */
  private cached = 0;
  /**
   * Where the last forward chunk's wall time went: recording commands (CPU), submitting them, and
   * waiting for the GPU and the read-back. Benchmarks report it; it costs three clock reads.
   */
  lastChunkTiming = { encodeMs: 0, submitMs: 0, waitMs: 0 };
  /** The last recorded forward sampled a token into the sampler's output (forwardSampled may follow). */
  private sampledReady = false;

  constructor(
    readonly kernels: Kernels,
    readonly spec: ModelSpec,
    readonly weights: ModelWeights,
    opts: ModelOptions = {},
  ) {
    const s = spec;
    const keyDim = attentionKeyDim(s);
    if (keyDim % 4 !== 0 || keyDim > MAX_HEAD_DIM) throw new Error(`attention key width ${keyDim} is not supported: the attention kernel needs a multiple of 4 up to ${MAX_HEAD_DIM}`);
    this.contextLength = Math.min(opts.contextLength ?? 2048, s.maxPositions);
    this.chunkTokens = Math.max(1, Math.min(opts.chunkTokens ?? 256, this.contextLength));
    const dev = kernels.device;
    const rowBytes = kvBytesPerToken(s) / s.numLayers;
    // Latent attention caches one row [c | k_rope] per position, used as both key and value.
    this.kCache = s.layers.map((_, l) => createStorage(dev, this.contextLength * (s.mla ? rowBytes : rowBytes / 2), s.mla ? `latent-cache-${l}` : `k-cache-${l}`));
    this.vCache = s.mla ? this.kCache : s.layers.map((_, l) => createStorage(dev, (this.contextLength * rowBytes) / 2, `v-cache-${l}`));
    this.rope = uploadRopeTable(dev, ropeTable(this.contextLength, s.mla ? s.mla.ropeDim : s.headDim, s.ropeTheta, s.ropeScaling));
    this.moeLayers = s.layers.flatMap((l, i) => (l.mlp === 'moe' ? [i] : []));
    this.history = createStorage(dev, this.contextLength * 4, 'token-history');
    this.sampler = createSamplerBuffers(dev, s.vocabSize);
    this.routerConfig = defaultRouter(s);
    this.fused = fusedKernelsFit(this.kernels.device);
    this.routerTables = createRouterTables(dev, s.moe.numExperts);
    writeRouterTables(dev, this.routerTables, this.routerConfig, s.moe.numExperts);
  }

  /** The router knobs the next forward uses. */
  get router(): RouterConfig {
    return this.routerConfig;
  }

  /** Changes the router knobs; takes effect at the next forward (no reload, cache kept). */
  setRouter(r: RouterConfig): void {
    validateRouter(r, this.spec.moe.numExperts);
    this.routerConfig = structuredClone(r);
    writeRouterTables(this.kernels.device, this.routerTables, r, this.spec.moe.numExperts);
  }

  /** Tokens currently held in the KV cache. */
  get position(): number {
    return this.cached;
  }

  /** Forgets the conversation (the cache is overwritten from position 0). */
  reset(): void {
    this.cached = 0;
    this.sampledReady = false;
  }

  /** Rolls the cache back to `pos` tokens (e.g. to re-generate from an earlier point). */
  truncate(pos: number): void {
    if (pos < 0 || pos > this.cached) throw new RangeError(`Cannot truncate to ${pos}: the cache holds ${this.cached} tokens`);
    this.cached = pos;
    this.sampledReady = false;
  }

  destroy(): void {
    this.freeScratch();
    const own = [...new Set([...this.kCache, ...this.vCache]), this.rope.cos, this.rope.sin, this.history];
    for (const b of [...own, this.sampler.work, this.sampler.out, this.sampler.params, this.routerTables.bias, this.routerTables.enabled]) b.destroy();
  }

  /**
   * Appends `ids` after the cached tokens and runs them through the model. Long inputs are split
   * into chunks; routing and router logits cover all of `ids`.
   */
  async forward(ids: ArrayLike<number>, req: ForwardRequest = {}): Promise<ForwardResult> {
    const s = this.spec;
    if (ids.length === 0) throw new RangeError('forward() needs at least one token');
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= s.vocabSize) throw new RangeError(`Token id ${id} at ${i} is outside the vocabulary (0 … ${s.vocabSize - 1})`);
    }
    if (this.cached + ids.length > this.contextLength) {
      throw new RangeError(`The conversation would reach ${this.cached + ids.length} tokens, over the context of ${this.contextLength}`);
    }
    if (req.sample) {
      validateSampling(req.sample.params);
      if (req.allLogits) throw new Error('forward(): ask for all logits or for a sampled token, not both');
    }
    const start = this.cached;
    const parts: ChunkResult[] = [];
    for (let c = 0; c < ids.length; c += this.chunkTokens) {
      const chunk = Array.from({ length: Math.min(this.chunkTokens, ids.length - c) }, (_, i) => ids[c + i]!);
      const last = c + chunk.length === ids.length;
      parts.push(await this.runChunk(chunk, !!req.allLogits, !!req.allLogits || (last && !req.sample), !!req.routerLogits, last ? req.sample : undefined));
    }
    const result = this.assemble(parts, start, ids.length, !!req.allLogits, !!req.routerLogits);
    const token = parts[parts.length - 1]!.token;
    if (token) result.token = token;
    return result;
  }

  /**
   * One decode step whose input is the token the previous forward sampled, read on the GPU: it is
   * recorded and submitted before this method returns (no await comes first), so a caller can
   * queue the next step while the GPU still runs this one — the CPU's recording time then hides
   * behind the GPU's. Only valid after a forward that sampled.
   */
  forwardSampled(req: ForwardRequest & { sample: NonNullable<ForwardRequest['sample']> }): Promise<ForwardResult> {
    if (!this.sampledReady) return Promise.reject(new Error('forwardSampled(): the previous forward did not sample a token'));
    if (this.cached + 1 > this.contextLength) return Promise.reject(new RangeError(`The conversation would reach ${this.cached + 1} tokens, over the context of ${this.contextLength}`));
    validateSampling(req.sample.params);
    const start = this.cached;
    const chunk = this.runChunk(null, false, false, !!req.routerLogits, req.sample);
    return chunk.then((part) => {
      const result = this.assemble([part], start, 1, false, !!req.routerLogits);
      if (part.token) result.token = part.token;
      return result;
    });
  }

  private assemble(
    parts: ChunkResult[],
    start: number,
    tokens: number,
    allLogits: boolean,
    wantRouter: boolean,
  ): ForwardResult {
    const s = this.spec;
    const K = parts[0]!.K;
    const E = s.moe.numExperts;
    const nl = this.moeLayers.length;
    const logits = allLogits ? concat(parts.map((p) => p.logits)) : parts[parts.length - 1]!.logits;
    const experts = Array.from({ length: nl }, () => new Uint32Array(tokens * K));
    const gates = Array.from({ length: nl }, () => new Float32Array(tokens * K));
    const router = wantRouter ? Array.from({ length: nl }, () => new Float32Array(tokens * E)) : undefined;
    let t0 = 0;
    for (const p of parts) {
      const n = p.T * K;
      for (let m = 0; m < nl; m++) {
        experts[m]!.set(new Uint32Array(p.capture, m * 2 * n * 4, n), t0 * K);
        gates[m]!.set(new Float32Array(p.capture, (m * 2 + 1) * n * 4, n), t0 * K);
        if (router && p.router) router[m]!.set(new Float32Array(p.router, m * p.T * E * 4, p.T * E), t0 * E);
      }
      t0 += p.T;
    }
    return {
      logits,
      rows: allLogits ? tokens : 1,
      routerLogits: router,
      routing: { start, tokens, topk: K, numExperts: E, layers: this.moeLayers, experts, gates },
    };
  }

  private ensureScratch(T: number, K: number): Scratch {
    if (this.scratch && this.scratch.T >= T && this.scratch.K >= K) return this.scratch;
    T = Math.max(T, this.scratch?.T ?? 0);
    K = Math.max(K, this.scratch?.K ?? 0);
    this.freeScratch();
    const s = this.spec;
    const dev = this.kernels.device;
    const H = s.hiddenSize, D = s.headDim, E = s.moe.numExperts;
    const hasMoe = this.moeLayers.length > 0;
    const ffWidth = Math.max(s.layers.some((l) => l.mlp === 'dense') ? s.denseIntermediateSize : 0, s.moe.sharedExpert?.intermediateSize ?? 0, 1);
    const buf = (floats: number, label: string) => createStorage(dev, floats * 4, label);
    const nl = Math.max(1, this.moeLayers.length);
    const m = s.mla;
    // Latent attention: qkv holds q [T, H·(dn+R)], q the attention queries [T, H, L+R], attn the output over c [T, H, L].
    const qkvWidth = m ? s.numHeads * (m.nopeDim + m.ropeDim) : (s.numHeads + 2 * s.numKvHeads) * D;
    const qWidth = m ? s.numHeads * (m.kvLoraRank + m.ropeDim) : s.numHeads * D;
    const valueDim = m ? m.kvLoraRank : D;
    this.scratch = {
      T,
      K,
      ids: buf(T, 'ids'),
      h: buf(T * H, 'hidden'),
      x: buf(T * H, 'normed'),
      qkv: buf(T * qkvWidth, 'qkv'),
      q: buf(T * qWidth, 'q'),
      attn: buf(T * s.numHeads * valueDim, 'attn'),
      attnSplits: createStorage(dev, attentionScratchBytesUpTo(T, s.numHeads, valueDim, this.contextLength), 'attn-splits'),
      proj: buf(T * H, 'proj'),
      routerLogits: buf(T * E, 'router-logits'),
      probs: buf(T * E, 'router-probs'),
      idx: buf(T * K, 'router-idx'),
      gates: buf(T * K, 'router-gates'),
      moe: hasMoe ? createMoeScratch(dev, T * K, E, H, s.moe.intermediateSize) : null,
      mlpOut: buf(T * H, 'mlp-out'),
      ffGateUp: buf(T * 2 * ffWidth, 'ff-gate-up'),
      ffAct: buf(T * ffWidth, 'ff-act'),
      sharedOut: buf(T * H, 'shared-out'),
      sharedGate: buf(T, 'shared-gate'),
      lastRow: buf(H, 'last-row'),
      logits: buf(T * s.vocabSize, 'logits'),
      capture: buf(nl * 2 * T * K, 'routing-capture'),
      routerCapture: null,
      mlaQa: m?.qLoraRank ? buf(T * m.qLoraRank, 'mla-q-a') : null,
      mlaQaNorm: m?.qLoraRank ? buf(T * m.qLoraRank, 'mla-q-a-normed') : null,
      mlaKv: m ? buf(T * (m.kvLoraRank + m.ropeDim), 'mla-kv-a') : null,
      mlaValues: m ? buf(T * s.numHeads * m.vDim, 'mla-values') : null,
    };
    return this.scratch;
  }

  private freeScratch(): void {
    const sc = this.scratch;
    if (!sc) return;
    for (const [key, b] of Object.entries(sc)) {
      if (key === 'moe' && b) destroyMoeScratch(b as MoeScratch);
      else if (b && typeof b === 'object' && 'destroy' in b) (b as GPUBuffer).destroy();
    }
    this.scratch = null;
  }

  /** `ids` null: one token, the one the last sample wrote to the sampler's output on the GPU. */
  private async runChunk(
    ids: number[] | null,
    allLogits: boolean,
    wantLogits: boolean,
    wantRouter: boolean,
    sample?: ForwardRequest['sample'],
  ): Promise<ChunkResult> {
    const s = this.spec;
    const k = this.kernels;
    const dev = k.device;
    const T = ids ? ids.length : 1;
    const K = this.routerConfig.topK;
    const sc = this.ensureScratch(T, K);
    const start = this.cached;
    const H = s.hiddenSize, E = s.moe.numExperts;
    const nl = this.moeLayers.length;
    if (wantRouter && (!sc.routerCapture || sc.routerCapture.size < Math.max(1, nl) * T * E * 4)) {
      sc.routerCapture?.destroy();
      sc.routerCapture = createStorage(dev, Math.max(1, nl) * sc.T * E * 4, 'router-capture');
    }
    const t0 = performance.now();
    const enc = dev.createCommandEncoder({ label: `forward ${start}+${T}` });
    if (ids) {
      const idArray = Uint32Array.from(ids);
      dev.queue.writeBuffer(sc.ids, 0, idArray);
      dev.queue.writeBuffer(this.history, start * 4, idArray);
    } else {
      copyBuffer(enc, this.sampler.out, 0, sc.ids, 0, 4);
      copyBuffer(enc, this.sampler.out, 0, this.history, start * 4, 4);
    }
    this.sampledReady = !!sample;

    encodeEmbedding(k, enc, { ids: sc.ids, table: this.weights.embed, out: sc.h, tokens: T, dim: H, vocab: s.vocabSize, scale: s.embeddingMultiplier });
    // Each residual add is fused with the norm that follows it (the next layer's input norm, or
    // the final norm), so the first layer's input norm is the only standalone one.
    encodeRmsNorm(k, enc, { x: sc.h, weight: this.weights.layers[0]!.attnNorm, y: sc.x, rows: T, dim: H, eps: s.rmsNormEps });
    const wantHead = wantLogits || !!sample;
    let moeIndex = 0;
    for (let l = 0; l < s.numLayers; l++) {
      const w = this.weights.layers[l]!;
      this.encodeAttentionBlock(enc, w, l, T, start);
      encodeAddRmsNorm(k, enc, { h: sc.h, y: sc.proj, alpha: s.residualMultiplier, weight: w.mlpNorm, x: sc.x, rows: T, dim: H, eps: s.rmsNormEps });
      if (s.layers[l]!.mlp === 'moe') {
        this.encodeMoeBlock(enc, w, T, start, { buffer: sc.capture, offset: moeIndex * 2 * T * K });
        if (wantRouter) copyBuffer(enc, sc.routerLogits, 0, sc.routerCapture!, moeIndex * T * E * 4, T * E * 4);
        moeIndex++;
      } else {
        this.encodeFfn(enc, w.mlpGateUp!, w.mlpDown!, s.denseIntermediateSize, sc.mlpOut, T);
      }
      // A combine that also did the add and norm (one workgroup per token) measured slower on the H100 for
      // decode than these two dispatches (30 vs 26 µs per layer): not every dispatch saved is time saved.
      const nextNorm = l + 1 < s.numLayers ? this.weights.layers[l + 1]!.attnNorm : wantHead ? this.weights.finalNorm : null;
      if (nextNorm) encodeAddRmsNorm(k, enc, { h: sc.h, y: sc.mlpOut, alpha: s.residualMultiplier, weight: nextNorm, x: sc.x, rows: T, dim: H, eps: s.rmsNormEps });
      else encodeAddScaled(k, enc, { h: sc.h, y: sc.mlpOut, n: T * H, alpha: s.residualMultiplier });
    }
    const rows = allLogits ? T : 1;
    if (wantHead) {
      let xin = sc.x;
      if (!allLogits) {
        copyBuffer(enc, sc.x, (T - 1) * H * 4, sc.lastRow, 0, H * 4);
        xin = sc.lastRow;
      }
      encodeMatmul(k, enc, { x: xin, w: this.weights.lmHead, y: sc.logits, M: rows, N: s.vocabSize, K: H, alpha: 1 / s.logitsDivisor });
      if (sample) {
        encodeSample(k, enc, { logits: sc.logits, history: this.history, historyLength: start + T, vocab: s.vocabSize, step: sample.step, params: sample.params, bufs: this.sampler });
      }
    }
    // Everything this chunk returns leaves the GPU in one staging buffer, copied by this submit.
    const parts = [
      ...(wantLogits ? [{ src: sc.logits, bytes: rows * s.vocabSize * 4 }] : []),
      ...(nl ? [{ src: sc.capture, bytes: nl * 2 * T * K * 4 }] : []),
      ...(wantRouter && nl ? [{ src: sc.routerCapture!, bytes: nl * T * E * 4 }] : []),
      ...(sample ? [{ src: this.sampler.out, bytes: 8 }] : []),
    ];
    const readback = encodeReadback(dev, enc, parts);
    const t1 = performance.now();
    submitEncoder(dev, enc);
    const t2 = performance.now();
    this.cached = start + T;
    const got = await readback.read();
    const logits = wantLogits ? got.shift()! : new ArrayBuffer(0);
    const capture = nl ? got.shift()! : new ArrayBuffer(0);
    const router = wantRouter && nl ? got.shift()! : undefined;
    const picked = sample ? got.shift()! : undefined;
    this.lastChunkTiming = { encodeMs: t1 - t0, submitMs: t2 - t1, waitMs: performance.now() - t2 };
    const out: ChunkResult = { logits: new Float32Array(logits), rows, capture, router, T, K };
    if (picked) out.token = { id: new Uint32Array(picked)[0]!, prob: new Float32Array(picked)[1]! };
    return out;
  }


  /** sc.x (the normed hidden state) → attention → sc.proj (o-projection, before the residual add). */
  private encodeAttentionBlock(enc: GPUCommandEncoder, w: LayerWeights, l: number, T: number, start: number): void {
    const s = this.spec;
    const k = this.kernels;
    const sc = this.scratch!;
    if (s.mla) return this.encodeLatentAttention(enc, s.mla, w, l, T, start);
    const H = s.hiddenSize, D = s.headDim, nH = s.numHeads, nKV = s.numKvHeads;
    if (!w.qkv) throw new Error(`Layer ${l} has no q/k/v projection`);
    encodeMatmul(k, enc, { x: sc.x, w: w.qkv, bias: w.qkvBias, y: sc.qkv, M: T, N: (nH + 2 * nKV) * D, K: H });
    encodeQkvRope(k, enc, {
      qkv: sc.qkv, qOut: sc.q, kCache: this.kCache[l]!, vCache: this.vCache[l]!, table: this.rope,
      norm: s.qkNorm, qNorm: w.qNorm, kNorm: w.kNorm, eps: s.rmsNormEps, tokens: T, heads: nH, kvHeads: nKV, headDim: D, start,
    });
    encodeAttention(k, enc, {
      q: sc.q, kCache: this.kCache[l]!, vCache: this.vCache[l]!, out: sc.attn, scratch: sc.attnSplits,
      tokens: T, heads: nH, kvHeads: nKV, headDim: D, start, scale: s.attentionScale ?? 1 / Math.sqrt(D),
    });
    encodeMatmul(k, enc, { x: sc.attn, w: w.o, bias: w.oBias, y: sc.proj, M: T, N: H, K: nH * D });
  }

  /** DeepSeek's latent attention (shaders/mla.wgsl): the cache holds [c | k_rope] per position. */
  private encodeLatentAttention(enc: GPUCommandEncoder, m: MlaSpec, w: LayerWeights, l: number, T: number, start: number): void {
    const s = this.spec;
    const k = this.kernels;
    const sc = this.scratch!;
    const H = s.hiddenSize, nH = s.numHeads, qk = m.nopeDim + m.ropeDim, row = m.kvLoraRank + m.ropeDim;
    if (!w.kvA || !w.kvANorm || !w.kvB) throw new Error(`Layer ${l} is missing its latent-attention weights`);
    // HF builds q_a_layernorm / kv_a_layernorm with the RMSNorm default eps, not rms_norm_eps.
    const LORA_EPS = 1e-6;
    if (m.qLoraRank !== null) {
      if (!w.qA || !w.qANorm || !w.qB) throw new Error(`Layer ${l} is missing its q LoRA weights`);
      encodeMatmul(k, enc, { x: sc.x, w: w.qA, y: sc.mlaQa!, M: T, N: m.qLoraRank, K: H });
      encodeRmsNorm(k, enc, { x: sc.mlaQa!, weight: w.qANorm, y: sc.mlaQaNorm!, rows: T, dim: m.qLoraRank, eps: LORA_EPS });
      encodeMatmul(k, enc, { x: sc.mlaQaNorm!, w: w.qB, y: sc.qkv, M: T, N: nH * qk, K: m.qLoraRank });
    } else {
      if (!w.q) throw new Error(`Layer ${l} has no q projection`);
      encodeMatmul(k, enc, { x: sc.x, w: w.q, y: sc.qkv, M: T, N: nH * qk, K: H });
    }
    encodeMatmul(k, enc, { x: sc.x, w: w.kvA, y: sc.mlaKv!, M: T, N: row, K: H });
    const common = { mla: m, heads: nH, tokens: T, start, table: this.rope };
    encodeMlaCache(k, enc, { ...common, kvA: sc.mlaKv!, norm: w.kvANorm, eps: LORA_EPS, cache: this.kCache[l]! });
    encodeMlaQuery(k, enc, { ...common, q: sc.qkv, kvB: w.kvB, out: sc.q });
    encodeAttention(k, enc, {
      q: sc.q, kCache: this.kCache[l]!, vCache: this.kCache[l]!, out: sc.attn, scratch: sc.attnSplits,
      tokens: T, heads: nH, kvHeads: 1, headDim: row, vDim: m.kvLoraRank, vStride: row, start, scale: s.attentionScale ?? 1 / Math.sqrt(qk),
    });
    encodeMlaValue(k, enc, { mla: m, heads: nH, tokens: T, start, attn: sc.attn, kvB: w.kvB, out: sc.mlaValues! });
    encodeMatmul(k, enc, { x: sc.mlaValues!, w: w.o, y: sc.proj, M: T, N: H, K: nH * m.vDim });
  }

  /** x (normed) → SwiGLU MLP → out, for dense layers and the shared expert. */
  private encodeFfn(enc: GPUCommandEncoder, gateUp: GpuWeight, down: GpuWeight, inter: number, out: GPUBuffer, T: number): void {
    const k = this.kernels;
    const sc = this.scratch!;
    const H = this.spec.hiddenSize;
    encodeMatmul(k, enc, { x: sc.x, w: gateUp, y: sc.ffGateUp, M: T, N: 2 * inter, K: H });
    encodeSwiGlu(k, enc, { gateUp: sc.ffGateUp, out: sc.ffAct, rows: T, inter });
    encodeMatmul(k, enc, { x: sc.ffAct, w: down, y: out, M: T, N: H, K: inter });
  }

  private encodeMoeBlock(enc: GPUCommandEncoder, w: LayerWeights, T: number, start: number, capture: { buffer: GPUBuffer; offset: number }): void {
    const s = this.spec;
    const k = this.kernels;
    const sc = this.scratch!;
    const r = this.routerConfig;
    const H = s.hiddenSize, E = s.moe.numExperts, K = r.topK;
    encodeMatmul(k, enc, { x: sc.x, w: w.router!, y: sc.routerLogits, M: T, N: E, K: H });
    // A decode step (one token) has the routing kernel write the expert plan too: one dispatch less per layer.
    const m = sc.moe!;
    const plan = T === 1 && this.fused ? { sorted: m.sorted, slotPos: m.slotPos, tiles: m.tiles, maxTiles: maxTiles(K, E) } : undefined;
    encodeRoute(k, enc, { logits: sc.routerLogits, tables: this.routerTables, layerBias: w.routerBias, probs: sc.probs, idx: sc.idx, weights: sc.gates, tokens: T, experts: E, position: start, router: r, plan });
    let shared: { out: GPUBuffer; gateLogits?: GPUBuffer } | undefined;
    const se = s.moe.sharedExpert;
    if (se) {
      this.encodeFfn(enc, w.sharedGateUp!, w.sharedDown!, se.intermediateSize, sc.sharedOut, T);
      shared = { out: sc.sharedOut };
      if (se.gated) {
        encodeMatmul(k, enc, { x: sc.x, w: w.sharedGate!, y: sc.sharedGate, M: T, N: 1, K: H });
        shared.gateLogits = sc.sharedGate;
      }
    }
    encodeExperts(k, enc, {
      x: sc.x, idx: sc.idx, gates: sc.gates, wGateUp: w.expertsGateUp!, wDown: w.expertsDown!, shared,
      out: sc.mlpOut, tokens: T, topk: K, experts: E, hidden: H, inter: s.moe.intermediateSize, scratch: sc.moe!,
      capacity: expertCapacity(r, T, E), capture, planned: plan !== undefined,
    });
  }
}

interface ChunkResult {
  logits: Float32Array;
  rows: number;
  capture: ArrayBuffer;
  router?: ArrayBuffer;
  T: number;
  K: number;
  token?: { id: number; prob: number };
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
