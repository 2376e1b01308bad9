import { useState } from 'react';
import { useChatStore } from '../state/chatStore';
import { useModelStore } from '../state/modelStore';
import { useSettingsStore } from '../state/settingsStore';
import type { EngineActions } from './useEngine';

/** The conversation: messages, the live reply token by token (click one to inspect it), input. */
export function ChatPanel({ engine }: { engine: EngineActions }) {
  const { messages, tokens, generating, stats, selected, context } = useChatStore();
  const ready = useModelStore((s) => s.status === 'ready');
  const [draft, setDraft] = useState('');
  const reply = tokens.filter((t) => t.kind === 'reply');
  const send = () => {
    const text = draft.trim();
    if (!text || generating || !ready) return;
    setDraft('');
    engine.chat(text);
  };
  return (
    <section className="card chat" aria-labelledby="chat-title">
      <h2 id="chat-title">
        Chat
        {stats && (
          <span className="muted small" data-testid="chat-stats">
            {stats.tokens} tokens · {stats.tokensPerSecond.toFixed(1)} tok/s · first token {stats.ttftMs.toFixed(0)} ms
          </span>
        )}
      </h2>
      <div className="messages" data-testid="messages">
        {messages.map((m, i) => {
          const live = m.role === 'assistant' && i === messages.length - 1 && reply.length > 0;
          return (
            <div key={i} className={`msg ${m.role}`} data-testid={`msg-${m.role}`}>
              <span className="who">{m.role === 'user' ? 'You' : 'Model'}</span>
              {live ? (
                <p className="tokens">
                  {reply.map((t) => {
                    const idx = tokens.indexOf(t);
                    return (
                      <button
                        key={idx}
                        className={`tok${selected === idx ? ' sel' : ''}`}
                        title={`id ${t.id}${t.prob !== null ? ` · p=${t.prob.toFixed(3)}` : ''}`}
                        onClick={() => useChatStore.setState({ selected: idx })}
                        data-testid="reply-token"
                      >
                        {t.text}
                      </button>
                    );
                  })}
                </p>
              ) : (
                <p>{m.content}</p>
              )}
            </div>
          );
        })}
        {generating && <div className="muted small">generating…</div>}
      </div>
      {/* Outside the scrolling message list, so it is seen without scrolling. */}
      {context && context.dropped > 0 && (
        <p className="muted small" data-testid="context-note">
          The conversation is longer than the model's context ({context.length} tokens): the model saw it without its first {context.dropped} message
          {context.dropped > 1 ? 's' : ''}.
        </p>
      )}
      <form
        className="composer"
        onSubmit={(e) => {
          e.preventDefault();
          send();
        }}
      >
        <textarea
          value={draft}
          placeholder={ready ? 'Ask something — Enter to send, Shift+Enter for a new line' : 'Load a model first'}
          onChange={(e) => setDraft(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.shiftKey) {
              e.preventDefault();
              send();
            }
          }}
          rows={2}
          disabled={!ready}
          aria-label="Message"
        />
        <div className="buttons">
          {generating ? (
            <button type="button" onClick={engine.stop} data-testid="stop">
              Stop
            </button>
          ) : (
            <button type="submit" disabled={!ready || !draft.trim()} data-testid="send">
              Send
            </button>
          )}
          <button type="button" onClick={engine.regenerate} disabled={generating || !ready || !messages.some((m) => m.role === 'user')}>
            Regenerate
          </button>
          <button type="button" onClick={engine.clear} disabled={generating}>
            Clear
          </button>
        </div>
      </form>
      <SamplingControls />
    </section>
  );
}

function SamplingControls() {
  const s = useSettingsStore();
  const num = (v: string, fallback: number) => (Number.isFinite(Number(v)) && v !== '' ? Number(v) : fallback);
  return (
    <details className="sampling">
      <summary>Sampling</summary>
      <div className="fields">
        <label>
          temperature
          <input type="number" step="0.1" min="0" max="5" value={s.sampling.temperature} onChange={(e) => s.setSampling({ temperature: num(e.target.value, 0) })} />
        </label>
        <label>
          top-k
          <input type="number" step="1" min="0" value={s.sampling.topK} onChange={(e) => s.setSampling({ topK: Math.max(0, Math.round(num(e.target.value, 0))) })} />
        </label>
        <label>
          top-p
          <input type="number" step="0.05" min="0.05" max="1" value={s.sampling.topP} onChange={(e) => s.setSampling({ topP: num(e.target.value, 1) })} />
        </label>
        <label>
          repetition penalty
          <input type="number" step="0.05" min="0.5" max="3" value={s.sampling.repetitionPenalty} onChange={(e) => s.setSampling({ repetitionPenalty: num(e.target.value, 1) })} />
        </label>
        <label>
          seed
          <input type="number" step="1" min="0" value={s.sampling.seed} onChange={(e) => s.setSampling({ seed: Math.max(0, Math.round(num(e.target.value, 0))) })} />
        </label>
        <label>
          max new tokens
          <input type="number" step="1" min="1" max="1024" value={s.maxNewTokens} onChange={(e) => s.setMaxNewTokens(Math.max(1, Math.round(num(e.target.value, 64))))} />
        </label>
      </div>
    </details>
  );
}
