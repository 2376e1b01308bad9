import { useState } from 'react';
import type { RouterConfig } from '../engine/moe/router';
import { encodePreset, type ModelRef } from '../preset/preset';
import { useModelStore } from '../state/modelStore';
import { useRouterStore } from '../state/routerStore';
import type { EngineActions } from './useEngine';

/** Live router knobs (applied from the next token), ablation list, and the shareable link. */
export function RouterPanel({ engine }: { engine: EngineActions }) {
  const { router, defaults, error, presetError, confirm } = useRouterStore();
  const source = useModelStore((s) => s.source);
  const numExperts = useModelStore((s) => s.model?.numExperts ?? 0);
  /** Why the loaded backend cannot change routing (the ONNX graph's routing is fixed), or null. */
  const fixed = useModelStore((s) => s.model?.routerFixed ?? null);
  const [link, setLink] = useState<string | null>(null);
  const ask = confirm && (
    <div className="problem" role="alert" data-testid="confirm-model">
      <p>
        This link asks to load a model from another site: <code>{confirm.url}</code>. Its files will be downloaded from there (without your cookies). Load it?
      </p>
      <div className="buttons">
        <button onClick={() => engine.confirmLinkModel(true)}>Load it</button>
        <button onClick={() => engine.confirmLinkModel(false)}>No, keep this model</button>
      </div>
    </div>
  );
  if (!router || !defaults) {
    return (
      <section className="card" aria-labelledby="router-title">
        <h2 id="router-title">Router</h2>
        {ask}
        {presetError && <RouterError testId="preset-error" text={presetError} />}
        <p className="muted">Load a model to tune its router.</p>
      </section>
    );
  }
  const set = (patch: Partial<RouterConfig>) => engine.setRouter(patch);
  const num = (v: string) => (v.trim() === '' ? NaN : Number(v));
  const share = () => {
    const model: ModelRef | null = source?.kind === 'demo' ? { kind: 'demo' } : source?.kind === 'url' ? { kind: 'url', url: source.url } : null;
    const url = `${location.origin}${location.pathname}${encodePreset(model, router, defaults)}`;
    history.replaceState(null, '', url);
    setLink(url);
    void navigator.clipboard?.writeText(url).catch(() => undefined);
  };
  const changed = JSON.stringify(router) !== JSON.stringify(defaults);
  return (
    <section className="card router" aria-labelledby="router-title">
      <h2 id="router-title">
        Router
        <span className="muted small">{changed ? 'tuned — applies from the next token' : "the checkpoint's own routing"}</span>
      </h2>
      {ask}
      {presetError && <RouterError testId="preset-error" text={presetError} />}
      {error && <RouterError testId="router-error" text={error} />}
      {fixed && (
        <p className="muted small" data-testid="router-knobs-fixed">
          Routing is fixed: {fixed}
        </p>
      )}
      <fieldset className="fields" disabled={!!fixed} title={fixed ?? undefined}>
        <label>
          top-k
          <input data-testid="knob-topk" type="number" min={1} max={numExperts} step={1} value={router.topK} onChange={(e) => set({ topK: num(e.target.value) })} />
        </label>
        <label>
          scoring
          <select value={router.scoring} onChange={(e) => set({ scoring: e.target.value as RouterConfig['scoring'] })}>
            <option value="softmax">softmax</option>
            <option value="sigmoid">sigmoid</option>
          </select>
        </label>
        <label>
          temperature τ
          <input data-testid="knob-temperature" type="number" min={0.05} max={10} step={0.1} value={router.temperature} onChange={(e) => set({ temperature: num(e.target.value) })} />
        </label>
        <label>
          noise σ
          <input type="number" min={0} max={10} step={0.1} value={router.noiseStd} onChange={(e) => set({ noiseStd: num(e.target.value) })} />
        </label>
        <label>
          noise seed
          <input type="number" min={0} step={1} value={router.seed} onChange={(e) => set({ seed: num(e.target.value) })} />
        </label>
        <label className="check">
          <input type="checkbox" checked={router.renormalize} onChange={(e) => set({ renormalize: e.target.checked })} /> renormalise top-k
        </label>
        <label>
          groups
          <input type="number" min={1} max={64} step={1} value={router.nGroup} onChange={(e) => set({ nGroup: num(e.target.value), topkGroup: Math.min(router.topkGroup, Math.max(1, num(e.target.value) || 1)) })} />
        </label>
        <label>
          top groups
          <input type="number" min={1} max={router.nGroup} step={1} value={router.topkGroup} onChange={(e) => set({ topkGroup: num(e.target.value) })} />
        </label>
        <label>
          group score
          <select value={router.groupScore} onChange={(e) => set({ groupScore: e.target.value as RouterConfig['groupScore'] })}>
            <option value="max">best expert</option>
            <option value="top2sum">sum of best two</option>
          </select>
        </label>
        <label>
          capacity factor
          <input type="number" min={0} max={8} step={0.25} value={router.capacityFactor} onChange={(e) => set({ capacityFactor: num(e.target.value) })} title="0 = no limit; tokens over an expert's capacity are dropped" />
        </label>
        <label>
          routed scale
          <input type="number" min={0.1} max={10} step={0.1} value={router.routedScale} onChange={(e) => set({ routedScale: num(e.target.value) })} />
        </label>
        <label title="Added to each expert's selection score only (the gate weight stays unbiased). A checkpoint's own per-layer bias (DeepSeek-V3's e_score_correction_bias) stays on underneath.">
          expert bias
          <input
            type="text"
            placeholder={`${numExperts} comma-separated values, empty = none`}
            defaultValue={router.bias?.join(',') ?? ''}
            onBlur={(e) => set({ bias: e.target.value.trim() ? e.target.value.split(',').map(Number) : null })}
          />
        </label>
      </fieldset>
      <p className="small">
        Ablated experts{' '}
        <span data-testid="ablated">{router.disabled.length ? router.disabled.map((x) => `#${x}`).join(' ') : 'none'}</span>{' '}
        <span className="muted">— click a heatmap column to ablate or restore an expert.</span>
      </p>
      <div className="buttons">
        <button onClick={() => set(defaults)} disabled={!changed}>
          Reset to checkpoint
        </button>
        <button onClick={share} data-testid="share">
          Share settings
        </button>
      </div>
      {link && <input className="share-url" data-testid="share-url" readOnly value={link} onFocus={(e) => e.target.select()} aria-label="Shareable link" />}
    </section>
  );
}

function RouterError({ text, testId }: { text: string; testId: string }) {
  return (
    <div className="problem" role="alert" data-testid={testId}>
      <p>{text}</p>
    </div>
  );
}
