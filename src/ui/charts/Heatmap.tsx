import * as d3 from 'd3';
import { useEffect, useMemo, useRef, useState } from 'react';
import { COLD_FRACTION } from '../../engine/moe/stats';

export interface HeatmapProps {
  /** [row][expert] routed slots. */
  counts: number[][];
  /** Label per row (the model layer index). */
  rowLabels: string[];
  /** Tokens behind the counts, for the cold threshold (an expert under 5 % of tokens). */
  tokens: number;
  topk: number;
  /** Experts highlighted for the selected token: [row] → expert ids. */
  highlight?: number[][] | null;
  title: string;
  testId?: string;
  /** Ablated experts: their columns are hatched. */
  disabled?: number[];
  /** Clicking a column (any cell of it) calls this with the expert id. */
  onExpertClick?: (expert: number) => void;
}

const CELL_H = 20;
const LEFT = 44;
const TOP = 22;

/**
 * Layer × expert load, as the share of each layer's routed slots an expert took. Even load is
 * 1/E per cell; the colour scale is centred there so over- and under-use read at a glance.
 */
export function Heatmap({ counts, rowLabels, tokens, topk, highlight, title, testId, disabled, onExpertClick }: HeatmapProps) {
  const ref = useRef<SVGSVGElement>(null);
  const [hover, setHover] = useState<{ row: number; e: number; count: number; share: number } | null>(null);
  const E = counts[0]?.length ?? 0;
  const width = 640;
  const cellW = E ? Math.max(6, Math.min(36, Math.floor((width - LEFT - 8) / E))) : 0;
  const height = TOP + counts.length * CELL_H + 46;
  const svgW = Math.max(LEFT + E * cellW + 8, width);
  const svgH = E ? height : 40;
  const color = useMemo(() => d3.scaleSequential(d3.interpolateInferno).domain([0, E ? Math.min(1, 3 / E) : 1]), [E]);

  useEffect(() => {
    const svg = d3.select(ref.current);
    svg.selectAll('*').remove();
    if (!E) return;
    const g = svg.append('g');
    counts.forEach((row, r) => {
      const total = row.reduce((a, b) => a + b, 0) || 1;
      row.forEach((c, e) => {
        const share = c / total;
        const cold = tokens > 0 && c / tokens < COLD_FRACTION;
        const over = share > (2 / E);
        g.append('rect')
          .attr('x', LEFT + e * cellW)
          .attr('y', TOP + r * CELL_H)
          .attr('width', cellW - 1)
          .attr('height', CELL_H - 1)
          .attr('fill', color(share))
          .attr('data-count', c)
          .attr('class', `cell${cold ? ' cold' : ''}${over ? ' over' : ''}`)
          .attr('data-expert', e)
          .style('cursor', onExpertClick ? 'pointer' : 'default')
          .on('mouseenter', () => setHover({ row: r, e, count: c, share }))
          .on('mouseleave', () => setHover(null))
          .on('click', () => onExpertClick?.(e));
        if (cold) g.append('circle').attr('cx', LEFT + e * cellW + cellW / 2).attr('cy', TOP + r * CELL_H + CELL_H / 2).attr('r', 2).attr('fill', '#7aa2ff').attr('pointer-events', 'none');
        if (over) g.append('rect').attr('x', LEFT + e * cellW + 1).attr('y', TOP + r * CELL_H + 1).attr('width', cellW - 3).attr('height', CELL_H - 3).attr('fill', 'none').attr('stroke', '#ff6b6b').attr('stroke-width', 1.5).attr('pointer-events', 'none');
      });
      g.append('text').attr('x', LEFT - 6).attr('y', TOP + r * CELL_H + CELL_H / 2 + 4).attr('text-anchor', 'end').attr('class', 'axis').text(rowLabels[r] ?? '');
    });
    for (const e of disabled ?? []) {
      if (e >= E) continue;
      g.append('line').attr('x1', LEFT + e * cellW).attr('y1', TOP).attr('x2', LEFT + (e + 1) * cellW - 1).attr('y2', TOP + counts.length * CELL_H)
        .attr('stroke', '#ff6b6b').attr('stroke-width', 2).attr('pointer-events', 'none');
      g.append('text').attr('x', LEFT + e * cellW + cellW / 2).attr('y', TOP + counts.length * CELL_H + 10).attr('text-anchor', 'middle').attr('class', 'axis').text('off');
    }
    highlight?.forEach((ids, r) =>
      ids.forEach((e) =>
        g.append('rect').attr('x', LEFT + e * cellW).attr('y', TOP + r * CELL_H).attr('width', cellW - 1).attr('height', CELL_H - 1)
          .attr('fill', 'none').attr('stroke', '#3ecf8e').attr('stroke-width', 2).attr('pointer-events', 'none'),
      ),
    );
    const step = E > 32 ? 8 : E > 16 ? 4 : 1;
    for (let e = 0; e < E; e += step) {
      g.append('text').attr('x', LEFT + e * cellW + cellW / 2).attr('y', TOP - 6).attr('text-anchor', 'middle').attr('class', 'axis').text(e);
    }
    // Legend: share of the layer's routed slots.
    const ly = TOP + counts.length * CELL_H + 16;
    const lw = 180;
    const grad = svg.append('defs').append('linearGradient').attr('id', `${testId ?? 'hm'}-grad`);
    for (let i = 0; i <= 10; i++) grad.append('stop').attr('offset', `${i * 10}%`).attr('stop-color', color((i / 10) * color.domain()[1]!));
    g.append('rect').attr('x', LEFT).attr('y', ly).attr('width', lw).attr('height', 8).attr('fill', `url(#${testId ?? 'hm'}-grad)`);
    g.append('text').attr('x', LEFT).attr('y', ly + 22).attr('class', 'axis').text('0');
    g.append('text').attr('x', LEFT + lw).attr('y', ly + 22).attr('text-anchor', 'end').attr('class', 'axis').text(`≥ ${(color.domain()[1]! * 100).toFixed(0)} % of layer load`);
    g.append('text').attr('x', LEFT + lw + 16).attr('y', ly + 8).attr('class', 'axis').text(`even = ${(100 / E).toFixed(1)} % · ● cold (< 5 % of tokens) · □ over 2× even · k = ${topk}`);
  }, [counts, rowLabels, tokens, topk, highlight, E, cellW, color, testId, disabled, onExpertClick]);

  return (
    <figure className="heatmap" data-testid={testId}>
      <figcaption>
        {title}
        <span className="muted hover-readout">
          {hover
            ? `layer ${rowLabels[hover.row]} · expert ${hover.e}: ${hover.count} slots (${(hover.share * 100).toFixed(1)} %)`
            : E ? 'hover a cell for its value' : 'no routing yet'}
        </span>
      </figcaption>
      {/* Scales down with its column (viewBox), never wider than its natural size. */}
      <svg ref={ref} viewBox={`0 0 ${svgW} ${svgH}`} width="100%" style={{ maxWidth: svgW }} role="img" aria-label={title} />
    </figure>
  );
}
