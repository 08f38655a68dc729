// /notifications: where a user's alerts reach them besides an open Chronicle page — this
// browser (Web Push, shown by the service worker even when no page is open), e-mail, or a
// personal webhook (ntfy, Pushover, an SMS gateway) — and the log of what was sent. An
// e-mail address receives nothing until the code mailed to it is typed back here. Each
// notification says only what the user may see of the patient (docs/alerts.md).

import { useState } from 'preact/hooks';
import { api, type Channel, type NotificationDelivery } from '../api';
import { ConfirmDialog, ErrorNotice, Loading, StatusNotice, errorMessage, usePageTitle } from '../components/common';
import { browserTimeZone, formatDateTime } from '../format';
import { useAsync } from '../hooks';
import { subscribeThisBrowser } from '../pwa';

const KIND_LABELS: Record<string, string> = {
  web_push: 'Browser or phone (push)',
  email: 'E-mail',
  webhook: 'Personal webhook',
};

const STATUS_LABELS: Record<string, string> = {
  pending: 'Sending',
  held: 'Held for your quiet hours',
  delivered: 'Delivered',
  failed: 'Failed',
  withheld: 'Withheld (no longer shared with you)',
};

export function NotificationsPage() {
  usePageTitle('Alert notifications');
  const channels = useAsync(() => api.channels(), []);
  const key = useAsync(() => api.pushKey(), []);
  const [status, setStatus] = useState<string | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const [removing, setRemoving] = useState<Channel | null>(null);

  const added = (message: string) => {
    setStatus(message);
    setProblem(null);
    channels.reload();
  };
  const remove = async () => {
    const channel = removing;
    setRemoving(null);
    if (!channel) return;
    try {
      await api.removeChannel(channel.id);
      added(`${KIND_LABELS[channel.kind] ?? channel.kind} removed: no more alerts to ${channel.target}.`);
    } catch (error) {
      setProblem(errorMessage(error));
    }
  };
  const active = (channels.data ?? []).filter((c) => c.disabled_at === null);

  return (
    <main id="main">
      <h1 tabIndex={-1}>Alert notifications</h1>
      <p class="help">
        Alerts about the patients who share them with you appear live on Chronicle's pages. Here you choose where else
        they reach you. Each notification carries only what you may see: if a patient shares only trends with you, it
        says that there is an alert and how urgent, never a value.
      </p>
      <StatusNotice message={status} />
      {problem && (
        <p class="notice notice-error" role="alert">
          {problem}
        </p>
      )}
      <section aria-labelledby="channels-heading" class="card">
        <h2 id="channels-heading">Where your alerts go</h2>
        {channels.error ? (
          <ErrorNotice error={channels.error} what="your channels" />
        ) : !channels.data ? (
          <Loading what="your channels" />
        ) : active.length === 0 ? (
          <p class="empty">Only to Chronicle's pages while you have one open.</p>
        ) : (
          <ul class="plain channel-list">
            {active.map((c) => (
              <li key={c.id} data-testid="channel">
                <span>
                  <strong>{KIND_LABELS[c.kind] ?? c.kind}</strong> <span class="muted">{c.label ?? c.target}</span>
                  {!c.confirmed && (
                    <>
                      {' '}
                      <span class="tag tag-unconfirmed" data-testid="unconfirmed">
                        unconfirmed
                      </span>
                    </>
                  )}
                </span>
                {!c.confirmed && <ConfirmEmail channel={c} onConfirmed={added} onProblem={setProblem} />}
                <button
                  type="button"
                  class="button button-small"
                  onClick={() => setRemoving(c)}
                  aria-label={`Remove ${KIND_LABELS[c.kind] ?? c.kind} ${c.label ?? c.target}`}
                >
                  Remove
                </button>
              </li>
            ))}
          </ul>
        )}
      </section>

      <section aria-labelledby="push-heading" class="card">
        <h2 id="push-heading">This browser</h2>
        <p class="help">
          Install Chronicle from the browser's menu to get alerts on a locked phone; urgent alarms stay on screen until
          you act on them.
        </p>
        <button
          type="button"
          class="button"
          disabled={!key.data}
          onClick={async () => {
            if (!key.data) return;
            try {
              const subscription = await subscribeThisBrowser(key.data.public_key);
              await api.addChannel({
                kind: 'web_push',
                subscription: {
                  endpoint: subscription.endpoint ?? '',
                  keys: { p256dh: subscription.keys?.p256dh ?? '', auth: subscription.keys?.auth ?? '' },
                },
                label: navigator.userAgent.includes('Mobile') ? 'Phone' : 'This browser',
              });
              added('This browser will show your alerts.');
            } catch (error) {
              setProblem(`This browser could not be subscribed: ${errorMessage(error)}`);
            }
          }}
        >
          Send alerts to this browser
        </button>
      </section>

      <QuietHoursSection onStatus={added} onProblem={setProblem} />
      <EmailChannel available={key.data?.email_available ?? false} onAdded={added} onProblem={setProblem} />
      <WebhookChannel onAdded={added} onProblem={setProblem} />
      <Deliveries />

      <ConfirmDialog
        open={removing !== null}
        title="Stop these notifications?"
        confirmLabel="Remove"
        danger
        onConfirm={remove}
        onCancel={() => setRemoving(null)}
      >
        {removing && <p>No more alerts will be sent to {removing.target}.</p>}
      </ConfirmDialog>
    </main>
  );
}

