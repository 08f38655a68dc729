// The last 24 hours of glucose as a small line (SVG), the target range shaded. Drawn only from
// readings the API returned to this user.

import type { GlucosePoint, GlucoseUnit } from '../api';
import { formatGlucose } from '../format';
import { GLUCOSE_AXIS, TARGET_RANGE } from '../units';

const WIDTH = 160;
const HEIGHT = 40;
/** Readings further apart than this break the line (a sensor gap). */
const GAP_MS = 15 * 60_000;

export function Sparkline(props: { points: GlucosePoint[]; unit: GlucoseUnit; from: Date; to: Date }) {
  const { points, unit } = props;
  if (points.length === 0) return <span class="muted">No readings in 24 hours</span>;
  const axis = GLUCOSE_AXIS[unit];
  const values = points.map((p) => p.value);
  const min = Math.min(axis.min, ...values);
  const max = Math.max(axis.max, ...values);
  const start = props.from.getTime();
  const span = props.to.getTime() - start;
  const x = (at: number) => ((at - start) / span) * WIDTH;
  const y = (value: number) => HEIGHT - ((value - min) / (max - min)) * HEIGHT;
  const sorted = [...points].sort((a, b) => a.measured_at.localeCompare(b.measured_at));
  let path = '';
  let previous: number | null = null;
  for (const p of sorted) {
    const at = Date.parse(p.measured_at);
    const command = previous === null || at - previous > GAP_MS ? 'M' : 'L';
    path += `${command}${x(at).toFixed(1)},${y(p.value).toFixed(1)}`;
    previous = at;
  }
  const target = TARGET_RANGE[unit];
  const lowest = Math.min(...values);
  const highest = Math.max(...values);
  const label =
    `Glucose over the last 24 hours: ${points.length} readings, from ${formatGlucose(lowest, unit)} to ` +
    `${formatGlucose(highest, unit)} ${unit}`;
  return (
    <svg class="sparkline" viewBox={`0 0 ${WIDTH} ${HEIGHT}`} width={WIDTH} height={HEIGHT} role="img" aria-label={label} data-testid="sparkline">
      <rect x="0" y={y(target.high)} width={WIDTH} height={y(target.low) - y(target.high)} fill="rgba(22, 163, 74, 0.15)" />
      <path d={path} fill="none" stroke="#0b5cad" stroke-width="1.5" />
    </svg>
  );
}
