// Time in ranges as one bar in the five colours of the International Consensus on Time in
// Range (Battelino et al., Diabetes Care 2019), with the numbers in text beside it: colour is
// never the only way the figures are given.

import type { GlucoseUnit } from '../api';
import { formatPercent } from '../format';

export interface RangeShares {
  veryLow: number | null;
  low: number | null;
  inRange: number | null;
  high: number | null;
  veryHigh: number | null;
}

/** The five consensus ranges, their colours and bounds in each unit. */
export const CONSENSUS_RANGES: {
  key: keyof RangeShares;
  label: string;
  colour: string;
  bounds: Record<GlucoseUnit, string>;
}[] = [
  { key: 'veryHigh', label: 'Very high', colour: '#f59e0b', bounds: { 'mg/dL': '> 250', 'mmol/L': '> 13.9' } },
  { key: 'high', label: 'High', colour: '#fcd34d', bounds: { 'mg/dL': '181–250', 'mmol/L': '10.1–13.9' } },
  { key: 'inRange', label: 'In range', colour: '#16a34a', bounds: { 'mg/dL': '70–180', 'mmol/L': '3.9–10.0' } },
  { key: 'low', label: 'Low', colour: '#dc2626', bounds: { 'mg/dL': '54–69', 'mmol/L': '3.0–3.8' } },
  { key: 'veryLow', label: 'Very low', colour: '#7f1d1d', bounds: { 'mg/dL': '< 54', 'mmol/L': '< 3.0' } },
];

/** The bands from cumulative shares (below 70 includes below 54; above 180 includes above 250). */
export function sharesFromCumulative(c: {
  below54: number | null;
  below70: number | null;
  inRange: number | null;
  above180: number | null;
  above250: number | null;
}): RangeShares {
  const minus = (a: number | null, b: number | null) => (a === null || b === null ? null : Math.max(0, a - b));
  return {
    veryLow: c.below54,
    low: minus(c.below70, c.below54),
    inRange: c.inRange,
    high: minus(c.above180, c.above250),
    veryHigh: c.above250,
  };
}

export function rangesInWords(shares: RangeShares): string {
  return CONSENSUS_RANGES.slice()
    .reverse()
    .map((r) => `${r.label.toLowerCase()} ${formatPercent(shares[r.key])}`)
    .join(', ');
}

/** The stacked bar, lowest range on the left. */
export function TimeInRangeBar(props: { shares: RangeShares; compact?: boolean }) {
  const { shares } = props;
  if (shares.inRange === null) return <span class="muted">No glucose data</span>;
  const ordered = CONSENSUS_RANGES.slice().reverse();
  return (
    <div class={props.compact ? 'tir tir-compact' : 'tir'}>
      <div class="tir-bar" role="img" aria-label={`Time in ranges: ${rangesInWords(shares)}`} data-testid="tir-bar">
        {ordered.map((r) =>
          (shares[r.key] ?? 0) > 0 ? (
            <span key={r.key} class="tir-segment" style={{ width: `${shares[r.key]}%`, background: r.colour }} />
          ) : null,
        )}
      </div>
      <span class="tir-text" aria-hidden="true">
        {formatPercent(shares.inRange)} in range
        {(shares.veryLow ?? 0) + (shares.low ?? 0) > 0 && `, ${formatPercent((shares.veryLow ?? 0) + (shares.low ?? 0))} low`}
      </span>
    </div>
  );
}

/** The key to the colours, with each range's bounds in the unit shown. */
export function TimeInRangeKey(props: { unit: GlucoseUnit }) {
  return (
    <ul class="tir-key" aria-label="Glucose ranges">
      {CONSENSUS_RANGES.slice()
        .reverse()
        .map((r) => (
          <li key={r.key}>
            <span class="tir-swatch" style={{ background: r.colour }} aria-hidden="true" />
            {r.label} {r.bounds[props.unit]}
          </li>
        ))}
    </ul>
  );
}
