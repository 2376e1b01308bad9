import { describeGpu } from '../engine/gpu/device';
import { useEngineStore } from '../state/engineStore';

const MiB = 1024 * 1024;

/** Which adapter the engine got, or why there is none and what to do about it. */
export function GpuPanel() {
  const { status, info, problem, memory } = useEngineStore();
  return (
    <section className="card" aria-labelledby="gpu-title">
      <h2 id="gpu-title">WebGPU</h2>
      {status === 'starting' && <p className="muted">Looking for a GPU adapter…</p>}
      {status === 'recovering' && <p className="muted">The device was lost: starting a new one…</p>}
      {problem && (
        <div className="problem" role="alert" data-testid="gpu-problem">
          <strong>{problem.message}</strong>
          {problem.advice && <p>{problem.advice}</p>}
        </div>
      )}
      {info && (
        <dl className="facts" data-testid="gpu-info">
          <dt>Adapter</dt>
          <dd data-testid="adapter-name">{describeGpu(info)}</dd>
          <dt>Features</dt>
          <dd>{info.features.length ? info.features.join(', ') : 'none of shader-f16, subgroups, timestamp-query'}</dd>
          <dt>Largest storage binding</dt>
          <dd>{(info.maxStorageBufferBindingSize / MiB).toFixed(0)} MiB</dd>
          {memory && (
            <>
              <dt>Live GPU buffers</dt>
              <dd data-testid="live-buffers">
                {memory.live} ({(memory.bytes / MiB).toFixed(1)} MiB)
              </dd>
            </>
          )}
          <dt>Workgroup memory</dt>
          <dd>{(info.maxComputeWorkgroupStorageSize / 1024).toFixed(0)} KiB, {info.maxComputeInvocationsPerWorkgroup} invocations</dd>
          {info.isSoftware && (
            <>
              <dt>Note</dt>
              <dd>Software adapter: kernels run on the CPU, expect it to be slow.</dd>
            </>
          )}
        </dl>
      )}
    </section>
  );
}
