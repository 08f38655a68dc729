// The patient's alerts (GET /v1/patients/{id}/alerts), newest first, with acknowledge and
// resolve (each with an optional note). New events on the live stream refresh the list.

import { useState } from 'preact/hooks';
import { api, type AlertItem, type GlucoseUnit } from '../../api';
import { useAlertEvents } from '../../components/AlertFeed';
import { ConfirmDialog, ErrorNotice, Loading, StatusNotice, errorMessage } from '../../components/common';
import { evidenceInWords, formatDateTime, ruleInWords, SEVERITY_LABELS, STATUS_LABELS } from '../../format';
import { useAsync } from '../../hooks';
import { isRefusal, NotShared } from '../ClinicalPatient';

type Filter = 'active' | 'all';
type Action = { alert: AlertItem; kind: 'acknowledge' | 'resolve' };

export function AlertsSection(props: { patientId: string; unit: GlucoseUnit; timeZone: string; shared: boolean }) {
  const [filter, setFilter] = useState<Filter>('active');
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
              {action.kind === 'acknowledge'
                ? 'Acknowledging tells the team you are taking care of it.'
                : 'Resolving closes it; it stays in the history.'}
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

function AlertEntry(props: {
  alert: AlertItem;
  unit: GlucoseUnit;
  timeZone: string;
  onAct: (kind: 'acknowledge' | 'resolve') => void;
}) {
  const { alert: a, timeZone } = props;
  const rule = ruleInWords(a.rule);
  const evidence = evidenceInWords(a, props.unit, timeZone);
  const state = a.kind === 'historical' ? 'Found in late data' : (a.status ? STATUS_LABELS[a.status] : '');
  return (
    <li class={`alert alert-${a.status === 'resolved' || a.kind === 'historical' ? 'resolved' : a.severity}`} data-testid="alert">
      <h3>
        <span class={`severity severity-${a.severity}`}>{SEVERITY_LABELS[a.severity] ?? a.severity}</span>
        {rule}
        <span class="muted">{state}</span>
      </h3>
      <p>
        {evidence && <>{evidence}. </>}
        Measured {formatDateTime(a.triggered_at, timeZone)}
        {a.trigger_count > 1 && `; came back ${a.trigger_count - 1} more time${a.trigger_count === 2 ? '' : 's'}`}
        {a.cleared_since && `; clear since ${formatDateTime(a.cleared_since, timeZone)}`}.
      </p>
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
