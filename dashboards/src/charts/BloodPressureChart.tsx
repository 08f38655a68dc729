// Blood pressure of a period: systolic and diastolic per reading, with the home thresholds of
// stage 1 hypertension (130/80 mm Hg, ACC/AHA 2017) drawn for reference.

import { useMemo } from 'preact/hooks';
import type uPlot from 'uplot';
import type { BloodPressurePoint, TimeRange } from '../api';
import { formatDateTime } from '../format';
import { Plot, axisStyle, timeAxis, zonedDates } from './Plot';

const TABLE_ROWS = 30;
const STAGE_1 = { systolic: 130, diastolic: 80 };

function thresholdLines(): uPlot.Plugin {
  return {
    hooks: {
      drawClear: (plot) => {
        const { ctx, bbox } = plot;
        ctx.save();
        ctx.setLineDash([6, 4]);
        ctx.lineWidth = 1;
        for (const [value, colour] of [
          [STAGE_1.systolic, '#a4161a'],
          [STAGE_1.diastolic, '#0b5cad'],
        ] as const) {
          const y = plot.valToPos(value, 'y', true);
          ctx.strokeStyle = colour;
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

/** ACC/AHA 2017 categories by systolic pressure, shaded behind the readings. */
export const BP_BANDS: { label: string; from: number; to: number; fill: string; key: string }[] = [
  { label: 'Normal (< 120)', from: 0, to: 120, fill: 'rgba(22, 163, 74, 0.10)', key: '#16a34a' },
  { label: 'Elevated (120–129)', from: 120, to: 130, fill: 'rgba(250, 204, 21, 0.18)', key: '#facc15' },
  { label: 'Stage 1 (130–139)', from: 130, to: 140, fill: 'rgba(249, 115, 22, 0.16)', key: '#f97316' },
  { label: 'Stage 2 (140–180)', from: 140, to: 180, fill: 'rgba(220, 38, 38, 0.12)', key: '#dc2626' },
  { label: 'Crisis (> 180)', from: 180, to: 400, fill: 'rgba(127, 29, 29, 0.20)', key: '#7f1d1d' },
];

function categoryBands(): uPlot.Plugin {
  return {
    hooks: {
      drawClear: (plot) => {
        const { ctx, bbox } = plot;
        ctx.save();
        for (const band of BP_BANDS) {
          const top = Math.max(plot.valToPos(band.to, 'y', true), bbox.top);
          const bottom = Math.min(plot.valToPos(band.from, 'y', true), bbox.top + bbox.height);
          if (bottom <= top) continue;
          ctx.fillStyle = band.fill;
          ctx.fillRect(bbox.left, top, bbox.width, bottom - top);
        }
        ctx.restore();
      },
    },
  };
}

export function BloodPressureChart(props: {
  points: BloodPressurePoint[];
  timeZone: string;
  range: TimeRange;
  /** Shade the ACC/AHA categories (systolic) instead of the 130/80 lines. */
  categoryBands?: boolean;
  /** What the points are, for the description ("readings", "daily means"). */
  what?: string;
}) {
  const { points, timeZone, range } = props;
  const what = props.what ?? 'readings';
  const data = useMemo((): uPlot.AlignedData => {
    const sorted = [...points].sort((a, b) => a.measured_at.localeCompare(b.measured_at));
    return [
      sorted.map((p) => Date.parse(p.measured_at) / 1000),
      sorted.map((p) => p.systolic),
      sorted.map((p) => p.diastolic),
    ];
  }, [points]);
  const time = useMemo(() => timeAxis(timeZone), [timeZone]);
  const options = useMemo(
    (): Omit<uPlot.Options, 'width' | 'height'> => ({
      tzDate: zonedDates(timeZone),
      scales: {
        x: { time: true, range: () => [range.from.getTime() / 1000, range.to.getTime() / 1000] },
        y: { range: (_u, min, max) => [Math.min(40, min ?? 40), Math.max(200, max ?? 200)] },
      },
      axes: [time.axis, { ...axisStyle, label: 'mm Hg', labelFont: '13px system-ui, sans-serif', size: 56 }],
      series: [
        time.series,
        { label: 'Systolic', stroke: '#a4161a', width: 2, points: { show: true, size: 7, fill: '#a4161a' } },
        { label: 'Diastolic', stroke: '#0b5cad', width: 2, points: { show: true, size: 7, fill: '#0b5cad' } },
      ],
      // The time axis follows the period chosen above; zooming is the glucose chart's.
      cursor: { drag: { x: false, y: false, setScale: false } },
      plugins: [props.categoryBands ? categoryBands() : thresholdLines()],
    }),
    [timeZone, range, time, props.categoryBands],
  );
  if (points.length === 0) return <p class="empty">No blood-pressure {what} in this period.</p>;
  const newestFirst = [...points].sort((a, b) => b.measured_at.localeCompare(a.measured_at)).slice(0, TABLE_ROWS);
  const latest = newestFirst[0];
  const label =
    `Blood-pressure chart: ${points.length} ${what} in this period; latest ${latest.systolic}/${latest.diastolic} mm Hg ` +
    `on ${formatDateTime(latest.measured_at, timeZone)}. ` +
    (props.categoryBands
      ? 'Shaded bands mark the ACC/AHA categories of systolic pressure.'
      : 'Dashed lines mark 130 systolic and 80 diastolic.');
  return (
    <div class="chart">
      <Plot options={options} data={data} height={260} label={label} />
      <p class="chart-key">
        <span class="key key-line key-systolic" aria-hidden="true" /> Systolic
        <span class="key key-line" aria-hidden="true" /> Diastolic
        {props.categoryBands ? (
          BP_BANDS.map((b) => (
            <span key={b.label}>
              <span class="key key-bp-band" style={{ background: b.key }} aria-hidden="true" /> {b.label}
            </span>
          ))
        ) : (
          <>
            <span class="key key-dashed" aria-hidden="true" /> 130/80 mm Hg (stage 1 at home)
          </>
        )}
      </p>
      <details>
        <summary>
          Latest {newestFirst.length} {what} as a table
        </summary>
        <table class="data-table">
          <caption class="visually-hidden">Blood-pressure readings, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Systolic / diastolic (mm Hg)</th>
              <th scope="col">Pulse (/min)</th>
            </tr>
          </thead>
          <tbody>
            {newestFirst.map((p) => (
              <tr key={`${p.device_id}-${p.measured_at}`}>
                <td>{formatDateTime(p.measured_at, timeZone)}</td>
                <td class="number">
                  {p.systolic}/{p.diastolic}
                </td>
                <td class="number">{p.pulse ?? '–'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </div>
  );
}
