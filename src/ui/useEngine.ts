import { useEffect, useMemo } from 'react';
import { applyRouting, emptyChat, useChatStore } from '../state/chatStore';
import { useEngineStore } from '../state/engineStore';
import { useModelStore } from '../state/modelStore';
import { useRouterStore } from '../state/routerStore';
import { useCompareStore } from '../state/compareStore';
import { useSettingsStore } from '../state/settingsStore';
import type { RouterConfig } from '../engine/moe/router';
import { decodePreset, type ModelRef } from '../preset/preset';
import { startEngineWorker, type EngineClient } from '../worker/client';
import type { ChatMessage, ModelSource, WorkerEvent } from '../worker/protocol';

export interface EngineActions {
  load(source: ModelSource): void;
  cancelLoad(): void;
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
      useChatStore.setState({ messages: [], ...emptyChat() });
      return useModelStore.setState({ status: 'ready', model: e.model, loadMs: e.loadMs, progress: null, error: null });
    case 'model-error':
      // The model that was loaded before (if any) stays usable: the worker keeps it.
      return useModelStore.setState((s) => ({ status: s.model ? 'ready' : 'error', error: e.message, progress: null }));
    case 'prompt':
      return useChatStore.setState({
        tokens: e.tokens.map((t) => ({ ...t, kind: 'prompt', prob: null, experts: null, gates: null })),
        counts: [],
        replyCounts: [],
        selected: null,
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
    case 'error':
      if (e.request === 'chat') useChatStore.setState({ generating: false });
      if (e.request === 'compare') useCompareStore.setState({ running: false });
      return useEngineStore.getState().apply(e);
    default:
      return useEngineStore.getState().apply(e);
  }
}

let client: EngineClient | null = null;

function sourceOf(ref: ModelRef): ModelSource {
  return ref.kind === 'demo' ? { kind: 'demo' } : { kind: 'url', url: ref.url };
}

/** A preset in the page's URL waits for the model; a bad one is reported and ignored. */
function readPresetFromUrl(): void {
  try {
    const preset = decodePreset(globalThis.location?.search ?? '');
    if (!preset) return;
    useRouterStore.setState({ pending: preset, presetError: null });
    if (preset.model) useModelStore.setState({ source: sourceOf(preset.model) });
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
    c.send({ type: 'init' });
    return () => {
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
