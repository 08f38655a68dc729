// Treatments on a glucose chart: insulin as triangles (filled for a bolus), carbohydrates as
// dots sized by grams, exercise as a bar over its duration, sensor changes as dashed lines,
// notes and calibrations as diamonds; and their summary in words for the chart's description.

import type uPlot from 'uplot';
import type { TreatmentPoint } from '../api';
import { treatmentAmount } from '../format';

const INSULIN_COLOUR = '#5b21b6';
const CARBS_COLOUR = '#b45309';
const EXERCISE_COLOUR = '#15803d';
const OTHER_COLOUR = '#4d4d4d';
/** Amounts are written beside the symbols when at most this much time is shown. */
const LABELLED_SPAN_SECONDS = 3 * 86400;

/** Where a chart puts a treatment: its x value for an instant (seconds), and optionally its
 * colour and whether amounts are written. */
export interface Placement {
  xOf: (seconds: number, t: TreatmentPoint) => number;
  colourOf?: (t: TreatmentPoint) => string;
  labelled?: (plot: uPlot) => boolean;
}

/** On a time axis: amounts are written once at most three days are shown. */
export function labelledWhenZoomedIn(plot: uPlot): boolean {
  return (plot.scales.x.max ?? 0) - (plot.scales.x.min ?? 0) <= LABELLED_SPAN_SECONDS;
}

/** Treatments along the bottom of the trace: insulin as triangles, carbohydrates as dots sized
 * by grams, exercise as a bar over its duration, sensor changes as dashed lines, notes and
 * calibrations as small diamonds. */
export function treatmentPlugin(treatments: TreatmentPoint[], place: Placement): uPlot.Plugin {
  return {
    hooks: {
      draw: (plot) => {
        const { ctx, bbox } = plot;
        const ratio = bbox.height / 320;
        const bottom = bbox.top + bbox.height;
        const labelled = place.labelled?.(plot) ?? false;
        ctx.save();
        ctx.font = `${Math.round(11 * ratio)}px system-ui, sans-serif`;
        ctx.textAlign = 'center';
        for (const t of treatments) {
          const at = Date.parse(t.measured_at) / 1000;
          const x = plot.valToPos(place.xOf(at, t), 'x', true);
          if (x < bbox.left || x > bbox.left + bbox.width) continue;
          const amount = labelled ? treatmentAmount(t) : '';
          switch (t.kind) {
            case 'bolus_insulin':
            case 'basal_insulin': {
              const y = bottom - 14 * ratio;
              const size = 6 * ratio;
              ctx.fillStyle = place.colourOf?.(t) ?? INSULIN_COLOUR;
              ctx.strokeStyle = place.colourOf?.(t) ?? INSULIN_COLOUR;
              ctx.beginPath();
              ctx.moveTo(x - size, y - size);
              ctx.lineTo(x + size, y - size);
              ctx.lineTo(x, y + size);
              ctx.closePath();
              if (t.kind === 'bolus_insulin') ctx.fill();
              else ctx.stroke();
              if (amount) ctx.fillText(amount, x, y - size - 3 * ratio);
              break;
            }
            case 'carbohydrates': {
              const y = bottom - 44 * ratio;
              const radius = Math.min(10, 3 + (t.amount ?? 0) / 15) * ratio;
              ctx.fillStyle = place.colourOf?.(t) ?? CARBS_COLOUR;
              ctx.beginPath();
              ctx.arc(x, y, radius, 0, 2 * Math.PI);
              ctx.fill();
              if (amount) ctx.fillText(amount, x, y - radius - 3 * ratio);
              break;
            }
            case 'exercise': {
              const end = plot.valToPos(place.xOf(at + (t.duration_minutes ?? 30) * 60, t), 'x', true);
              ctx.fillStyle = place.colourOf?.(t) ?? EXERCISE_COLOUR;
              ctx.fillRect(x, bottom - 4 * ratio, Math.max(2, end - x), 4 * ratio);
              break;
            }
            case 'sensor_start':
            case 'sensor_change':
              ctx.strokeStyle = place.colourOf?.(t) ?? OTHER_COLOUR;
              ctx.setLineDash([4 * ratio, 4 * ratio]);
              ctx.beginPath();
              ctx.moveTo(x, bbox.top);
              ctx.lineTo(x, bottom);
              ctx.stroke();
              ctx.setLineDash([]);
              break;
            default: {
              const y = bbox.top + 20 * ratio;
              const size = 5 * ratio;
              ctx.fillStyle = place.colourOf?.(t) ?? OTHER_COLOUR;
              ctx.beginPath();
              ctx.moveTo(x, y - size);
              ctx.lineTo(x + size, y);
              ctx.lineTo(x, y + size);
              ctx.lineTo(x - size, y);
              ctx.closePath();
              ctx.fill();
            }
          }
        }
        ctx.restore();
      },
    },
  };
}

/** "3 boluses (14.5 U), 5 carbohydrate entries (210 g) and 1 sensor change": the treatments of
 * the period for the chart's text description. */
export function treatmentsInWords(treatments: TreatmentPoint[]): string {
  const total = (kind: string) =>
    treatments.filter((t) => t.kind === kind).reduce((sum, t) => sum + (t.amount ?? 0), 0);
  const count = (kinds: string[]) => treatments.filter((t) => kinds.includes(t.kind)).length;
  const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;
  const parts: string[] = [];
  const boluses = count(['bolus_insulin']);
  if (boluses) parts.push(`${plural(boluses, 'bolus', 'boluses')} (${Number(total('bolus_insulin').toFixed(1))} U)`);
  const basal = count(['basal_insulin']);
  if (basal) parts.push(`${plural(basal, 'basal dose', 'basal doses')} (${Number(total('basal_insulin').toFixed(1))} U)`);
  const carbs = count(['carbohydrates']);
  if (carbs) parts.push(`${plural(carbs, 'carbohydrate entry', 'carbohydrate entries')} (${Math.round(total('carbohydrates'))} g)`);
  const exercise = count(['exercise']);
  if (exercise) parts.push(plural(exercise, 'exercise session', 'exercise sessions'));
  const sensors = count(['sensor_start', 'sensor_change']);
  if (sensors) parts.push(plural(sensors, 'sensor change', 'sensor changes'));
  const other = count(['note', 'calibration']);
  if (other) parts.push(plural(other, 'note or calibration', 'notes or calibrations'));
  return parts.length <= 1 ? parts.join('') : `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]}`;
}

