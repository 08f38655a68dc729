// The glucose trace of a period: CGM as a line, meter and laboratory readings as dots, the
// target range shaded. Drag across the chart (or use the buttons) to zoom in time;
// double-click or "Whole period" to zoom out again.

import { useMemo, useRef, useState } from 'preact/hooks';
import type uPlot from 'uplot';
import type { GlucosePoint, GlucoseUnit, TimeRange, TreatmentPoint } from '../api';
import {
  capitalize,
  formatDateTime,
  formatGlucose,
  formatShortDateTime,
  TREATMENT_LABELS,
  treatmentAmount,
} from '../format';
import { GLUCOSE_AXIS, TARGET_RANGE } from '../units';
import { Plot, axisStyle, bandPlugin, timeAxis, zonedDates } from './Plot';
import { labelledWhenZoomedIn, treatmentPlugin, treatmentsInWords } from './treatmentMarks';

/** A CGM line is broken where readings are further apart than this (a sensor gap). */
const CGM_GAP_SECONDS = 15 * 60;
const TABLE_ROWS = 50;

/** An alert drawn as a vertical line where its reading was measured. */
export interface ChartMarker {
  /** Unix seconds. */
  at: number;
  severity: string;
  label: string;
}

interface Props {
  points: GlucosePoint[];
  unit: GlucoseUnit;
  timeZone: string;
  range: TimeRange;
  /** The patient's target range in `unit`; the standard 70–180 mg/dL when absent. */
  target?: { low: number; high: number };
  markers?: ChartMarker[];
  /** Treatments in the period, drawn along the bottom of the trace. */
  treatments?: TreatmentPoint[];
}

const MARKER_COLOURS: Record<string, string> = { urgent: '#8a1114', warning: '#b45309', info: '#0b5cad' };

/** Vertical lines at the alerts, with a small flag at the top. */
function markerPlugin(markers: ChartMarker[]): uPlot.Plugin {
  return {
    hooks: {
      draw: (plot) => {
        const { ctx, bbox } = plot;
        ctx.save();
        ctx.lineWidth = 2;
        for (const marker of markers) {
          const x = plot.valToPos(marker.at, 'x', true);
          if (x < bbox.left || x > bbox.left + bbox.width) continue;
          const colour = MARKER_COLOURS[marker.severity] ?? '#4d4d4d';
          ctx.strokeStyle = colour;
          ctx.fillStyle = colour;
          ctx.beginPath();
          ctx.moveTo(x, bbox.top);
          ctx.lineTo(x, bbox.top + bbox.height);
          ctx.stroke();
          ctx.beginPath();
          ctx.moveTo(x, bbox.top);
          ctx.lineTo(x + 10, bbox.top + 6);
          ctx.lineTo(x, bbox.top + 12);
          ctx.fill();
        }
        ctx.restore();
      },
    },
  };
}

/** Aligned columns for uPlot: time, CGM (null breaks the line), other sources (dots). */
function align(points: GlucosePoint[]): uPlot.AlignedData {
  const sorted = [...points].sort((a, b) => a.measured_at.localeCompare(b.measured_at));
  const times: number[] = [];
  const cgm: (number | null | undefined)[] = [];
  const spot: (number | null | undefined)[] = [];
  let lastCgm: number | null = null;
  for (const point of sorted) {
    const t = Date.parse(point.measured_at) / 1000;
    if (point.source === 'cgm') {
      if (lastCgm !== null && t - lastCgm > CGM_GAP_SECONDS) {
        times.push((lastCgm + t) / 2);
        cgm.push(null);
        spot.push(undefined);
      }
      lastCgm = t;
      times.push(t);
      cgm.push(point.value);
      spot.push(undefined);
    } else {
      times.push(t);
      cgm.push(undefined);
      spot.push(point.value);
    }
  }
  return [times, cgm, spot];
}

/** One empty list, so a chart without markers keeps the same options between renders. */
const NO_MARKERS: ChartMarker[] = [];
const NO_TREATMENTS: TreatmentPoint[] = [];

