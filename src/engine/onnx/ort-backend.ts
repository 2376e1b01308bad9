/**
 * The second backend: a decoder .onnx file run by onnxruntime-web's native WebGPU execution
 * provider (`onnxruntime-web/webgpu`), with the KV cache kept on the GPU between steps and the
 * routing read from the graph's router_logits.{layer} outputs (top-k on the CPU with the model's
 * k, as HF routes). The file is checked (read.ts, contract.ts) before onnxruntime sees it.
 * No DOM: the worker and the Node tests drive it. Import it lazily: it pulls onnxruntime in.
 */
import * as ort from 'onnxruntime-web/webgpu';
import type { RoutingRecord } from '../model/model';
import { routeRef } from '../ref/ops';
import { decoderContract, type DecoderContract } from './contract';
import * as N from './names';
import { OnnxModelError, readOnnxInfo } from './read';

export { OnnxModelError } from './read';

/** Where onnxruntime finds its WebAssembly (the WebGPU EP build, ort-wasm-simd-threaded.asyncify.wasm). */
export interface OrtRuntime {
  /** The .wasm bytes (Node). */
  wasmBinary?: ArrayBuffer | Uint8Array;
  /** Its URL (the page: an asset Vite emits). */
  wasmUrl?: string;
  logLevel?: 'verbose' | 'info' | 'warning' | 'error' | 'fatal';
}

let configured = false;

/** Sets onnxruntime's global environment; only the first call counts (its wasm loads once per process). */
export function configureOrt(r: OrtRuntime): void {
  if (configured) return;
  configured = true;
  // One thread: threads need cross-origin isolation (SharedArrayBuffer), which the page does not ask for.
  ort.env.wasm.numThreads = 1;
  ort.env.logLevel = r.logLevel ?? 'warning';
  if (r.wasmBinary) ort.env.wasm.wasmBinary = r.wasmBinary;
  else if (r.wasmUrl) ort.env.wasm.wasmPaths = { wasm: r.wasmUrl };
}

export interface OrtDecoderOptions {
  /** config.json given with the .onnx (used when the file has no moe_playground metadata). */
  config?: Record<string, unknown> | null;
  /** At most this many positions (the KV cache grows to it). */
  maxContext?: number;
}

export interface OrtForward {
  /** Row-major [rows, vocab]: every position (allLogits) or only the last. */
  logits: Float32Array;
  rows: number;
  /** Per MoE layer, [T, E]. */
  routerLogits: Float32Array[];
  routing: RoutingRecord;
}

const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

