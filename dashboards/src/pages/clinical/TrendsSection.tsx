// Glucose trends (GET /v1/patients/{id}/trends/glucose): the AGP and the consensus metrics
// against the patient's targets, over the last 7 to 90 days.

import { useState } from 'preact/hooks';
import { api, type GlucoseTrend, type GlucoseUnit } from '../../api';
import { AgpChart } from '../../charts/AgpChart';
import { ErrorNotice, Loading } from '../../components/common';
import { TimeInRangeBar, TimeInRangeKey } from '../../components/TimeInRange';
import { saveFile } from '../../download';
import { dayOf, formatDate, formatGlucose, formatPercent } from '../../format';
import { useAsync } from '../../hooks';
import { isRefusal, NotShared } from '../ClinicalPatient';

export const PERIODS = [7, 14, 30, 90];

export function PeriodChoice(props: { value: number; onChange: (days: number) => void }) {
  return (
    <div class="segmented" role="group" aria-label="Period">
      {PERIODS.map((days) => (
        <button
          type="button"
          key={days}
          class="button button-small"
          aria-pressed={props.value === days}
          onClick={() => props.onChange(days)}
        >
          {days} days
        </button>
      ))}
    </div>
  );
}

const INSUFFICIENT: Record<string, string> = {
  fewer_than_14_days: 'fewer than 14 days',
  cgm_active_below_70_percent: 'the sensor was active less than 70 % of the time',
};

export function TrendsSection(props: { patientId: string; unit: GlucoseUnit; timeZone: string; shared: boolean }) {
  const [days, setDays] = useState(14);
  const trend = useAsync(
    () => (props.shared ? api.glucoseTrend(props.patientId, days, props.unit) : Promise.resolve(null)),
    [props.patientId, days, props.unit, props.shared],
  );
  if (!props.shared || isRefusal(trend.error)) return <NotShared what="The patient's glucose trends are" />;
  return (
    <section aria-labelledby="trends-heading" class="card">
      <div class="toolbar">
        <h2 id="trends-heading">Glucose trends</h2>
        <PeriodChoice value={days} onChange={setDays} />
        <AgpReportButton patientId={props.patientId} days={days} unit={props.unit} timeZone={props.timeZone} />
      </div>
      {trend.error ? (
        <ErrorNotice error={trend.error} what="the glucose trends" />
      ) : !trend.data ? (
        <Loading what="the glucose trends" />
      ) : (
        <TrendBody trend={trend.data} timeZone={props.timeZone} />
      )}
    </section>
  );
}

