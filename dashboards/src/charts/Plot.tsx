// A uPlot chart as a component: created on mount, rebuilt when its options or data change,
// resized with its container, and destroyed on unmount.

import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface PlotProps {
  /** Everything but the size, which follows the container. */
  options: Omit<uPlot.Options, 'width' | 'height'>;
  data: uPlot.AlignedData;
  height: number;
  /** What the chart shows, for screen readers (the canvas itself says nothing). */
  label: string;
  /** Receives the chart once made, e.g. for zoom buttons. */
  onReady?: (plot: uPlot | null) => void;
}

export function Plot(props: PlotProps) {
  const container = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const element = container.current;
    if (!element) return;
    const plot = new uPlot(
      { ...props.options, width: Math.max(element.clientWidth, 200), height: props.height },
      props.data,
      element,
    );
    props.onReady?.(plot);
    const observer = new ResizeObserver(() => {
      const width = Math.max(element.clientWidth, 200);
      if (width !== plot.width) plot.setSize({ width, height: props.height });
    });
    observer.observe(element);
    return () => {
      observer.disconnect();
      props.onReady?.(null);
      plot.destroy();
    };
    // Rebuilt only when what it draws changes, not on every render of the page around it.
  }, [props.options, props.data, props.height]);
  return <div class="plot" ref={container} role="img" aria-label={props.label} />;
}

/** Axis labels and the cursor in the patient's time zone, not the browser's. */
export function zonedDates(timeZone: string): (seconds: number) => Date {
  return (seconds) => uPlot.tzDate(new Date(seconds * 1000), timeZone);
}

/**
 * The time axis in the patient's zone and in words ("10 Nov", "14:00"), and the cursor's time
 * in the legend.
 */
export function timeAxis(timeZone: string): { axis: uPlot.Axis; series: uPlot.Series } {
  const day = new Intl.DateTimeFormat('en-GB', { timeZone, day: 'numeric', month: 'short' });
  const time = new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  const moment = new Intl.DateTimeFormat('en-GB', {
    timeZone,
    day: 'numeric',
    month: 'short',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  });
  return {
    axis: {
      ...axisStyle,
      values: (_plot, splits, _axis, _space, increment) =>
        splits.map((s) => {
          if (increment >= 86_400) return day.format(s * 1000);
          const clock = time.format(s * 1000);
          return clock === '00:00' ? day.format(s * 1000) : clock;
        }),
    },
    series: { label: 'Time', value: (_plot, v) => (v == null ? '–' : moment.format(v * 1000)) },
  };
}

/** Shades the band between two values of the y scale (e.g. the glucose target range). */
export function bandPlugin(low: number, high: number, fill: string, edge: string): uPlot.Plugin {
  return {
    hooks: {
      drawClear: (plot) => {
        const { ctx, bbox } = plot;
        const top = plot.valToPos(high, 'y', true);
        const bottom = plot.valToPos(low, 'y', true);
        ctx.save();
        ctx.fillStyle = fill;
        ctx.fillRect(bbox.left, top, bbox.width, bottom - top);
        ctx.strokeStyle = edge;
        ctx.lineWidth = 1;
        ctx.setLineDash([6, 4]);
        for (const y of [top, bottom]) {
          ctx.beginPath();
          ctx.moveTo(bbox.left, y);
          ctx.lineTo(bbox.left + bbox.width, y);
          ctx.stroke();
        }
        ctx.restore();
      },
    },
  };
}

/** Shared look: readable axis text and a light grid. */
export const axisStyle: uPlot.Axis = {
  stroke: '#2b2b2b',
  grid: { stroke: '#e3e3e3', width: 1 },
  ticks: { stroke: '#c8c8c8', width: 1 },
  font: '13px system-ui, sans-serif',
};
