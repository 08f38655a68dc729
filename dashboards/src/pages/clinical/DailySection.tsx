// Daily overlays: each local day's glucose over 24 hours on one chart, so patterns that repeat
// at the same time of day stand out. Needs single readings.

import { useMemo, useState } from 'preact/hooks';
import type uPlot from 'uplot';
import { api, type GlucosePoint, type GlucoseUnit, type TreatmentPoint } from '../../api';
import { Plot, axisStyle, bandPlugin } from '../../charts/Plot';
import { treatmentPlugin, treatmentsInWords } from '../../charts/treatmentMarks';
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

export function DailySection(props: {
  patientId: string;
  unit: GlucoseUnit;
  timeZone: string;
  refusal: string | null;
  /** Null when the user may read the patient's treatments, drawn at their time of day. */
  treatmentsRefusal: string | null;
}) {
  const [days, setDays] = useState(7);
  // From the start of the first local day, so each day is whole.
  const period = useMemo(() => {
    const to = new Date();
    const from = startOfDay(dayOf(new Date(to.getTime() - (days - 1) * 86_400_000), props.timeZone), props.timeZone);
    return { from, to };
  }, [days, props.timeZone]);
  const readings = useAsync(
    () => (props.refusal !== null ? Promise.resolve(null) : api.glucose(props.patientId, period, props.unit)),
    [props.patientId, props.unit, period, props.refusal],
  );
  const treatments = useAsync(
    () =>
      props.refusal !== null || props.treatmentsRefusal !== null
        ? Promise.resolve(undefined)
        : api.treatments(props.patientId, period),
    [props.patientId, period, props.refusal, props.treatmentsRefusal],
  );

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
        <OverlayChart points={readings.data} treatments={treatments.data} unit={props.unit} timeZone={props.timeZone} />
      )}
    </section>
  );
}

/** Minutes since the local midnight of the day an instant falls on. */
function minuteOfDay(seconds: number, timeZone: string): number {
  const at = new Date(seconds * 1000);
  return (at.getTime() - startOfDay(dayOf(at, timeZone), timeZone).getTime()) / 60_000;
}

const NO_TREATMENTS: TreatmentPoint[] = [];

function OverlayChart(props: {
  points: GlucosePoint[];
  treatments?: TreatmentPoint[];
  unit: GlucoseUnit;
  timeZone: string;
}) {
  const { unit, timeZone } = props;
  const treatments = props.treatments ?? NO_TREATMENTS;
  const days = useMemo(() => overlay(props.points, timeZone), [props.points, timeZone]);
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
      plugins: [
        bandPlugin(target.low, target.high, 'rgba(21, 128, 61, 0.10)', '#15803d'),
        // Each treatment at its time of day, in its day's colour; an exercise past midnight
        // ends at the chart's edge.
        treatmentPlugin(treatments, {
          xOf: (seconds, t) =>
            Math.min(1440, minuteOfDay(Date.parse(t.measured_at) / 1000, timeZone) + (seconds * 1000 - Date.parse(t.measured_at)) / 60_000),
          colourOf: (t) => {
            const day = days.findIndex(([d]) => d === dayOf(new Date(t.measured_at), timeZone));
            return PALETTE[Math.max(0, day) % PALETTE.length];
          },
        }),
      ],
    };
  }, [days, unit, treatments, timeZone]);
  if (days.length === 0) return <p class="empty">No glucose readings in these days.</p>;
  const label =
    `Daily glucose overlays: ${days.length} days (${days[0][0]} to ${days[days.length - 1][0]}), each drawn over 24 hours ` +
    `from local midnight; the standard target range is shaded.` +
    (treatments.length > 0 ? ` Treatments, at their time of day in their day's colour: ${treatmentsInWords(treatments)}.` : '');
  return (
    <div class="chart">
      <Plot options={options} data={data} height={340} label={label} />
      <p class="help">Each line is one day in the patient's time zone; the legend above names the days.</p>
    </div>
  );
}
