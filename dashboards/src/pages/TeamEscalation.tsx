// Who of a care team an urgent alert reaches: the members' duties, and the team's chain of
// steps (members or duties, each after so many minutes without the team's acknowledgement)
// with its reminder interval, over `/v1/care-teams/{id}/members` and `…/escalation`. The API
// counts in seconds, the page in minutes.

import { useState } from 'preact/hooks';
import { api, type CareTeam, type EscalationPolicy, type Escalation, type TeamMember } from '../api';
import { ConfirmDialog, ErrorNotice, Loading, StatusNotice, errorMessage } from '../components/common';
import { useAsync } from '../hooks';

/** The API's limit on steps. */
const MAX_STEPS = 10;
/** The longest wait or reminder interval the API takes: a day. */
const MAX_MINUTES = 24 * 60;

/** A step as the form holds it: minutes as typed. */
interface StepDraft {
  minutes: string;
  members: string[];
  duties: string[];
}

interface Draft {
  steps: StepDraft[];
  /** Empty: no reminders. */
  remindMinutes: string;
}

const minutesText = (seconds: number) => String(Math.round((seconds / 60) * 100) / 100);
const seconds = (minutes: string) => Math.round(Number(minutes) * 60);

function draftOf(policy: EscalationPolicy | null): Draft {
  if (!policy) return { steps: [{ minutes: '0', members: [], duties: [] }], remindMinutes: '' };
  return {
    steps: policy.steps.map((s) => ({ minutes: minutesText(s.after_seconds), members: s.members, duties: s.duties })),
    remindMinutes: policy.renotify_every_seconds === null ? '' : minutesText(policy.renotify_every_seconds),
  };
}

/** The policy to send, or what is wrong with the form in words. */
function policyOf(draft: Draft): EscalationPolicy | string {
  const steps = [];
  for (const [index, step] of draft.steps.entries()) {
    const minutes = Number(step.minutes);
    if (index > 0 && (step.minutes.trim() === '' || !Number.isFinite(minutes) || minutes <= 0)) {
      return `Step ${index + 1}: give the minutes after the alarm it waits.`;
    }
    if (step.members.length === 0 && step.duties.length === 0) {
      return `Step ${index + 1}: choose at least one member or duty to tell.`;
    }
    steps.push({ after_seconds: index === 0 ? 0 : seconds(step.minutes), members: step.members, duties: step.duties });
  }
  const remind = draft.remindMinutes.trim();
  if (remind !== '' && !(Number(remind) > 0)) return 'Give the reminder interval in minutes, or leave it empty.';
  return { steps, renotify_every_seconds: remind === '' ? null : seconds(remind) };
}

const toggled = (list: string[], value: string, on: boolean) =>
  on ? (list.includes(value) ? list : [...list, value]) : list.filter((v) => v !== value);

