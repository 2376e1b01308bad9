import { useMemo, useState } from 'react';
import type { BalancePreset } from '../engine/train/losses';
import type { TrainMode } from '../engine/train/params';
import { useModelStore } from '../state/modelStore';
import { useTrainStore } from '../state/trainStore';
import type { TrainSettings } from '../worker/protocol';
import { LineChart, type Marker } from './charts/LineChart';
import { LoadOverSteps } from './charts/LoadOverSteps';
import type { EngineActions } from './useEngine';

const MODE_NAMES: Record<TrainMode, string> = { router: 'router only', lora: 'LoRA', full: 'full fine-tune' };

const SAMPLE = '{"messages": [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4."}]}';

/**
 * Fine-tuning in the tab: data (pasted or a file), mode and hyperparameters, start / pause / stop,
 * and live charts — loss (train and validation), learning rate, one layer's load per expert over
 * the steps, load CV, entropy and flip rate, with markers where the lr was halved.
 */
export function TrainPanel({ engine }: { engine: EngineActions }) {
  const { settings, status, info, steps, summary, reason, error, saved, savedProblem, checkpoint, resumed, exportError, draft } = useTrainStore();
  const { text, name } = draft;
  const setDraft = (t: string, n: string) => useTrainStore.setState({ draft: { text: t, name: n } });
  const model = useModelStore((s) => s.model);
  const [layer, setLayer] = useState(0);
  const set = (patch: Partial<TrainSettings>) => useTrainStore.setState((s) => ({ settings: { ...s.settings, ...patch } }));
  const num = (v: string) => (v.trim() === '' ? NaN : Number(v));
  const busy = status === 'preparing' || status === 'running' || status === 'paused';
  const charts = useMemo(() => chartData(steps, layer), [steps, layer]);
  const onFile = async (f: File | undefined) => {
    if (!f) return;
    setDraft(await f.text(), f.name);
  };
  if (!model) {
    return (
      <section className="card" aria-labelledby="train-title">
        <h2 id="train-title">Train</h2>
        <p className="muted">Load a model to fine-tune it.</p>
      </section>
    );
  }
  return (
    <section className="card train" aria-labelledby="train-title">
      <h2 id="train-title">
        Train
        <span className="muted small" data-testid="train-status">
          {status === 'idle' ? 'fine-tune the loaded model in this tab' : status}
          {busy && steps.length ? ` · step ${steps.at(-1)!.step} of ${settings.steps}` : ''}
        </span>
      </h2>
      {savedProblem && (
        <div className="problem" role="alert" data-testid="train-saved-problem">
          <p>{savedProblem}</p>
        </div>
      )}
      {saved && !busy && (
        <div className="notice" data-testid="train-saved">
          <p>
            {saved.status === 'finished' || saved.status === 'early-stop' || saved.status === 'stopped' ? 'A finished run' : 'An interrupted run'} is saved in this browser: {MODE_NAMES[saved.settings.mode]}, step{' '}
            {saved.step} of {saved.settings.steps}, data “{saved.data.name}”, saved {new Date(saved.savedAt).toLocaleString()}
            {saved.sameModel ? '.' : `, on ${saved.modelName} — load that model the same way to use it.`} Starting a new run replaces it.
          </p>
          <div className="buttons">
            {saved.sameModel && (
              <button data-testid="train-resume" onClick={() => engine.resumeTraining()}>
                {saved.step >= saved.settings.steps || saved.status === 'finished' || saved.status === 'early-stop' || saved.status === 'stopped' ? 'Apply its result to this model' : `Resume from step ${saved.step}`}
              </button>
            )}
            <button data-testid="train-discard" onClick={() => engine.discardSavedRun()}>
              Discard
            </button>
          </div>
        </div>
      )}
      <label className="block">
        Data — plain text, or JSONL with one example a line ({'{"messages": […]}'}, {'{"text": …}'} or {'{"prompt", "completion"}'})
        <textarea data-testid="train-data" aria-label="Training data" rows={4} value={text} placeholder={SAMPLE} onChange={(e) => setDraft(e.target.value, 'pasted text')} disabled={busy} />
      </label>
      <input type="file" accept=".txt,.jsonl,.json,text/plain" aria-label="Training data file" onChange={(e) => void onFile(e.target.files?.[0])} disabled={busy} />
      <fieldset className="fields" disabled={busy}>
        <label>
          mode
          <select data-testid="train-mode" value={settings.mode} onChange={(e) => set({ mode: e.target.value as TrainMode })}>
            <option value="router">router only</option>
            <option value="lora">LoRA (q, v)</option>
            <option value="full">full (small models)</option>
          </select>
        </label>
        <label>
          steps
          <input data-testid="train-steps" type="number" min={1} step={1} value={settings.steps} onChange={(e) => set({ steps: num(e.target.value) })} />
        </label>
        <label>
          learning rate
          <input type="number" min={0} step={0.0001} value={settings.lr} onChange={(e) => set({ lr: num(e.target.value) })} />
        </label>
        <label>
          warmup
          <input type="number" min={0} step={1} value={settings.warmupSteps} onChange={(e) => set({ warmupSteps: num(e.target.value) })} />
        </label>
        <label>
          window (tokens)
          <input data-testid="train-seqlen" type="number" min={2} step={1} value={settings.seqLen} onChange={(e) => set({ seqLen: num(e.target.value) })} />
        </label>
        <label>
          accumulate
          <input type="number" min={1} step={1} value={settings.accumulate} onChange={(e) => set({ accumulate: num(e.target.value) })} />
        </label>
        <label>
          validation share
          <input type="number" min={0} max={0.9} step={0.05} value={settings.valFraction} onChange={(e) => set({ valFraction: num(e.target.value) })} />
        </label>
        <label>
          validate every
          <input data-testid="train-val-every" type="number" min={0} step={1} value={settings.valEvery} onChange={(e) => set({ valEvery: num(e.target.value) })} />
        </label>
        <label>
          balance loss
          <select data-testid="train-balance" value={settings.balance} onChange={(e) => set({ balance: e.target.value as BalancePreset })}>
            <option value="switch">Switch (N·Σ f·P)</option>
            <option value="sqdev">squared deviation</option>
            <option value="kl">KL to uniform</option>
            <option value="auxfree">aux-loss-free bias</option>
            <option value="none">none</option>
          </select>
        </label>
        <label title="λ of the balance loss, or γ of the aux-free bias step">
          balance weight
          <input type="number" min={0} step={0.001} value={settings.balanceWeight} onChange={(e) => set({ balanceWeight: num(e.target.value) })} />
        </label>
        <label>
          LoRA r / α
          <span className="pair">
            <input type="number" min={1} step={1} value={settings.loraRank} onChange={(e) => set({ loraRank: num(e.target.value) })} aria-label="LoRA rank" />
            <input type="number" min={1} step={1} value={settings.loraAlpha} onChange={(e) => set({ loraAlpha: num(e.target.value) })} aria-label="LoRA alpha" />
          </span>
        </label>
        <label>
          seed
          <input type="number" min={0} step={1} value={settings.seed} onChange={(e) => set({ seed: num(e.target.value) })} />
        </label>
        <label title="ST-MoE's router z-loss: keeps router logits small (0 = off; ST-MoE uses 0.001)">
          z-loss weight
          <input data-testid="train-zloss" type="number" min={0} step={0.001} value={settings.zLossWeight} onChange={(e) => set({ zLossWeight: num(e.target.value) })} />
        </label>
        <label title="Mean squared cosine between router rows: pushes experts apart (router and full modes; 0 = off)">
          orthogonality weight
          <input data-testid="train-ortho" type="number" min={0} step={0.01} value={settings.orthoWeight} onChange={(e) => set({ orthoWeight: num(e.target.value) })} />
        </label>
        <label title="Noisy top-k: std of Gaussian noise on the router logits in training steps (0 = off)">
          router noise σ
          <input data-testid="train-noise" type="number" min={0} step={0.1} value={settings.routerNoise} onChange={(e) => set({ routerNoise: num(e.target.value) })} />
        </label>
        <label title="Each step, each expert is left out of routing with this probability (top-k always stay)">
          expert dropout
          <input data-testid="train-dropout" type="number" min={0} max={0.9} step={0.05} value={settings.expertDropout} onChange={(e) => set({ expertDropout: num(e.target.value) })} />
        </label>
      </fieldset>
      <p className="small muted">
        <button className="link" data-testid="train-preset-notes" disabled={busy} onClick={() => set({ balance: 'sqdev', balanceWeight: 0.3, orthoWeight: settings.mode === 'lora' ? 0 : 0.1 })}>
          Use the design notes' total loss
        </button>{' '}
        CE + 0.3·L_balance (squared deviation) + 0.1·L_ortho{settings.mode === 'lora' ? ' (no L_ortho in LoRA mode: the router is frozen)' : ''}.
      </p>
      <div className="buttons">
        <button data-testid="train-start" disabled={busy || !text.trim()} onClick={() => engine.train({ text, format: 'auto', name })}>
          Start
        </button>
        <button data-testid="train-pause" disabled={status !== 'running' && status !== 'paused'} onClick={() => engine.pauseTraining(status === 'running')}>
          {status === 'paused' ? 'Resume' : 'Pause'}
        </button>
        <button data-testid="train-stop" disabled={!busy} onClick={() => engine.stopTraining()}>
          Stop
        </button>
      </div>
      {error && (
        <div className="problem" role="alert" data-testid="train-error">
          <p>{error}</p>
        </div>
      )}
      {resumed && busy && (
        <p className="small" data-testid="train-resumed">
          {resumed.auto ? 'After the GPU was lost, the run' : 'The run'} went on from its checkpoint at step {resumed.from}.
        </p>
      )}
      {checkpoint && (busy || status === 'done') && (
        <p className={`small ${checkpoint.error ? 'warn' : 'muted'}`} data-testid="train-checkpoint">
          {checkpoint.error ? `The checkpoint could not be saved (${checkpoint.error}); the run goes on, but a reload would not resume it.` : `Checkpoint saved in this browser at step ${checkpoint.step}: a reload resumes from there.`}
        </p>
      )}
      {info && (
        <p className="small muted" data-testid="train-info">
          {name}: {info.format}, {info.trainExamples} training and {info.valExamples} validation examples of up to {settings.seqLen} tokens ({info.tokens} tokens)
        </p>
      )}
      {summary && (
        <p className="small" data-testid="train-summary">
          {reason === 'stopped' ? 'Stopped' : reason === 'early-stop' ? 'Stopped early (validation stopped improving)' : 'Finished'} after {summary.steps} steps: loss{' '}
          {summary.loss_first.toFixed(3)} → {summary.loss_last.toFixed(3)}
          {summary.val_loss_best !== null ? `, best validation ${summary.val_loss_best.toFixed(3)}` : ''} · {summary.lr_halvings} lr halvings · {summary.cold_experts} cold,{' '}
          {summary.dead_experts} dead experts. The chat now uses the fine-tuned model.
        </p>
      )}
      {status === 'done' && summary && (
        <div className="buttons" data-testid="train-export">
          {summary.mode === 'lora' && (
            <button data-testid="export-adapter" onClick={() => engine.exportTraining('adapter')} title="adapter_config.json + adapter_model.safetensors, as HF PEFT saves and loads them">
              Download adapter (PEFT)
            </button>
          )}
          <button data-testid="export-merged" onClick={() => engine.exportTraining('merged')} title="Every weight, fine-tuned, under the checkpoint's tensor names (f32)">
            Download merged safetensors
          </button>
          <button data-testid="export-recipe" onClick={() => engine.exportTraining('recipe')} title="training_config.json + the data as token ids: tools/train/hf_train.py runs the same training with transformers">
            Download recipe for transformers
          </button>
        </div>
      )}
      {exportError && (
        <div className="problem" role="alert" data-testid="export-error">
          <p>{exportError}</p>
        </div>
      )}
      {steps.length > 0 && (
        <div className="charts" data-testid="train-charts">
          <LineChart title="loss" testId="chart-loss" logY series={[{ name: 'train', color: '#2563eb', points: charts.loss }, { name: 'validation', color: '#dc2626', points: charts.val, dots: true }]} markers={charts.markers} />
          <LineChart title="learning rate" testId="chart-lr" series={[{ name: 'lr', color: '#059669', points: charts.lr }]} markers={charts.markers} />
          <LineChart title="load CV · entropy" testId="chart-balance" series={[{ name: 'CV', color: '#7c3aed', points: charts.cv }, { name: 'entropy', color: '#d97706', points: charts.entropy }]} markers={charts.markers} />
          <LineChart title="routing flip rate" testId="chart-flip" series={[{ name: 'flips', color: '#0891b2', points: charts.flip, dots: true }]} markers={charts.markers} />
          <div>
            <label className="small">
              layer{' '}
              <select value={layer} onChange={(e) => setLayer(Number(e.target.value))} aria-label="Load chart layer">
                {(info?.moeLayers ?? model.moeLayers).map((l, i) => (
                  <option key={l} value={i}>
                    {l}
                  </option>
                ))}
              </select>
            </label>
            <LoadOverSteps title="load per expert over steps" testId="chart-load" steps={charts.loadSteps} counts={charts.load} markers={charts.markers.map((m) => m.x)} />
          </div>
        </div>
      )}
    </section>
  );
}

/** The charts' series from the step records; CV and entropy are the mean over MoE layers. */
function chartData(steps: ReturnType<typeof useTrainStore.getState>['steps'], layer: number) {
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
  const markers: Marker[] = steps.flatMap((s) => (s.lrHalved ? [{ x: s.step, label: `lr halved: ${s.lrHalved}` }] : []));
  return {
    loss: steps.map((s) => [s.step, s.loss] as [number, number]),
    val: steps.flatMap((s) => (s.valLoss !== undefined ? [[s.step, s.valLoss] as [number, number]] : [])),
    lr: steps.map((s) => [s.step, s.lr] as [number, number]),
    cv: steps.map((s) => [s.step, s.monitor ? mean(s.monitor.cv) : NaN] as [number, number]),
    entropy: steps.map((s) => [s.step, s.monitor ? mean(s.monitor.entropy) : NaN] as [number, number]),
    flip: steps.flatMap((s) => (s.monitor?.flipRate != null ? [[s.step, s.monitor.flipRate] as [number, number]] : [])),
    loadSteps: steps.map((s) => s.step),
    load: steps.map((s) => s.routing[layer]?.counts ?? []),
    markers,
  };
}