export function GlucoseChart({
  points,
  unit,
  timeZone,
  range,
  target: chosenTarget,
  markers = NO_MARKERS,
  treatments = NO_TREATMENTS,
}: Props) {
  const plot = useRef<uPlot | null>(null);
  const [visible, setVisible] = useState<{ min: number; max: number } | null>(null);
  const whole = { min: range.from.getTime() / 1000, max: range.to.getTime() / 1000 };

  const data = useMemo(() => align(points), [points]);
  const target = chosenTarget ?? TARGET_RANGE[unit];
  const options = useMemo((): Omit<uPlot.Options, 'width' | 'height'> => {
    const axis = GLUCOSE_AXIS[unit];
    const time = timeAxis(timeZone);
    return {
      tzDate: zonedDates(timeZone),
      scales: {
        x: { time: true },
        y: { range: (_u, min, max) => [Math.min(axis.min, min ?? axis.min), Math.max(axis.max, max ?? axis.max)] },
      },
      axes: [time.axis, { ...axisStyle, label: unit, labelFont: '13px system-ui, sans-serif', size: 56 }],
      series: [
        time.series,
        { label: 'CGM', stroke: '#0b5cad', width: 2, spanGaps: false, value: (_u, v) => (v == null ? '–' : `${formatGlucose(v, unit)} ${unit}`) },
        {
          label: 'Meter / lab',
          stroke: '#a4161a',
          fill: '#a4161a',
          width: 0,
          paths: () => null,
          points: { show: true, size: 8, fill: '#a4161a' },
          value: (_u, v) => (v == null ? '–' : `${formatGlucose(v, unit)} ${unit}`),
        },
      ],
      cursor: { drag: { x: true, y: false, setScale: true } },
      plugins: [
        bandPlugin(target.low, target.high, 'rgba(21, 128, 61, 0.12)', '#15803d'),
        markerPlugin(markers),
        treatmentPlugin(treatments, { xOf: (seconds) => seconds, labelled: labelledWhenZoomedIn }),
      ],
      hooks: {
        setScale: [
          (u, key) => {
            if (key === 'x' && u.scales.x.min != null && u.scales.x.max != null) {
              setVisible({ min: u.scales.x.min, max: u.scales.x.max });
            }
          },
        ],
      },
    };
  }, [unit, timeZone, target.low, target.high, markers, treatments]);

  const zoomTo = (min: number, max: number) => {
    const p = plot.current;
    if (!p) return;
    p.setScale('x', { min: Math.max(min, whole.min), max: Math.min(max, whole.max) });
  };
  const zoom = (factor: number) => {
    const current = visible ?? whole;
    const middle = (current.min + current.max) / 2;
    const half = ((current.max - current.min) * factor) / 2;
    zoomTo(middle - half, middle + half);
  };

  if (points.length === 0) {
    return <p class="empty">No glucose readings in this period.</p>;
  }
  const latest = points.reduce((a, b) => (a.measured_at > b.measured_at ? a : b));
  const targetText = `${formatGlucose(target.low, unit)}–${formatGlucose(target.high, unit)} ${unit}`;
  const label =
    `Glucose chart: ${points.length} readings from ${formatDateTime(data[0][0] * 1000, timeZone)} ` +
    `to ${formatDateTime(latest.measured_at, timeZone)}; the target range ${targetText} is shaded. ` +
    `Latest: ${formatGlucose(latest.value, unit)} ${unit}.` +
    (markers.length > 0 ? ` ${markers.length} alert${markers.length === 1 ? '' : 's'} marked: ${markers.map((m) => m.label).join('; ')}.` : '') +
    (treatments.length > 0 ? ` Treatments: ${treatmentsInWords(treatments)}.` : '');
  const latestTreatments = [...treatments]
    .sort((a, b) => b.measured_at.localeCompare(a.measured_at))
    .slice(0, TABLE_ROWS);
  const shown = visible ?? whole;
  const newestFirst = [...points].sort((a, b) => b.measured_at.localeCompare(a.measured_at)).slice(0, TABLE_ROWS);

  return (
    <div class="chart">
      <div class="chart-tools" role="group" aria-label="Zoom the glucose chart">
        <button type="button" class="button button-small" onClick={() => zoom(0.5)}>
          Zoom in
        </button>
        <button type="button" class="button button-small" onClick={() => zoom(2)}>
          Zoom out
        </button>
        <button type="button" class="button button-small" onClick={() => zoomTo(whole.min, whole.max)}>
          Whole period
        </button>
        <span class="chart-visible" aria-live="polite" data-testid="glucose-visible-range">
          Showing {formatShortDateTime(shown.min * 1000, timeZone)} – {formatShortDateTime(shown.max * 1000, timeZone)}
        </span>
      </div>
      <Plot
        options={options}
        data={data}
        height={320}
        label={label}
        onReady={(p) => {
          plot.current = p;
          if (p) p.setScale('x', whole);
        }}
      />
      <p class="chart-key">
        <span class="key key-band" aria-hidden="true" /> Target range {targetText}
        <span class="key key-line" aria-hidden="true" /> CGM
        <span class="key key-dot" aria-hidden="true" /> Meter or laboratory
        {markers.length > 0 && (
          <>
            <span class="key key-marker" aria-hidden="true" /> Alert
          </>
        )}
        {treatments.length > 0 && (
          <>
            <span class="key key-insulin" aria-hidden="true" /> Insulin
            <span class="key key-carbs" aria-hidden="true" /> Carbohydrates
            <span class="key key-exercise" aria-hidden="true" /> Exercise
          </>
        )}
      </p>
      {treatments.length > 0 && (
        <details data-testid="treatments-table">
          <summary>Latest {latestTreatments.length} treatments as a table</summary>
          <table class="data-table">
            <caption class="visually-hidden">Treatments, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Treatment</th>
                <th scope="col">Amount</th>
                <th scope="col">Note</th>
              </tr>
            </thead>
            <tbody>
              {latestTreatments.map((t) => (
                <tr key={`${t.device_id}-${t.kind}-${t.measured_at}`}>
                  <td>{formatDateTime(t.measured_at, timeZone)}</td>
                  <td>{capitalize(TREATMENT_LABELS[t.kind])}</td>
                  <td class="number">{treatmentAmount(t) || '–'}</td>
                  <td>{t.note ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </details>
      )}
      <details>
        <summary>Latest {newestFirst.length} readings as a table</summary>
        <table class="data-table">
          <caption class="visually-hidden">Glucose readings, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Glucose ({unit})</th>
              <th scope="col">Source</th>
            </tr>
          </thead>
          <tbody>
            {newestFirst.map((point) => (
              <tr key={`${point.device_id}-${point.measured_at}`}>
                <td>{formatDateTime(point.measured_at, timeZone)}</td>
                <td class="number">
                  {point.flag ? (point.flag === 'lo' ? '< ' : '> ') : ''}
                  {formatGlucose(point.value, unit)}
                </td>
                <td>{point.source}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </div>
  );
}