export function TeamEscalation(props: { team: CareTeam }) {
  const { team } = props;
  const members = useAsync(() => api.teamMembers(team.id), [team.id]);
  const escalation = useAsync(() => api.escalation(team.id), [team.id]);
  // The form's edits, with the answer they started from: a new answer (after a load or a
  // save) starts the form again from what the server holds, in the same rendering.
  const [edit, setEdit] = useState<{ from?: Escalation; draft: Draft }>({ draft: draftOf(null) });
  const draft = edit.from === escalation.data ? edit.draft : draftOf(escalation.data?.policy ?? null);
  const setDraft = (change: (d: Draft) => Draft) =>
    setEdit((e) => ({ from: escalation.data, draft: change(e.from === escalation.data ? e.draft : draft) }));
  const [problem, setProblem] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [removing, setRemoving] = useState(false);
  const headingId = `escalation-${team.id}`;
  const policy = escalation.data?.policy ?? null;

  if (members.error) return <ErrorNotice error={members.error} what={`the members of ${team.name}`} />;
  if (escalation.error) return <ErrorNotice error={escalation.error} what={`the escalation of ${team.name}`} />;
  if (!members.data || !escalation.data) return <Loading what={`who ${team.name} tells of urgent alerts`} />;

  const teamMembers = members.data;
  const memberIds = teamMembers.map((m) => m.user_id);
  // A step may still name someone who has left the team since; the server refuses to save that.
  const nameOf = (id: string) =>
    teamMembers.find((m) => m.user_id === id)?.display_name ?? `A former member (${id.slice(0, 8)})`;
  const heldDuties = [...new Set(teamMembers.flatMap((m) => (m.duty ? [m.duty] : [])))].sort();
  const updateStep = (index: number, change: Partial<StepDraft>) =>
    setDraft((d) => ({ ...d, steps: d.steps.map((s, i) => (i === index ? { ...s, ...change } : s)) }));

  const saveDuty = async (member: TeamMember, duty: string) => {
    setProblem(null);
    setStatus(null);
    try {
      await api.setMemberDuty(team.id, member.user_id, duty.trim() === '' ? null : duty.trim());
      setStatus(
        duty.trim() === '' ? `${member.display_name} has no duty now.` : `Duty of ${member.display_name} saved.`,
      );
      members.reload();
    } catch (error) {
      setProblem(`The duty was not saved: ${errorMessage(error)}`);
    }
  };
  const save = async (event: Event) => {
    event.preventDefault();
    setProblem(null);
    setStatus(null);
    const wanted = policyOf(draft);
    if (typeof wanted === 'string') {
      setProblem(`The chain was not saved. ${wanted}`);
      return;
    }
    try {
      await api.setEscalation(team.id, wanted);
      setStatus('The chain is saved. It applies to urgent alerts at once, also to those escalating now.');
      escalation.reload();
    } catch (error) {
      setProblem(`The chain was not saved: ${errorMessage(error)}`);
    }
  };
  const remove = async () => {
    setRemoving(false);
    setProblem(null);
    setStatus(null);
    try {
      await api.clearEscalation(team.id);
      setStatus(`The chain is removed: everyone on ${team.name} is told of urgent alerts at once.`);
    } catch (error) {
      setProblem(`The chain was not removed: ${errorMessage(error)}`);
    }
    escalation.reload();
  };

  return (
    <section aria-labelledby={headingId} class="card">
      <h2 id={headingId}>Urgent alerts to {team.name}: who is told</h2>
      <p class="help">
        Without a chain, everyone on the team is told of an urgent alert at once; with one, the first step is told
        with the alarm, each later step when nobody has acknowledged it in time, and only the team's acknowledgement
        of the alert (not a patient's or caregiver's "seen it") stops the escalation and the reminders.
      </p>
      <p data-testid="escalation-state">
        {policy
          ? `${team.name} has a chain of ${policy.steps.length} ${policy.steps.length === 1 ? 'step' : 'steps'}${
              policy.renotify_every_seconds === null
                ? ', without reminders.'
                : `, with reminders every ${minutesText(policy.renotify_every_seconds)} minutes.`
            }`
          : `${team.name} has no chain: everyone on the team is told at once.`}
      </p>
      <StatusNotice message={status} />
      {problem && (
        <p class="notice notice-error" role="alert">
          {problem}
        </p>
      )}

      <table class="data-table">
        <caption>Members and their duties</caption>
        <thead>
          <tr>
            <th scope="col">Member</th>
            <th scope="col">Duty (a step can name it instead of people)</th>
          </tr>
        </thead>
        <tbody>
          {teamMembers.map((m) => (
            <MemberDuty key={`${m.user_id}:${m.duty ?? ''}`} member={m} idPrefix={headingId} onSave={saveDuty} />
          ))}
        </tbody>
      </table>

      <form class="form" onSubmit={save}>
        {draft.steps.map((step, index) => (
          <fieldset key={index} data-testid="escalation-step">
            <legend>{index === 0 ? 'Step 1, told with the alarm' : `Step ${index + 1}`}</legend>
            {index > 0 && (
              <>
                <label for={`${headingId}-step-${index}-minutes`}>
                  Minutes after the alarm, if nobody has acknowledged it
                </label>
                <input
                  id={`${headingId}-step-${index}-minutes`}
                  type="number"
                  min={1}
                  max={MAX_MINUTES}
                  step="any"
                  class="minutes-input"
                  required
                  value={step.minutes}
                  onInput={(e) => updateStep(index, { minutes: e.currentTarget.value })}
                />
              </>
            )}
            <fieldset class="choices">
              <legend>Members</legend>
              {[...memberIds, ...step.members.filter((id) => !memberIds.includes(id))].map((id) => (
                <label key={id}>
                  <input
                    type="checkbox"
                    checked={step.members.includes(id)}
                    onChange={(e) => updateStep(index, { members: toggled(step.members, id, e.currentTarget.checked) })}
                  />
                  {nameOf(id)}
                </label>
              ))}
            </fieldset>
            <fieldset class="choices">
              <legend>Duties (everyone who holds one)</legend>
              {[...heldDuties, ...step.duties.filter((d) => !heldDuties.includes(d))].map((duty) => (
                <label key={duty}>
                  <input
                    type="checkbox"
                    checked={step.duties.includes(duty)}
                    onChange={(e) =>
                      updateStep(index, { duties: toggled(step.duties, duty, e.currentTarget.checked) })
                    }
                  />
                  {heldDuties.includes(duty) ? duty : `${duty} (nobody holds it now)`}
                </label>
              ))}
              {heldDuties.length === 0 && step.duties.length === 0 && (
                <p class="empty">No member has a duty yet: give one above to name it here.</p>
              )}
            </fieldset>
            {index > 0 && (
              <button
                type="button"
                class="button button-small"
                onClick={() => setDraft((d) => ({ ...d, steps: d.steps.filter((_, i) => i !== index) }))}
              >
                Remove step {index + 1}
              </button>
            )}
          </fieldset>
        ))}
        <div class="button-row">
          <button
            type="button"
            class="button"
            disabled={draft.steps.length >= MAX_STEPS}
            onClick={() =>
              setDraft((d) => ({ ...d, steps: [...d.steps, { minutes: '', members: [], duties: [] }] }))
            }
          >
            Add a step
          </button>
        </div>
        <label for={`${headingId}-remind`}>Remind everyone told so far every … minutes</label>
        <input
          id={`${headingId}-remind`}
          type="number"
          min={1}
          max={MAX_MINUTES}
          step="any"
          class="minutes-input"
          aria-describedby={`${headingId}-remind-help`}
          value={draft.remindMinutes}
          onInput={(e) => setDraft((d) => ({ ...d, remindMinutes: e.currentTarget.value }))}
        />
        <p id={`${headingId}-remind-help`} class="help">
          Empty: no reminders. Reminders go on until the team acknowledges the alert.
        </p>
        <div class="button-row">
          <button type="submit" class="button button-primary">
            Save the chain
          </button>
          {policy && (
            <button type="button" class="button button-danger" onClick={() => setRemoving(true)}>
              Remove the chain
            </button>
          )}
        </div>
      </form>
      <ConfirmDialog
        open={removing}
        title={`Remove the chain of ${team.name}?`}
        confirmLabel="Remove the chain"
        danger
        onConfirm={remove}
        onCancel={() => setRemoving(false)}
      >
        <p>Everyone on the team is told of urgent alerts at once again, and escalations under way stop.</p>
      </ConfirmDialog>
    </section>
  );
}

/** A member's duty, edited and saved on its own. */
function MemberDuty(props: {
  member: TeamMember;
  idPrefix: string;
  onSave: (member: TeamMember, duty: string) => void;
}) {
  const { member } = props;
  const [duty, setDuty] = useState(member.duty ?? '');
  const inputId = `${props.idPrefix}-duty-${member.user_id}`;
  return (
    <tr data-testid="team-member">
      <th scope="row">{member.display_name}</th>
      <td>
        <form
          class="inline-form duty-form"
          onSubmit={(event) => {
            event.preventDefault();
            props.onSave(member, duty);
          }}
        >
          <label for={inputId} class="visually-hidden">
            Duty of {member.display_name}
          </label>
          <input id={inputId} value={duty} maxLength={60} onInput={(e) => setDuty(e.currentTarget.value)} />
          <button type="submit" class="button button-small" aria-label={`Save the duty of ${member.display_name}`}>
            Save
          </button>
        </form>
      </td>
    </tr>
  );
}
