/** Messages between the page and the engine worker. The UI never sees GPU objects, only these. */
import type { GpuInfo } from '../engine/gpu/device';
import type { SamplingParams } from '../engine/model/sampling';
import type { RoutingRecord } from '../engine/model/model';
import type { RouterConfig } from '../engine/moe/router';
import type { WeightFormat } from '../engine/quant/pack';
import type { SelfTestResult } from '../engine/selftest';

/** Where a model comes from. */
export type ModelSource =
  | { kind: 'demo' }
  | { kind: 'url'; url: string }
  /** A checkpoint's files, or one .onnx decoder with its tokenizer files (and optionally config.json). */
  | { kind: 'files'; files: File[] };

/** How attention and expert matrices are stored on the GPU. */
export interface WeightChoice {
  format: WeightFormat;
  /** Group size for int8/int4. */
  group: 32 | 128;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export type WorkerRequest =
  /** `debug`: honour the debug-* requests below (set only by a test hook, never by a URL). */
  | { type: 'init'; debug?: boolean }
  | { type: 'selftest' }
  | { type: 'load'; source: ModelSource; weights: WeightChoice }
  | { type: 'cancel-load' }
  | { type: 'chat'; messages: ChatMessage[]; sampling: SamplingParams; maxNewTokens: number }
  | { type: 'stop' }
  /** New router knobs for the loaded model, used from the next token on. */
  | { type: 'router'; router: RouterConfig }
  /** The same conversation under two router presets, one after the other (greedy settings as given). */
  | { type: 'compare'; messages: ChatMessage[]; sampling: SamplingParams; maxNewTokens: number; a: RouterConfig; b: RouterConfig }
  /** Asks for a 'gpu-memory' event. */
  | { type: 'gpu-memory' }
  /** Test only (init with debug): destroys the device as a driver reset would, to exercise recovery. */
  | { type: 'debug-lose-device' }
  /** Test only (init with debug): pretends the device has this many bytes (null: what it reports). */
  | { type: 'debug-memory'; bytes: number | null }
  /** Test only (init with debug): the `after`-th out-of-memory scope from now reports a (fake) failure. */
  | { type: 'debug-oom'; after: number };

/** Routing of a run of consecutive tokens, per MoE layer (the engine's record, minus its position). */
export type RoutingPayload = Omit<RoutingRecord, 'start'>;

export interface ModelSummary {
  name: string;
  arch: string;
  numLayers: number;
  moeLayers: number[];
  numExperts: number;
  topK: number;
  hiddenSize: number;
  vocabSize: number;
  contextLength: number;
  parameters: number;
  gpuBytes: number;
  weights: WeightChoice;
  /** What the OPFS cache supplied: downloaded files, quantised matrices. */
  fromCache: { files: number; matrices: number };
  hasTokenizer: boolean;
  hasChatTemplate: boolean;
  /** What runs the model: our WGSL kernels, or onnxruntime-web's WebGPU EP (an .onnx file). */
  backend: 'webgpu-kernels' | 'onnxruntime-web';
  /** Why the router knobs cannot change this model's routing (null: they can). */
  routerFixed: string | null;
  /**
   * KV-cache bytes one position takes over all layers (f32), and what per-head keys and values
   * would take; they differ for latent attention (DeepSeek), which caches one compressed row. Null
   * where the backend keeps its own cache (ONNX).
   */
  kvCache: { bytesPerToken: number; expandedBytesPerToken: number; latent: boolean } | null;
}

export interface TokenPiece {
  id: number;
  text: string;
}

export type LoadStage = 'download' | 'parse' | 'quantize' | 'upload' | 'ready';

export type WorkerEvent =
  | { type: 'gpu-ready'; info: GpuInfo }
  | { type: 'gpu-unavailable'; message: string; advice: string }
  /** `recovering`: the engine is getting a new device and will reload the model; else the page must be reloaded. */
  | { type: 'device-lost'; reason: string; message: string; recovering: boolean }
  /** A new device after a loss, `ms` after it; the model (if any) is being reloaded from the caches. */
  | { type: 'device-restored'; info: GpuInfo; ms: number }
  /** Live GPU buffers of the engine's device (see engine/gpu/tracker.ts). */
  | { type: 'gpu-memory'; live: number; bytes: number }
  | { type: 'gpu-error'; message: string }
  | { type: 'selftest'; results: SelfTestResult[] }
  | { type: 'load-progress'; stage: LoadStage; done: number; total: number; detail: string }
  /** `restored`: the same model reloaded after a device loss (the conversation goes on). */
  | { type: 'model-ready'; model: ModelSummary; loadMs: number; restored: boolean }
  /** `unloaded`: no model is loaded any more (else the one loaded before stays usable). */
  | { type: 'model-error'; message: string; unloaded: boolean }
  /** The knobs in force (after a load: the checkpoint's own, which are also the defaults). */
  | { type: 'router'; router: RouterConfig; defaults: RouterConfig }
  | { type: 'router-error'; message: string }
  /** One side of an A/B run: the reply and its routing counts [moeLayer][expert] over prompt + reply. */
  | { type: 'compare-result'; side: 'a' | 'b'; text: string; counts: number[][]; layers: number[]; tokens: number }
  /** The prompt as the model saw it (chat template applied); its tokens sit at positions 0 … n−1. */
  | { type: 'prompt'; tokens: TokenPiece[]; dropped: number; contextLength: number }
  /** A generated token; it sits at the next position. */
  | { type: 'token'; token: TokenPiece; prob: number; ms: number }
  /** Routing of the tokens at positions start … start+routing.tokens−1 (arrives once they are fed). */
  | { type: 'routing'; start: number; routing: RoutingPayload }
  | { type: 'done'; reason: 'stop-token' | 'max-tokens' | 'stopped' | 'context-full'; tokens: number; ttftMs: number; tokensPerSecond: number }
  | { type: 'error'; request: WorkerRequest['type']; message: string };
