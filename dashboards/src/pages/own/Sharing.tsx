// Who can see what, until when: the patient's grants, with add and revoke, and their
// guardians. Revoking takes effect on the grantee's very next request.

import { useState } from 'preact/hooks';
import {
  type Access,
  api,
  type CreatedShareLink,
  type DataCategory,
  type Grant,
  type GranteeType,
  type Guardian,
  type ShareLink,
} from '../../api';
import { ConfirmDialog, ErrorNotice, Loading, StatusNotice, errorMessage } from '../../components/common';
import { type Scope, ScopeChoice, scopeProblem } from '../../components/ScopeChoice';
import {
  CATEGORY_LABELS,
  GRANTEE_TYPE_LABELS,
  accessInWords,
  capitalize,
  categoriesInWords,
  formatDate,
  granteeInWords,
  purposeInWords,
  startOfDay,
} from '../../format';
import { useAsync } from '../../hooks';
import { invitationPath, navigate } from '../../router';
import type { OwnProps } from './OwnPatient';

export function Sharing(props: OwnProps) {
  const id = props.patient.patient_id;
  const grants = useAsync(() => api.grants(id), [id]);
  const [status, setStatus] = useState<string | null>(null);
  const [revoking, setRevoking] = useState<Grant | null>(null);
  const [problem, setProblem] = useState<unknown>(null);

  const revoke = async () => {
    const grant = revoking;
    setRevoking(null);
    if (!grant) return;
    try {
      await api.revokeGrant(id, grant.id);
      setStatus(`Revoked. ${granteeInWords(grant)} can no longer see what this grant shared.`);
      setProblem(null);
    } catch (error) {
      setProblem(error);
    }
    grants.reload();
  };

  const active = (grants.data ?? []).filter((g) => g.active);
  const past = (grants.data ?? []).filter((g) => !g.active);

  return (
    <>
      <StatusNotice message={status} />
      {problem !== null && <ErrorNotice error={problem} />}
      <section aria-labelledby="grants-heading" class="card">
        <h2 id="grants-heading">Who can see your data</h2>
        {grants.error ? (
          <ErrorNotice error={grants.error} what="your grants" />
        ) : !grants.data ? (
          <Loading what="your grants" />
        ) : active.length === 0 ? (
          <p class="empty">You share your data with no one. Nobody but you{props.isPatient ? '' : ' and your guardians'} can see it.</p>
        ) : (
          <ul class="grant-list">
            {active.map((grant) => (
              <GrantCard key={grant.id} grant={grant} timeZone={props.timeZone} onRevoke={() => setRevoking(grant)} />
            ))}
          </ul>
        )}
      </section>

      <AddGrant
        patientId={id}
        timeZone={props.timeZone}
        onAdded={(grant) => {
          setStatus(`Shared with ${granteeInWords(grant)}.`);
          grants.reload();
        }}
      />

      <InvitationCode />

      {past.length > 0 && (
        <section aria-labelledby="past-heading" class="card">
          <h2 id="past-heading">Past grants</h2>
          <ul class="grant-list">
            {past.map((grant) => (
              <GrantCard key={grant.id} grant={grant} timeZone={props.timeZone} />
            ))}
          </ul>
        </section>
      )}

      <ShareLinks
        patientId={id}
        timeZone={props.timeZone}
        onStatus={(message) => {
          setStatus(message);
          grants.reload();
        }}
      />

      <Guardians patientId={id} canManage={props.isPatient} onStatus={setStatus} />

      <ConfirmDialog
        open={revoking !== null}
        title="Revoke this grant?"
        confirmLabel="Revoke"
        danger
        onConfirm={revoke}
        onCancel={() => setRevoking(null)}
      >
        {revoking && (
          <p>
            {granteeInWords(revoking)} will no longer see your {categoriesInWords(revoking.categories)}, from their very
            next request. You can share again at any time with a new grant.
          </p>
        )}
      </ConfirmDialog>
    </>
  );
}

