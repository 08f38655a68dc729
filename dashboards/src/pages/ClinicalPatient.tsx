// The care team's page for one patient: what the patient shares with the user, the glucose
// trace (zoomable) and blood pressure, in the patient's time zone. Phase 2 adds the AGP and
// consensus metrics, daily overlays, blood-pressure categories and means, and the alerts with
// acknowledge and resolve; each is a section here reading its own endpoint.

import type { Me, PatientListItem } from '../api';
import { usePageTitle } from '../components/common';
import { browserTimeZone, describeTimeZone, sharedInWords } from '../format';
import { Readings } from './Readings';

/** Why a category's readings are not shown, or null when a grant allows reading them. */
export function readable(patient: PatientListItem, category: string, what: string): string | null {
  const grants = patient.shared.filter((s) => s.categories.includes(category));
  if (grants.some((s) => s.access.includes('view_readings'))) return null;
  if (grants.some((s) => s.access.includes('view_trends'))) {
    return `The patient shares only trends of their ${what} with you, not single readings.`;
  }
  return `The patient does not share their ${what} with you.`;
}

export function ClinicalPatient(props: { me: Me; patient: PatientListItem }) {
  const { patient } = props;
  const name = patient.display_name ?? '';
  usePageTitle(name);
  const timeZone = patient.time_zone ?? browserTimeZone();
  return (
    <main id="main">
      <div class="page-heading">
        <h1 tabIndex={-1}>{name}</h1>
        <p class="muted" data-testid="patient-time-zone">
          Times are in the patient's time zone: {describeTimeZone(timeZone)}
        </p>
      </div>
      <section aria-labelledby="shared-heading" class="card">
        <h2 id="shared-heading">What {name} shares with you</h2>
        <ul class="plain">
          {patient.shared.map((s, i) => (
            <li key={i}>{sharedInWords(s, timeZone)}</li>
          ))}
        </ul>
      </section>
      <Readings
        patientId={patient.patient_id}
        timeZone={timeZone}
        glucose={readable(patient, 'glucose', 'glucose')}
        bloodPressure={readable(patient, 'blood_pressure', 'blood pressure')}
      />
    </main>
  );
}
