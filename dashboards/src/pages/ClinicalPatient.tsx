// The care team's page for one patient, in sections (router.ts `ClinicalSection`): readings
// (the glucose trace with the patient's target band and alert markers, blood pressure), trends
// (AGP and the consensus metrics with the patient's targets), daily overlays, blood pressure
// (category bands, morning and evening means) and alerts (acknowledge, resolve). Each section
// reads its own endpoint and shows only what the API returns: a section the API refuses says
// it is not shared.

import { useMemo } from 'preact/hooks';
import { ApiError, api, type DataCategory, type GlucoseUnit, type Me, type PatientListItem } from '../api';
import type { ChartMarker } from '../charts/GlucoseChart';
import { Link, usePageTitle } from '../components/common';
import { UnitSwitch } from '../components/UnitSwitch';
import { browserTimeZone, describeTimeZone, ruleInWords, sharedInWords } from '../format';
import { useAsync, useStoredPreference } from '../hooks';
import { type ClinicalSection, patientPath } from '../router';
import { GLUCOSE_UNITS } from '../units';
import { AlertsSection, alertSide } from './clinical/AlertsSection';
import { BloodPressureSection } from './clinical/BloodPressureSection';
import { DailySection } from './clinical/DailySection';
import { TrendsSection } from './clinical/TrendsSection';
import { Readings } from './Readings';

/** Why a category's readings are not shown, or null when a grant allows reading them. */
export function readable(patient: PatientListItem, category: DataCategory, what: string): string | null {
  const grants = patient.shared.filter((s) => s.categories.includes(category));
  if (grants.some((s) => s.access.includes('view_readings'))) return null;
  if (grants.some((s) => s.access.includes('view_trends'))) {
    return `The patient shares only trends of their ${what} with you, not single readings.`;
  }
  return `The patient does not share their ${what} with you.`;
}

/** Whether a grant lets the user see trends of the category (readings include trends). */
export function trendsShared(patient: PatientListItem, category: DataCategory): boolean {
  return patient.shared.some(
    (s) => s.categories.includes(category) && (s.access.includes('view_trends') || s.access.includes('view_readings')),
  );
}

/** Whether a grant lets the user receive the patient's alerts. */
export function alertsShared(patient: PatientListItem): boolean {
  return patient.shared.some((s) => s.access.includes('receive_alerts'));
}

export const NOT_SHARED = 'not shared with you';

/** A section's answer when the API refused it (or the grants say it would). */
export function NotShared(props: { what: string }) {
  return (
    <p class="notice empty" data-testid="section-not-shared">
      {props.what} {NOT_SHARED}. The patient decides what they share; nothing is shown in its place.
    </p>
  );
}

export function isRefusal(error: unknown): boolean {
  return error instanceof ApiError && error.notShared;
}

const TABS: { section: ClinicalSection; label: string }[] = [
  { section: 'readings', label: 'Readings' },
  { section: 'trends', label: 'Trends (AGP)' },
  { section: 'daily', label: 'Daily overlays' },
  { section: 'blood-pressure', label: 'Blood pressure' },
  { section: 'alerts', label: 'Alerts' },
];

