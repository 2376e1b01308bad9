import { useChatStore } from '../state/chatStore';
import { setNotice, useEngineStore, type NoticeTopic } from '../state/engineStore';
import { BalancePanel } from './BalancePanel';
import { ComparePanel } from './ComparePanel';
import { ChatPanel } from './ChatPanel';
import { Heatmap } from './charts/Heatmap';
import { GpuPanel } from './GpuPanel';
import { ModelPanel } from './ModelPanel';
import { RouterPanel } from './RouterPanel';
import { useRouterStore } from '../state/routerStore';
import { SelfTestPanel } from './SelfTestPanel';
import { TokenInspector } from './TokenInspector';
import { TrainPanel } from './TrainPanel';
import { useEngine } from './useEngine';

/** A stable empty list: a selector returning a fresh [] would re-render forever. */
const NONE: number[] = [];

export function App() {
  const engine = useEngine();
  const errors = useEngineStore((s) => s.errors);
  const notices = useEngineStore((s) => s.notices);
  const { counts, replyCounts, moeLayers, tokens, selected } = useChatStore();
  const rowLabels = moeLayers.map(String);
  const routed = tokens.filter((t) => t.experts);
  const replyRouted = routed.filter((t) => t.kind === 'reply').length;
  const topk = routed[0]?.experts?.[0]?.length ?? 0;
  const sel = selected !== null ? tokens[selected] : undefined;
  const disabled = useRouterStore((s) => s.router?.disabled ?? NONE);
  const toggleExpert = (e: number) => engine.setRouter({ disabled: disabled.includes(e) ? disabled.filter((x) => x !== e) : [...disabled, e].sort((a, b) => a - b) });
  return (
    <div className="app">
      <header className="top">
        <h1>MoE Playground</h1>
        <p className="muted">See and shape how Mixture-of-Experts models route tokens — on your GPU, in this tab.</p>
      </header>
      {Object.keys(notices).length > 0 && (
        <div className="notices">
          {(Object.entries(notices) as Array<[NoticeTopic, { kind: string; text: string }]>).map(([topic, n]) => (
            <div key={topic} className={`notice ${n.kind}`} role="status" data-testid={`notice-${topic}`}>
              <p>{n.text}</p>
              <button className="small" onClick={() => setNotice(topic, null)} aria-label="Dismiss">
                ×
              </button>
            </div>
          ))}
        </div>
      )}
      <main className="layout">
        <div className="col">
          <ModelPanel engine={engine} />
          <ChatPanel engine={engine} />
          <TokenInspector />
          <ComparePanel engine={engine} />
          <TrainPanel engine={engine} />
        </div>
        <div className="col">
          <section className="card" aria-labelledby="routing-title">
            <h2 id="routing-title">Expert routing</h2>
            <Heatmap
              title="Conversation (prompt + reply): share of each layer's routed tokens"
              counts={counts}
              rowLabels={rowLabels}
              tokens={routed.length}
              topk={topk}
              highlight={sel?.experts ?? null}
              testId="heatmap-conversation"
              disabled={disabled}
              onExpertClick={toggleExpert}
            />
            <Heatmap title="Last reply only" counts={replyCounts} rowLabels={rowLabels} tokens={replyRouted} topk={topk} highlight={sel?.experts ?? null} testId="heatmap-reply" disabled={disabled} onExpertClick={toggleExpert} />
          </section>
          <RouterPanel engine={engine} />
          <BalancePanel />
          <GpuPanel />
          <SelfTestPanel />
          {errors.length > 0 && (
            <section className="card" role="alert">
              <h2>Engine errors</h2>
              <ul className="errors">
                {errors.map((m, i) => (
                  <li key={i}>{m}</li>
                ))}
              </ul>
            </section>
          )}
        </div>
      </main>
    </div>
  );
}
