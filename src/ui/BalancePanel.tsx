import { balanceStats } from '../engine/moe/stats';
import { useChatStore } from '../state/chatStore';

/** Load-balance figures per MoE layer over the last run. */
export function BalancePanel() {
  const { counts, moeLayers, tokens } = useChatStore();
  if (!counts.length) return null;
  const seen = tokens.filter((t) => t.experts).length;
  return (
    <section className="card" aria-labelledby="balance-title">
      <h2 id="balance-title">Load balance</h2>
      <table className="results" data-testid="balance-table">
        <thead>
          <tr>
            <th>layer</th>
            <th title="std / mean of tokens per expert">CV</th>
            <th>max/mean</th>
            <th title="entropy of the load, ÷ log E">entropy</th>
            <th>dead</th>
            <th title="experts under 5 % of tokens">cold</th>
          </tr>
        </thead>
        <tbody>
          {counts.map((row, m) => {
            const s = balanceStats(row, seen);
            return (
              <tr key={m}>
                <td>{moeLayers[m]}</td>
                <td>{s.cv.toFixed(2)}</td>
                <td>{s.maxOverMean.toFixed(2)}</td>
                <td>{s.normalizedEntropy.toFixed(3)}</td>
                <td>{s.dead.length}</td>
                <td>{s.cold.length}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}
