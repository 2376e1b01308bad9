import * as d3 from 'd3';
import { useEffect, useRef } from 'react';

/**
 * B − A: per layer, the difference of each expert's share of the routed slots, on a diverging scale
 * (red: B uses the expert more, blue: less).
 */
export function DiffHeatmap({ a, b, rowLabels, testId }: { a: number[][]; b: number[][]; rowLabels: string[]; testId?: string }) {
  const ref = useRef<SVGSVGElement>(null);
  const E = a[0]?.length ?? 0;
  const cellW = E ? Math.max(6, Math.min(24, Math.floor(560 / E))) : 0;
  useEffect(() => {
    const svg = d3.select(ref.current);
    svg.selectAll('*').remove();
    if (!E) return;
    const share = (rows: number[][]) => rows.map((r) => { const t = r.reduce((x, y) => x + y, 0) || 1; return r.map((c) => c / t); });
    const sa = share(a), sb = share(b);
    const lim = Math.max(0.05, d3.max(sa.flatMap((r, i) => r.map((v, e) => Math.abs((sb[i]?.[e] ?? 0) - v)))) ?? 0.05);
    const color = d3.scaleDiverging(d3.interpolateRdBu).domain([lim, 0, -lim]);
    sa.forEach((row, r) => {
      row.forEach((v, e) => {
        const d = (sb[r]?.[e] ?? 0) - v;
        svg.append('rect').attr('x', 40 + e * cellW).attr('y', 4 + r * 18).attr('width', cellW - 1).attr('height', 17).attr('fill', color(d))
          .attr('class', 'diff-cell').attr('data-diff', d.toFixed(4)).append('title').text(`layer ${rowLabels[r]} · expert ${e}: ${(d * 100).toFixed(1)} points`);
      });
      svg.append('text').attr('x', 34).attr('y', 4 + r * 18 + 13).attr('text-anchor', 'end').attr('class', 'axis').text(rowLabels[r] ?? '');
    });
    svg.append('text').attr('x', 40).attr('y', 4 + sa.length * 18 + 14).attr('class', 'axis').text(`red: B routes more to the expert, blue: less (±${(lim * 100).toFixed(0)} points of layer load)`);
  }, [a, b, rowLabels, E, cellW]);
  const w = Math.max(40 + E * cellW + 8, 420);
  const h = 4 + a.length * 18 + 22;
  return <svg ref={ref} viewBox={`0 0 ${w} ${h}`} width="100%" style={{ maxWidth: w }} data-testid={testId} role="img" aria-label="difference of expert load, B minus A" />;
}
