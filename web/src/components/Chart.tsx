// A time series with uPlot, and alerts marked as vertical lines at the time they fired.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { useEffect, useRef } from 'preact/hooks';

export interface Marker {
  time: number; // seconds
  label: string;
  critical: boolean;
}

interface Props {
  title: string;
  unit: string;
  times: number[]; // seconds
  series: { label: string; values: (number | null)[] }[];
  markers: Marker[];
}

const COLORS = ['#0b4f6c', '#c05621', '#2f855a', '#6b46c1'];

function markerPlugin(markers: Marker[]): uPlot.Plugin {
  return {
    hooks: {
      draw: (u) => {
        const { ctx, bbox } = u;
        ctx.save();
        for (const m of markers) {
          const x = Math.round(u.valToPos(m.time, 'x', true));
          if (x < bbox.left || x > bbox.left + bbox.width) continue;
          ctx.strokeStyle = m.critical ? '#c53030' : '#d69e2e';
          ctx.lineWidth = 2;
          ctx.setLineDash([6, 4]);
          ctx.beginPath();
          ctx.moveTo(x, bbox.top);
          ctx.lineTo(x, bbox.top + bbox.height);
          ctx.stroke();
        }
        ctx.restore();
      },
    },
  };
}

export function Chart({ title, unit, times, series, markers }: Props) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const data = [times, ...series.map((s) => s.values)] as uPlot.AlignedData;
  const shape = series.map((s) => s.label).join('\u0000');
  // Built again only when what it shows changes; new points go through setData (live
  // updates every second must not rebuild the canvas).
  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const width = () => Math.max(280, el.clientWidth);
    const made = new uPlot(
      {
        title,
        width: width(),
        height: 320,
        scales: { x: { time: true } },
        axes: [{}, { label: unit }],
        series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: false }))],
        plugins: [markerPlugin(markers)],
      },
      data,
      el,
    );
    plot.current = made;
    const resize = new ResizeObserver(() => made.setSize({ width: width(), height: 320 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      made.destroy();
      plot.current = null;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [title, unit, shape, markers]);
  useEffect(() => {
    plot.current?.setData(data);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [times, series]);
  return <div ref={host} class="chart" role="img" aria-label={`${title} chart, ${markers.length} alert markers`} />;
}
