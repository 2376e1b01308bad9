import { useEngineStore } from '../state/engineStore';
import { GpuPanel } from './GpuPanel';
import { SelfTestPanel } from './SelfTestPanel';
import { useEngine } from './useEngine';

export function App() {
  useEngine();
  const errors = useEngineStore((s) => s.errors);
  return (
    <div className="app">
      <header className="top">
        <h1>MoE Playground</h1>
        <p className="muted">See and shape how Mixture-of-Experts models route tokens — on your GPU, in this tab.</p>
      </header>
      <main className="grid">
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
      </main>
    </div>
  );
}
