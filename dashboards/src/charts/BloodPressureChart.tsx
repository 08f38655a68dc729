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

export function BloodPressureChart(props: { points: BloodPressurePoint[]; timeZone: string; range: TimeRange }) {
  const { points, timeZone, range } = props;
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
      plugins: [thresholdLines()],
    }),
    [timeZone, range, time],
  );
  if (points.length === 0) return <p class="empty">No blood-pressure readings in this period.</p>;
  const newestFirst = [...points].sort((a, b) => b.measured_at.localeCompare(a.measured_at)).slice(0, TABLE_ROWS);
  const latest = newestFirst[0];
  const label =
    `Blood-pressure chart: ${points.length} readings in this period; latest ${latest.systolic}/${latest.diastolic} mm Hg ` +
    `on ${formatDateTime(latest.measured_at, timeZone)}. Dashed lines mark 130 systolic and 80 diastolic.`;
  return (
    <div class="chart">
      <Plot options={options} data={data} height={260} label={label} />
      <p class="chart-key">
        <span class="key key-line key-systolic" aria-hidden="true" /> Systolic
        <span class="key key-line" aria-hidden="true" /> Diastolic
        <span class="key key-dashed" aria-hidden="true" /> 130/80 mm Hg (stage 1 at home)
      </p>
      <details>
        <summary>Latest {newestFirst.length} readings as a table</summary>
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
