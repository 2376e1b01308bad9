import { useEffect, useMemo } from 'react';
import { applyRouting, emptyChat, useChatStore } from '../state/chatStore';
import { setNotice, useEngineStore } from '../state/engineStore';
import { indexedDbStore, readRecord, unusable, writeRecord, type KeyValue, type RecordKey, type RouterRecord } from '../state/persist';
import { useModelStore } from '../state/modelStore';
import { useRouterStore } from '../state/routerStore';
import { useTrainStore } from '../state/trainStore';
import { useCompareStore } from '../state/compareStore';
import { useSettingsStore } from '../state/settingsStore';
import type { RouterConfig } from '../engine/moe/router';
import { decodePreset, encodePreset, type ModelRef } from '../preset/preset';
import { startEngineWorker, type EngineClient } from '../worker/client';
import type { ChatMessage, ModelSource, ModelSummary, TrainData, WorkerEvent } from '../worker/protocol';
import { offerDownload } from './download';

export interface EngineActions {
  load(source: ModelSource): void;
  /** Answers the question about a link's model from another origin: load it (with the link's knobs) or not. */
  confirmLinkModel(load: boolean): void;
  cancelLoad(): void;
  /** Fine-tunes the loaded model on `data` with the Train panel's settings. */
  train(data: TrainData): void;
  pauseTraining(paused: boolean): void;
  stopTraining(): void;
  /** Goes on with the saved run (a finished one: puts its result into the loaded model). */
  resumeTraining(): void;
  discardSavedRun(): void;
  /** Downloads the last run's PEFT adapter, merged weights or transformers recipe. */
  exportTraining(what: 'adapter' | 'merged' | 'recipe'): void;
  /** Changes router knobs (merged over the current ones); applied from the next token. */
  setRouter(patch: Partial<RouterConfig>): void;
  /** Runs the conversation up to its last user message under presets A and B. */
  compare(): void;
  chat(text: string): void;
  regenerate(): void;
  stop(): void;
  clear(): void;
}

