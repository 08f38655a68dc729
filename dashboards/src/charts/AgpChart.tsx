// The Ambulatory Glucose Profile: the 5th–95th and 25th–75th percentile bands and the median
// of every bin of the day, over the days of the trend, with the target range shaded.

import { useMemo } from 'preact/hooks';
import type uPlot from 'uplot';
import type { GlucoseTrend, GlucoseUnit } from '../api';
import { formatGlucose } from '../format';
import { GLUCOSE_AXIS } from '../units';
import { Plot, axisStyle, bandPlugin } from './Plot';

const minutesOf = (start: string) => {
  const [h, m] = start.split(':').map(Number);
  return h * 60 + m;
};
const clock = (minutes: number) =>
  `${String(Math.floor(minutes / 60) % 24).padStart(2, '0')}:${String(Math.round(minutes % 60)).padStart(2, '0')}`;

export function AgpChart(props: { agp: GlucoseTrend['agp']; unit: GlucoseUnit; target: { low: number; high: number } }) {
  const { agp, unit, target } = props;
  const data = useMemo((): uPlot.AlignedData => {
    // Each bin is drawn at its middle; bins without readings leave a gap.
    const bins = agp.bins;
    const x = bins.map((b) => minutesOf(b.start) + agp.bin_minutes / 2);
    const column = (key: 'p5' | 'p25' | 'p50' | 'p75' | 'p95') => bins.map((b) => b[key]);
    return [x, column('p5'), column('p25'), column('p50'), column('p75'), column('p95')];
  }, [agp]);
  const options = useMemo((): Omit<uPlot.Options, 'width' | 'height'> => {
    const axis = GLUCOSE_AXIS[unit];
    const value = (_u: uPlot, v: number | null) => (v == null ? '–' : `${formatGlucose(v, unit)} ${unit}`);
    return {
      scales: {
        x: { time: false, range: [0, 1440] },
        y: { range: (_u, min, max) => [Math.min(axis.min, min ?? axis.min), Math.max(axis.max, max ?? axis.max)] },
      },
      axes: [
        { ...axisStyle, values: (_u, splits) => splits.map(clock), splits: () => [0, 180, 360, 540, 720, 900, 1080, 1260, 1440] },
        { ...axisStyle, label: unit, labelFont: '13px system-ui, sans-serif', size: 56 },
      ],
      series: [
        { label: 'Time of day', value: (_u, v) => (v == null ? '–' : clock(v)) },
        { label: '5th percentile', stroke: 'rgba(11, 92, 173, 0.5)', width: 1, value, spanGaps: false, points: { show: false } },
        { label: '25th percentile', stroke: 'rgba(11, 92, 173, 0.8)', width: 1, value, spanGaps: false, points: { show: false } },
        { label: 'Median', stroke: '#0b3d75', width: 3, value, spanGaps: false, points: { show: false } },
        { label: '75th percentile', stroke: 'rgba(11, 92, 173, 0.8)', width: 1, value, spanGaps: false, points: { show: false } },
        { label: '95th percentile', stroke: 'rgba(11, 92, 173, 0.5)', width: 1, value, spanGaps: false, points: { show: false } },
      ],
      bands: [
        { series: [5, 1], fill: 'rgba(11, 92, 173, 0.15)' },
        { series: [4, 2], fill: 'rgba(11, 92, 173, 0.35)' },
      ],
      cursor: { drag: { x: false, y: false, setScale: false } },
      plugins: [bandPlugin(target.low, target.high, 'rgba(21, 128, 61, 0.10)', '#15803d')],
    };
  }, [unit, target.low, target.high]);

  const withData = agp.bins.filter((b) => b.p50 !== null);
  if (withData.length === 0) return <p class="empty">Not enough readings for a glucose profile.</p>;
  const medians = withData.map((b) => b.p50 as number);
  const label =
    `Ambulatory glucose profile in ${agp.bin_minutes}-minute bins: the median runs from ` +
    `${formatGlucose(Math.min(...medians), unit)} to ${formatGlucose(Math.max(...medians), unit)} ${unit}; ` +
    `shaded bands show the 5th–95th and 25th–75th percentiles, and the target range ` +
    `${formatGlucose(target.low, unit)}–${formatGlucose(target.high, unit)} ${unit}.`;
  const hourly = agp.bins.filter((b) => minutesOf(b.start) % 60 === 0);
  return (
    <div class="chart">
      <Plot options={options} data={data} height={320} label={label} />
      <p class="chart-key">
        <span class="key key-agp-outer" aria-hidden="true" /> 5th–95th percentile
        <span class="key key-agp-inner" aria-hidden="true" /> 25th–75th percentile
        <span class="key key-line" aria-hidden="true" /> Median
        <span class="key key-band" aria-hidden="true" /> Target range
      </p>
      <details>
        <summary>The profile as a table (every hour)</summary>
        <table class="data-table">
          <caption class="visually-hidden">Glucose percentiles by time of day, {unit}</caption>
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">5th</th>
              <th scope="col">25th</th>
              <th scope="col">Median</th>
              <th scope="col">75th</th>
              <th scope="col">95th</th>
            </tr>
          </thead>
          <tbody>
            {hourly.map((b) => (
              <tr key={b.start}>
                <td>{b.start}</td>
                {([b.p5, b.p25, b.p50, b.p75, b.p95] as (number | null)[]).map((v, i) => (
                  <td key={i} class="number">
                    {v === null ? '–' : formatGlucose(v, unit)}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </div>
  );
}