export function ClinicalPatient(props: { me: Me; patient: PatientListItem; section: ClinicalSection }) {
  const { patient, section } = props;
  const name = patient.display_name ?? '';
  const tab = TABS.find((t) => t.section === section) ?? TABS[0];
  usePageTitle(`${name}: ${tab.label.toLowerCase()}`);
  const timeZone = patient.time_zone ?? browserTimeZone();
  const [unit, setUnit] = useStoredPreference<GlucoseUnit>('chronicle.glucose-unit', GLUCOSE_UNITS, 'mg/dL');
  const id = patient.patient_id;
  const receivesAlerts = alertsShared(patient);

  return (
    <main id="main">
      <div class="page-heading toolbar">
        <div>
          <h1 tabIndex={-1}>{name}</h1>
          <p class="muted" data-testid="patient-time-zone">
            Times are in the patient's time zone: {describeTimeZone(timeZone)}
          </p>
        </div>
        <UnitSwitch value={unit} onChange={setUnit} />
      </div>
      <details class="card shared-summary">
        <summary>What {name} shares with you</summary>
        <ul class="plain">
          {patient.shared.map((s, i) => (
            <li key={i}>{sharedInWords(s, timeZone)}</li>
          ))}
        </ul>
      </details>
      <nav class="tabs" aria-label="Patient record">
        {TABS.map((t) => (
          <Link key={t.section} href={patientPath(id, t.section)} current={t.section === section}>
            {t.label}
          </Link>
        ))}
      </nav>
      {section === 'readings' && (
        <ClinicalReadings patient={patient} timeZone={timeZone} unit={unit} setUnit={setUnit} receivesAlerts={receivesAlerts} />
      )}
      {section === 'trends' && (
        <TrendsSection patientId={id} unit={unit} timeZone={timeZone} shared={trendsShared(patient, 'glucose')} />
      )}
      {section === 'daily' && (
        <DailySection
          patientId={id}
          unit={unit}
          timeZone={timeZone}
          refusal={readable(patient, 'glucose', 'glucose')}
          treatmentsRefusal={readable(patient, 'treatments', 'treatments')}
        />
      )}
      {section === 'blood-pressure' && (
        <BloodPressureSection
          patientId={id}
          timeZone={timeZone}
          shared={trendsShared(patient, 'blood_pressure')}
          readings={readable(patient, 'blood_pressure', 'blood pressure') === null}
        />
      )}
      {section === 'alerts' && (
        <AlertsSection
          patientId={id}
          unit={unit}
          timeZone={timeZone}
          shared={receivesAlerts}
          side={alertSide(patient)}
          me={props.me}
        />
      )}
    </main>
  );
}

/** The readings with the patient's own target band and their alerts marked on the trace. */
function ClinicalReadings(props: {
  patient: PatientListItem;
  timeZone: string;
  unit: GlucoseUnit;
  setUnit: (unit: GlucoseUnit) => void;
  receivesAlerts: boolean;
}) {
  const { patient, unit, receivesAlerts } = props;
  const id = patient.patient_id;
  const glucose = readable(patient, 'glucose', 'glucose');
  // Targets and alerts need a grant to receive alerts; without one the standard range is shown.
  const targets = useAsync(
    () => (receivesAlerts && glucose === null ? api.targets(id).catch(() => null) : Promise.resolve(null)),
    [id, receivesAlerts, glucose],
  );
  const alerts = useAsync(
    () =>
      receivesAlerts && glucose === null
        ? api.patientAlerts(id, { category: 'glucose', limit: 500 }).catch(() => null)
        : Promise.resolve(null),
    [id, receivesAlerts, glucose],
  );
  const target = targets.data
    ? { low: targets.data.glucose_targets.range_low_mg_dl, high: targets.data.glucose_targets.range_high_mg_dl }
    : undefined;
  const markers = useMemo(
    (): ChartMarker[] | undefined =>
      alerts.data?.items.map((a) => ({
        at: Date.parse(a.triggered_at) / 1000,
        severity: a.severity,
        label: `${ruleInWords(a.rule)}${a.kind === 'historical' ? ' (found in late data)' : ''}`,
      })),
    [alerts.data],
  );
  const note = targets.loading
    ? undefined
    : targets.data
      ? `The shaded band is ${patient.display_name}'s target range (${targets.data.glucose_targets.preset.replaceAll('_', ' ')}); alerts are marked as vertical lines.`
      : "The patient's own targets are not shared with you: the standard 70–180 mg/dL (3.9–10.0 mmol/L) range is shaded.";
  return (
    <Readings
      patientId={id}
      timeZone={props.timeZone}
      glucose={glucose}
      bloodPressure={readable(patient, 'blood_pressure', 'blood pressure')}
      treatments={readable(patient, 'treatments', 'treatments')}
      unit={unit}
      onUnitChange={props.setUnit}
      targetMgDl={targets.loading ? undefined : target}
      markers={markers}
      glucoseNote={note}
    />
  );
}
