/**
 * onnxruntime-web's WebGPU execution provider on the same shapes as our bench, in the same
 * process on the same adapter (Dawn in Node): the peer of the performance issue. Its best
 * configuration here: the native WebGPU EP build (`onnxruntime-web/webgpu`, which has QMoE and
 * MatMulNBits), graph optimisation 'all', KV cache kept on the GPU between steps, ArgMax in the
 * graph so one id comes back per token.
 */
import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-web/webgpu';
import { nodeGpu } from '../src/engine/gpu/node';
import { decoderGraph, type PeerMoe } from './onnx/decoder-graph';
import { synthSpec } from './synth';

export interface OrtPeerOptions {
  shape: string;
  /** How the graph expresses the experts (see decoderGraph). */
  moe?: PeerMoe;
  contexts: number[];
  prefills: number[];
  decodeSteps: number;
  /** Path of ort-wasm-simd-threaded.asyncify.wasm (the WebGPU EP build). */
  wasmPath: string;
  dawnFlags?: string[];
  log?: (line: string) => void;
}

export interface OrtPeerResult {
  ort: string;
  moe: PeerMoe;
  config: Record<string, unknown>;
  modelBytes: number;
  sessionMs: number;
  decode: Array<{ context: number; tokensPerSecond: number; msPerToken: number }>;
  prefill: Array<{ tokens: number; tokensPerSecond: number }>;
}

export async function benchOrtPeer(o: OrtPeerOptions): Promise<OrtPeerResult> {
  const log = o.log ?? (() => {});
  Object.defineProperty(globalThis, 'navigator', { value: { gpu: nodeGpu(o.dawnFlags ?? []) }, configurable: true, writable: true });
  ort.env.wasm.numThreads = 1;
  // ORT says at this level when a node falls back from WebGPU to its CPU kernels (a slower peer than it should be).
  ort.env.logLevel = process.env.ORT_LOG === 'verbose' ? 'verbose' : 'warning';
  ort.env.wasm.wasmBinary = readFileSync(o.wasmPath);
  const spec = synthSpec(o.shape);
  const maxPos = Math.max(...o.contexts, ...o.prefills) + 8;
  const moe = o.moe ?? 'qmoe';
  const g = decoderGraph(spec, maxPos, moe);
  log(`ort peer: ${o.shape} (${moe}) graph ${(g.model.length / 2 ** 20).toFixed(0)} MiB`);
  const L = spec.numLayers, nKV = spec.numKvHeads, D = spec.headDim;
  const presents = Array.from({ length: L }, (_, l) => [g.presentKey(l), g.presentValue(l)]).flat();
  const config = { executionProviders: ['webgpu'], graphOptimizationLevel: 'all', preferredOutputLocation: Object.fromEntries(presents.map((n) => [n, 'gpu-buffer'])) } as const;
  let t = performance.now();
  const session = await ort.InferenceSession.create(g.model, config as unknown as ort.InferenceSession.SessionOptions);
  const sessionMs = performance.now() - t;

  let past: ort.Tensor[] = [];
  const resetCache = () => {
    for (const x of past) x.dispose();
    past = Array.from({ length: 2 * L }, () => new ort.Tensor('float32', new Float32Array(0), [1, nKV, 0, D]));
  };
  let cached = 0;
  const step = async (ids: number[]): Promise<number> => {
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length]),
      seqlens_k: new ort.Tensor('int32', Int32Array.from([cached + ids.length - 1]), [1]),
      total_sequence_length: new ort.Tensor('int32', Int32Array.from([cached + ids.length]), []),
    };
    for (let l = 0; l < L; l++) {
      feeds[g.pastKey(l)] = past[2 * l]!;
      feeds[g.pastValue(l)] = past[2 * l + 1]!;
    }
    const out = await session.run(feeds);
    for (const x of past) x.dispose();
    past = presents.map((n) => out[n]!);
    cached += ids.length;
    return Number((out.next_token!.data as BigInt64Array)[0]);
  };
  const ids = (n: number, salt: number) => Array.from({ length: n }, (_, i) => (i * 7919 + salt * 104729) % spec.vocabSize);

  resetCache();
  cached = 0;
  await step(ids(Math.min(...o.prefills), 1)); // warm-up: shader compilation
  await step([1]);

  const prefill: OrtPeerResult['prefill'] = [];
  for (const n of o.prefills) {
    resetCache();
    cached = 0;
    t = performance.now();
    await step(ids(n, 2));
    prefill.push({ tokens: n, tokensPerSecond: n / ((performance.now() - t) / 1000) });
  }
  const decode: OrtPeerResult['decode'] = [];
  for (const c of o.contexts) {
    const steps = Math.min(o.decodeSteps, c - 1);
    resetCache();
    cached = 0;
    let next = await step(ids(c - steps, 3));
    t = performance.now();
    for (let i = 0; i < steps; i++) next = await step([next]);
    const ms = (performance.now() - t) / steps;
    decode.push({ context: c, tokensPerSecond: 1000 / ms, msPerToken: ms });
  }
  for (const x of past) x.dispose();
  await session.release();
  log(`ort peer ${o.shape} (${moe}): decode ${decode.map((d) => `${d.tokensPerSecond.toFixed(1)} tok/s @${d.context}`).join(', ')}; prefill ${prefill.map((p) => `${p.tokensPerSecond.toFixed(0)} tok/s @${p.tokens}`).join(', ')}`);
  return { ort: ort.env.versions.web ?? 'unknown', moe, config: { ...config, build: 'ort.webgpu (native WebGPU EP, asyncify)', matmul: 'MatMulNBits int4 block 32, accuracy_level 4', experts: moe === 'qmoe' ? 'QMoE int4 block 32, swiglu_fusion 1' : 'plain graph: all experts in MatMulNBits int4 block 32, dense routing weights', attention: 'GroupQueryAttention, do_rotary' }, modelBytes: g.model.length, sessionMs, decode, prefill };
}