export class OrtDecoder {
  readonly contextLength: number;
  private past: ort.Tensor[] = [];
  private cached = 0;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly contract: DecoderContract,
  ) {
    this.contextLength = contract.meta.contextLength;
    this.reset();
  }

  get meta(): N.OnnxDecoderMeta {
    return this.contract.meta;
  }

  /** Positions in the KV cache. */
  get position(): number {
    return this.cached;
  }

  /**
   * Checks `bytes` as a decoder (OnnxModelError if it is not one) and builds an onnxruntime
   * session on the WebGPU EP. configureOrt must have been called.
   */
  static async open(bytes: Uint8Array, opts: OrtDecoderOptions = {}): Promise<OrtDecoder> {
    const info = readOnnxInfo(bytes);
    const contract = decoderContract(info, opts.config ?? null);
    if (opts.maxContext !== undefined) contract.meta.contextLength = Math.min(contract.meta.contextLength, opts.maxContext);
    const L = contract.meta.numLayers;
    const presents = Array.from({ length: L }, (_, l) => [N.presentKey(l), N.presentValue(l)]).flat();
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, {
        executionProviders: ['webgpu'],
        graphOptimizationLevel: 'all',
        // The cache stays on the GPU between steps; logits and router logits come back to the CPU.
        preferredOutputLocation: Object.fromEntries(presents.map((n) => [n, 'gpu-buffer' as const])),
      });
    } catch (e) {
      throw new OnnxModelError(`onnxruntime-web could not build a WebGPU session for this model: ${errorText(e)}`);
    }
    const missing = [N.INPUT_IDS, ...Array.from({ length: L }, (_, l) => N.pastKey(l))].filter((n) => !session.inputNames.includes(n));
    if (missing.length) {
      await session.release();
      throw new OnnxModelError(`onnxruntime-web sees no input ${missing.join(', ')} in this model`);
    }
    return new OrtDecoder(session, contract);
  }

  /** Forgets the conversation (an empty cache). */
  reset(): void {
    this.disposePast();
    const { numKvHeads: nKV, headDim: D } = this.contract;
    this.past = Array.from({ length: 2 * this.meta.numLayers }, () => new ort.Tensor('float32', new Float32Array(0), [1, nKV, 0, D]));
    this.cached = 0;
  }

  private disposePast(): void {
    for (const t of this.past) t.dispose();
    this.past = [];
  }

  async release(): Promise<void> {
    this.disposePast();
    await this.session.release();
  }

  /** Appends `ids` after the cached tokens and runs them; routing covers all of `ids`. */
  async forward(ids: ArrayLike<number>, req: { allLogits?: boolean } = {}): Promise<OrtForward> {
    const m = this.meta;
    const T = ids.length;
    if (T === 0) throw new RangeError('forward() needs at least one token');
    for (let i = 0; i < T; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= m.vocabSize) throw new RangeError(`Token id ${id} at ${i} is outside the vocabulary (0 … ${m.vocabSize - 1})`);
    }
    const start = this.cached;
    if (start + T > this.contextLength) throw new RangeError(`The conversation would reach ${start + T} tokens, over the context of ${this.contextLength}`);
    const feeds: Record<string, ort.Tensor> = {
      [N.INPUT_IDS]: new ort.Tensor('int64', BigInt64Array.from(Array.from({ length: T }, (_, i) => BigInt(ids[i]!))), [1, T]),
    };
    if (this.contract.hasPositionIds) feeds[N.POSITION_IDS] = new ort.Tensor('int64', BigInt64Array.from({ length: T }, (_, i) => BigInt(start + i)), [1, T]);
    if (this.contract.hasAttentionMask) feeds[N.ATTENTION_MASK] = new ort.Tensor('int64', new BigInt64Array(start + T).fill(1n), [1, start + T]);
    for (let l = 0; l < m.numLayers; l++) {
      feeds[N.pastKey(l)] = this.past[2 * l]!;
      feeds[N.pastValue(l)] = this.past[2 * l + 1]!;
    }
    let out: ort.InferenceSession.ReturnType;
    try {
      out = await this.session.run(feeds);
    } catch (e) {
      throw new Error(`onnxruntime-web failed to run the model: ${errorText(e)}`);
    }
    // The new cache replaces the old one only once the step has succeeded.
    this.disposePast();
    this.past = Array.from({ length: m.numLayers }, (_, l) => [out[N.presentKey(l)]!, out[N.presentValue(l)]!]).flat();
    this.cached = start + T;

    const all = out[N.LOGITS]!.data as Float32Array;
    const V = m.vocabSize;
    const logits = req.allLogits ? all : all.slice((T - 1) * V, T * V);
    const E = m.numExperts, K = m.topK;
    const routerLogits: Float32Array[] = [];
    const experts: Uint32Array[] = [];
    const gates: Float32Array[] = [];
    for (const l of m.moeLayers) {
      const rl = out[N.routerLogits(l)]!.data as Float32Array;
      if (rl.length !== T * E) throw new OnnxModelError(`${N.routerLogits(l)} gave ${rl.length} values for ${T} tokens × ${E} experts`);
      routerLogits.push(rl);
      // HF's routing: softmax → top-k (ties to the lower id) → renormalised when the model does.
      const r = routeRef(rl, T, E, K, m.normTopkProb);
      experts.push(r.idx);
      gates.push(r.weights);
    }
    return { logits, rows: req.allLogits ? T : 1, routerLogits, routing: { start, tokens: T, topk: K, numExperts: E, layers: m.moeLayers, experts, gates } };
  }
}
