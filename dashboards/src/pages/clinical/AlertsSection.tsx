// The patient's alerts (GET /v1/patients/{id}/alerts), newest first, for every side that
// receives them. The care team acknowledges and resolves the alert itself; the patient's
// family and each caregiver acknowledge for themselves only (each with an optional note) and
// see the team's state read-only. New events on the live stream refresh the list.

import { useState } from 'preact/hooks';
import { api, type AlertItem, type GlucoseUnit, type Me, type PatientListItem } from '../../api';
import { useAlertEvents } from '../../components/AlertFeed';
import { ConfirmDialog, ErrorNotice, Link, Loading, StatusNotice, errorMessage } from '../../components/common';
import { evidenceInWords, formatDateTime, ruleInWords, SEVERITY_LABELS, STATUS_LABELS } from '../../format';
import { useAsync } from '../../hooks';
import { isRefusal, NotShared } from '../ClinicalPatient';

type Filter = 'active' | 'all';
type Action = { alert: AlertItem; kind: 'acknowledge' | 'resolve' };

/** Whose acknowledgement the reader acts on: the care team's (the alert's own state, which
 * they also resolve), the family's (the patient and their guardians share one) or their own
 * (a caregiver or peer supporter, one per grant). */
export type AlertSide = 'care' | 'family' | 'own';

/** The side a reader of this patient's alerts is on, as the server decides it: a grant for
 * care makes them the care team; other grants (caregiving, peer support) their own. */
export function alertSide(patient: PatientListItem): AlertSide {
  if (patient.basis !== 'grant') return 'family';
  return patient.shared.some((s) => s.purpose === 'care' && s.access.includes('receive_alerts')) ? 'care' : 'own';
}

const ACKNOWLEDGING: Record<AlertSide, string> = {
  care: 'Acknowledging tells the team you are taking care of it.',
  family: 'Acknowledging tells your family (the patient and their guardians) that someone has seen it. It does not tell the care team.',
  own: 'Acknowledging marks it as seen by you only; other caregivers, the patient and the care team are not told.',
};

