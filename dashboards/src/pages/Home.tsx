// The start page. Clinicians and caregivers get the risk-ordered panel (pages/Panel.tsx);
// the records a patient or guardian holds are listed from GET /v1/patients (a patient with only
// their own record goes straight to it); other roles (research) see what is shared with them.
// A clinician also gets a card per care team for its invitations (pages/TeamInvitations.tsx)
// and one for who the team tells of urgent alerts (pages/TeamEscalation.tsx).

import { Fragment } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, type Me, type PatientListItem } from '../api';
import { ErrorNotice, Link, Loading, usePageTitle } from '../components/common';
import { browserTimeZone, describeTimeZone, sharedInWords } from '../format';
import { useAsync } from '../hooks';
import { navigate, patientPath } from '../router';
import { Panel } from './Panel';
import { TeamEscalation } from './TeamEscalation';
import { TeamInvitationsCard } from './TeamInvitations';

/** Roles whose start page is the panel. */
const PANEL_ROLES = new Set(['clinician', 'caregiver']);

export function Home(props: { me: Me }) {
  usePageTitle('Patients');
  const withPanel = PANEL_ROLES.has(props.me.role);
  // A clinician holds no record of their own: the panel is all they need.
  const patients = useAsync(
    () => (props.me.role === 'clinician' ? Promise.resolve([]) : api.patients()),
    [props.me.role],
  );
  const [search, setSearch] = useState('');

  const onlyOwn =
    patients.data && patients.data.length === 1 && patients.data[0].basis === 'own' ? patients.data[0] : null;
  useEffect(() => {
    if (onlyOwn) navigate(patientPath(onlyOwn.patient_id), { replace: true });
  }, [onlyOwn]);

  const list = patients.data ?? [];
  const needle = search.trim().toLowerCase();
  const matches = (p: PatientListItem) => !needle || (p.display_name ?? '').toLowerCase().includes(needle);
  const own = list.filter((p) => p.basis === 'own');
  const guarded = list.filter((p) => p.basis === 'guardian');
  const shared = list.filter((p) => p.basis === 'grant' && matches(p));

  return (
    <main id="main">
      <h1 tabIndex={-1}>Patients</h1>
      {withPanel && <Panel />}
      {props.me.role === 'clinician' && <CareTeamCards />}
      {patients.error ? (
        <ErrorNotice error={patients.error} what="your patients" />
      ) : !patients.data ? (
        <Loading what="your patients" />
      ) : list.length === 0 ? (
        withPanel ? null : (
        <p class="empty">
          {props.me.role === 'admin'
            ? 'Administrators manage accounts and organizations and see no patient data.'
            : 'No patient shares data with you at the moment. A patient shares by adding a grant for you, your care team or your organization.'}
        </p>
        )
      ) : (
        <>
          {own.length + guarded.length > 0 && (
            <section aria-labelledby="own-heading" class="card">
              <h2 id="own-heading">Your records</h2>
              <ul class="patient-list">
                {[...own, ...guarded].map((p) => (
                  <li key={p.patient_id}>
                    <Link href={patientPath(p.patient_id)}>{p.display_name}</Link>{' '}
                    <span class="muted">{p.basis === 'own' ? 'your own record' : 'you are their guardian'}</span>
                  </li>
                ))}
              </ul>
            </section>
          )}
          {!withPanel && list.some((p) => p.basis === 'grant') && (
            <section aria-labelledby="shared-heading" class="card">
              <h2 id="shared-heading">Shared with you</h2>
              <div class="search">
                <label for="patient-search">Search by name</label>
                <input
                  id="patient-search"
                  type="search"
                  value={search}
                  onInput={(e) => setSearch(e.currentTarget.value)}
                />
              </div>
              <table class="data-table patients-table">
                <caption class="visually-hidden">Patients who share data with you</caption>
                <thead>
                  <tr>
                    <th scope="col">Patient</th>
                    <th scope="col">What they share with you</th>
                    <th scope="col">Time zone</th>
                  </tr>
                </thead>
                <tbody>
                  {shared.map((p) => (
                    <tr key={p.patient_id}>
                      <td>
                        {p.display_name ? (
                          <Link href={patientPath(p.patient_id)}>{p.display_name}</Link>
                        ) : (
                          <span>Study participant {p.patient_id.slice(0, 8)} (de-identified)</span>
                        )}
                      </td>
                      <td>
                        <ul class="plain">
                          {p.shared.map((s, i) => (
                            <li key={i}>{sharedInWords(s, p.time_zone ?? browserTimeZone())}</li>
                          ))}
                        </ul>
                      </td>
                      <td>{p.time_zone ? describeTimeZone(p.time_zone) : '–'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              {shared.length === 0 && <p class="empty">No patient matches “{search}”.</p>}
            </section>
          )}
        </>
      )}
    </main>
  );
}

/** A clinician's care teams, each with its invitations and who it tells of urgent alerts. */
function CareTeamCards() {
  const teams = useAsync(() => api.careTeams(), []);
  if (teams.error) return <ErrorNotice error={teams.error} what="your care teams" />;
  if (!teams.data) return <Loading what="your care teams" />;
  return (
    <>
      {teams.data.map((team) => (
        <Fragment key={team.id}>
          <TeamInvitationsCard team={team} />
          <TeamEscalation team={team} />
        </Fragment>
      ))}
    </>
  );
}