/** Routes one worker event into the stores. */
function route(e: WorkerEvent, client: EngineClient): void {
  switch (e.type) {
    case 'gpu-ready':
      useEngineStore.getState().apply(e);
      client.send({ type: 'selftest' });
      client.send({ type: 'load', source: useModelStore.getState().source ?? { kind: 'demo' }, weights: useModelStore.getState().weights });
      useModelStore.setState({ status: 'loading', error: null, source: useModelStore.getState().source ?? { kind: 'demo' } });
      return;
    case 'load-progress':
      return useModelStore.setState({ status: 'loading', progress: { stage: e.stage, done: e.done, total: e.total, detail: e.detail } });
    case 'model-ready':
      if (e.restored) {
        // The same model after a device loss: the conversation, its routing and the knobs go on.
        setNotice('device', { kind: 'info', text: restoredText(e.model, e.loadMs) });
      } else {
        // Another model: the conversation stays (it is text), its tokens and routing do not.
        const { messages } = useChatStore.getState();
        useChatStore.setState({ ...emptyChat(), messages });
        applySavedRouter(e.model.name);
      }
      return useModelStore.setState({ status: 'ready', model: e.model, loadMs: e.loadMs, progress: null, error: null });
    case 'device-lost':
      useEngineStore.getState().apply(e);
      useChatStore.setState({ generating: false });
      useCompareStore.setState({ running: false });
      if (e.recovering) useModelStore.setState({ status: 'loading', progress: { stage: 'upload', done: 0, total: 1, detail: 'starting a new GPU device' } });
      else useModelStore.setState({ status: 'error', error: 'The GPU device was lost; reload the page.' });
      return;
    case 'model-error':
      // The model that was loaded before (if any) stays usable unless the worker says it had to go.
      if (e.unloaded) return useModelStore.setState({ status: 'error', model: null, error: e.message, progress: null });
      return useModelStore.setState((s) => ({ status: s.model ? 'ready' : 'error', error: e.message, progress: null }));
    case 'prompt':
      return useChatStore.setState({
        tokens: e.tokens.map((t) => ({ ...t, kind: 'prompt', prob: null, experts: null, gates: null })),
        counts: [],
        replyCounts: [],
        selected: null,
        context: { dropped: e.dropped, length: e.contextLength },
      });
    case 'token':
      return useChatStore.setState((s) => {
        const tokens = [...s.tokens, { ...e.token, kind: 'reply' as const, prob: e.prob, experts: null, gates: null }];
        const messages = s.messages.slice();
        const last = messages[messages.length - 1];
        if (last?.role === 'assistant') messages[messages.length - 1] = { ...last, content: last.content + e.token.text };
        return { tokens, messages };
      });
    case 'routing':
      return useChatStore.setState((s) => applyRouting(s, e.start, e.routing));
    case 'done':
      return useChatStore.setState({ generating: false, stats: { ttftMs: e.ttftMs, tokensPerSecond: e.tokensPerSecond, tokens: e.tokens, reason: e.reason } });
    case 'router': {
      const pending = useRouterStore.getState().pending;
      if (pending) {
        // The link's knobs go over the checkpoint's defaults; the engine validates them against the model.
        useRouterStore.setState({ pending: null, defaults: e.defaults, router: e.router });
        client.send({ type: 'router', router: { ...e.defaults, ...pending.router } });
        return;
      }
      return useRouterStore.setState({ router: e.router, defaults: e.defaults, error: null });
    }
    case 'router-error':
      return useRouterStore.setState({ error: e.message });
    case 'compare-result':
      return useCompareStore.setState((s) => ({
        [e.side]: { ...s[e.side], result: { text: e.text, counts: e.counts, layers: e.layers, tokens: e.tokens } },
        running: e.side === 'a',
      }));
    case 'train-started':
      return useTrainStore.setState({
        status: 'running', info: { trainExamples: e.trainExamples, valExamples: e.valExamples, tokens: e.tokens, format: e.format, moeLayers: e.moeLayers },
        settings: e.settings, draft: { text: e.data.text, name: e.data.name }, steps: e.events, resumed: e.resumedFrom > 0 || e.auto ? { from: e.resumedFrom, auto: e.auto } : null,
        saved: null, summary: null, reason: null, error: null, exportError: null,
      });
    case 'train-saved':
      // A saved run shows its settings and charts until something else runs.
      return useTrainStore.setState((s) => ({
        saved: e.run, savedProblem: e.problem,
        ...(e.run && (s.status === 'idle' || s.status === 'error') ? { settings: e.run.settings, draft: { text: e.run.data.text, name: e.run.data.name }, steps: e.run.events, info: null, summary: null } : {}),
      }));
    case 'train-checkpoint':
      return useTrainStore.setState({ checkpoint: { step: e.step, error: e.error } });
    case 'train-export':
      for (const f of e.files) offerDownload(f.name, f.bytes);
      return;
    case 'train-step':
      return useTrainStore.setState((s) => ({ steps: [...s.steps, e.step] }));
    case 'train-paused':
      return useTrainStore.setState((s) => ({ status: s.status === 'running' || s.status === 'paused' ? (e.paused ? 'paused' : 'running') : s.status }));
    case 'train-done':
      return useTrainStore.setState({ status: 'done', summary: e.summary, reason: e.reason });
    case 'train-error':
      return useTrainStore.setState({ status: 'error', error: e.message });
    case 'error':
      if (e.request === 'chat') {
        // A reply that failed before its first token leaves no empty bubble; a partial one stays.
        useChatStore.setState((s) => {
          const last = s.messages[s.messages.length - 1];
          return { generating: false, messages: last?.role === 'assistant' && last.content === '' ? s.messages.slice(0, -1) : s.messages };
        });
      }
      if (e.request === 'compare') useCompareStore.setState({ running: false });
      if (e.request === 'train-export') useTrainStore.setState({ exportError: e.message });
      if (e.request === 'train-resume' || e.request === 'train-discard') useTrainStore.setState({ status: 'error', error: e.message });
      return useEngineStore.getState().apply(e);
    default:
      return useEngineStore.getState().apply(e);
  }
}

let client: EngineClient | null = null;

function restoredText(model: ModelSummary, loadMs: number): string {
  const lostAt = useEngineStore.getState().lostAt;
  const when = lostAt ? ` at ${new Date(lostAt).toLocaleTimeString()}` : '';
  const cache = model.fromCache.files + model.fromCache.matrices > 0 ? ` from the browser cache (${model.fromCache.files} files, ${model.fromCache.matrices} quantised matrices)` : '';
  return `The GPU device was lost${when} and restarted; the model was reloaded${cache} in ${(loadMs / 1000).toFixed(1)} s. Your conversation and router settings are kept.`;
}

// ---- Persistence: the conversation and the router knobs survive a reload (state/persist.ts). ----

let kv: KeyValue | null = null;
/** The router knobs saved for a model, waiting for that model to load. */
let savedRouter: RouterRecord | null = null;
const SAVE_DELAY_MS = 250;
const timers = new Map<RecordKey, ReturnType<typeof setTimeout>>();
let saveFailed = false;

