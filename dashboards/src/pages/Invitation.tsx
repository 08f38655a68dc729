// /invitations/{code}: a patient (or guardian) opens a care team's invitation, sees which team
// and clinic asks and what they suggest, chooses what to share, and accepts. Accepting makes
// an ordinary grant, listed (and revocable) on the record's sharing page.

import { useEffect, useState } from 'preact/hooks';
import { api, type InvitationPreview, type Me } from '../api';
import { ErrorNotice, Loading, errorMessage, usePageTitle } from '../components/common';
import { type Scope, ScopeChoice, scopeProblem } from '../components/ScopeChoice';
import { accessInWords, browserTimeZone, capitalize, categoriesInWords, formatDate, purposeInWords } from '../format';
import { useAsync } from '../hooks';
import { navigate, patientPath } from '../router';

const CLOSED: Record<string, string> = {
  expired: 'This invitation has expired. Ask the clinic for a new one.',
  used_up: 'This invitation has already been used. Ask the clinic for a new one.',
  revoked: 'The clinic has withdrawn this invitation.',
};

export function InvitationPage(props: { me: Me; code: string }) {
  usePageTitle('An invitation to share');
  const invitation = useAsync(() => api.openInvitation(props.code), [props.code]);
  const patients = useAsync(() => api.patients(), []);
  const records = (patients.data ?? []).filter((p) => p.basis === 'own' || p.basis === 'guardian');

  return (
    <main id="main">
      <h1 tabIndex={-1}>An invitation to share</h1>
      {invitation.error ? (
        <ErrorNotice error={invitation.error} what="the invitation (check the code)" />
      ) : !invitation.data || !patients.data ? (
        <Loading what="the invitation" />
      ) : (
        <Invitation
          code={props.code}
          invitation={invitation.data}
          records={records.map((r) => ({ id: r.patient_id, name: r.display_name ?? '', own: r.basis === 'own' }))}
          timeZone={records[0]?.time_zone ?? browserTimeZone()}
        />
      )}
    </main>
  );
}

interface RecordChoice {
  id: string;
  name: string;
  own: boolean;
}

function Invitation(props: { code: string; invitation: InvitationPreview; records: RecordChoice[]; timeZone: string }) {
  const { invitation, records } = props;
  const [record, setRecord] = useState(records[0]?.id ?? '');
  const [scope, setScope] = useState<Scope>({
    categories: invitation.categories,
    access: invitation.access,
    purpose: invitation.purpose,
  });
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => setRecord(records[0]?.id ?? ''), [records.length]);

  const team = `${invitation.team_name} at ${invitation.organization_name}`;
  const closed = CLOSED[invitation.state];
  const accept = async (event: Event) => {
    event.preventDefault();
    const invalid = scopeProblem(scope);
    if (invalid) {
      setProblem(invalid);
      return;
    }
    setBusy(true);
    setProblem(null);
    try {
      await api.acceptInvitation(props.code, { patient_id: record, ...scope });
      navigate(patientPath(record, 'sharing'));
    } catch (error) {
      setProblem(errorMessage(error));
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="invitation-heading" class="card">
      <h2 id="invitation-heading">{team} invites you to share your data</h2>
      <p data-testid="invitation-suggestion">
        They suggest: {categoriesInWords(invitation.categories)}; {accessInWords(invitation.access)}; for{' '}
        {purposeInWords(invitation.purpose)}. You decide what they see, and you can revoke it at any time on your sharing
        page. The invitation can be accepted until {formatDate(invitation.expires_at, props.timeZone)}.
      </p>
      {closed ? (
        <p class="notice notice-error" role="alert">
          {closed}
        </p>
      ) : records.length === 0 ? (
        <p class="notice" role="alert">
          Only a patient, or a patient's guardian, can accept an invitation. Log in with the patient's account.
        </p>
      ) : (
        <form class="form grant-form" onSubmit={accept}>
          {records.length > 1 && (
            <>
              <label for="invitation-record">Whose record</label>
              <select id="invitation-record" value={record} onChange={(e) => setRecord(e.currentTarget.value)}>
                {records.map((r) => (
                  <option key={r.id} value={r.id}>
                    {r.own ? `${r.name} (your own record)` : `${r.name} (you are their guardian)`}
                  </option>
                ))}
              </select>
            </>
          )}
          <ScopeChoice scope={scope} onChange={setScope} idPrefix="invitation" />
          {problem && (
            <p class="notice notice-error" role="alert">
              {problem}
            </p>
          )}
          <button type="submit" class="button button-primary" disabled={busy}>
            {capitalize(`share with ${invitation.team_name}`)}
          </button>
        </form>
      )}
    </section>
  );
}
