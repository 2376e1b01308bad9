import { useEngineStore } from '../state/engineStore';

/** Every kernel against its TypeScript reference, run in the page on this adapter. */
export function SelfTestPanel() {
  const { status, selftest } = useEngineStore();
  if (status !== 'ready' && !selftest) return null;
  const passed = selftest?.every((r) => r.pass) ?? false;
  return (
    <section className="card" aria-labelledby="selftest-title">
      <h2 id="selftest-title">
        Kernel self-test{' '}
        {selftest && (
          <span className={passed ? 'badge pass' : 'badge fail'} data-testid="selftest-status">
            {passed ? 'passed' : 'FAILED'}
          </span>
        )}
      </h2>
      {!selftest && <p className="muted">Running kernels against their references…</p>}
      {selftest && (
        <table className="results" data-testid="selftest-table">
          <thead>
            <tr>
              <th>kernel</th>
              <th>shape</th>
              <th>max |Δ|</th>
              <th>tolerance</th>
              <th>time</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {selftest.map((r, i) => (
              <tr key={i} className={r.pass ? '' : 'bad'}>
                <td>{r.name}</td>
                <td>{r.shape}</td>
                <td>{r.maxAbsError.toExponential(2)}</td>
                <td>{r.tolerance.toExponential(1)}</td>
                <td>{r.ms.toFixed(1)} ms</td>
                <td>{r.pass ? '✓' : '✗'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
