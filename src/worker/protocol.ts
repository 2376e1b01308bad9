/** Messages between the page and the engine worker. The UI never sees GPU objects, only these. */
import type { GpuInfo } from '../engine/gpu/device';
import type { SamplingParams } from '../engine/model/sampling';
import type { RoutingRecord } from '../engine/model/model';
import type { RouterConfig } from '../engine/moe/router';
import type { QuantFormat } from '../engine/quant/pack';
import type { SelfTestResult } from '../engine/selftest';
import type { StepEvent, TrainSummary } from '../engine/train/trainer';
import type { BalancePreset } from '../engine/train/losses';
import type { TrainMode } from '../engine/train/params';
import type { ExportedFile } from '../engine/train/export';

/** Where a model comes from. */
export type ModelSource =
  | { kind: 'demo' }
  | { kind: 'url'; url: string }
  /** A checkpoint's files, or one .onnx decoder with its tokenizer files (and optionally config.json). */
  | { kind: 'files'; files: File[] };

/** How attention and expert matrices are stored on the GPU. */
export interface WeightChoice {
  format: 'f32' | QuantFormat;
  /** Group size for int8/int4. */
  group: 32 | 128;
  /**
   * GGUF files: keep attention and expert matrices in the file's own formats (F16, BF16, Q8_0,
   * Q4_0, Q4_K, Q6_K blocks, dequantised in the kernels); `format` is then for the others. Ignored
   * for other checkpoints.
   */
  keepFileBlocks?: boolean;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** A fine-tuning run as the Train panel sets it up (engine/train/* does the work). */
export interface TrainSettings {
  mode: TrainMode;
  steps: number;
  /** Peak learning rate; warmup steps; the cosine floor as a fraction of the peak. */
  lr: number;
  warmupSteps: number;
  minLrRatio: number;
  /** Tokens per training example (window). */
  seqLen: number;
  /** Examples per optimizer step (gradient accumulation). */
  accumulate: number;
  /** Share of the examples held out for validation; validate every N steps; stop after `patience` checks without improvement. */
  valFraction: number;
  valEvery: number;
  patience: number;
  balance: BalancePreset;
  /** λ of the balance loss (switch/sqdev/kl) or γ of the aux-free bias step. */
  balanceWeight: number;
  loraRank: number;
  loraAlpha: number;
  seed: number;
  /** Router z-loss and orthogonality-loss weights (0 = off). */
  zLossWeight: number;
  orthoWeight: number;
  /** Noisy top-k: std of the noise on router logits while training; expert dropout rate. */
  routerNoise: number;
  expertDropout: number;
}

/** The panel's starting settings: a short router-only run with the Switch balance loss. */
export const TRAIN_DEFAULTS: TrainSettings = {
  mode: 'router', steps: 60, lr: 1e-3, warmupSteps: 5, minLrRatio: 0.1, seqLen: 64, accumulate: 1,
  valFraction: 0.1, valEvery: 10, patience: 3, balance: 'switch', balanceWeight: 0.01, loraRank: 16, loraAlpha: 32, seed: 0,
  zLossWeight: 0, orthoWeight: 0, routerNoise: 0, expertDropout: 0,
};

/** How a saved run ended (or 'running' / 'paused' when the tab went away mid-run). */
export type RunStatus = 'running' | 'paused' | 'finished' | 'early-stop' | 'stopped';

/** The training run checkpointed in OPFS, as the page sees it. */
export interface SavedRun {
  settings: TrainSettings;
  data: TrainData;
  /** Every step's record up to the checkpoint (the charts). */
  events: StepEvent[];
  status: RunStatus;
  /** Steps in the checkpoint. */
  step: number;
  savedAt: number;
  modelName: string;
  /** It was made on the model loaded now (same files, same weight format): it can resume here. */
  sameModel: boolean;
}


export interface TrainData {
  /** Pasted or dropped text: plain text, or JSONL ({"messages": …}, {"text": …}, {"prompt", "completion"}). */
  text: string;
  format: 'auto' | 'text' | 'jsonl';
  /** Where it came from, for messages (a file name, or "pasted text"). */
  name: string;
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
  /** Fine-tunes the loaded model in the tab; the chat uses the result afterwards. */
  | { type: 'train-start'; data: TrainData; settings: TrainSettings }
  /** Holds the run between steps (true) or lets it go on (false). */
  | { type: 'train-pause'; paused: boolean }
  /** Ends the run after the current step; what was learned so far is kept. */
  | { type: 'train-stop' }
  /** Goes on with the saved run (a finished one: puts what it learned into the loaded model). */
  | { type: 'train-resume' }
  /** Deletes the saved run. */
  | { type: 'train-discard' }
  /** Files of the last run: its PEFT adapter, the merged weights, or the recipe for transformers. */
  | { type: 'train-export'; what: 'adapter' | 'merged' | 'recipe' }
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
  /** `resumedFrom`: the step a saved run went on from (0: a new run); `events`: its steps so far. */
  | { type: 'train-started'; trainExamples: number; valExamples: number; tokens: number; format: 'text' | 'jsonl'; moeLayers: number[]; settings: TrainSettings; data: TrainData; resumedFrom: number; events: StepEvent[]; auto: boolean }
  /** One optimizer step (its routing, monitor record, loss, lr; validation loss on validation steps). */
  | { type: 'train-step'; step: StepEvent }
  | { type: 'train-paused'; paused: boolean }
  /** The run ended: `reason` why; the model now in use carries what it learned. */
  | { type: 'train-done'; summary: TrainSummary; reason: 'finished' | 'early-stop' | 'stopped' }
  | { type: 'train-error'; message: string }
  /** The run in OPFS (null: none); `problem`: a stored run that could not be used, and where it went. */
  | { type: 'train-saved'; run: SavedRun | null; problem: string | null }
  /** A checkpoint was written at `step` (or could not be: `error`). */
  | { type: 'train-checkpoint'; step: number; error: string | null }
  | { type: 'train-export'; files: ExportedFile[] }
  | { type: 'error'; request: WorkerRequest['type']; message: string };