function save(key: RecordKey, make: () => Parameters<typeof writeRecord>[2] | null): void {
  clearTimeout(timers.get(key));
  timers.set(
    key,
    setTimeout(() => {
      const value = make();
      if (!kv || !value) return;
      writeRecord(kv, key, value).catch((e: unknown) => {
        if (saveFailed) return;
        saveFailed = true;
        setNotice('storage', { kind: 'warn', text: `Your conversation could not be saved in the browser's storage (${e instanceof Error ? e.message : String(e)}); it lasts until this tab closes.` });
      });
    }, SAVE_DELAY_MS),
  );
}

/** Queues the saved knobs for `model` (unless the page's link brought its own), to apply when its defaults arrive. */
function applySavedRouter(model: string): void {
  const rec = savedRouter;
  if (!rec || rec.model !== model || useRouterStore.getState().pending) return;
  savedRouter = null;
  try {
    const preset = decodePreset(rec.query);
    if (preset) useRouterStore.setState({ pending: { model: null, router: preset.router } });
  } catch (e) {
    if (kv) void unusable(kv, 'router', rec, e instanceof Error ? e.message : String(e)).then((text) => setNotice('storage', { kind: 'warn', text }));
  }
}

/** Reads what the last visit saved, then saves every change (debounced). */
async function startPersistence(store: KeyValue): Promise<() => void> {
  kv = store;
  const problems: string[] = [];
  const chat = await readRecord(store, 'chat');
  if (chat.problem) problems.push(chat.problem);
  if (chat.value && useChatStore.getState().messages.length === 0) useChatStore.setState({ messages: chat.value.messages });
  const router = await readRecord(store, 'router');
  if (router.problem) problems.push(router.problem);
  savedRouter = router.value;
  if (problems.length) setNotice('storage', { kind: 'warn', text: problems.join(' ') });
  // The model may have loaded while we read: apply its saved knobs now.
  const { model, status } = useModelStore.getState();
  const { router: current, defaults } = useRouterStore.getState();
  if (model && status === 'ready' && defaults && current && savedRouter?.model === model.name && !useRouterStore.getState().pending) {
    applySavedRouter(model.name);
    const pending = useRouterStore.getState().pending;
    if (pending) {
      useRouterStore.setState({ pending: null });
      client?.send({ type: 'router', router: { ...defaults, ...pending.router } });
    }
  }
  const unsubChat = useChatStore.subscribe((s, prev) => {
    if (s.messages !== prev.messages) save('chat', () => ({ version: 1, savedAt: Date.now(), messages: useChatStore.getState().messages }));
  });
  const unsubRouter = useRouterStore.subscribe((s, prev) => {
    if (s.router === prev.router && s.defaults === prev.defaults) return;
    save('router', () => {
      const { router: r, defaults: d } = useRouterStore.getState();
      const name = useModelStore.getState().model?.name;
      return r && d && name ? { version: 1, savedAt: Date.now(), model: name, query: encodePreset(null, r, d) } : null;
    });
  });
  return () => {
    unsubChat();
    unsubRouter();
  };
}

/** Set by a test (Playwright's addInitScript) before the page runs; a link cannot set it. */
const testHooks = () => (globalThis as { __MOE_TEST_HOOKS__?: unknown }).__MOE_TEST_HOOKS__ === true;

/** What tests may do to the engine: lose the device, pretend it has little memory, read the buffer count. */
function installTestHooks(): void {
  (globalThis as { moeDebug?: unknown }).moeDebug = {
    loseDevice: () => client?.send({ type: 'debug-lose-device' }),
    setMemory: (bytes: number | null) => client?.send({ type: 'debug-memory', bytes }),
    failAllocation: (after: number) => client?.send({ type: 'debug-oom', after }),
    refreshMemory: () => client?.send({ type: 'gpu-memory' }),
    memory: () => useEngineStore.getState().memory,
  };
}

function sourceOf(ref: ModelRef): ModelSource {
  return ref.kind === 'demo' ? { kind: 'demo' } : { kind: 'url', url: ref.url };
}

/**
 * A preset in the page's URL waits for the model; a bad one is reported and ignored. A model on
 * another origin is not fetched until the user agrees (RouterPanel asks); its knobs wait with it.
 */