/** Downloads the printable AGP report (PDF) of the period shown, with the same figures. */
function AgpReportButton(props: { patientId: string; days: number; unit: GlucoseUnit; timeZone: string }) {
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<unknown>(null);
  const print = async () => {
    setBusy(true);
    setProblem(null);
    try {
      const blob = await api.agpReport(props.patientId, props.days, props.unit);
      saveFile(blob, `agp-${dayOf(new Date(), props.timeZone)}-${props.days}d.pdf`);
    } catch (error) {
      setProblem(error);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" class="button" disabled={busy} onClick={print} data-testid="agp-report">
        {busy ? 'Preparing…' : 'AGP report (PDF)'}
      </button>
      {problem ? <ErrorNotice error={problem} what="the AGP report" /> : null}
    </>
  );
}

function TrendBody(props: { trend: GlucoseTrend; timeZone: string }) {
  const { trend } = props;
  const m = trend.metrics;
  const t = trend.targets;
  const unit = trend.unit;
  const target = { low: t.range_low, high: t.range_high };
  return (
    <>
      <p class="muted" data-testid="trend-window">
        {formatDate(trend.window.first_day + 'T12:00:00Z', 'UTC')} – {formatDate(trend.window.last_day + 'T12:00:00Z', 'UTC')} (
        {trend.window.calendar_days} days, {m.readings} readings){trend.window.data_since ? '; the grant shows data only since then' : ''}.
      </p>
      <p class={m.sufficient ? 'notice notice-ok' : 'notice notice-warning'} data-testid="sufficiency">
        {m.sufficient
          ? 'Enough data for the consensus metrics (14 days, sensor active at least 70 % of the time).'
          : `Too little data for a reliable judgement: ${m.insufficient_reasons.map((r) => INSUFFICIENT[r] ?? r).join(' and ')}. The figures are shown, but read them with care.`}
      </p>
      <h3>Time in ranges</h3>
      <TimeInRangeKey unit={unit} />
      <TimeInRangeBar
        shares={{
          veryLow: m.time_very_low_percent,
          low: m.time_low_percent,
          inRange: m.time_in_range_percent,
          high: m.time_high_percent,
          veryHigh: m.time_very_high_percent,
        }}
      />
      <h3>Ambulatory glucose profile</h3>
      <AgpChart agp={trend.agp} unit={unit} target={target} />
      <MetricsTable trend={trend} />
    </>
  );
}

function MetricsTable(props: { trend: GlucoseTrend }) {
  const { metrics: m, targets: t, unit } = props.trend;
  const g = (v: number | null) => (v === null ? '–' : `${formatGlucose(v, unit)} ${unit}`);
  const low = unit === 'mmol/L' ? '3.9' : '70';
  const veryLow = unit === 'mmol/L' ? '3.0' : '54';
  const high = unit === 'mmol/L' ? '10.0' : '180';
  const veryHigh = unit === 'mmol/L' ? '13.9' : '250';
  const range = `${formatGlucose(t.range_low, unit)}–${formatGlucose(t.range_high, unit)}`;
  const rows: { label: string; value: string; target: string; met: boolean | null }[] = [
    {
      label: `Time in range ${low}–${high} ${unit} (TIR)`,
      value: formatPercent(m.time_in_range_percent),
      target: '',
      met: null,
    },
    {
      label: `Time in the patient's target range ${range} ${unit}`,
      value: formatPercent(m.time_in_target_percent),
      target: `> ${t.time_in_range_min_percent} %`,
      met: m.time_in_target_percent === null ? null : m.time_in_target_percent > t.time_in_range_min_percent,
    },
    {
      label: `Time below ${formatGlucose(t.range_low, unit)} ${unit} (TBR)`,
      value: formatPercent(m.time_below_target_percent),
      target: `< ${t.time_below_range_max_percent} %`,
      met: m.time_below_target_percent === null ? null : m.time_below_target_percent < t.time_below_range_max_percent,
    },
    {
      label: `Time below ${veryLow} ${unit} (TBR level 2)`,
      value: formatPercent(m.time_very_low_percent),
      target: `< ${t.time_below_54_max_percent} %`,
      met: m.time_very_low_percent === null ? null : m.time_very_low_percent < t.time_below_54_max_percent,
    },
    {
      label: `Time above ${formatGlucose(t.range_high, unit)} ${unit} (TAR)`,
      value: formatPercent(m.time_above_target_percent),
      target: `< ${t.time_above_range_max_percent} %`,
      met: m.time_above_target_percent === null ? null : m.time_above_target_percent < t.time_above_range_max_percent,
    },
    {
      label: `Time above ${veryHigh} ${unit} (TAR level 2)`,
      value: formatPercent(m.time_very_high_percent),
      target: `< ${t.time_above_250_max_percent} %`,
      met: m.time_very_high_percent === null ? null : m.time_very_high_percent < t.time_above_250_max_percent,
    },
    {
      label: 'Coefficient of variation (CV)',
      value: formatPercent(m.cv_percent),
      target: `≤ ${t.cv_max_percent} %`,
      met: m.cv_percent === null ? null : m.cv_percent <= t.cv_max_percent,
    },
    { label: 'Glucose management indicator (GMI)', value: formatPercent(m.gmi_percent), target: '', met: null },
    { label: 'Mean glucose', value: g(m.mean), target: '', met: null },
    {
      label: 'Sensor wear (CGM active)',
      value: formatPercent(m.cgm_active_percent),
      target: '≥ 70 %',
      met: m.cgm_active_percent === null ? null : m.cgm_active_percent >= 70,
    },
    {
      label: 'Days with data',
      value: `${m.days_with_data} of ${m.calendar_days}`,
      target: '≥ 14 days',
      met: m.days_with_data >= 14,
    },
  ];
  return (
    <table class="data-table metrics-table" data-testid="metrics-table">
      <caption>
        Consensus metrics against the patient's targets ({t.preset.replaceAll('_', ' ')})
      </caption>
      <thead>
        <tr>
          <th scope="col">Metric</th>
          <th scope="col">Value</th>
          <th scope="col">Target</th>
          <th scope="col">Met</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((r) => (
          <tr key={r.label}>
            <th scope="row">{r.label}</th>
            <td class="number">{r.value}</td>
            <td>{r.target || '–'}</td>
            <td class={r.met === null ? undefined : r.met ? 'met' : 'not-met'}>
              {r.met === null ? '–' : r.met ? 'Yes' : 'No'}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