export function AlertsSection(props: {
  patientId: string;
  unit: GlucoseUnit;
  timeZone: string;
  shared: boolean;
  side: AlertSide;
  me: Me;
  /** The patient's name, for the family's "Acknowledged by …". */
  patientName?: string;
}) {
  const [filter, setFilter] = useState<Filter>('active');
  // Who in the family acknowledged: the guardians by name, anyone else is the patient.
  const guardians = useAsync(
    () => (props.side === 'family' ? api.guardians(props.patientId).catch(() => []) : Promise.resolve([])),
    [props.patientId, props.side],
  );
  const alerts = useAsync(
    () =>
      props.shared
        ? api.patientAlerts(props.patientId, filter === 'active' ? { status: 'active', kind: 'alert', limit: 200 } : { limit: 200 })
        : Promise.resolve(null),
    [props.patientId, filter, props.shared],
  );
  const [action, setAction] = useState<Action | null>(null);
  const [note, setNote] = useState('');
  const [busy, setBusy] = useState(false);
  const [status, setStatus] = useState<string | null>(null);
  const [problem, setProblem] = useState<string | null>(null);

  useAlertEvents((event) => {
    if (event.alert.patient_id === props.patientId) alerts.reload();
  });

  if (!props.shared || isRefusal(alerts.error)) return <NotShared what="The patient's alerts are" />;

  const act = async () => {
    if (!action) return;
    setBusy(true);
    setProblem(null);
    try {
      const text = note.trim() || null;
      if (action.kind === 'acknowledge') await api.acknowledgeAlert(props.patientId, action.alert.id, text);
      else await api.resolveAlert(props.patientId, action.alert.id, text);
      setStatus(`${action.kind === 'acknowledge' ? 'Acknowledged' : 'Resolved'}: ${ruleInWords(action.alert.rule)}.`);
      setAction(null);
      setNote('');
      alerts.reload();
    } catch (error) {
      setProblem(errorMessage(error));
    } finally {
      setBusy(false);
    }
  };

  const items = alerts.data?.items ?? [];
  return (
    <section aria-labelledby="alerts-heading" class="card">
      <div class="toolbar">
        <h2 id="alerts-heading">Alerts</h2>
        <div class="segmented" role="group" aria-label="Which alerts">
          <button type="button" class="button button-small" aria-pressed={filter === 'active'} onClick={() => setFilter('active')}>
            Open and acknowledged
          </button>
          <button type="button" class="button button-small" aria-pressed={filter === 'all'} onClick={() => setFilter('all')}>
            All, with history
          </button>
        </div>
      </div>
      {props.side !== 'care' && (
        <p class="muted" data-testid="alert-channels-link">
          Choose how alerts reach you (notifications on this device, e-mail, quiet hours) on the{' '}
          <Link href="/notifications">Notifications</Link> page.
        </p>
      )}
      <StatusNotice message={status} />
      {alerts.error ? (
        <ErrorNotice error={alerts.error} what="the alerts" />
      ) : !alerts.data ? (
        <Loading what="the alerts" />
      ) : items.length === 0 ? (
        <p class="empty">{filter === 'active' ? 'No open alerts.' : 'No alerts.'}</p>
      ) : (
        <ul class="alert-list">
          {items.map((a) => (
            <AlertEntry
              key={a.id}
              alert={a}
              unit={props.unit}
              timeZone={props.timeZone}
              side={props.side}
              acknowledgedBy={(by) =>
                by === props.me.id
                  ? 'You'
                  : (guardians.data ?? []).find((g) => g.user_id === by)?.display_name ??
                    (props.side === 'family' && props.patientName ? props.patientName : 'Someone')
              }
              onAct={(kind) => {
                setNote('');
                setProblem(null);
                setAction({ alert: a, kind });
              }}
            />
          ))}
        </ul>
      )}
      <ConfirmDialog
        open={action !== null}
        title={action?.kind === 'resolve' ? 'Resolve this alert?' : 'Acknowledge this alert?'}
        confirmLabel={action?.kind === 'resolve' ? 'Resolve' : 'Acknowledge'}
        confirmDisabled={busy}
        onConfirm={act}
        onCancel={() => setAction(null)}
      >
        {action && (
          <>
            <p>
              {ruleInWords(action.alert.rule)}, {formatDateTime(action.alert.triggered_at, props.timeZone)}.{' '}
              {action.kind === 'acknowledge' ? ACKNOWLEDGING[props.side] : 'Resolving closes it; it stays in the history.'}
            </p>
            <label for="alert-note">Note (optional)</label>
            <textarea id="alert-note" rows={3} maxLength={2000} value={note} onInput={(e) => setNote(e.currentTarget.value)} />
            {problem && (
              <p class="field-error" role="alert">
                {problem}
              </p>
            )}
          </>
        )}
      </ConfirmDialog>
    </section>
  );
}

/** One alert of the list, for the reader's side. */
type AlertEntryProps = {
  alert: AlertItem;
  unit: GlucoseUnit;
  timeZone: string;
  side: AlertSide;
  /** "You" or the name of who acknowledged for the reader's side. */
  acknowledgedBy: (userId: string | null) => string;
  onAct: (kind: 'acknowledge' | 'resolve') => void;
};

