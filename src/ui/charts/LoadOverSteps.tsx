import * as d3 from 'd3';
import { useEffect, useRef } from 'react';

export interface LoadOverStepsProps {
  /** Per recorded step: that step's routed slots per expert (one layer). */
  steps: number[];
  counts: number[][];
  title: string;
  markers?: number[];
  testId?: string;
}

const M = { top: 22, right: 8, bottom: 22, left: 30 };

/**
 * Expert × step heatmap of one layer's load during training: each column is a step, each row an
 * expert, the colour its share of that step's routed slots (even = 1/E). Experts dying or one
 * taking over show up as rows going dark or bright.
 */
export function LoadOverSteps({ steps, counts, title, markers = [], testId }: LoadOverStepsProps) {
  const ref = useRef<SVGSVGElement>(null);
  const E = counts[0]?.length ?? 0;
  const width = 300;
  const rowH = E ? Math.max(3, Math.min(10, Math.floor(120 / E))) : 0;
  const height = M.top + E * rowH + M.bottom;
  useEffect(() => {
    const svg = d3.select(ref.current);
    svg.selectAll('*').remove();
    svg.append('text').attr('x', 4).attr('y', 13).attr('class', 'chart-title').text(title);
    if (!E || !steps.length) return;
    const colW = (width - M.left - M.right) / steps.length;
    const color = d3.scaleSequential(d3.interpolateInferno).domain([0, Math.min(1, 3 / E)]);
    const g = svg.append('g');
    counts.forEach((row, i) => {
      const total = row.reduce((a, b) => a + b, 0) || 1;
      row.forEach((c, e) => {
        g.append('rect').attr('x', M.left + i * colW).attr('y', M.top + e * rowH).attr('width', Math.max(1, colW)).attr('height', rowH).attr('fill', color(c / total));
      });
    });
    const x = d3.scaleLinear().domain([steps[0]!, steps[steps.length - 1]! + 1]).range([M.left, width - M.right]);
    svg.append('g').attr('transform', `translate(0,${M.top + E * rowH})`).call(d3.axisBottom(x).ticks(5).tickSizeOuter(0));
    svg.append('text').attr('x', 2).attr('y', M.top + 8).attr('class', 'chart-legend').text('e0');
    svg.append('text').attr('x', 2).attr('y', M.top + E * rowH).attr('class', 'chart-legend').text(`e${E - 1}`);
    for (const m of markers) svg.append('line').attr('class', 'marker').attr('x1', x(m)).attr('x2', x(m)).attr('y1', M.top).attr('y2', M.top + E * rowH);
  }, [steps, counts, title, markers, E, rowH]);
  return <svg ref={ref} width={width} height={height} data-testid={testId} className="line-chart" />;
}
