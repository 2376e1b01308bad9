/// <reference lib="webworker" />
/** The engine in a Web Worker: owns the GPUDevice and the model, answers requests, streams events. */
import { acquireDevice, browserGpu, type GpuContext, WebGpuUnavailableError } from '../engine/gpu/device';
import { kernelsFor, type Kernels } from '../engine/gpu/kernels';
import { openCheckpoint } from '../engine/io/checkpoint';
import { blobSource, fetchBytes, memorySource, type ByteSource } from '../engine/io/source';
import type { HfTokenizer } from '../engine/io/tokenizer';
import { MoeModel, type RoutingRecord } from '../engine/model/model';
import { defaultRouter } from '../engine/moe/router';
import { uploadWeights, destroyWeights } from '../engine/model/weights';
import { runSelfTest } from '../engine/selftest';
import { cachedDownload, opfsQuantCache } from './opfs-cache';
import { chat } from '../engine/session';
import type { ModelSource, ModelSummary, RoutingPayload, WeightChoice, WorkerEvent, WorkerRequest } from './protocol';

const scope = self as unknown as DedicatedWorkerGlobalScope;
const post = (e: WorkerEvent, transfer: Transferable[] = []) => scope.postMessage(e, transfer);

let gpu: { ctx: GpuContext; kernels: Kernels } | null = null;
let loaded: { model: MoeModel; tokenizer: HfTokenizer | null; summary: ModelSummary } | null = null;
let running: AbortController | null = null;

/** The files a checkpoint folder may hold; others are ignored. */
const WANTED = /^(config\.json|tokenizer\.json|tokenizer_config\.json|chat_template\.jinja|model\.safetensors\.index\.json|.*\.safetensors|.*\.gguf)$/i;
const DEMO_FILES = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];

async function init(): Promise<void> {
  try {
    const ctx = await acquireDevice(browserGpu(), {
      onLost: (l) => {
        gpu = null;
        loaded = null;
        post({ type: 'device-lost', ...l });
      },
      onUncapturedError: (message) => post({ type: 'gpu-error', message }),
    });
    gpu = { ctx, kernels: kernelsFor(ctx) };
    post({ type: 'gpu-ready', info: ctx.info });
  } catch (e) {
    if (e instanceof WebGpuUnavailableError) post({ type: 'gpu-unavailable', message: e.reason, advice: e.advice });
    else throw e;
  }
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
    // A .gguf is the whole checkpoint (config and tokenizer in its metadata): name the model after it.
    const gguf = files.find((f) => /\.gguf$/i.test(f.name));
    return { name: gguf?.name || dir || files.find((f) => f.name.endsWith('.safetensors'))?.name || 'local files', files: files.map((f) => blobSource(f.name, f)), key, cachedFiles: 0 };
  }
  if (source.kind === 'url' && /\.gguf$/i.test(new URL(source.url, scope.location.href).pathname)) {
    const n = decodeURIComponent(new URL(source.url, scope.location.href).pathname.split('/').pop()!);
    const got = await cachedDownload(source.url, () => fetchBytes(source.url, progress(n), signal), signal);
    return { name: source.url, files: [memorySource(n, got.bytes)], key: `url|${source.url}|${got.bytes.byteLength}`, cachedFiles: got.fromCache ? 1 : 0 };
  }
  const base = source.kind === 'demo' ? new URL(`${import.meta.env.BASE_URL}models/demo/`, scope.location.origin).href : source.url.endsWith('/') ? source.url : `${source.url}/`;
  const names = [...DEMO_FILES];
  if (source.kind === 'url') {
    // Sharded checkpoints list their shards in the index; single-file ones have model.safetensors.
    const index = await fetch(`${base}model.safetensors.index.json`).catch(() => null);
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

let loading: AbortController | null = null;

async function load(source: ModelSource, choice: WeightChoice): Promise<void> {
  if (!gpu) throw new Error('No GPU device: loading a model needs WebGPU.');
  running?.abort();
  loading?.abort();
  const ctl = new AbortController();
  loading = ctl;
  const signal = ctl.signal;
  const t0 = performance.now();
  const { name, files, key, cachedFiles } = await sourcesFor(source, signal);
  signal.throwIfAborted();
  post({ type: 'load-progress', stage: 'parse', done: 0, total: 1, detail: 'reading headers and config' });
  const ck = await openCheckpoint(files, gpu.ctx.device.limits);
  const stats = { hits: 0 };
  const cache = choice.format === 'f32' ? undefined : await opfsQuantCache(`${key}|${choice.format}|${choice.group}`, stats);
  const weights = await uploadWeights(gpu.ctx.device, ck.spec, ck.slots, ck.reader, {
    format: choice.format,
    group: choice.group,
    cache,
    onProgress: (done, total, slot) => post({ type: 'load-progress', stage: choice.format === 'f32' ? 'upload' : 'quantize', done, total, detail: slot }),
    signal,
  });
  // Only now, with the new model complete, does the old one go: a failed load keeps it.
  if (loaded) {
    destroyWeights(loaded.model.weights);
    loaded.model.destroy();
  }
  const model = new MoeModel(gpu.kernels, ck.spec, weights, { contextLength: Math.min(ck.spec.maxPositions, 1024) });
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
    contextLength: model.contextLength,
    parameters: ck.parameters,
    gpuBytes: weights.bytes,
    weights: choice,
    fromCache: { files: cachedFiles, matrices: stats.hits },
    hasTokenizer: ck.tokenizer !== null,
    hasChatTemplate: ck.tokenizer?.hasChatTemplate ?? false,
  };
  loaded = { model, tokenizer: ck.tokenizer, summary };
  post({ type: 'model-ready', model: summary, loadMs: performance.now() - t0 });
  post({ type: 'router', router: model.router, defaults: defaultRouter(ck.spec) });
}