function AlertEntry(props: AlertEntryProps) {
  const { alert: a, timeZone } = props;
  if (props.side !== 'care') return <PersonalAlertEntry {...props} />;
  const rule = ruleInWords(a.rule);
  const state = a.kind === 'historical' ? 'Found in late data' : (a.status ? STATUS_LABELS[a.status] : '');
  return (
    <li class={`alert alert-${a.status === 'resolved' || a.kind === 'historical' ? 'resolved' : a.severity}`} data-testid="alert">
      <AlertFacts alert={a} unit={props.unit} timeZone={timeZone} state={state} />
      {a.acknowledged_at && (
        <p class="muted">
          Acknowledged {formatDateTime(a.acknowledged_at, timeZone)}
          {a.acknowledgement_note && `: “${a.acknowledgement_note}”`}
        </p>
      )}
      {a.resolved_at && (
        <p class="muted">
          Resolved {a.resolution === 'auto' ? 'automatically (the condition stayed clear)' : 'by hand'}{' '}
          {formatDateTime(a.resolved_at, timeZone)}
          {a.resolution_note && `: “${a.resolution_note}”`}
        </p>
      )}
      {a.kind === 'alert' && (a.status === 'open' || a.status === 'acknowledged') && (
        <div class="button-row">
          {a.status === 'open' && (
            <button type="button" class="button button-primary" onClick={() => props.onAct('acknowledge')} aria-label={`Acknowledge: ${rule}`}>
              Acknowledge
            </button>
          )}
          <button type="button" class="button" onClick={() => props.onAct('resolve')} aria-label={`Resolve: ${rule}`}>
            Resolve
          </button>
        </div>
      )}
    </li>
  );
}

/** An alert as the family or a caregiver sees it: their own acknowledgement in plain words,
 * the care team's state read-only (that it has been seen, not the team's notes, which are
 * written for colleagues), and only their own Acknowledge. */
function PersonalAlertEntry(props: AlertEntryProps) {
  const { alert: a, timeZone } = props;
  const rule = ruleInWords(a.rule);
  const mine = a.audience_acknowledgement;
  const state =
    a.kind === 'historical' ? 'Found in late data' : a.status === 'resolved' ? 'Resolved' : mine ? 'Acknowledged' : 'New';
  const team = props.side === 'family' ? 'Your care team' : 'The care team';
  const who = mine ? props.acknowledgedBy(mine.acknowledged_by) : '';
  return (
    <li class={`alert alert-${a.status === 'resolved' || a.kind === 'historical' ? 'resolved' : a.severity}`} data-testid="alert">
      <AlertFacts alert={a} unit={props.unit} timeZone={timeZone} state={state} />
      {mine && (
        <p class="muted" data-testid="own-acknowledgement">
          {who === 'You' ? 'You acknowledged' : `Acknowledged by ${who}`} at {formatDateTime(mine.acknowledged_at, timeZone)}
          {mine.note && `: “${mine.note}”`}
        </p>
      )}
      {a.kind === 'alert' && a.acknowledged_at && (
        <p class="muted" data-testid="team-state">
          {team} has seen it ({formatDateTime(a.acknowledged_at, timeZone)}).
        </p>
      )}
      {a.resolved_at && (
        <p class="muted">
          {a.resolution === 'auto' ? 'Resolved by itself (the condition stayed clear)' : `Resolved by ${team.toLowerCase()}`}{' '}
          {formatDateTime(a.resolved_at, timeZone)}.
        </p>
      )}
      {a.kind === 'alert' && a.status !== 'resolved' && !mine && (
        <div class="button-row">
          <button type="button" class="button button-primary" onClick={() => props.onAct('acknowledge')} aria-label={`Acknowledge: ${rule}`}>
            Acknowledge
          </button>
        </div>
      )}
    </li>
  );
}

/** What every side reads first: severity, the rule, its state, and what the reading showed. */
function AlertFacts(props: { alert: AlertItem; unit: GlucoseUnit; timeZone: string; state: string }) {
  const { alert: a, timeZone } = props;
  const evidence = evidenceInWords(a, props.unit, timeZone);
  return (
    <>
      <h3>
        <span class={`severity severity-${a.severity}`}>{SEVERITY_LABELS[a.severity] ?? a.severity}</span>
        {ruleInWords(a.rule)}
        <span class="muted">{props.state}</span>
      </h3>
      <p>
        {evidence && <>{evidence}. </>}
        Measured {formatDateTime(a.triggered_at, timeZone)}
        {a.trigger_count > 1 && `; came back ${a.trigger_count - 1} more time${a.trigger_count === 2 ? '' : 's'}`}
        {a.cleared_since && `; clear since ${formatDateTime(a.cleared_since, timeZone)}`}.
      </p>
    </>
  );
}
