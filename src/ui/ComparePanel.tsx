import { encodePreset } from '../preset/preset';
import { useChatStore } from '../state/chatStore';
import { useCompareStore } from '../state/compareStore';
import { useRouterStore } from '../state/routerStore';
import { DiffHeatmap } from './charts/DiffHeatmap';
import { Heatmap } from './charts/Heatmap';
import type { EngineActions } from './useEngine';

/** A/B: the last prompt under two router presets, side by side, and where their routing differs. */
export function ComparePanel({ engine }: { engine: EngineActions }) {
  const { a, b, running } = useCompareStore();
  const { router, defaults } = useRouterStore();
  const hasPrompt = useChatStore((s) => s.messages.some((m) => m.role === 'user'));
  if (!router || !defaults) return null;
  const describe = (r: typeof router | null, fallback: string) => {
    if (!r) return fallback;
    const q = encodePreset(null, r, defaults).replace(/^\?v=1&?/, '').replace(/&/g, ' · ');
    return q || "checkpoint's own routing";
  };
  const labels = (a.result ?? b.result)?.layers.map(String) ?? [];
  return (
    <section className="card compare" aria-labelledby="compare-title">
      <h2 id="compare-title">A/B compare</h2>
      <div className="ab-row">
        <div>
          <strong>A</strong> <span className="small muted" data-testid="preset-a">{describe(a.router, 'current knobs')}</span>
        </div>
        <div>
          <strong>B</strong> <span className="small muted" data-testid="preset-b">{describe(b.router, "checkpoint's own routing")}</span>
        </div>
      </div>
      <div className="buttons">
        <button onClick={() => useCompareStore.setState({ a: { router, result: null } })}>Current knobs → A</button>
        <button onClick={() => useCompareStore.setState({ b: { router, result: null } })}>Current knobs → B</button>
        <button data-testid="run-ab" onClick={engine.compare} disabled={running || !hasPrompt}>
          {running ? 'Running…' : 'Run A/B on the last prompt'}
        </button>
      </div>
      {(a.result || b.result) && (
        <div className="ab-results">
          {(['a', 'b'] as const).map((side) => {
            const r = side === 'a' ? a.result : b.result;
            return (
              <div key={side} data-testid={`ab-${side}`}>
                <h3>{side.toUpperCase()}</h3>
                <p className="ab-text">{r ? r.text : '…'}</p>
                {r && <Heatmap title={`${side.toUpperCase()}: routing of prompt + reply`} counts={r.counts} rowLabels={labels} tokens={0} topk={0} testId={`heatmap-${side}`} />}
              </div>
            );
          })}
        </div>
      )}
      {a.result && b.result && (
        <figure className="heatmap">
          <figcaption>Difference B − A</figcaption>
          <DiffHeatmap a={a.result.counts} b={b.result.counts} rowLabels={labels} testId="heatmap-diff" />
        </figure>
      )}
    </section>
  );
}