function GrantCard(props: { grant: Grant; timeZone: string; onRevoke?: () => void }) {
  const { grant, timeZone } = props;
  const state = grant.revoked_at
    ? `Revoked on ${formatDate(grant.revoked_at, timeZone)}`
    : grant.active
      ? 'Active'
      : grant.expires_at && new Date(grant.expires_at) <= new Date()
        ? `Ended on ${formatDate(grant.expires_at, timeZone)}`
        : 'Not yet active';
  return (
    <li class={grant.active ? 'grant' : 'grant grant-past'} data-testid="grant">
      <h3>{granteeInWords(grant)}</h3>
      <dl class="facts">
        <dt>What</dt>
        <dd>{capitalize(categoriesInWords(grant.categories))}</dd>
        <dt>How much</dt>
        <dd>{capitalize(accessInWords(grant.access))}</dd>
        <dt>Why</dt>
        <dd>{capitalize(purposeInWords(grant.purpose))}</dd>
        <dt>Data since</dt>
        <dd>{grant.data_since ? formatDate(grant.data_since, timeZone) : 'All your data'}</dd>
        <dt>Until</dt>
        <dd>{grant.expires_at ? formatDate(grant.expires_at, timeZone) : 'No end date'}</dd>
        <dt>Status</dt>
        <dd>{state}</dd>
      </dl>
      {props.onRevoke && (
        <button
          type="button"
          class="button button-danger"
          onClick={props.onRevoke}
          aria-label={`Revoke the grant to ${granteeInWords(grant)}`}
        >
          Revoke
        </button>
      )}
    </li>
  );
}

const UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';

function AddGrant(props: { patientId: string; timeZone: string; onAdded: (grant: Grant) => void }) {
  const [granteeType, setGranteeType] = useState<GranteeType>('care_team');
  const [granteeId, setGranteeId] = useState('');
  const [scope, setScope] = useState<Scope>({ categories: ['glucose'], access: ['view_readings'], purpose: 'care' });
  const [dataSince, setDataSince] = useState('');
  const [until, setUntil] = useState('');
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    const invalid = scopeProblem(scope);
    if (invalid) {
      setProblem(invalid);
      return;
    }
    setBusy(true);
    setProblem(null);
    try {
      const grant = await api.createGrant(props.patientId, {
        grantee: { type: granteeType, id: granteeId.trim() },
        ...scope,
        data_since: dataSince ? startOfDay(dataSince, props.timeZone).toISOString() : null,
        // "Until 30 June" includes 30 June.
        expires_at: until
          ? new Date(startOfDay(until, props.timeZone).getTime() + 24 * 3_600_000).toISOString()
          : null,
      });
      setGranteeId('');
      props.onAdded(grant);
    } catch (error) {
      setProblem(errorMessage(error));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="add-heading" class="card">
      <h2 id="add-heading">Share with someone</h2>
      <form class="form grant-form" onSubmit={submit}>
        <fieldset>
          <legend>Who</legend>
          <div class="choices">
            {(['care_team', 'organization', 'user'] as GranteeType[]).map((type) => (
              <label key={type}>
                <input
                  type="radio"
                  name="grantee-type"
                  value={type}
                  checked={granteeType === type}
                  onChange={() => setGranteeType(type)}
                />
                {capitalize(GRANTEE_TYPE_LABELS[type])}
              </label>
            ))}
          </div>
          <label for="grantee-id">Their Chronicle id</label>
          <input
            id="grantee-id"
            required
            pattern={UUID}
            value={granteeId}
            aria-describedby="grantee-id-help"
            onInput={(e) => setGranteeId(e.currentTarget.value)}
          />
          <p id="grantee-id-help" class="help">
            Your clinic, care team or the person gives you this id (it looks like 1b4e28ba-2fa1-11d2-883f-0016d3cca427).
          </p>
        </fieldset>
        <ScopeChoice scope={scope} onChange={setScope} idPrefix="grant" />
        <div class="two-columns">
          <div>
            <label for="data-since">Only data since (optional)</label>
            <input id="data-since" type="date" value={dataSince} onInput={(e) => setDataSince(e.currentTarget.value)} />
          </div>
          <div>
            <label for="until">Until (optional)</label>
            <input id="until" type="date" value={until} onInput={(e) => setUntil(e.currentTarget.value)} />
          </div>
        </div>
        {problem && (
          <p class="notice notice-error" role="alert">
            {problem}
          </p>
        )}
        <button type="submit" class="button button-primary" disabled={busy}>
          Share
        </button>
      </form>
    </section>
  );
}