function readPresetFromUrl(): void {
  try {
    const origin = globalThis.location?.origin;
    const preset = decodePreset(globalThis.location?.search ?? '', origin);
    if (!preset) return;
    const m = preset.model;
    if (m?.kind === 'url' && origin && new URL(m.url).origin !== origin) {
      useRouterStore.setState({ confirm: { url: m.url, preset }, presetError: null });
      return;
    }
    useRouterStore.setState({ pending: preset, presetError: null });
    if (m) useModelStore.setState({ source: sourceOf(m) });
  } catch (e) {
    useRouterStore.setState({ presetError: `${e instanceof Error ? e.message : String(e)}. The page opened with the model's own router settings.` });
  }
}

function startChat(messages: ChatMessage[]): void {
  const { sampling, maxNewTokens } = useSettingsStore.getState();
  useChatStore.setState({ messages: [...messages, { role: 'assistant', content: '' }], generating: true, stats: null });
  client?.send({ type: 'chat', messages, sampling, maxNewTokens });
}

/** Starts the engine worker for the lifetime of the component; returns the actions the UI may take. */
export function useEngine(): EngineActions {
  useEffect(() => {
    readPresetFromUrl();
    const c = startEngineWorker((e) => route(e, c));
    client = c;
    const debug = testHooks();
    if (debug) installTestHooks();
    c.send({ type: 'init', debug });
    let stop: (() => void) | null = null;
    let cancelled = false;
    startPersistence(indexedDbStore()).then(
      (unsub) => (cancelled ? unsub() : (stop = unsub)),
      (e: unknown) => setNotice('storage', { kind: 'warn', text: `Saved state could not be restored (${e instanceof Error ? e.message : String(e)}).` }),
    );
    return () => {
      cancelled = true;
      stop?.();
      c.terminate();
      client = null;
    };
  }, []);
  return useMemo<EngineActions>(
    () => ({
      load(source) {
        useModelStore.setState({ source, status: 'loading', error: null, progress: null });
        client?.send({ type: 'load', source, weights: useModelStore.getState().weights });
      },
      cancelLoad() {
        client?.send({ type: 'cancel-load' });
      },
      confirmLinkModel(load) {
        const c = useRouterStore.getState().confirm;
        useRouterStore.setState({ confirm: null });
        if (!c || !load) return;
        const source: ModelSource = { kind: 'url', url: c.url };
        useRouterStore.setState({ pending: c.preset });
        useModelStore.setState({ source, status: 'loading', error: null, progress: null });
        client?.send({ type: 'load', source, weights: useModelStore.getState().weights });
      },
      train(data) {
        const { settings } = useTrainStore.getState();
        useTrainStore.setState({ status: 'preparing', steps: [], summary: null, reason: null, error: null, info: null });
        client?.send({ type: 'train-start', data, settings });
      },
      pauseTraining(paused) {
        client?.send({ type: 'train-pause', paused });
      },
      resumeTraining() {
        useTrainStore.setState({ status: 'preparing', error: null });
        client?.send({ type: 'train-resume' });
      },
      discardSavedRun() {
        useTrainStore.setState({ saved: null, steps: [], info: null });
        client?.send({ type: 'train-discard' });
      },
      exportTraining(what) {
        useTrainStore.setState({ exportError: null });
        client?.send({ type: 'train-export', what });
      },
      stopTraining() {
        client?.send({ type: 'train-stop' });
      },
      setRouter(patch) {
        const { router } = useRouterStore.getState();
        if (router) client?.send({ type: 'router', router: { ...router, ...patch } });
      },
      compare() {
        const msgs = useChatStore.getState().messages;
        const lastUser = msgs.map((m) => m.role).lastIndexOf('user');
        const { router, defaults } = useRouterStore.getState();
        const { a, b } = useCompareStore.getState();
        if (lastUser < 0 || !router || !defaults) return;
        const { sampling, maxNewTokens } = useSettingsStore.getState();
        useCompareStore.setState({ running: true, a: { router: a.router ?? router, result: null }, b: { router: b.router ?? defaults, result: null } });
        client?.send({ type: 'compare', messages: msgs.slice(0, lastUser + 1), sampling, maxNewTokens, a: a.router ?? router, b: b.router ?? defaults });
      },
      chat(text) {
        startChat([...useChatStore.getState().messages, { role: 'user', content: text }]);
      },
      regenerate() {
        const msgs = useChatStore.getState().messages;
        const lastUser = msgs.map((m) => m.role).lastIndexOf('user');
        if (lastUser >= 0) startChat(msgs.slice(0, lastUser + 1));
      },
      stop() {
        client?.send({ type: 'stop' });
      },
      clear() {
        useChatStore.setState({ messages: [], ...emptyChat() });
      },
    }),
    [],
  );
}
