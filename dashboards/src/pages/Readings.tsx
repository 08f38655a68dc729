// A patient's readings over a period: latest values, the glucose trace and blood pressure.
// Shared by the patient's own page and the care team's patient page; it asks the API only for
// the categories the caller may read, so the patient's access log holds no needless refusals.

import { useMemo, useState } from 'preact/hooks';
import { api, type GlucoseUnit } from '../api';
import { BloodPressureChart } from '../charts/BloodPressureChart';
import { type ChartMarker, GlucoseChart } from '../charts/GlucoseChart';
import { ErrorNotice, Loading } from '../components/common';
import { type ChosenRange, RangePicker, presetRange } from '../components/RangePicker';
import { UnitSwitch } from '../components/UnitSwitch';
import { age, formatDateTime, formatGlucose, MG_DL_PER_MMOL_L } from '../format';
import { useAsync, useStoredPreference } from '../hooks';
import { GLUCOSE_UNITS } from '../units';

/** The target range in the unit the readings came in (they may still be the previous unit's). */
function targetIn(unit: GlucoseUnit, mgDl: { low: number; high: number } | undefined) {
  if (!mgDl) return undefined;
  const convert = (v: number) => (unit === 'mmol/L' ? v / MG_DL_PER_MMOL_L : v);
  return { low: convert(mgDl.low), high: convert(mgDl.high) };
}

/** Why a category is not shown, or null when the caller may read its readings. */
export type Readable = null | string;

export function Readings(props: {
  patientId: string;
  timeZone: string;
  glucose: Readable;
  bloodPressure: Readable;
  /** Whether treatments (insulin, carbohydrates, …) are drawn on the glucose trace: null when
   * the caller may read them. */
  treatments: Readable;
  /** The unit chosen by the page around (else this view's own, remembered, choice). */
  unit?: GlucoseUnit;
  onUnitChange?: (unit: GlucoseUnit) => void;
  /** The patient's target range in mg/dL, when the caller may read it. */
  targetMgDl?: { low: number; high: number };
  markers?: ChartMarker[];
  /** Said under the glucose heading (e.g. where the target range comes from). */
  glucoseNote?: string;
}) {
  const { patientId, timeZone } = props;
  const [range, setRange] = useState<ChosenRange>(() => presetRange('14d'));
  const [ownUnit, setOwnUnit] = useStoredPreference<GlucoseUnit>('chronicle.glucose-unit', GLUCOSE_UNITS, 'mg/dL');
  const unit = props.unit ?? ownUnit;
  const setUnit = props.onUnitChange ?? setOwnUnit;

  const glucose = useAsync(
    () => (props.glucose === null ? api.glucose(patientId, range, unit) : Promise.resolve(null)),
    [patientId, range, unit, props.glucose],
  );
  const pressure = useAsync(
    () => (props.bloodPressure === null ? api.bloodPressure(patientId, range) : Promise.resolve(null)),
    [patientId, range, props.bloodPressure],
  );

  // Treatments give the trace its context; a caller who may not read them asks for none.
  const treatments = useAsync(
    () =>
      props.treatments === null && props.glucose === null
        ? api.treatments(patientId, range)
        : Promise.resolve(undefined),
    [patientId, range, props.treatments, props.glucose],
  );

  const markers = useMemo(
    () => props.markers?.filter((m) => m.at >= range.from.getTime() / 1000 && m.at <= range.to.getTime() / 1000),
    [props.markers, range],
  );

  const latestGlucose = glucose.data?.reduce<(typeof glucose.data)[number] | null>(
    (a, b) => (a === null || b.measured_at > a.measured_at ? b : a),
    null,
  );
  const latestPressure = pressure.data?.reduce<(typeof pressure.data)[number] | null>(
    (a, b) => (a === null || b.measured_at > a.measured_at ? b : a),
    null,
  );

  return (
    <div class="readings">
      <div class="toolbar">
        <RangePicker value={range} timeZone={timeZone} onChange={setRange} />
        {props.glucose === null && !props.onUnitChange && <UnitSwitch value={unit} onChange={setUnit} />}
      </div>

      <dl class="latest" aria-label="Latest readings in this period">
        <div class="latest-item">
          <dt>Latest glucose</dt>
          <dd data-testid="latest-glucose">
            {latestGlucose ? (
              <>
                <strong>
                  {formatGlucose(latestGlucose.value, latestGlucose.unit)} {latestGlucose.unit}
                </strong>
                <span class="muted">
                  {' '}
                  {age(latestGlucose.measured_at)} ({formatDateTime(latestGlucose.measured_at, timeZone)})
                </span>
              </>
            ) : (
              '–'
            )}
          </dd>
        </div>
        <div class="latest-item">
          <dt>Latest blood pressure</dt>
          <dd data-testid="latest-blood-pressure">
            {latestPressure ? (
              <>
                <strong>
                  {latestPressure.systolic}/{latestPressure.diastolic} mm Hg
                </strong>
                <span class="muted">
                  {' '}
                  {age(latestPressure.measured_at)} ({formatDateTime(latestPressure.measured_at, timeZone)})
                </span>
              </>
            ) : (
              '–'
            )}
          </dd>
        </div>
      </dl>

      <section aria-labelledby="glucose-heading" class="card">
        <h2 id="glucose-heading">Glucose</h2>
        {props.glucoseNote && props.glucose === null && <p class="help section-note">{props.glucoseNote}</p>}
        {props.glucose !== null ? (
          <p class="empty">{props.glucose}</p>
        ) : glucose.error ? (
          <ErrorNotice error={glucose.error} what="glucose readings" />
        ) : !glucose.data ? (
          <Loading what="glucose readings" />
        ) : (
          <GlucoseChart
            points={glucose.data}
            unit={glucose.data[0]?.unit ?? unit}
            timeZone={timeZone}
            range={range}
            target={targetIn(glucose.data[0]?.unit ?? unit, props.targetMgDl)}
            markers={markers}
            treatments={treatments.data}
          />
        )}
        {treatments.error !== undefined && <ErrorNotice error={treatments.error} what="treatments" />}
      </section>

      <section aria-labelledby="bp-heading" class="card">
        <h2 id="bp-heading">Blood pressure</h2>
        {props.bloodPressure !== null ? (
          <p class="empty">{props.bloodPressure}</p>
        ) : pressure.error ? (
          <ErrorNotice error={pressure.error} what="blood-pressure readings" />
        ) : !pressure.data ? (
          <Loading what="blood-pressure readings" />
        ) : (
          <BloodPressureChart points={pressure.data} timeZone={timeZone} range={range} />
        )}
      </section>
    </div>
  );
}
