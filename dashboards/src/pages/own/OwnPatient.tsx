// The patient's own pages, for the patient and for a guardian acting for them.

import { api, type GlucoseUnit, type Me, type PatientListItem } from '../../api';
import { Link, usePageTitle } from '../../components/common';
import { browserTimeZone, describeTimeZone, formatDateTime } from '../../format';
import { useAsync, useStoredPreference } from '../../hooks';
import { type PatientSection, patientPath } from '../../router';
import { GLUCOSE_UNITS } from '../../units';
import { AlertsSection } from '../clinical/AlertsSection';
import { Readings } from '../Readings';
import { AccessLog } from './AccessLog';
import { Sharing } from './Sharing';
import { YourData } from './YourData';

const TABS: { section: PatientSection; label: string }[] = [
  { section: 'readings', label: 'Readings' },
  { section: 'alerts', label: 'Alerts' },
  { section: 'sharing', label: 'Sharing' },
  { section: 'access-log', label: 'Access log' },
  { section: 'data', label: 'Your data' },
];

export interface OwnProps {
  me: Me;
  patient: PatientListItem;
  timeZone: string;
  /** The patient themself (not a guardian): only they name or remove guardians. */
  isPatient: boolean;
}

export function OwnPatient(props: { me: Me; patient: PatientListItem; section: PatientSection }) {
  const { patient, section } = props;
  const isPatient = patient.basis === 'own';
  const name = patient.display_name ?? '';
  const tab = TABS.find((t) => t.section === section) ?? TABS[0];
  usePageTitle(`${isPatient ? 'Your' : `${name}'s`} ${tab.label.toLowerCase()}`);
  const timeZone = patient.time_zone ?? browserTimeZone();
  const own: OwnProps = { me: props.me, patient, timeZone, isPatient };
  const [unit] = useStoredPreference<GlucoseUnit>('chronicle.glucose-unit', GLUCOSE_UNITS, 'mg/dL');
  return (
    <main id="main">
      <div class="page-heading">
        <h1 tabIndex={-1}>{isPatient ? name : `${name} (you are their guardian)`}</h1>
        <p class="muted" data-testid="patient-time-zone">
          Times are shown in {describeTimeZone(timeZone)}.
        </p>
      </div>
      <EmergencyNotice patientId={patient.patient_id} timeZone={timeZone} />
      <nav class="tabs" aria-label="Your record">
        {TABS.map((t) => (
          <Link key={t.section} href={patientPath(patient.patient_id, t.section)} current={t.section === section}>
            {t.label}
          </Link>
        ))}
      </nav>
      {section === 'readings' && (
        <Readings patientId={patient.patient_id} timeZone={timeZone} glucose={null} bloodPressure={null} treatments={null} />
      )}
      {section === 'alerts' && (
        <AlertsSection
          patientId={patient.patient_id}
          unit={unit}
          timeZone={timeZone}
          shared={true}
          side="family"
          me={props.me}
          patientName={name}
        />
      )}
      {section === 'sharing' && <Sharing {...own} />}
      {section === 'access-log' && <AccessLog {...own} />}
      {section === 'data' && <YourData {...own} />}
    </main>
  );
}

/** An emergency access open on the record now, with who opened it and why: the patient (and a
 * guardian) see it on every page of their record, not only in the access log. */
function EmergencyNotice(props: { patientId: string; timeZone: string }) {
  const accesses = useAsync(() => api.emergencyAccesses(props.patientId), [props.patientId]);
  const open = (accesses.data ?? []).filter((a) => a.open);
  if (open.length === 0) return null;
  return (
    <div class="notice notice-warning" role="status" data-testid="emergency-notice">
      {open.map((a) => (
        <p key={a.id}>
          <strong>{a.clinician_name}</strong> opened this record in an emergency on{' '}
          {formatDateTime(a.opened_at, props.timeZone)}, until {formatDateTime(a.expires_at, props.timeZone)}: “
          {a.reason}”. It appears in the access log.
        </p>
      ))}
    </div>
  );
}
