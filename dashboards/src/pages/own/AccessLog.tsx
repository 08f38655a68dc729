// The access log in plain language: who looked at what, when, through which grant; refusals
// and emergency accesses stand out. The log cannot be changed, not even by administrators.

import { useEffect, useState } from 'preact/hooks';
import { api, type AccessLogItem, type Grant } from '../../api';
import { ErrorNotice, Loading } from '../../components/common';
import { formatDateTime, logSentence } from '../../format';
import { useAsync } from '../../hooks';
import type { OwnProps } from './OwnPatient';

export function AccessLog(props: OwnProps) {
  const id = props.patient.patient_id;
  const [entries, setEntries] = useState<AccessLogItem[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [problem, setProblem] = useState<unknown>(null);
  const [showOwn, setShowOwn] = useState(false);
  // The grants name the care teams and organizations through which people looked.
  const grants = useAsync(() => api.grants(id), [id]);

  const load = async (from: string | null) => {
    setLoading(true);
    try {
      const page = await api.accessLog(id, from);
      setEntries((previous) => (from === null ? page.items : [...previous, ...page.items]));
      setCursor(page.next_cursor);
      setProblem(null);
    } catch (error) {
      setProblem(error);
    } finally {
      setLoading(false);
    }
  };
  useEffect(() => {
    void load(null);
  }, [id]);

  const grantsById = new Map<string, Grant>((grants.data ?? []).map((g) => [g.id, g]));
  const meId = props.me.id;
  const shown = entries.filter((e) => showOwn || e.actor_id !== meId);
  const emergencies = entries.filter((e) => e.action === 'open_emergency_access' && e.outcome === 'allowed');

  return (
    <>
      {emergencies.length > 0 && (
        <section class="card emergency-summary" aria-labelledby="emergency-heading">
          <h2 id="emergency-heading">Emergency access to your record</h2>
          <ul class="plain">
            {emergencies.map((e, i) => (
              <li key={i}>
                <strong>{e.actor_name ?? 'A clinician'}</strong> opened your record without a grant on{' '}
                {formatDateTime(e.at, props.timeZone)}. Reason given: “{e.reason}”. Such access lasts a few hours and
                allows viewing only.
              </li>
            ))}
          </ul>
        </section>
      )}
      <section class="card" aria-labelledby="log-heading">
        <h2 id="log-heading">Who looked at your data</h2>
        <p class="help">
          Every time someone reads your data, or tries to and is refused, it is written here. Nobody can change or delete
          this log.
        </p>
        <label class="checkbox">
          <input type="checkbox" checked={showOwn} onChange={(e) => setShowOwn(e.currentTarget.checked)} />
          Show {props.isPatient ? 'my' : 'your'} own activity too
        </label>
        {problem !== null && <ErrorNotice error={problem} what="the access log" />}
        {entries.length === 0 && loading ? (
          <Loading what="the access log" />
        ) : shown.length === 0 ? (
          <p class="empty">Nobody else has looked at your data{cursor ? ' in the latest entries' : ''}.</p>
        ) : (
          <ol class="access-log">
            {shown.map((entry, i) => (
              <LogEntry key={i} entry={entry} meId={meId} grants={grantsById} timeZone={props.timeZone} />
            ))}
          </ol>
        )}
        {cursor && (
          <button type="button" class="button" disabled={loading} onClick={() => load(cursor)}>
            {loading ? 'Loading…' : 'Show older entries'}
          </button>
        )}
      </section>
    </>
  );
}

function LogEntry(props: { entry: AccessLogItem; meId: string; grants: Map<string, Grant>; timeZone: string }) {
  const { entry } = props;
  const sentence = logSentence(entry, props.meId, props.grants);
  const emergency = entry.emergency_id !== null;
  const classes = ['log-entry', emergency ? 'log-emergency' : '', entry.outcome === 'denied' ? 'log-denied' : '']
    .filter(Boolean)
    .join(' ');
  return (
    <li class={classes} data-testid="log-entry">
      {emergency && <span class="tag tag-emergency">Emergency access</span>}
      {entry.outcome === 'denied' && <span class="tag tag-denied">Refused</span>}
      <span class="log-text">
        <strong>{sentence.who}</strong>
        {sentence.via ? ` (${sentence.via})` : ''} {sentence.what}
        {entry.action === 'open_emergency_access' && entry.reason ? ` (reason: “${entry.reason}”)` : ''} on{' '}
        <time dateTime={entry.at}>{formatDateTime(entry.at, props.timeZone)}</time>
        {sentence.refusal ? `. Refused: ${sentence.refusal}.` : '.'}
      </span>
    </li>
  );
}
