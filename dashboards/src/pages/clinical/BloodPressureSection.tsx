// Blood pressure (GET /v1/patients/{id}/trends/blood-pressure): the readings (or, under a
// trends-only grant, the daily means) over the ACC/AHA 2017 category bands, and the means of
// the period: overall, morning, evening, and the 7-day home protocol when the data allow.

import { useState } from 'preact/hooks';
import { api, type BloodPressurePoint, type BloodPressureTrend, type PressurePair } from '../../api';
import { BloodPressureChart } from '../../charts/BloodPressureChart';
import { ErrorNotice, Loading } from '../../components/common';
import { bpCategoryInWords, formatDate, formatPercent, startOfDay } from '../../format';
import { useAsync } from '../../hooks';
import { isRefusal, NotShared } from '../ClinicalPatient';
import { PeriodChoice } from './TrendsSection';

const pair = (p: PressurePair | null) =>
  p ? `${Math.round(p.systolic)}/${Math.round(p.diastolic)} mm Hg (${p.readings} readings)` : '–';

export function BloodPressureSection(props: { patientId: string; timeZone: string; shared: boolean; readings: boolean }) {
  const [days, setDays] = useState(14);
  const trend = useAsync(
    () => (props.shared ? api.bloodPressureTrend(props.patientId, days) : Promise.resolve(null)),
    [props.patientId, days, props.shared],
  );
  const points = useAsync((): Promise<BloodPressurePoint[] | null> => {
    if (!props.shared) return Promise.resolve(null);
    if (!props.readings) return Promise.resolve(null);
    const to = new Date();
    return api.bloodPressure(props.patientId, { from: new Date(to.getTime() - days * 86_400_000), to });
  }, [props.patientId, days, props.shared, props.readings]);

  if (!props.shared || isRefusal(trend.error)) return <NotShared what="The patient's blood pressure is" />;
  const t = trend.data;
  return (
    <section aria-labelledby="bp-trend-heading" class="card">
      <div class="toolbar">
        <h2 id="bp-trend-heading">Blood pressure</h2>
        <PeriodChoice value={days} onChange={setDays} />
      </div>
      {trend.error ? (
        <ErrorNotice error={trend.error} what="the blood-pressure trends" />
      ) : !t ? (
        <Loading what="the blood-pressure trends" />
      ) : (
        <>
          <Means trend={t} timeZone={props.timeZone} />
          {props.readings ? (
            points.error ? (
              <ErrorNotice error={points.error} what="blood-pressure readings" />
            ) : !points.data ? (
              <Loading what="blood-pressure readings" />
            ) : (
              <BloodPressureChart
                points={points.data}
                timeZone={props.timeZone}
                range={{ from: new Date(t.window.start), to: new Date(t.window.end) }}
                categoryBands
              />
            )
          ) : (
            <>
              <p class="help">The patient shares trends only: the chart shows each day's mean, not single readings.</p>
              <BloodPressureChart
                points={dailyMeans(t, props.timeZone)}
                timeZone={props.timeZone}
                range={{ from: new Date(t.window.start), to: new Date(t.window.end) }}
                categoryBands
                what="daily means"
              />
            </>
          )}
        </>
      )}
    </section>
  );
}

/** Each day's mean as a point at local noon (for trends-only grants). */
function dailyMeans(trend: BloodPressureTrend, timeZone: string): BloodPressurePoint[] {
  return trend.daily
    .filter((d) => d.mean_systolic !== null && d.mean_diastolic !== null)
    .map((d) => ({
      measured_at: new Date(startOfDay(d.date, timeZone).getTime() + 12 * 3_600_000).toISOString(),
      systolic: Math.round(d.mean_systolic as number),
      diastolic: Math.round(d.mean_diastolic as number),
      pulse: d.pulse.mean === null ? null : Math.round(d.pulse.mean),
      device_id: 'daily-mean',
    }));
}

function Means(props: { trend: BloodPressureTrend; timeZone: string }) {
  const m = props.trend.metrics;
  const home = props.trend.home_protocol;
  return (
    <dl class="facts bp-means" data-testid="bp-means">
      <dt>Mean of the period</dt>
      <dd>
        {m.mean_systolic === null
          ? 'No readings'
          : `${Math.round(m.mean_systolic)}/${Math.round(m.mean_diastolic ?? 0)} mm Hg over ${m.readings} readings`}
      </dd>
      <dt>Category of the mean</dt>
      <dd>
        {m.category ? <span class={`bp-category bp-${m.category}`}>{bpCategoryInWords(m.category)}</span> : '–'}
        {m.low && ' (low: below 90/60)'}
      </dd>
      <dt>Morning mean (04:00–11:59)</dt>
      <dd data-testid="bp-morning">{pair(m.morning)}</dd>
      <dt>Evening mean (16:00–23:59)</dt>
      <dd data-testid="bp-evening">{pair(m.evening)}</dd>
      <dt>Readings at or above 130/80</dt>
      <dd>{formatPercent(m.at_or_above_130_80_percent)}</dd>
      <dt>Pulse</dt>
      <dd>{m.pulse.mean === null ? '–' : `${Math.round(m.pulse.mean)} /min`}</dd>
      <dt>7-day home protocol</dt>
      <dd>
        {home
          ? `${Math.round(home.mean_systolic)}/${Math.round(home.mean_diastolic)} mm Hg, ${bpCategoryInWords(home.category)} ` +
            `(${formatDate(home.first_day + 'T12:00:00Z', 'UTC')} – ${formatDate(home.last_day + 'T12:00:00Z', 'UTC')}, first day discarded)`
          : 'No complete 7-day run of morning and evening readings in this period.'}
      </dd>
    </dl>
  );
}