function Guardians(props: { patientId: string; canManage: boolean; onStatus: (message: string) => void }) {
  const guardians = useAsync(() => api.guardians(props.patientId), [props.patientId]);
  const [email, setEmail] = useState('');
  const [problem, setProblem] = useState<string | null>(null);
  const [removing, setRemoving] = useState<Guardian | null>(null);

  const add = async (event: Event) => {
    event.preventDefault();
    setProblem(null);
    try {
      const guardian = await api.nameGuardian(props.patientId, email.trim());
      setEmail('');
      props.onStatus(`${guardian.display_name} is now your guardian.`);
      guardians.reload();
    } catch (error) {
      setProblem(errorMessage(error));
    }
  };
  const remove = async () => {
    const guardian = removing;
    setRemoving(null);
    if (!guardian) return;
    try {
      await api.removeGuardian(props.patientId, guardian.user_id);
      props.onStatus(`${guardian.display_name} is no longer your guardian.`);
    } catch (error) {
      setProblem(errorMessage(error));
    }
    guardians.reload();
  };

  return (
    <section aria-labelledby="guardians-heading" class="card">
      <h2 id="guardians-heading">Guardians</h2>
      <p class="help">
        A guardian (for example a parent) can do everything you can here — share, revoke, read the access log, export —
        except name or remove guardians.
      </p>
      {guardians.error ? (
        <ErrorNotice error={guardians.error} what="guardians" />
      ) : !guardians.data ? (
        <Loading what="guardians" />
      ) : guardians.data.length === 0 ? (
        <p class="empty">No guardians.</p>
      ) : (
        <ul class="plain guardian-list">
          {guardians.data.map((g) => (
            <li key={g.user_id}>
              <span>
                <strong>{g.display_name}</strong> <span class="muted">{g.email}</span>
              </span>
              {props.canManage && (
                <button
                  type="button"
                  class="button button-small"
                  onClick={() => setRemoving(g)}
                  aria-label={`Remove ${g.display_name} as guardian`}
                >
                  Remove
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      {props.canManage && (
        <form class="inline-form" onSubmit={add}>
          <label for="guardian-email">Name a guardian by e-mail</label>
          <input
            id="guardian-email"
            type="email"
            required
            value={email}
            onInput={(e) => setEmail(e.currentTarget.value)}
          />
          <button type="submit" class="button">
            Name guardian
          </button>
        </form>
      )}
      {problem && (
        <p class="notice notice-error" role="alert">
          {problem}
        </p>
      )}
      <ConfirmDialog
        open={removing !== null}
        title="Remove this guardian?"
        confirmLabel="Remove"
        danger
        onConfirm={remove}
        onCancel={() => setRemoving(null)}
      >
        {removing && <p>{removing.display_name} will no longer be able to act for you, from their next request.</p>}
      </ConfirmDialog>
    </section>
  );
}

/** A code a clinic handed out opens its invitation page. */
function InvitationCode() {
  const [code, setCode] = useState('');
  return (
    <section aria-labelledby="invitation-code-heading" class="card">
      <h2 id="invitation-code-heading">Have an invitation from your clinic?</h2>
      <form
        class="inline-form"
        onSubmit={(event) => {
          event.preventDefault();
          if (code.trim()) navigate(invitationPath(code));
        }}
      >
        <label for="invitation-code">Invitation code</label>
        <input
          id="invitation-code"
          value={code}
          autoComplete="off"
          placeholder="7K2Q-MX9D-40TZ"
          onInput={(e) => setCode(e.currentTarget.value)}
        />
        <button type="submit" class="button">
          Open
        </button>
      </form>
    </section>
  );
}

/** Share links: a named, expiring, read-only link (a school nurse, a babysitter, a follower
 * app). Its token is shown once; every read with it is in the access log under its name. */
function ShareLinks(props: { patientId: string; timeZone: string; onStatus: (message: string) => void }) {
  const links = useAsync(() => api.shareLinks(props.patientId), [props.patientId]);
  const [name, setName] = useState('');
  const [categories, setCategories] = useState<DataCategory[]>(['glucose']);
  const [trendsOnly, setTrendsOnly] = useState(false);
  const [until, setUntil] = useState('');
  const [created, setCreated] = useState<CreatedShareLink | null>(null);
  const [problem, setProblem] = useState<string | null>(null);

  const create = async (event: Event) => {
    event.preventDefault();
    if (categories.length === 0) {
      setProblem('Choose at least one kind of data.');
      return;
    }
    setProblem(null);
    try {
      const link = await api.createShareLink(props.patientId, {
        name: name.trim(),
        categories,
        access: trendsOnly ? ['view_trends'] : ['view_readings'],
        data_since: null,
        // "Until 30 June" includes 30 June.
        expires_at: new Date(startOfDay(until, props.timeZone).getTime() + 24 * 3_600_000).toISOString(),
      });
      setCreated(link);
      setName('');
      links.reload();
      props.onStatus(`Share link "${link.link.name}" made.`);
    } catch (error) {
      setProblem(errorMessage(error));
    }
  };

  const revoke = async (link: ShareLink) => {
    try {
      await api.revokeShareLink(props.patientId, link.id);
      props.onStatus(`Share link "${link.name}" revoked: it shows nothing from its next use.`);
      links.reload();
    } catch (error) {
      setProblem(errorMessage(error));
    }
  };

  const origin = window.location.origin;
  return (
    <section aria-labelledby="links-heading" class="card">
      <h2 id="links-heading">Share links</h2>
      <p class="help">
        A read-only link for someone without a Chronicle account, or for a Nightscout follower app. It ends on the day
        you choose, and you can revoke it at any time.
      </p>
      {links.error ? (
        <ErrorNotice error={links.error} what="your share links" />
      ) : !links.data ? (
        <Loading what="your share links" />
      ) : links.data.length === 0 ? (
        <p class="empty">No share links.</p>
      ) : (
        <ul class="grant-list">
          {links.data.map((link) => (
            <li key={link.id} class={link.active ? 'grant' : 'grant grant-past'} data-testid="share-link">
              <h3>{link.name}</h3>
              <dl class="facts">
                <dt>What</dt>
                <dd>{capitalize(categoriesInWords(link.categories as DataCategory[]))}</dd>
                <dt>How much</dt>
                <dd>{capitalize(accessInWords(link.access as Access[]))}</dd>
                <dt>Until</dt>
                <dd>{link.expires_at ? formatDate(link.expires_at, props.timeZone) : 'No end date'}</dd>
                <dt>Status</dt>
                <dd>{link.active ? 'Active' : link.revoked_at ? 'Revoked' : 'Ended'}</dd>
              </dl>
              {link.active && (
                <button
                  type="button"
                  class="button button-danger"
                  onClick={() => revoke(link)}
                  aria-label={`Revoke the share link ${link.name}`}
                >
                  Revoke
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      {created && (
        <div class="notice" role="status">
          <p>Copy these now: the link's secret is shown only once.</p>
          <dl class="facts">
            <dt>In a browser</dt>
            <dd>
              <code>{`${origin}${created.shared_path}/glucose`}</code>
            </dd>
            <dt>Nightscout follower app</dt>
            <dd>
              site <code>{`${origin}${created.nightscout_site_path}`}</code>, token <code>{created.token}</code>
            </dd>
          </dl>
        </div>
      )}
      <form class="form grant-form" onSubmit={create}>
        <label for="link-name">Who it is for</label>
        <input id="link-name" required maxLength={100} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        <fieldset>
          <legend>What</legend>
          <div class="choices">
            {(['glucose', 'treatments', 'blood_pressure'] as DataCategory[]).map((code) => (
              <label key={code}>
                <input
                  type="checkbox"
                  checked={categories.includes(code)}
                  onChange={(e) =>
                    setCategories(
                      e.currentTarget.checked ? [...categories.filter((c) => c !== code), code] : categories.filter((c) => c !== code),
                    )
                  }
                />
                {capitalize(CATEGORY_LABELS[code])}
              </label>
            ))}
          </div>
        </fieldset>
        <label>
          <input type="checkbox" checked={trendsOnly} onChange={(e) => setTrendsOnly(e.currentTarget.checked)} /> Trends
          only (no individual readings)
        </label>
        <label for="link-until">Until</label>
        <input id="link-until" type="date" required value={until} onInput={(e) => setUntil(e.currentTarget.value)} />
        {problem && (
          <p class="notice notice-error" role="alert">
            {problem}
          </p>
        )}
        <button type="submit" class="button button-primary">
          Make a share link
        </button>
      </form>
    </section>
  );
}
