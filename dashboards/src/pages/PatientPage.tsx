// /patients/{id}: which page a patient's record opens on depends on what the API says the
// user holds for it. The patient and their guardians get the patient's own pages (readings,
// sharing, access log, their data); a care team gets the clinical page. Someone holding
// nothing gets the same answer as for a record that does not exist: nothing.

import { api, type Me, type PatientListItem } from '../api';
import { ErrorNotice, Link, Loading, usePageTitle } from '../components/common';
import { useAsync } from '../hooks';
import { CLINICAL_SECTIONS, OWN_SECTIONS, type PatientSection } from '../router';
import { ClinicalPatient } from './ClinicalPatient';
import { OwnPatient } from './own/OwnPatient';

export function PatientPage(props: { me: Me; patientId: string; section: PatientSection }) {
  // The list says on what basis the user sees the patient, and the patient's time zone; it
  // is asked afresh on every page load, so a revoked grant shows at once.
  const patients = useAsync(() => api.patients(), [props.patientId]);
  if (patients.error) {
    return (
      <main id="main">
        <ErrorNotice error={patients.error} what="the patient" />
      </main>
    );
  }
  if (!patients.data) {
    return (
      <main id="main">
        <Loading what="the patient" />
      </main>
    );
  }
  const patient: PatientListItem | undefined = patients.data.find(
    (p) => p.patient_id === props.patientId && p.display_name !== null,
  );
  if (!patient) return <NothingShared />;
  if (patient.basis === 'grant') {
    const section = CLINICAL_SECTIONS.find((s) => s === props.section);
    return section ? <ClinicalPatient me={props.me} patient={patient} section={section} /> : <NothingShared />;
  }
  const own = OWN_SECTIONS.find((s) => s === props.section);
  return own ? <OwnPatient me={props.me} patient={patient} section={own} /> : <NothingShared />;
}

export function NothingShared() {
  usePageTitle('Nothing to show');
  return (
    <main id="main">
      <h1 tabIndex={-1}>Nothing to show</h1>
      <p data-testid="nothing-shared">
        There is no record here that is shared with you. If a patient has stopped sharing, their data is no longer
        visible. <Link href="/">Back to your patients</Link>.
      </p>
    </main>
  );
}
