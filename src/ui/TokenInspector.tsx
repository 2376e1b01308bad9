import { useChatStore } from '../state/chatStore';

/** The selected token: per MoE layer, which experts it went to and with what gate weight. */
export function TokenInspector() {
  const { tokens, selected, moeLayers } = useChatStore();
  const tok = selected !== null ? tokens[selected] : undefined;
  return (
    <section className="card" aria-labelledby="inspector-title" data-testid="inspector">
      <h2 id="inspector-title">Token inspector</h2>
      {!tok && <p className="muted">Click a token of the reply to see where it was routed.</p>}
      {tok && (
        <>
          <p>
            <code className="tokpill">{JSON.stringify(tok.text)}</code> <span className="muted">id {tok.id} · position {selected}</span>
          </p>
          {!tok.experts && <p className="muted">Routing arrives once the token has been fed back to the model.</p>}
          {tok.experts && (
            <table className="results" data-testid="inspector-table">
              <thead>
                <tr>
                  <th>layer</th>
                  <th>experts (gate weight)</th>
                </tr>
              </thead>
              <tbody>
                {tok.experts.map((ids, m) => (
                  <tr key={m}>
                    <td>{moeLayers[m]}</td>
                    <td>
                      {ids.map((e, j) => (
                        <span key={j} className="expert" style={{ opacity: 0.45 + 0.55 * (tok.gates![m]![j] ?? 0) }}>
                          #{e} <small>{(tok.gates![m]![j] ?? 0).toFixed(3)}</small>
                        </span>
                      ))}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </section>
  );
}
