// A clinician's invitations: a short code (and a link) to hand a patient, who opens it to
// share with the team, choosing what. The code is shown once, when it is made; the list shows
// each invitation's state and how many patients accepted it.

import { useState } from 'preact/hooks';
import { api, type CareTeam, type CreatedInvitation, type Invitation } from '../api';
import { ConfirmDialog, ErrorNotice, Loading, errorMessage } from '../components/common';
import { browserTimeZone, formatDate } from '../format';
import { useAsync } from '../hooks';

const STATE_LABELS: Record<string, string> = {
  open: 'Open',
  expired: 'Expired',
  used_up: 'Used',
  revoked: 'Withdrawn',
};

/** One team's invitations (the home page shows one such card per team). */
export function TeamInvitationsCard(props: { team: CareTeam }) {
  const { team } = props;
  const invitations = useAsync(() => api.invitations(team.id), [team.id]);
  const [label, setLabel] = useState('');
  const [maxUses, setMaxUses] = useState(1);
  const [created, setCreated] = useState<CreatedInvitation | null>(null);
  const [withdrawing, setWithdrawing] = useState<Invitation | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const timeZone = browserTimeZone();
  const headingId = `invite-${team.id}`;

  const create = async (event: Event) => {
    event.preventDefault();
    setProblem(null);
    try {
      setCreated(await api.createInvitation(team.id, { label: label.trim(), max_uses: maxUses }));
      setLabel('');
      invitations.reload();
    } catch (error) {
      setProblem(errorMessage(error));
    }
  };
  const withdraw = async () => {
    const invitation = withdrawing;
    setWithdrawing(null);
    if (!invitation) return;
    try {
      await api.revokeInvitation(team.id, invitation.id);
    } catch (error) {
      setProblem(errorMessage(error));
    }
    invitations.reload();
  };

  return (
    <section aria-labelledby={headingId} class="card">
      <h2 id={headingId}>Invite a patient to {team.name}</h2>
      <p class="help">
        The patient opens the link (or types the code on their sharing page), sees that {team.name} at{' '}
        {team.organization_name} asks, and chooses what to share. Nothing is shared until they accept.
      </p>
      <form class="inline-form" onSubmit={create}>
        <label for={`${headingId}-label`}>Note for your team (optional, the patient does not see it)</label>
        <input id={`${headingId}-label`} value={label} maxLength={200} onInput={(e) => setLabel(e.currentTarget.value)} />
        <label for={`${headingId}-uses`}>Patients who may accept it</label>
        <input
          id={`${headingId}-uses`}
          type="number"
          min={1}
          max={1000}
          value={maxUses}
          onInput={(e) => setMaxUses(Number(e.currentTarget.value) || 1)}
        />
        <button type="submit" class="button">
          Create invitation
        </button>
      </form>
      {created && (
        <div class="notice" role="status" data-testid="new-invitation">
          <p>
            Code <strong class="invitation-code">{created.code}</strong>, or the link{' '}
            <code>{`${location.origin}${created.path}`}</code>. It is shown only now; it can be accepted until{' '}
            {formatDate(created.invitation.expires_at, timeZone)}.
          </p>
        </div>
      )}
      {problem && (
        <p class="notice notice-error" role="alert">
          {problem}
        </p>
      )}
      {invitations.error ? (
        <ErrorNotice error={invitations.error} what="the invitations" />
      ) : !invitations.data ? (
        <Loading what="the invitations" />
      ) : invitations.data.length === 0 ? (
        <p class="empty">No invitations yet.</p>
      ) : (
        <table class="data-table">
          <caption class="visually-hidden">Invitations of {team.name}</caption>
          <thead>
            <tr>
              <th scope="col">Note</th>
              <th scope="col">State</th>
              <th scope="col">Accepted</th>
              <th scope="col">Until</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {invitations.data.map((i) => (
              <tr key={i.id} data-testid="invitation">
                <td>{i.label || '–'}</td>
                <td>{STATE_LABELS[i.state] ?? i.state}</td>
                <td>
                  {i.uses} of {i.max_uses}
                </td>
                <td>{formatDate(i.expires_at, timeZone)}</td>
                <td>
                  {i.state === 'open' && (
                    <button
                      type="button"
                      class="button button-small"
                      onClick={() => setWithdrawing(i)}
                      aria-label={`Withdraw the invitation ${i.label || 'without a note'}`}
                    >
                      Withdraw
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <ConfirmDialog
        open={withdrawing !== null}
        title="Withdraw this invitation?"
        confirmLabel="Withdraw"
        danger
        onConfirm={withdraw}
        onCancel={() => setWithdrawing(null)}
      >
        <p>Nobody can accept it any more. Patients who already accepted keep sharing until they revoke their grant.</p>
      </ConfirmDialog>
    </section>
  );
}
