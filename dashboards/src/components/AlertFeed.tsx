// Live alerts for the whole signed-in session: one stream per tab (GET /v1/alerts/stream),
// shared by the pages through a context. A new or escalated alert shows a toast and plays a
// short chime, unless the user muted it (the choice is kept in localStorage). Pages subscribe
// to refresh what they show (the panel's counts, a patient's alert list).
//
// The feed lives inside the signed-in shell, which is rebuilt for every log-in, so nothing it
// learned (patients' names, alerts) outlives the session.

import { createContext, type ComponentChildren } from 'preact';
import { useCallback, useContext, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, type AlertEvent, type GlucoseUnit, type Me } from '../api';
import { evidenceInWords, ruleInWords, SEVERITY_LABELS } from '../format';
import { useStoredPreference } from '../hooks';
import { openAlertStream, type StreamState } from '../live';
import { patientPath } from '../router';
import { playChime } from '../sound';
import { GLUCOSE_UNITS } from '../units';
import { Link } from './common';

type Listener = (event: AlertEvent) => void;

interface Feed {
  subscribe: (listener: Listener) => () => void;
  state: StreamState | 'off';
  muted: boolean;
  setMuted: (muted: boolean) => void;
  chimes: number;
  /** Names the pages already know, so a toast can say whose alert it is. */
  rememberNames: (names: { id: string; name: string }[]) => void;
}

const FeedContext = createContext<Feed | null>(null);

/** Calls `listener` for every event of the stream while the component is mounted. */
export function useAlertEvents(listener: Listener): void {
  const feed = useContext(FeedContext);
  const latest = useRef(listener);
  latest.current = listener;
  useEffect(() => feed?.subscribe((event) => latest.current(event)), [feed]);
}

export function useAlertFeed(): Feed | null {
  return useContext(FeedContext);
}

/** Events that raise an alarm (as opposed to state changes by someone). */
const ALARMS = new Set(['opened', 'retriggered', 'escalated']);
const MAX_TOASTS = 4;

const alarmSounds = (event: AlertEvent) => event.alert.severity !== 'info';

interface Toast {
  key: number;
  event: AlertEvent;
}

/** Roles that receive alerts live: through grants, and a patient for their own record. */
const LIVE_ROLES = new Set(['clinician', 'caregiver', 'patient']);

export function AlertFeedProvider(props: { me: Me | undefined; children: ComponentChildren }) {
  const listeners = useRef(new Set<Listener>());
  const names = useRef(new Map<string, string>());
  const [state, setState] = useState<StreamState | 'off'>('off');
  const [toasts, setToasts] = useState<Toast[]>([]);
  const [chimes, setChimes] = useState(0);
  const [sound, setSound] = useStoredPreference<'on' | 'off'>('chronicle.alert-sound', ['on', 'off'], 'on');
  const [unit] = useStoredPreference<GlucoseUnit>('chronicle.glucose-unit', GLUCOSE_UNITS, 'mg/dL');
  const muted = sound === 'off';
  const mutedRef = useRef(muted);
  mutedRef.current = muted;
  const live = props.me !== undefined && LIVE_ROLES.has(props.me.role);

  const lookUpName = useCallback(async (patientId: string) => {
    if (names.current.has(patientId)) return;
    try {
      for (const p of await api.patients()) {
        if (p.display_name) names.current.set(p.patient_id, p.display_name);
      }
    } catch {
      // The toast says "a patient" instead.
    }
  }, []);

  useEffect(() => {
    if (!live) return;
    let toastKey = 0;
    return openAlertStream({
      onState: setState,
      onEvent: (event) => {
        for (const listener of listeners.current) listener(event);
        if (!ALARMS.has(event.type) || event.alert.kind !== 'alert') return;
        void lookUpName(event.alert.patient_id).then(() => {
          setToasts((current) => [...current, { key: ++toastKey, event }].slice(-MAX_TOASTS));
        });
        // Information (a week's trend) is shown, not sounded.
        if (alarmSounds(event) && !mutedRef.current && playChime()) setChimes((n) => n + 1);
      },
    });
  }, [live, lookUpName]);

  const feed = useMemo(
    (): Feed => ({
      subscribe: (listener) => {
        listeners.current.add(listener);
        return () => listeners.current.delete(listener);
      },
      state: live ? state : 'off',
      muted,
      setMuted: (m) => setSound(m ? 'off' : 'on'),
      chimes,
      rememberNames: (list) => {
        for (const { id, name } of list) names.current.set(id, name);
      },
    }),
    [live, state, muted, setSound, chimes],
  );

  const dismiss = (key: number) => setToasts((current) => current.filter((t) => t.key !== key));

  return (
    <FeedContext.Provider value={feed}>
      {props.children}
      <section class="toasts" aria-label="New alerts" aria-live="polite">
        {toasts.map(({ key, event }) => {
          const alert = event.alert;
          const name = names.current.get(alert.patient_id) ?? 'A patient';
          const verb = event.type === 'escalated' ? 'Alert escalated' : event.type === 'retriggered' ? 'Alert again' : 'New alert';
          return (
            <div key={key} class={`toast toast-${alert.severity}`} data-testid="alert-toast">
              <p>
                <strong>
                  {verb}: {SEVERITY_LABELS[alert.severity] ?? alert.severity}
                </strong>{' '}
                — {name}: {ruleInWords(alert.rule)}
                {evidenceInWords(alert, unit, 'UTC') ? ` (${evidenceInWords(alert, unit, 'UTC')})` : ''}
              </p>
              <p class="toast-actions">
                <Link href={patientPath(alert.patient_id, 'alerts')}>Open {name}'s alerts</Link>
                <button type="button" class="button button-small" onClick={() => dismiss(key)}>
                  Dismiss
                </button>
              </p>
            </div>
          );
        })}
      </section>
    </FeedContext.Provider>
  );
}

/** The top bar's live indicator and the mute toggle. */
export function LiveStatus() {
  const feed = useAlertFeed();
  if (!feed || feed.state === 'off') return null;
  const words = feed.state === 'live' ? 'Live alerts on' : feed.state === 'connecting' ? 'Connecting to live alerts…' : 'Reconnecting to live alerts…';
  return (
    <span class="live-status">
      <span class={`live-dot live-${feed.state}`} aria-hidden="true" />
      <span data-testid="live-state">{words}</span>
      <button
        type="button"
        class="button button-small"
        aria-pressed={feed.muted}
        data-chimes={feed.chimes}
        data-testid="mute-alert-sound"
        onClick={() => feed.setMuted(!feed.muted)}
      >
        Mute alert sound
      </button>
    </span>
  );
}
