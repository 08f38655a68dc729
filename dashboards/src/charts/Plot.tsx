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
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [props.options, props.data, props.height]);
  return <div class="plot" ref={container} role="img" aria-label={props.label} />;
}

/** Axis labels and the cursor in the patient's time zone, not the browser's. */
export function zonedDates(timeZone: string): (seconds: number) => Date {
  return (seconds) => uPlot.tzDate(new Date(seconds * 1000), timeZone);
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
