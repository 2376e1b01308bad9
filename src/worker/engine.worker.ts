/// <reference lib="webworker" />
/** The engine in a Web Worker: owns the GPUDevice and the model, answers requests, streams events. */
import { acquireDevice, browserGpu, type GpuContext, type GpuLossInfo, WebGpuUnavailableError } from '../engine/gpu/device';
import { kernelsFor, type Kernels } from '../engine/gpu/kernels';
import { catchOom, isOutOfMemory } from '../engine/gpu/oom';
import { bufferStats, trackBuffers } from '../engine/gpu/tracker';
import { openCheckpoint } from '../engine/io/checkpoint';
import { isGgufReader } from '../engine/io/gguf-file-blocks';
import { blobSource, fetchBytes, memorySource, type ByteSource } from '../engine/io/source';
import type { HfTokenizer } from '../engine/io/tokenizer';
import { expandedKvBytesPerToken, kvBytesPerToken } from '../engine/model/shapes';
import { checkFits, formatBytes, type DeviceBudget } from '../engine/model/budget';
import { MoeModel, type RoutingRecord } from '../engine/model/model';
import { defaultRouter, type RouterConfig } from '../engine/moe/router';
import { destroyWeights, fileBlockPlan, uploadWeights } from '../engine/model/weights';
import { runSelfTest } from '../engine/selftest';
import { cachedDownload, opfsQuantCache } from './opfs-cache';
import { chat, type SessionEvent } from '../engine/session';
import { serial } from './serial';
import { runTraining, TrainControl, type RunResult } from './train';
import { deleteRun, readRun, saveRun, savedRunFor, type StoredRun } from './train-save';
import { encodeSafetensors, exportWeights } from '../engine/train/params';
import { adapterFiles, recipeFiles, type ExportedFile } from '../engine/train/export';
import type { WeightSlot } from '../engine/model/spec';
import { checkModelUrl } from '../preset/model-url';
import type { ModelSource, ModelSummary, RoutingPayload, WeightChoice, WorkerEvent, WorkerRequest } from './protocol';
import type { OrtDecoder } from '../engine/onnx/ort-backend';
import { ortChat } from '../engine/onnx/ort-session';
import type { ModelSpec } from '../engine/model/spec';
import { isOnnx, openOnnxFiles } from './onnx-model';

const scope = self as unknown as DedicatedWorkerGlobalScope;
const post = (e: WorkerEvent, transfer: Transferable[] = []) => scope.postMessage(e, transfer);

let gpu: { ctx: GpuContext; kernels: Kernels } | null = null;
interface Loaded {
  backend: 'webgpu-kernels';
  /** Replaced (same weights) when generation runs out of memory and its buffers are rebuilt. */
  model: MoeModel;
  tokenizer: HfTokenizer | null;
  summary: ModelSummary;
  /** What to load again after a device loss. */
  source: ModelSource;
  /** Identifies the checkpoint's files and the weight format (a saved training run names it). */
  key: string;
  /** The checkpoint's tensors by slot (exporting trained weights under their names). */
  slots: WeightSlot[];
}
/** An .onnx decoder run by onnxruntime-web (engine/onnx/): routing is fixed inside its graph. */
interface LoadedOnnx {
  backend: 'onnxruntime-web';
  decoder: OrtDecoder;
  tokenizer: HfTokenizer | null;
  summary: ModelSummary;
  source: ModelSource;
  /** The knobs that describe the graph's own routing; the only ones this backend can honour. */
  router: RouterConfig;
}
let loaded: Loaded | LoadedOnnx | null = null;
let running: AbortController | null = null;
/** All GPU work goes through this, one task at a time (see serial.ts). */
const gpuTask = serial();
/** Set by init({ debug: true }) from a test hook; the debug-* requests are refused otherwise. */
let debug = false;
let memoryOverride: number | null = null;
/** A destroy() we did to simulate a loss (a real destroy() of ours is not a loss). */
let simulatedLoss = false;
/** Times of recent device losses: more than MAX_LOSSES in a minute and the engine stops retrying. */
const losses: number[] = [];
const MAX_LOSSES = 3;
/** Every fetch of model files sends no cookies or HTTP auth to a model host (io/source.ts does the same). */
const NO_CREDENTIALS: RequestInit = { credentials: 'omit' };
const KV_CONTEXT = 1024;
const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** The files a checkpoint folder may hold; others are ignored. */
const WANTED = /^(config\.json|tokenizer\.json|tokenizer_config\.json|chat_template\.jinja|model\.safetensors\.index\.json|.*\.safetensors|.*\.gguf|.*\.onnx)$/i;
const DEMO_FILES = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];

