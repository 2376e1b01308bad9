import { useEffect, useMemo } from 'react';
import { applyRouting, emptyChat, useChatStore } from '../state/chatStore';
import { useEngineStore } from '../state/engineStore';
import { useModelStore } from '../state/modelStore';
import { useSettingsStore } from '../state/settingsStore';
import { startEngineWorker, type EngineClient } from '../worker/client';
import type { ChatMessage, ModelSource, WorkerEvent } from '../worker/protocol';

export interface EngineActions {
  load(source: ModelSource): void;
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
      client.send({ type: 'load', source: useModelStore.getState().source ?? { kind: 'demo' } });
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
    case 'error':
      if (e.request === 'chat') useChatStore.setState({ generating: false });
      return useEngineStore.getState().apply(e);
    default:
      return useEngineStore.getState().apply(e);
  }
}

let client: EngineClient | null = null;

function startChat(messages: ChatMessage[]): void {
  const { sampling, maxNewTokens } = useSettingsStore.getState();
  useChatStore.setState({ messages: [...messages, { role: 'assistant', content: '' }], generating: true, stats: null });
  client?.send({ type: 'chat', messages, sampling, maxNewTokens });
}

/** Starts the engine worker for the lifetime of the component; returns the actions the UI may take. */
export function useEngine(): EngineActions {
  useEffect(() => {
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
        client?.send({ type: 'load', source });
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
