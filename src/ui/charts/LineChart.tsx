import * as d3 from 'd3';
import { useEffect, useRef } from 'react';

export interface Series {
  name: string;
  /** [x, y] points; y may be NaN for a gap. */
  points: Array<[number, number]>;
  color: string;
  /** Draw points only (sparse series such as validation loss). */
  dots?: boolean;
}

export interface Marker {
  x: number;
  label: string;
}

export interface LineChartProps {
  title: string;
  series: Series[];
  markers?: Marker[];
  /** Log scale on y (losses). */
  logY?: boolean;
  testId?: string;
  height?: number;
}

const M = { top: 22, right: 12, bottom: 22, left: 46 };

/** Step-indexed lines (loss, lr, CV, entropy, flip rate) with vertical markers where something happened. */
export function LineChart({ title, series, markers = [], logY = false, testId, height = 150 }: LineChartProps) {
  const ref = useRef<SVGSVGElement>(null);
  const width = 300;
  useEffect(() => {
    const svg = d3.select(ref.current);
    svg.selectAll('*').remove();
    const all = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y) && (!logY || y > 0));
    svg.append('text').attr('x', 4).attr('y', 13).attr('class', 'chart-title').text(title);
    if (!all.length) return;
    const x = d3.scaleLinear().domain(d3.extent(all, (p) => p[0]) as [number, number]).range([M.left, width - M.right]);
    if (x.domain()[0] === x.domain()[1]) x.domain([x.domain()[0]! - 1, x.domain()[1]! + 1]);
    const [lo, hi] = d3.extent(all, (p) => p[1]) as [number, number];
    const y = (logY ? d3.scaleLog() : d3.scaleLinear()).domain(lo === hi ? [lo * 0.9 || -1, hi * 1.1 || 1] : [lo, hi]).nice().range([height - M.bottom, M.top]);
    svg.append('g').attr('transform', `translate(0,${height - M.bottom})`).call(d3.axisBottom(x).ticks(5).tickSizeOuter(0));
    svg.append('g').attr('transform', `translate(${M.left},0)`).call(d3.axisLeft(y).ticks(4, logY ? '~g' : '~s'));
    for (const m of markers) {
      svg.append('line').attr('class', 'marker').attr('x1', x(m.x)).attr('x2', x(m.x)).attr('y1', M.top).attr('y2', height - M.bottom).append('title').text(m.label);
    }
    for (const s of series) {
      const pts = s.points.filter(([, v]) => Number.isFinite(v) && (!logY || v > 0));
      if (s.dots) {
        svg.append('g').selectAll('circle').data(pts).join('circle').attr('cx', (p) => x(p[0])).attr('cy', (p) => y(p[1])).attr('r', 2.5).attr('fill', s.color);
      } else {
        const line = d3.line<[number, number]>().x((p) => x(p[0])).y((p) => y(p[1]));
        svg.append('path').datum(pts).attr('fill', 'none').attr('stroke', s.color).attr('stroke-width', 1.5).attr('d', line);
      }
    }
    const legend = svg.append('g').attr('transform', `translate(${width - M.right},13)`);
    series.forEach((s, i) => legend.append('text').attr('x', 0).attr('y', i * 11).attr('text-anchor', 'end').attr('class', 'chart-legend').attr('fill', s.color).text(s.name));
  }, [series, markers, logY, title, height]);
  return <svg ref={ref} width={width} height={height} data-testid={testId} data-points={series.reduce((n, s) => n + s.points.length, 0)} className="line-chart" />;
}