/** A device with its buffers counted, watched for loss. */
async function acquire(): Promise<GpuContext> {
  const ctx = await acquireDevice(browserGpu(), { onUncapturedError: (message) => post({ type: 'gpu-error', message }) });
  trackBuffers(ctx.device);
  gpu = { ctx, kernels: kernelsFor(ctx) };
  void ctx.lost.then((l) => {
    if (gpu?.ctx !== ctx) return;
    if (l.reason === 'destroyed' && !simulatedLoss) return;
    simulatedLoss = false;
    void recover(l);
  });
  return ctx;
}

async function init(): Promise<void> {
  try {
    const ctx = await acquire();
    post({ type: 'gpu-ready', info: ctx.info });
  } catch (e) {
    if (e instanceof WebGpuUnavailableError) post({ type: 'gpu-unavailable', message: e.reason, advice: e.advice });
    else throw e;
  }
}

function postMemory(): void {
  const s = gpu ? bufferStats(gpu.ctx.device) : null;
  if (s) post({ type: 'gpu-memory', live: s.live, bytes: s.bytes });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * After a device loss every GPU buffer is gone: get a new device and load the same model again
 * (downloads and quantised matrices come from the OPFS cache, picked files are read again), with
 * the router knobs it had. The page keeps the conversation; the next reply prefills it anew.
 */
async function recover(loss: GpuLossInfo): Promise<void> {
  // The model in use, or else the one being loaded when the device went (it is aborted below).
  const had = loaded
    ? { source: loaded.source, weights: loaded.summary.weights, router: loaded.backend === 'webgpu-kernels' ? (loaded.model.router as RouterConfig | undefined) : undefined }
    : requested
      ? { ...requested, router: undefined }
      : null;
  running?.abort();
  loading?.abort();
  // A run going now, or one whose result is in the weights, continues from its checkpoint after the reload.
  resumeAfterRecovery = training !== null || lastRun !== null;
  training?.stop(true);
  gpu = null;
  // An onnxruntime session lives on onnxruntime's own device: free it, as the reload below makes a new one.
  if (loaded?.backend === 'onnxruntime-web') void loaded.decoder.release().catch(() => undefined);
  loaded = null;
  const now = Date.now();
  losses.push(now);
  while (losses.length && losses[0]! < now - 60_000) losses.shift();
  const retry = losses.length <= MAX_LOSSES;
  post({
    type: 'device-lost',
    reason: loss.reason,
    message: retry ? loss.message : `${loss.message} The device was lost ${losses.length} times within a minute, so the engine stopped retrying.`,
    recovering: retry,
  });
  if (!retry) return;
  const t0 = performance.now();
  let ctx: GpuContext | null = null;
  for (let attempt = 1; attempt <= 3 && !ctx; attempt++) {
    try {
      ctx = await acquire();
    } catch (e) {
      console.warn(`No new GPU device (attempt ${attempt}): ${errorText(e)}`);
      await sleep(500 * attempt);
    }
  }
  if (!ctx) {
    post({ type: 'device-lost', reason: loss.reason, message: 'No new GPU device could be made after the loss.', recovering: false });
    return;
  }
  post({ type: 'device-restored', info: ctx.info, ms: performance.now() - t0 });
  if (!had) return;
  try {
    await load(had.source, had.weights, had.router);
  } catch (e) {
    post({ type: 'model-error', message: `The model could not be reloaded after the device loss: ${errorText(e)}`, unloaded: loaded === null });
  }
}

/**
 * Test only: the `after`-th 'out-of-memory' scope popped from now on reports a failure, as a real
 * allocation failure would (no test browser can be made to run out of GPU memory on demand).
 */
function injectOom(device: GPUDevice, after: number): void {
  const pop = device.popErrorScope.bind(device);
  let n = 0;
  device.popErrorScope = async () => {
    const real = await pop();
    if (++n < after) return real;
    delete (device as Partial<GPUDevice>).popErrorScope;
    return real ?? ({ message: 'injected by a test: allocation failed' } as GPUError);
  };
}

/** What the device can hold: its buffer limits, and a memory size where the browser reports one. */
function budgetOf(device: GPUDevice): DeviceBudget {
  const b: DeviceBudget = { maxBufferSize: device.limits.maxBufferSize, maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize, memoryBytes: null };
  if (memoryOverride !== null) return { ...b, memoryBytes: memoryOverride, memoryNote: 'as set for this test' };
  // navigator.deviceMemory is RAM in GiB rounded down to a power of two and capped at 8 (Chrome),
  // so below 8 the machine has less than twice it; at 8 it says nothing about larger machines.
  const dm = (navigator as Navigator & { deviceMemory?: number }).deviceMemory;
  if (typeof dm === 'number' && dm > 0 && dm < 8) return { ...b, memoryBytes: 2 * dm * 2 ** 30, memoryNote: `the browser reports ${dm} GiB of memory, so less than ${2 * dm} GiB` };
  return b;
}

interface Sources {
  name: string;
  files: ByteSource[];
  /** Identifies the checkpoint's bytes (for the quantised-matrix cache). */
  key: string;
  cachedFiles: number;
}

async function sourcesFor(source: ModelSource, signal: AbortSignal): Promise<Sources> {
  const progress = (file: string) => (done: number, total: number) =>
    post({ type: 'load-progress', stage: 'download', done, total, detail: `${file}: ${(done / 2 ** 20).toFixed(1)} of ${(total / 2 ** 20).toFixed(1)} MiB` });
  if (source.kind === 'files') {
    const files = source.files.filter((f) => WANTED.test(f.name));
    const dir = (source.files[0] as File & { webkitRelativePath?: string }).webkitRelativePath?.split('/')[0];
    const key = `files|${files.map((f) => `${f.name}:${f.size}:${f.lastModified}`).sort().join('|')}`;
    // A .gguf is the whole checkpoint (config and tokenizer in its metadata), an .onnx the whole
    // graph: name the model after it.
    const gguf = files.find((f) => /\.gguf$/i.test(f.name) || isOnnx(f.name));
    return { name: gguf?.name || dir || files.find((f) => f.name.endsWith('.safetensors'))?.name || 'local files', files: files.map((f) => blobSource(f.name, f)), key, cachedFiles: 0 };
  }
  // The page checked it already; a request from elsewhere gets the same rule (https or this origin).
  if (source.kind === 'url') source = { kind: 'url', url: checkModelUrl(source.url, scope.location.origin).url };
  if (source.kind === 'url' && /\.gguf$/i.test(new URL(source.url, scope.location.href).pathname)) {
    const n = decodeURIComponent(new URL(source.url, scope.location.href).pathname.split('/').pop()!);
    const got = await cachedDownload(source.url, () => fetchBytes(source.url, progress(n), signal), signal);
    return { name: source.url, files: [memorySource(n, got.bytes)], key: `url|${source.url}|${got.bytes.byteLength}`, cachedFiles: got.fromCache ? 1 : 0 };
  }
  if (source.kind === 'url' && isOnnx(new URL(source.url, scope.location.href).pathname)) return onnxUrlSources(source.url, progress, signal);
  const base = source.kind === 'demo' ? new URL(`${import.meta.env.BASE_URL}models/demo/`, scope.location.origin).href : source.url.endsWith('/') ? source.url : `${source.url}/`;
  const names = [...DEMO_FILES];
  if (source.kind === 'url') {
    // Sharded checkpoints list their shards in the index; single-file ones have model.safetensors.
    const index = await fetch(`${base}model.safetensors.index.json`, { ...NO_CREDENTIALS, signal }).catch(() => null);
    // Servers with an SPA fallback answer 200 with HTML for missing files: only JSON counts.
    const map = index?.ok ? await index.json().then((j: { weight_map?: Record<string, string> }) => j.weight_map, () => undefined) : undefined;
    if (map && typeof map === 'object') {
      names.splice(names.indexOf('model.safetensors'), 1, 'model.safetensors.index.json', ...new Set(Object.values(map)));
    }
  }
  const files: ByteSource[] = [];
  let cachedFiles = 0;
  for (const n of names) {
    const optional = n.startsWith('tokenizer');
    try {
      const url = `${base}${n}`;
      const got = await cachedDownload(url, () => fetchBytes(url, progress(n), signal), signal);
      if (got.fromCache) cachedFiles++;
      files.push(memorySource(n, got.bytes));
    } catch (e) {
      if (signal.aborted) throw e;
      if (!optional) throw new Error(`Could not download ${base}${n}: ${e instanceof Error ? e.message : String(e)}`);
      console.warn(`No ${n} at ${base} (${e instanceof Error ? e.message : String(e)}): running without it`);
    }
  }
  const key = `url|${base}|${files.map((f) => `${f.name}:${f.size}`).join('|')}`;
  return { name: source.kind === 'demo' ? 'Built-in demo (qwen2_moe, 16 experts, top-2)' : base, files, key, cachedFiles };
}

/** The tokenizer and config files an .onnx URL may have beside it (optional: JSON objects only count). */
const ONNX_SIDE_FILES = ['tokenizer.json', 'tokenizer_config.json', 'config.json'];

/** An .onnx by URL, with whichever of ONNX_SIDE_FILES its folder serves. */
async function onnxUrlSources(url: string, progress: (file: string) => (done: number, total: number) => void, signal: AbortSignal): Promise<Sources> {
  const abs = new URL(url, scope.location.href);
  const n = decodeURIComponent(abs.pathname.split('/').pop()!);
  const got = await cachedDownload(url, () => fetchBytes(url, progress(n), signal), signal);
  const files: ByteSource[] = [memorySource(n, got.bytes)];
  let cachedFiles = got.fromCache ? 1 : 0;
  for (const side of ONNX_SIDE_FILES) {
    const u = new URL(side, abs).href;
    try {
      const b = await cachedDownload(u, () => fetchBytes(u, progress(side), signal), signal);
      // Servers with an SPA fallback answer 200 with HTML for missing files: only a JSON object counts.
      const json: unknown = JSON.parse(new TextDecoder().decode(b.bytes));
      if (!json || typeof json !== 'object' || Array.isArray(json)) throw new Error('not a JSON object');
      files.push(memorySource(side, b.bytes));
      if (b.fromCache) cachedFiles++;
    } catch (e) {
      if (signal.aborted) throw e;
      console.warn(`No ${side} beside ${url} (${errorText(e)}): running without it`);
    }
  }
  return { name: url, files, key: `url|${url}|${got.bytes.byteLength}`, cachedFiles };
}

let loading: AbortController | null = null;
/** 'load' requests so far: a load aborted by a newer one (not by cancel-load) says nothing. */
let loadRequests = 0;
/** The load the page asked for, while it runs. */
let requested: { source: ModelSource; weights: WeightChoice } | null = null;

/**
 * Loads `source` as `choice`. The checkpoint is sized against the device before anything is
 * uploaded; an upload that runs out of memory frees what it made; the model loaded before stays
 * until the new one is complete. `restore`: router knobs to put back (a reload after a device loss).
 */
async function load(source: ModelSource, choice: WeightChoice, restore?: RouterConfig): Promise<void> {
  if (!gpu) throw new Error('No GPU device: loading a model needs WebGPU.');
  running?.abort();
  loading?.abort();
  const ctl = new AbortController();
  loading = ctl;
  const signal = ctl.signal;
  const t0 = performance.now();
  const { name, files, key, cachedFiles } = await sourcesFor(source, signal);
  signal.throwIfAborted();
  if (files.some((f) => isOnnx(f.name))) return loadOnnx(source, name, files, signal, t0);
  await gpuTask(async () => {
    signal.throwIfAborted();
    const g = gpu;
    if (!g) throw new Error('The GPU device was lost during the load.');
    const device = g.ctx.device;
    post({ type: 'load-progress', stage: 'parse', done: 0, total: 1, detail: 'reading headers and config' });
    // No per-slot f32 limit here: checkFits sizes every buffer in the chosen format.
    const ck = await openCheckpoint(files);
    const contextLength = Math.min(ck.spec.maxPositions, KV_CONTEXT);
    // "As in the GGUF file": which matrices keep their blocks decides the size, so plan first.
    const kept = choice.keepFileBlocks && isGgufReader(ck.reader) ? await fileBlockPlan(ck.spec, ck.slots, ck.reader) : undefined;
    checkFits(ck.spec, ck.slots, { ...choice, kept }, budgetOf(device), contextLength);
    const stats = { hits: 0 };
    const cache = choice.format === 'f32' ? undefined : await opfsQuantCache(`${key}|${choice.format}|${choice.group}`, stats);
    const weights = await uploadWeights(device, ck.spec, ck.slots, ck.reader, {
      format: choice.format,
      group: choice.group,
      keepFileBlocks: kept !== undefined,
      fileBlockPlan: kept,
      cache,
      onProgress: (done, total, slot) => post({ type: 'load-progress', stage: choice.format === 'f32' ? 'upload' : 'quantize', done, total, detail: slot }),
      signal,
    });
    // The holder keeps a model whose allocation failed inside the scope, so it can still be freed.
    const made: { model?: MoeModel } = {};
    let m: MoeModel;
    try {
      m = await catchOom(device, 'allocating the KV cache', () => (made.model = new MoeModel(g.kernels, ck.spec, weights, { contextLength })));
    } catch (e) {
      made.model?.destroy();
      destroyWeights(weights);
      throw e;
    }
    if (restore) {
      try {
        m.setRouter(restore);
      } catch (e) {
        console.warn(`Router knobs not restored: ${errorText(e)}`);
      }
    }
    // Only now, with the new model complete, does the old one go: a failed load keeps it.
    await unloadCurrent();
    const s = ck.spec;
    const summary: ModelSummary = {
      name,
      arch: s.arch,
      numLayers: s.numLayers,
      moeLayers: s.layers.flatMap((l, i) => (l.mlp === 'moe' ? [i] : [])),
      numExperts: s.moe.numExperts,
      topK: s.moe.topK,
      hiddenSize: s.hiddenSize,
      vocabSize: s.vocabSize,
      contextLength: m.contextLength,
      parameters: ck.parameters,
      gpuBytes: weights.bytes,
      // What was done: keeping blocks applies to GGUF files only.
      weights: { ...choice, keepFileBlocks: kept !== undefined },
      fromCache: { files: cachedFiles, matrices: stats.hits },
      hasTokenizer: ck.tokenizer !== null,
      hasChatTemplate: ck.tokenizer?.hasChatTemplate ?? false,
      backend: 'webgpu-kernels',
      routerFixed: null,
      kvCache: { bytesPerToken: kvBytesPerToken(s), expandedBytesPerToken: expandedKvBytesPerToken(s), latent: !!s.mla },
    };
    const cur: Loaded = { backend: 'webgpu-kernels', model: m, tokenizer: ck.tokenizer, summary, source, key: `${key}|${choice.format}|${choice.group}|${kept !== undefined}`, slots: ck.slots };
    loaded = cur;
    lastRun = null;
    post({ type: 'model-ready', model: summary, loadMs: performance.now() - t0, restored: restore !== undefined });
    post({ type: 'router', router: m.router, defaults: defaultRouter(ck.spec) });
    postMemory();
    // After a device loss, a run that was going (or whose result was in the weights) goes on from its checkpoint.
    const resume = restore !== undefined && resumeAfterRecovery;
    resumeAfterRecovery = false;
    void afterLoad(cur, resume);
  });
}

/** Tells the page about the saved run (or resumes it, after a device loss). */
async function afterLoad(cur: Loaded, resume: boolean): Promise<void> {
  const { run, problem } = await readRun();
  if (loaded !== cur) return;
  post({ type: 'train-saved', run: run ? savedRunFor(run, cur.key) : null, problem });
  if (resume && run && run.record.modelKey === cur.key) void startTraining(run, true);
}

/** Frees the model in use (either backend). */
async function unloadCurrent(): Promise<void> {
  const cur = loaded;
  if (!cur) return;
  loaded = null;
  if (cur.backend === 'webgpu-kernels') {
    destroyWeights(cur.model.weights);
    cur.model.destroy();
  } else await cur.decoder.release().catch((e: unknown) => console.warn(`onnxruntime session not released: ${errorText(e)}`));
}

/** Why the router knobs cannot change an .onnx model's routing (shown in the page). */
const ONNX_ROUTER_FIXED =
  'This model runs on onnxruntime-web: its routing is computed inside the ONNX graph as exported, so the router knobs cannot change it. ' +
  'Load the checkpoint itself (safetensors or GGUF) to tune the router.';

/** The router knobs that describe an ONNX graph's own routing (HF's: softmax, top-k, renormalised as the model says). */
function onnxRouter(topK: number, normTopkProb: boolean): RouterConfig {
  // defaultRouter reads only the MoE facts of a spec; an .onnx carries those facts, not a whole spec.
  return defaultRouter({ moe: { topK, normTopkProb } } as unknown as ModelSpec);
}

/** The knobs of `r` that differ from `base`, by name. */
function changedKnobs(r: RouterConfig, base: RouterConfig): string[] {
  const norm = (k: keyof RouterConfig, v: unknown) => (k === 'disabled' && Array.isArray(v) && v.length === 0 ? null : v === undefined ? null : v);
  const keys = new Set([...Object.keys(r), ...Object.keys(base)] as Array<keyof RouterConfig>);
  return [...keys].filter((k) => JSON.stringify(norm(k, r[k])) !== JSON.stringify(norm(k, base[k])));
}

/**
 * Loads an .onnx decoder for the onnxruntime-web backend (its own WebGPU device, made by
 * onnxruntime). The file is checked as a decoder before a session is built; the model loaded
 * before stays until the new one is ready.
 */
async function loadOnnx(source: ModelSource, name: string, files: ByteSource[], signal: AbortSignal, t0: number): Promise<void> {
  await gpuTask(async () => {
    signal.throwIfAborted();
    post({ type: 'load-progress', stage: 'parse', done: 0, total: 1, detail: 'checking the ONNX graph and building an onnxruntime-web session' });
    const o = await openOnnxFiles(files, KV_CONTEXT, signal);
    await unloadCurrent();
    const m = o.decoder.meta;
    const summary: ModelSummary = {
      name,
      arch: m.arch,
      numLayers: m.numLayers,
      moeLayers: m.moeLayers,
      numExperts: m.numExperts,
      topK: m.topK,
      hiddenSize: m.hiddenSize,
      vocabSize: m.vocabSize,
      contextLength: o.decoder.contextLength,
      parameters: m.parameters,
      gpuBytes: o.fileBytes,
      weights: { format: 'f32', group: 32 },
      fromCache: { files: 0, matrices: 0 },
      hasTokenizer: o.tokenizer !== null,
      hasChatTemplate: o.tokenizer?.hasChatTemplate ?? false,
      backend: 'onnxruntime-web',
      routerFixed: ONNX_ROUTER_FIXED,
      kvCache: null,
    };
    const router = onnxRouter(m.topK, m.normTopkProb);
    loaded = { backend: 'onnxruntime-web', decoder: o.decoder, tokenizer: o.tokenizer, summary, source, router };
    post({ type: 'model-ready', model: summary, loadMs: performance.now() - t0, restored: false });
    post({ type: 'router', router, defaults: router });
    postMemory();
  });
}

/**
 * After generation ran out of memory: frees the model's KV cache and scratch and makes them again
 * (same weights, same knobs), so the next, smaller request can run. If even that fails the model
 * is unloaded, and the page is told so.
 */
async function rebuildModel(cur: Loaded): Promise<boolean> {
  const g = gpu;
  if (!g) return false;
  const { spec, weights } = cur.model;
  const router = cur.model.router;
  cur.model.destroy();
  const made: { model?: MoeModel } = {};
  try {
    const m = await catchOom(g.ctx.device, 'allocating the KV cache again', () => (made.model = new MoeModel(g.kernels, spec, weights, { contextLength: cur.summary.contextLength })));
    m.setRouter(router);
    cur.model = m;
    return true;
  } catch {
    made.model?.destroy();
    destroyWeights(weights);
    if (loaded === cur) loaded = null;
    return false;
  }
}

/** `events`, each step (one forward pass) inside an out-of-memory scope. Call under gpuTask. */
async function* checked(device: GPUDevice, events: AsyncGenerator<SessionEvent>): AsyncGenerator<SessionEvent> {
  try {
    for (;;) {
      const r = await catchOom(device, 'generating', () => events.next());
      if (r.done) return;
      yield r.value;
    }
  } finally {
    await events.return(undefined).catch(() => undefined);
  }
}

/** Whether `ctx`'s device is lost now or within a moment (a failed read-back comes before the loss event). */
async function lostSoon(ctx: GpuContext): Promise<boolean> {
  return Promise.race([ctx.lost.then(() => true), sleep(300).then(() => false)]);
}

/** Runs `gen` (a generation on `cur`) and turns GPU failures into messages that say what is kept. */
async function generating(cur: Loaded, gen: (device: GPUDevice) => Promise<void>): Promise<void> {
  const g = gpu;
  if (!g) throw new Error('No GPU device: the engine is restarting it.');
  try {
    await gen(g.ctx.device);
  } catch (e) {
    if (isOutOfMemory(e)) {
      const kept = await rebuildModel(cur);
      postMemory();
      if (!kept) post({ type: 'model-error', message: `${e.message}; the model was unloaded to free memory.`, unloaded: true });
      throw new Error(
        `${e.message}. The conversation is kept${kept ? "; the model's working buffers were freed" : ', but the model had to be unloaded: load it again'}. ` +
          'Try fewer new tokens, a shorter conversation or a smaller weight format.',
      );
    }
    if (await lostSoon(g.ctx)) throw new Error('The GPU device was lost while generating. The reply so far is kept; the engine is restarting the GPU and reloading the model.');
    throw e;
  }
}

function payload(r: RoutingRecord): { routing: RoutingPayload; transfer: Transferable[] } {
  const routing: RoutingPayload = { tokens: r.tokens, topk: r.topk, numExperts: r.numExperts, layers: r.layers, experts: r.experts, gates: r.gates };
  return { routing, transfer: [...r.experts.map((a) => a.buffer), ...r.gates.map((a) => a.buffer)] };
}

/** Session events to the page (both backends emit the same ones). */
function postSessionEvent(ev: SessionEvent, contextLength: number): void {
  if (ev.type === 'prompt') post({ type: 'prompt', tokens: ev.ids.map((id, i) => ({ id, text: ev.pieces[i]! })), dropped: ev.dropped, contextLength });
  else if (ev.type === 'token') post({ type: 'token', token: { id: ev.id, text: ev.text }, prob: ev.prob, ms: ev.ms });
  else if (ev.type === 'routing') {
    const { routing, transfer } = payload(ev.routing);
    post({ type: 'routing', start: ev.start, routing }, transfer);
  } else post(ev);
}

/** The fine-tuning run in progress (train.ts), if any. */
let training: TrainControl | null = null;
/** The last run on the loaded model, for the export buttons. */
let lastRun: RunResult | null = null;
/** A run was going, or its result was in the weights, when the device went: resume it after the reload. */
let resumeAfterRecovery = false;

/** Starts a new run (`req`) or goes on with a saved one. `auto`: the engine resumes after a device loss. */
async function startTraining(req: Extract<WorkerRequest, { type: 'train-start' }> | StoredRun, auto = false): Promise<void> {
  if (training) return post({ type: 'train-error', message: 'A training run is already going: stop it first.' });
  const l = loaded;
  if (!l) return post({ type: 'train-error', message: 'Load a model before training it.' });
  if (l.backend !== 'webgpu-kernels') return post({ type: 'train-error', message: 'Training runs on our own kernels: an ONNX graph cannot be fine-tuned here. Load the checkpoint itself.' });
  if (!l.tokenizer) return post({ type: 'train-error', message: 'This checkpoint has no tokenizer.json: training data cannot be tokenized.' });
  const resume = 'snapshot' in req ? req : undefined;
  if (resume && resume.record.modelKey !== l.key) return post({ type: 'train-error', message: `The saved run was made on ${resume.record.modelName} (other files, or another weight format): load that model the same way to resume it.` });
  const { data, settings } = resume ? resume.record : (req as Extract<WorkerRequest, { type: 'train-start' }>);
  const tok = l.tokenizer;
  const ctl = new TrainControl();
  training = ctl;
  running?.abort();
  const g = gpu;
  try {
    lastRun = await gpuTask(() => runTraining(l.model, tok, data, settings, ctl, post, { modelKey: l.key, modelName: l.summary.name, resume, auto, save: saveRun }));
  } catch (e) {
    if (g && (await lostSoon(g.ctx))) {
      post({ type: 'train-error', message: 'The GPU device was lost during training. The engine is restarting the GPU and reloading the model; the run goes on from its last checkpoint.' });
    } else post({ type: 'train-error', message: isOutOfMemory(e) ? `${errorText(e)}. Training needs more GPU memory than is free: a shorter window (seqLen) or router-only mode needs less.` : errorText(e) });
  } finally {
    training = null;
    postMemory();
  }
}

/** Goes on with the saved run (the page's Resume / Apply button). */
async function resumeSaved(): Promise<void> {
  const { run, problem } = await readRun();
  if (!run) {
    post({ type: 'train-saved', run: null, problem });
    return post({ type: 'train-error', message: problem ?? 'There is no saved training run any more.' });
  }
  return startTraining(run);
}

/** The files of the last run the page asked for. */
async function exportRun(what: 'adapter' | 'merged' | 'recipe'): Promise<void> {
  const l = loaded;
  const run = lastRun;
  if (!l || l.backend !== 'webgpu-kernels' || !run) throw new Error('Nothing to export yet: train the loaded model first (or resume the saved run).');
  let files: ExportedFile[];
  if (what === 'adapter') {
    if (!run.adapter) throw new Error(`The last run trained ${run.mode === 'router' ? 'the router' : 'every weight'}, not a LoRA adapter: export the merged weights instead.`);
    files = adapterFiles(run.adapter.config, run.adapter.tensors);
  } else if (what === 'merged') {
    const g = gpu;
    if (!g) throw new Error('No GPU device: the engine is restarting it.');
    const tensors = await gpuTask(() => exportWeights(g.ctx.device, l.model.spec, l.slots, l.model.weights, 'full'));
    const stem = l.summary.name.replace(/[^\w.-]+/g, '_').slice(0, 60) || 'model';
    files = [{ name: `${stem}-finetuned.safetensors`, bytes: encodeSafetensors(tensors, { format: 'pt' }) }];
  } else files = recipeFiles(run.options, l.summary.name, run.train, run.val);
  post({ type: 'train-export', files }, files.map((f) => f.bytes.buffer));
}

async function runChat(req: Extract<WorkerRequest, { type: 'chat' }>): Promise<void> {
  if (!loaded) throw new Error('No model is loaded yet.');
  running?.abort();
  const ctl = new AbortController();
  running = ctl;
  try {
    await gpuTask(async () => {
      const cur = loaded;
      if (!cur) throw new Error('No model is loaded yet.');
      if (cur.backend === 'onnxruntime-web') {
        const opts = { sampling: req.sampling, maxNewTokens: req.maxNewTokens, signal: ctl.signal };
        for await (const ev of ortChat(cur.decoder, cur.tokenizer, req.messages, opts)) postSessionEvent(ev, cur.decoder.contextLength);
        return;
      }
      await generating(cur, async (device) => {
        const { model, tokenizer } = cur;
        for await (const ev of checked(device, chat(model, tokenizer, req.messages, { sampling: req.sampling, maxNewTokens: req.maxNewTokens, signal: ctl.signal }))) {
          postSessionEvent(ev, model.contextLength);
        }
      });
    });
  } finally {
    if (running === ctl) running = null;
    postMemory();
  }
}

/** Runs the conversation under router presets a then b, restoring the knobs the user had. */
async function runCompare(req: Extract<WorkerRequest, { type: 'compare' }>): Promise<void> {
  if (!loaded) throw new Error('No model is loaded yet.');
  running?.abort();
  await gpuTask(async () => {
    const cur = loaded;
    if (!cur) throw new Error('No model is loaded yet.');
    if (cur.backend === 'onnxruntime-web') throw new Error(`A/B compare runs the conversation under two router presets. ${ONNX_ROUTER_FIXED}`);
    const before = cur.model.router;
    await generating(cur, async (device) => {
      try {
        for (const side of ['a', 'b'] as const) {
          const { model, tokenizer } = cur;
          model.setRouter(req[side]);
          let text = '';
          let tokens = 0;
          let counts: number[][] = [];
          let layers: number[] = [];
          for await (const ev of checked(device, chat(model, tokenizer, req.messages, { sampling: req.sampling, maxNewTokens: req.maxNewTokens }))) {
            if (ev.type === 'token') {
              text += ev.text;
              tokens++;
            } else if (ev.type === 'routing') {
              const r = ev.routing;
              layers = r.layers;
              if (!counts.length) counts = r.layers.map(() => new Array<number>(r.numExperts).fill(0));
              r.experts.forEach((ids, m) => ids.forEach((e) => e < r.numExperts && counts[m]![e]!++));
            }
          }
          post({ type: 'compare-result', side, text, counts, layers, tokens });
        }
      } finally {
        cur.model.setRouter(before);
      }
    });
  });
}

async function handle(req: WorkerRequest): Promise<void> {
  switch (req.type) {
    case 'init':
      debug = req.debug === true;
      return init();
    case 'selftest':
      return gpuTask(async () => {
        if (!gpu) throw new Error('No GPU device: the self-test needs WebGPU.');
        post({ type: 'selftest', results: await runSelfTest(gpu.kernels) });
      });
    case 'load': {
      const gen = ++loadRequests;
      try {
        requested = { source: req.source, weights: req.weights };
        await load(req.source, req.weights);
      } catch (e) {
        const cancelled = e instanceof DOMException && e.name === 'AbortError';
        // Aborted because a newer load started: that one reports its own outcome, even when it has
        // already ended (on a slow machine this abort surfaced after the newer load's error and hid it).
        if (cancelled && gen !== loadRequests) return;
        post({
          type: 'model-error',
          message: cancelled ? 'Loading was cancelled.' : isOutOfMemory(e) ? `${e.message}. Everything it had uploaded was freed; a smaller weight format (int8/int4) needs less.` : errorText(e),
          unloaded: loaded === null,
        });
        postMemory();
      } finally {
        if (requested?.source === req.source) requested = null;
      }
      return;
    }
    case 'cancel-load':
      loading?.abort();
      return;
    case 'chat':
      return runChat(req);
    case 'stop':
      running?.abort();
      return;
    case 'compare':
      return runCompare(req);
    case 'router':
      if (!loaded) throw new Error('No model is loaded yet.');
      if (loaded.backend === 'onnxruntime-web') {
        // The graph's routing is the only one on offer: the page's knobs go back to it, and a change is refused, naming the knobs.
        const changed = changedKnobs(req.router, loaded.router);
        post({ type: 'router', router: loaded.router, defaults: loaded.router });
        if (changed.length) post({ type: 'router-error', message: `${ONNX_ROUTER_FIXED} (Changed: ${changed.join(', ')}.)` });
        return;
      }
      try {
        loaded.model.setRouter(req.router);
        post({ type: 'router', router: loaded.model.router, defaults: defaultRouter(loaded.model.spec) });
      } catch (e) {
        post({ type: 'router-error', message: e instanceof Error ? e.message : String(e) });
      }
      return;
    case 'train-start':
      return startTraining(req);
    case 'train-pause':
      training?.pause(req.paused);
      if (training) post({ type: 'train-paused', paused: req.paused });
      return;
    case 'train-stop':
      training?.stop();
      return;
    case 'train-resume':
      return resumeSaved();
    case 'train-discard':
      if (training) throw new Error('A run is going: stop it before discarding the saved one.');
      await deleteRun();
      return post({ type: 'train-saved', run: null, problem: null });
    case 'train-export':
      return exportRun(req.what);
    case 'gpu-memory':
      return postMemory();
    case 'debug-lose-device':
      if (!debug) throw new Error('debug-lose-device is only honoured when the page was opened by a test');
      if (!gpu) throw new Error('No GPU device to lose');
      simulatedLoss = true;
      gpu.ctx.device.destroy();
      return;
    case 'debug-memory':
      if (!debug) throw new Error('debug-memory is only honoured when the page was opened by a test');
      memoryOverride = req.bytes;
      return;
    case 'debug-oom':
      if (!debug) throw new Error('debug-oom is only honoured when the page was opened by a test');
      if (!gpu) throw new Error('No GPU device');
      injectOom(gpu.ctx.device, req.after);
      return;
  }
}

scope.onmessage = (ev: MessageEvent<WorkerRequest>) => {
  handle(ev.data).catch((e: unknown) => post({ type: 'error', request: ev.data.type, message: e instanceof Error ? e.message : String(e) }));
};