function payload(r: RoutingRecord): { routing: RoutingPayload; transfer: Transferable[] } {
  const routing: RoutingPayload = { tokens: r.tokens, topk: r.topk, numExperts: r.numExperts, layers: r.layers, experts: r.experts, gates: r.gates };
  return { routing, transfer: [...r.experts.map((a) => a.buffer), ...r.gates.map((a) => a.buffer)] };
}

async function runChat(req: Extract<WorkerRequest, { type: 'chat' }>): Promise<void> {
  if (!loaded) throw new Error('No model is loaded yet.');
  running?.abort();
  const ctl = new AbortController();
  running = ctl;
  const { model, tokenizer } = loaded;
  try {
    for await (const ev of chat(model, tokenizer, req.messages, { sampling: req.sampling, maxNewTokens: req.maxNewTokens, signal: ctl.signal })) {
      if (ev.type === 'prompt') post({ type: 'prompt', tokens: ev.ids.map((id, i) => ({ id, text: ev.pieces[i]! })) });
      else if (ev.type === 'token') post({ type: 'token', token: { id: ev.id, text: ev.text }, prob: ev.prob, ms: ev.ms });
      else if (ev.type === 'routing') {
        const { routing, transfer } = payload(ev.routing);
        post({ type: 'routing', start: ev.start, routing }, transfer);
      } else post(ev);
    }
  } finally {
    if (running === ctl) running = null;
  }
}

/** Runs the conversation under router presets a then b, restoring the knobs the user had. */
async function runCompare(req: Extract<WorkerRequest, { type: 'compare' }>): Promise<void> {
  if (!loaded) throw new Error('No model is loaded yet.');
  running?.abort();
  const { model, tokenizer } = loaded;
  const before = model.router;
  try {
    for (const side of ['a', 'b'] as const) {
      model.setRouter(req[side]);
      let text = '';
      let tokens = 0;
      let counts: number[][] = [];
      let layers: number[] = [];
      for await (const ev of chat(model, tokenizer, req.messages, { sampling: req.sampling, maxNewTokens: req.maxNewTokens })) {
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
    model.setRouter(before);
  }
}

async function handle(req: WorkerRequest): Promise<void> {
  switch (req.type) {
    case 'init':
      return init();
    case 'selftest':
      if (!gpu) throw new Error('No GPU device: the self-test needs WebGPU.');
      post({ type: 'selftest', results: await runSelfTest(gpu.kernels) });
      return;
    case 'load':
      try {
        await load(req.source, req.weights);
      } catch (e) {
        const cancelled = e instanceof DOMException && e.name === 'AbortError';
        post({ type: 'model-error', message: cancelled ? 'Loading was cancelled.' : e instanceof Error ? e.message : String(e) });
      }
      return;
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
      try {
        loaded.model.setRouter(req.router);
        post({ type: 'router', router: loaded.model.router, defaults: defaultRouter(loaded.model.spec) });
      } catch (e) {
        post({ type: 'router-error', message: e instanceof Error ? e.message : String(e) });
      }
      return;
  }
}

scope.onmessage = (ev: MessageEvent<WorkerRequest>) => {
  handle(ev.data).catch((e: unknown) => post({ type: 'error', request: ev.data.type, message: e instanceof Error ? e.message : String(e) }));
};