function EmailChannel(props: { available: boolean; onAdded: (m: string) => void; onProblem: (m: string) => void }) {
  const [address, setAddress] = useState('');
  return (
    <section aria-labelledby="email-heading" class="card">
      <h2 id="email-heading">E-mail</h2>
      <p class="help">
        Chronicle e-mails the address a code to type back here: no alert goes to it until then.
      </p>
      {!props.available && (
        <p class="help">
          This Chronicle server has no mail relay configured: an address can be added, but no code can be sent to
          confirm it, so until its operator sets one up your alerts reach you only on its pages and your other channels.
        </p>
      )}
      <form
        class="inline-form"
        onSubmit={async (event) => {
          event.preventDefault();
          try {
            const created = await api.addChannel({ kind: 'email', address: address.trim(), label: null });
            setAddress('');
            props.onAdded(
              created.confirmation?.sent
                ? `A code was e-mailed to ${created.channel.target}: type it above to confirm the address. No alert goes there until then.`
                : `${created.channel.target} was added but not confirmed: ${created.confirmation?.error ?? 'no code was sent'}.`,
            );
          } catch (error) {
            props.onProblem(errorMessage(error));
          }
        }}
      >
        <label for="channel-email">E-mail address</label>
        <input
          id="channel-email"
          type="email"
          required
          value={address}
          onInput={(e) => setAddress(e.currentTarget.value)}
        />
        <button type="submit" class="button">
          Add e-mail
        </button>
      </form>
    </section>
  );
}

/** An e-mail address not yet confirmed: the code mailed to it, and a way to have a new one sent. */
function ConfirmEmail(props: { channel: Channel; onConfirmed: (m: string) => void; onProblem: (m: string) => void }) {
  const [code, setCode] = useState('');
  const id = `confirm-${props.channel.id}`;
  return (
    <form
      class="inline-form"
      onSubmit={async (event) => {
        event.preventDefault();
        try {
          await api.confirmChannel(props.channel.id, code.trim());
          setCode('');
          props.onConfirmed(`${props.channel.target} is confirmed: alerts will be e-mailed there.`);
        } catch (error) {
          props.onProblem(errorMessage(error));
        }
      }}
    >
      <label for={id}>Code e-mailed to {props.channel.target}</label>
      <input
        id={id}
        required
        autocomplete="one-time-code"
        placeholder="XXXX-XXXX"
        size={10}
        value={code}
        onInput={(e) => setCode(e.currentTarget.value)}
      />
      <button type="submit" class="button button-small">
        Confirm
      </button>
      <button
        type="button"
        class="button button-small"
        onClick={async () => {
          try {
            const sent = await api.sendConfirmation(props.channel.id);
            if (sent.sent) props.onConfirmed(`A new code was e-mailed to ${props.channel.target}.`);
            else props.onProblem(sent.error ?? 'The code could not be sent.');
          } catch (error) {
            props.onProblem(errorMessage(error));
          }
        }}
      >
        Send again
      </button>
    </form>
  );
}

