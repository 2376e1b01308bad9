import { useState, type DragEvent } from 'react';
import { checkModelUrl } from '../preset/model-url';
import { useModelStore } from '../state/modelStore';
import type { EngineActions } from './useEngine';

const MiB = 2 ** 20;

/** Which model is loaded, loading progress, and the ways to load another. */
export function ModelPanel({ engine }: { engine: EngineActions }) {
  const { status, progress, model, error, loadMs, weights } = useModelStore();
  const ggufLoaded = model !== null && /\.gguf$/i.test(model.name);
  const [url, setUrl] = useState('');
  const [dragging, setDragging] = useState(false);
  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setDragging(false);
    const files = [...e.dataTransfer.files];
    if (files.length) engine.load({ kind: 'files', files });
  };
  return (
    <section
      className={`card model${dragging ? ' dragging' : ''}`}
      aria-labelledby="model-title"
      onDragOver={(e) => {
        e.preventDefault();
        setDragging(true);
      }}
      onDragLeave={() => setDragging(false)}
      onDrop={onDrop}
    >
      <h2 id="model-title">Model</h2>
      {model && status === 'ready' && (
        <dl className="facts" data-testid="model-summary">
          <dt>Name</dt>
          <dd data-testid="model-name">{model.name}</dd>
          <dt>Backend</dt>
          <dd data-testid="model-backend" title={model.backend === 'onnxruntime-web' ? 'The .onnx graph runs on onnxruntime-web’s WebGPU execution provider' : 'The checkpoint runs on this app’s own WGSL kernels'}>
            {model.backend === 'onnxruntime-web' ? 'onnxruntime-web (WebGPU EP), ONNX graph' : 'WebGPU kernels (WGSL)'}
          </dd>
          <dt>Architecture</dt>
          <dd>
            {model.arch} · {model.numLayers} layers ({model.moeLayers.length} MoE) · hidden {model.hiddenSize}
          </dd>
          <dt>Experts</dt>
          <dd>
            {model.numExperts} per MoE layer, top-{model.topK}
          </dd>
          <dt>Size</dt>
          <dd>
            {(model.parameters / 1e6).toFixed(2)} M parameters ·{' '}
            {model.backend === 'onnxruntime-web' ? `${(model.gpuBytes / MiB).toFixed(1)} MiB .onnx file` : `${(model.gpuBytes / MiB).toFixed(1)} MiB on the GPU`}
            {model.weights.keepFileBlocks ? ' (as in the GGUF file)' : model.weights.format !== 'f32' ? ` (${model.weights.format}, group ${model.weights.group})` : ' (f32)'} · context {model.contextLength}
          </dd>
          {model.kvCache && (
            <>
              <dt>KV cache</dt>
              <dd data-testid="kv-cache">
                {formatKiB(model.kvCache.bytesPerToken)} per token
                {model.kvCache.latent &&
                  ` — the compressed latent; per-head keys and values would take ${formatKiB(model.kvCache.expandedBytesPerToken)} (${(model.kvCache.expandedBytesPerToken / model.kvCache.bytesPerToken).toFixed(1)}×)`}
              </dd>
            </>
          )}
          {loadMs !== null && (
            <>
              <dt>Loaded in</dt>
              <dd data-testid="load-time">
                {(loadMs / 1000).toFixed(2)} s
                {model.fromCache.files + model.fromCache.matrices > 0 &&
                  ` (from the browser cache: ${model.fromCache.files} files, ${model.fromCache.matrices} quantised matrices)`}
              </dd>
            </>
          )}
          {model.routerFixed && (
            <>
              <dt>Router</dt>
              <dd className="muted small" data-testid="router-fixed">
                {model.routerFixed}
              </dd>
            </>
          )}
          {!model.hasTokenizer && (
            <>
              <dt>Note</dt>
              <dd>No tokenizer.json: the model runs on token ids only.</dd>
            </>
          )}
        </dl>
      )}
      {status === 'loading' && (
        <div className="progress" data-testid="load-progress">
          <div className="bar">
            <div style={{ width: `${progress?.total ? (100 * progress.done) / progress.total : 0}%` }} />
          </div>
          <span className="muted small">{progress ? `${progress.stage}: ${progress.detail}` : 'starting…'}</span>{' '}
          <button className="small" onClick={engine.cancelLoad} data-testid="cancel-load">
            Cancel
          </button>
        </div>
      )}
      {error && (
        <div className="problem" role="alert" data-testid="model-error">
          <strong>Could not load the model.</strong>
          <p>{error}</p>
        </div>
      )}
      <div className="load-row">
        <label className="small">
          weights{' '}
          <select
            data-testid="weight-format"
            value={weights.keepFileBlocks ? 'gguf' : `${weights.format}:${weights.group}`}
            onChange={(e) => {
              if (e.target.value === 'gguf') return useModelStore.setState({ weights: { format: 'f32', group: 32, keepFileBlocks: true } });
              const [format, group] = e.target.value.split(':') as ['f32' | 'int8' | 'int4', string];
              useModelStore.setState({ weights: { format, group: group === '128' ? 128 : 32 } });
            }}
          >
            <option value="f32:32">f32</option>
            <option value="int8:32">int8 (group 32)</option>
            <option value="int8:128">int8 (group 128)</option>
            <option value="int4:32">int4 (group 32)</option>
            <option value="int4:128">int4 (group 128)</option>
            {/* Only GGUF files have blocks to keep: offered once one is loaded (load it again with this). */}
            {(ggufLoaded || weights.keepFileBlocks) && (
              <option value="gguf" title="Q8_0, Q4_K, … blocks as in the file, dequantised inside the matmul kernels; matrices in other types as f32">
                as in the GGUF file
              </option>
            )}
          </select>
        </label>
        <button onClick={() => engine.load({ kind: 'demo' })} disabled={status === 'loading'}>
          Built-in demo
        </button>
        <label className="button">
          Folder…
          <input
            type="file"
            hidden
            multiple
            // @ts-expect-error webkitdirectory is not in React's types but every browser we target has it
            webkitdirectory=""
            onChange={(e) => e.target.files?.length && engine.load({ kind: 'files', files: [...e.target.files] })}
          />
        </label>
        <label className="button">
          Files…
          <input type="file" hidden multiple accept=".json,.safetensors,.jinja,.gguf,.onnx" onChange={(e) => e.target.files?.length && engine.load({ kind: 'files', files: [...e.target.files] })} />
        </label>
      </div>
      <form
        className="load-row"
        onSubmit={(e) => {
          e.preventDefault();
          if (!url.trim()) return;
          // Refused here with the reason, before the page's Content-Security-Policy would block the fetch.
          try {
            engine.load({ kind: 'url', url: checkModelUrl(url, location.origin).url });
          } catch (err) {
            useModelStore.setState((s) => ({ error: err instanceof Error ? err.message : String(err), status: s.model ? 'ready' : 'error' }));
          }
        }}
      >
        <input type="url" placeholder="https://…/model-folder/ (config.json, model.safetensors, tokenizer.json), …/model.gguf or …/model.onnx" value={url} onChange={(e) => setUrl(e.target.value)} aria-label="Model URL" />
        <button type="submit" disabled={!url.trim() || status === 'loading'}>
          Load URL
        </button>
      </form>
      <p className="muted small">Or drop a checkpoint's files, one .gguf file, or one .onnx file with its tokenizer files, here.</p>
    </section>
  );
}

/** Bytes as KiB with one decimal (KV rows are KiB-sized for real models). */
function formatKiB(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KiB`;
}
