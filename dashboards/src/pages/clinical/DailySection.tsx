// Daily overlays: each local day's glucose over 24 hours on one chart, so patterns that repeat
// at the same time of day stand out. Needs single readings.

import { useMemo, useState } from 'preact/hooks';
import type uPlot from 'uplot';
import { api, type GlucosePoint, type GlucoseUnit } from '../../api';
import { Plot, axisStyle, bandPlugin } from '../../charts/Plot';
import { ErrorNotice, Loading } from '../../components/common';
import { dayOf, formatGlucose, startOfDay } from '../../format';
import { useAsync } from '../../hooks';
import { GLUCOSE_AXIS, TARGET_RANGE } from '../../units';
import { isRefusal, NotShared } from '../ClinicalPatient';

const SLOT_MINUTES = 5;
const SLOTS = (24 * 60) / SLOT_MINUTES;
/** Distinct colours for up to 14 days (then they repeat). */
const PALETTE = [
  '#0b5cad', '#a4161a', '#15803d', '#7c3aed', '#b45309', '#0e7490', '#be185d',
  '#4d7c0f', '#1e3a8a', '#9a3412', '#6d28d9', '#047857', '#92400e', '#374151',
];

const clock = (minutes: number) =>
  `${String(Math.floor(minutes / 60) % 24).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;

/** Each day's readings in 5-minute slots from local midnight (the last reading of a slot wins). */
function overlay(points: GlucosePoint[], timeZone: string) {
  const days = new Map<string, (number | null)[]>();
  const sorted = [...points].sort((a, b) => a.measured_at.localeCompare(b.measured_at));
  for (const p of sorted) {
    const at = new Date(p.measured_at);
    const day = dayOf(at, timeZone);
    const minutes = (at.getTime() - startOfDay(day, timeZone).getTime()) / 60_000;
    const slot = Math.min(SLOTS - 1, Math.max(0, Math.floor(minutes / SLOT_MINUTES)));
    if (!days.has(day)) days.set(day, new Array(SLOTS).fill(null));
    (days.get(day) as (number | null)[])[slot] = p.value;
  }
  return [...days.entries()].sort(([a], [b]) => a.localeCompare(b));
}

export function DailySection(props: { patientId: string; unit: GlucoseUnit; timeZone: string; refusal: string | null }) {
  const [days, setDays] = useState(7);
  const readings = useAsync(() => {
    if (props.refusal !== null) return Promise.resolve(null);
    const to = new Date();
    // From the start of the first local day, so each day is whole.
    const from = startOfDay(dayOf(new Date(to.getTime() - (days - 1) * 86_400_000), props.timeZone), props.timeZone);
    return api.glucose(props.patientId, { from, to }, props.unit);
  }, [props.patientId, props.unit, days, props.refusal]);

  if (props.refusal !== null || isRefusal(readings.error)) {
    return (
      <>
        <NotShared what="The patient's single glucose readings are" />
        {props.refusal && <p class="help">{props.refusal} Daily overlays need single readings; see Trends for the profile.</p>}
      </>
    );
  }
  return (
    <section aria-labelledby="daily-heading" class="card">
      <div class="toolbar">
        <h2 id="daily-heading">Daily overlays</h2>
        <div class="segmented" role="group" aria-label="Days">
          {[7, 14].map((d) => (
            <button key={d} type="button" class="button button-small" aria-pressed={days === d} onClick={() => setDays(d)}>
              Last {d} days
            </button>
          ))}
        </div>
      </div>
      {readings.error ? (
        <ErrorNotice error={readings.error} what="glucose readings" />
      ) : !readings.data ? (
        <Loading what="glucose readings" />
      ) : (
        <OverlayChart points={readings.data} unit={props.unit} timeZone={props.timeZone} />
      )}
    </section>
  );
}

function OverlayChart(props: { points: GlucosePoint[]; unit: GlucoseUnit; timeZone: string }) {
  const { unit } = props;
  const days = useMemo(() => overlay(props.points, props.timeZone), [props.points, props.timeZone]);
  const data = useMemo(
    (): uPlot.AlignedData => [Array.from({ length: SLOTS }, (_, i) => i * SLOT_MINUTES), ...days.map(([, v]) => v)],
    [days],
  );
  const options = useMemo((): Omit<uPlot.Options, 'width' | 'height'> => {
    const axis = GLUCOSE_AXIS[unit];
    const target = TARGET_RANGE[unit];
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
        ...days.map(([day], i) => ({
          label: day,
          stroke: PALETTE[i % PALETTE.length],
          width: 1.5,
          spanGaps: false,
          value: (_u: uPlot, v: number | null) => (v == null ? '–' : formatGlucose(v, unit)),
        })),
      ],
      cursor: { drag: { x: false, y: false, setScale: false } },
      plugins: [bandPlugin(target.low, target.high, 'rgba(21, 128, 61, 0.10)', '#15803d')],
    };
  }, [days, unit]);
  if (days.length === 0) return <p class="empty">No glucose readings in these days.</p>;
  const label =
    `Daily glucose overlays: ${days.length} days (${days[0][0]} to ${days[days.length - 1][0]}), each drawn over 24 hours ` +
    `from local midnight; the standard target range is shaded.`;
  return (
    <div class="chart">
      <Plot options={options} data={data} height={340} label={label} />
      <p class="help">Each line is one day in the patient's time zone; the legend above names the days.</p>
    </div>
  );
}