function WebhookChannel(props: { onAdded: (m: string) => void; onProblem: (m: string) => void }) {
  const [url, setUrl] = useState('');
  const [secret, setSecret] = useState<string | null>(null);
  return (
    <section aria-labelledby="webhook-heading" class="card">
      <h2 id="webhook-heading">Personal webhook</h2>
      <p class="help">
        For ntfy, Pushover or an SMS gateway: a public HTTPS address that receives each alert as signed JSON
        (<code>Chronicle-Signature</code>, HMAC-SHA256 with the secret shown once below).
      </p>
      <form
        class="inline-form"
        onSubmit={async (event) => {
          event.preventDefault();
          try {
            const created = await api.addChannel({ kind: 'webhook', url: url.trim(), secret: null, label: null });
            setUrl('');
            setSecret(created.secret);
            props.onAdded(`Alerts will be posted to ${created.channel.target}.`);
          } catch (error) {
            props.onProblem(errorMessage(error));
          }
        }}
      >
        <label for="channel-webhook">HTTPS address</label>
        <input id="channel-webhook" type="url" required value={url} onInput={(e) => setUrl(e.currentTarget.value)} />
        <button type="submit" class="button">
          Add webhook
        </button>
      </form>
      {secret && (
        <p class="notice" data-testid="webhook-secret">
          Signing secret (shown only now): <code>{secret}</code>
        </p>
      )}
    </section>
  );
}

function Deliveries() {
  const deliveries = useAsync(() => api.notificationDeliveries(), []);
  const timeZone = browserTimeZone();
  const rows: NotificationDelivery[] = deliveries.data ?? [];
  return (
    <section aria-labelledby="deliveries-heading" class="card">
      <h2 id="deliveries-heading">What was sent</h2>
      {deliveries.error ? (
        <ErrorNotice error={deliveries.error} what="the deliveries" />
      ) : !deliveries.data ? (
        <Loading what="the deliveries" />
      ) : rows.length === 0 ? (
        <p class="empty">Nothing sent yet.</p>
      ) : (
        <table class="data-table">
          <caption class="visually-hidden">Alert notifications sent to you, newest first</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">To</th>
              <th scope="col">Status</th>
              <th scope="col">Attempts</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((d) => (
              <tr key={d.id}>
                <td>{formatDateTime(d.created_at, timeZone)}</td>
                <td>{KIND_LABELS[d.channel_kind] ?? d.channel_kind}</td>
                <td>
                  {STATUS_LABELS[d.status] ?? d.status}
                  {d.last_error && <span class="muted"> ({d.last_error})</span>}
                </td>
                <td class="number">{d.attempts}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** Quiet hours: non-urgent alerts to the user's channels wait until they end; urgent alarms
 * never wait. */
function QuietHoursSection(props: { onStatus: (m: string) => void; onProblem: (m: string) => void }) {
  const current = useAsync(() => api.quietHours(), []);
  const [starts, setStarts] = useState('22:00');
  const [ends, setEnds] = useState('07:00');
  const quiet = current.data?.quiet_hours ?? null;
  return (
    <section aria-labelledby="quiet-heading" class="card">
      <h2 id="quiet-heading">Quiet hours</h2>
      <p class="help" data-testid="quiet-hours">
        {quiet
          ? `Quiet from ${quiet.starts} to ${quiet.ends} (${quiet.time_zone}): warnings wait until then; urgent alarms always reach you at once.`
          : 'None: every alert reaches you as it happens. Urgent alarms always do, quiet hours or not.'}
      </p>
      <form
        class="inline-form"
        onSubmit={async (event) => {
          event.preventDefault();
          try {
            await api.setQuietHours({ starts, ends, time_zone: browserTimeZone() });
            current.reload();
            props.onStatus(`Quiet hours set: ${starts} to ${ends}.`);
          } catch (error) {
            props.onProblem(errorMessage(error));
          }
        }}
      >
        <label for="quiet-starts">From</label>
        <input id="quiet-starts" type="time" required value={starts} onInput={(e) => setStarts(e.currentTarget.value)} />
        <label for="quiet-ends">To</label>
        <input id="quiet-ends" type="time" required value={ends} onInput={(e) => setEnds(e.currentTarget.value)} />
        <button type="submit" class="button">
          Set quiet hours
        </button>
        {quiet && (
          <button
            type="button"
            class="button"
            onClick={async () => {
              try {
                await api.clearQuietHours();
                current.reload();
                props.onStatus('Quiet hours removed.');
              } catch (error) {
                props.onProblem(errorMessage(error));
              }
            }}
          >
            Remove quiet hours
          </button>
        )}
      </form>
    </section>
  );
}
