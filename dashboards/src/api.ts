// The public HTTP API, as the dashboard uses it. The dashboard holds no privilege of its own:
// every call carries the user's bearer token and the server's gate decides what comes back.
// Types mirror the OpenAPI document served at /openapi.json.

import { session } from './session';

import type { components, operations } from './api-schema';

// The API's JSON as the server sends it. `src/api-schema.ts` is generated from the server's
// OpenAPI document (`openapi.json`, kept equal to `/openapi.json` by a Rust test; regenerate
// with `npm run generate:api`), so these types cannot drift from the server. The server
// always sends every field (an absent value is `null`), which `Wire` states: the document
// marks optional fields as possibly missing.
type Schemas = components['schemas'];
type Wire<T> = T extends (infer U)[]
  ? Wire<U>[]
  : T extends object
    ? { [K in keyof T]-?: Wire<Exclude<T[K], undefined>> }
    : T;

export type AccessAction = Schemas['AccessAction'];
export type DataCategory = Schemas['DataCategory'];
/** What a grant lets the grantee do with the data. */
export type Access = Schemas['Access'];
export type Purpose = Schemas['Purpose'];
export type Role = Schemas['Role'];
export type RuleId = Schemas['RuleId'];
export type Severity = Schemas['Severity'];
export type AlertKind = Schemas['AlertKind'];
export type AlertStatus = Schemas['AlertStatus'];
export type Resolution = Schemas['Resolution'];
export type PanelFlag = Schemas['PanelFlag'];
export type GlucoseUnit = Schemas['GlucoseUnit'];

export type Me = Wire<Schemas['Me']>;
/** What one of the patient's grants shares with the caller. */
export type SharedItem = Wire<Schemas['SharedItem']>;
export type PatientListItem = Wire<Schemas['PatientListItem']>;

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export type GlucosePoint = Wire<Schemas['GlucosePoint']>;
export type BloodPressurePoint = Wire<Schemas['BloodPressurePoint']>;
export type TreatmentPoint = Wire<Schemas['TreatmentPoint']>;
export type TreatmentKind = Schemas['TreatmentKind'];
export type GranteeType = Schemas['GranteeType'];
export type Grant = Wire<Schemas['GrantItem']>;
export type NewGrant = Wire<Schemas['CreateGrantRequest']>;
export type AccessLogItem = Wire<Schemas['AccessLogItem']>;
export type Guardian = Wire<Schemas['GuardianItem']>;
export type CareTeam = Wire<Schemas['CareTeamItem']>;
export type Invitation = Wire<Schemas['InvitationItem']>;
export type InvitationState = Schemas['InvitationState'];
export type NewInvitation = Schemas['CreateInvitationRequest'];
export type CreatedInvitation = Wire<Schemas['CreatedInvitation']>;
export type TeamMember = Wire<Schemas['TeamMemberItem']>;
/** A care team's escalation of urgent alerts: who is told first, who next, how often again. */
export type EscalationPolicy = Wire<Schemas['PolicyBody']>;
export type EscalationStep = Wire<Schemas['StepBody']>;
/** A team's policy, `null` when it has none. */
export type Escalation = Wire<Schemas['EscalationItem']>;
export type InvitationPreview = Wire<Schemas['InvitationPreview']>;
export type AcceptInvitation = Schemas['AcceptInvitationRequest'];
export type ShareLink = Wire<Schemas['ShareLinkItem']>;
export type NewShareLink = Wire<Schemas['CreateShareLinkRequest']>;
/** A new share link, its token shown once. */
export type CreatedShareLink = Wire<Schemas['CreatedShareLink']>;
export type Channel = Wire<Schemas['ChannelItem']>;
export type NewChannel = Schemas['NewChannel'];
export type CreatedChannel = Wire<Schemas['CreatedChannel']>;
export type NotificationDelivery = Wire<Schemas['NotificationDeliveryItem']>;
export type PushKey = Wire<Schemas['PushKey']>;
export type QuietHours = Schemas['QuietHoursBody'];
export type QuietHoursItem = Wire<Schemas['QuietHoursItem']>;
export type ImportPreview = Wire<Schemas['ImportPreview']>;
export type ImportResult = Wire<Schemas['ImportResult']>;
/** A vendor export Chronicle imports. */
export type ImportFormat = 'dexcom_clarity' | 'libreview' | 'nightscout';
export interface ImportOptions {
  format: ImportFormat;
  time_zone?: string;
  date_order?: 'mdy' | 'dmy' | 'ymd';
}

/** What the caller may see of a category on the panel. */
export type AccessLevel = Schemas['AccessLevel'];
export type PanelItem = Wire<Schemas['PanelItem']>;
export type PanelPage = Wire<Schemas['PanelBody']>;

type PanelParameters = NonNullable<operations['panel']['parameters']['query']>;
export type PanelSort = NonNullable<PanelParameters['sort']>;
/** The panel's query as the dashboard sends it: always in the unit the user chose. */
export type PanelQuery = Omit<PanelParameters, 'unit'> & { unit: GlucoseUnit };

/** What the reading that raised an alert showed; the fields depend on the rule (the document
 * says only "object"). */
export interface AlertEvidence {
  value_mg_dl?: number;
  flag?: string;
  source?: string;
  forecast_mg_dl?: number;
  fall_mg_dl_per_minute?: number;
  systolic?: number;
  diastolic?: number;
  mean_systolic?: number;
  mean_diastolic?: number;
  readings?: number;
  device_kind?: string;
  last_reading_at?: string;
}
export type AlertItem = Omit<Wire<Schemas['AlertItem']>, 'evidence'> & { evidence: AlertEvidence };
/** One event of the live stream. */
export type AlertEvent = Omit<Wire<Schemas['AlertEventItem']>, 'alert'> & { alert: AlertItem };

/** The glucose targets of `GET …/targets` (the document says only "object"). */
export interface GlucoseTargets {
  preset: string;
  range_low_mg_dl: number;
  range_high_mg_dl: number;
}
export type PatientTargets = Omit<Wire<Schemas['TargetsBody']>, 'glucose_targets'> & {
  glucose_targets: GlucoseTargets;
};

export type GlucoseMetrics = Wire<Schemas['GlucoseMetrics']>;
export type TrendWindow = Wire<Schemas['WindowBody']>;
export type GlucoseTrend = Wire<Schemas['GlucoseTrendBody']>;
export type PressurePair = Wire<Schemas['PressurePair']>;
export type BloodPressureMetrics = Wire<Schemas['BloodPressureMetrics']>;
export type BloodPressureTrend = Wire<Schemas['BloodPressureTrendBody']>;
export type EmergencyAccess = Wire<Schemas['EmergencyAccessSeen']>;
export type LoginResponse = Wire<Schemas['LoginResponse']>;
/** `json`: everything held; `fhir`: the clinical record; `csv`: the readings. */
export type ExportFormat = 'json' | 'fhir' | 'csv';

/** `GET /readyz` (outside the versioned API). */
export interface Readiness {
  ready: boolean;
  database: string;
  broker: string;
}

/** An answer other than 2xx, with the API's stable error code. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
  /** 404 and 403: the caller holds nothing (or not this) for the patient. */
  get notShared(): boolean {
    return this.status === 404 || this.status === 403;
  }
}

/** The most readings one chart loads, so a very long range cannot exhaust the browser. */
export const MAX_CHART_READINGS = 100_000;
const PAGE_SIZE = 5000;

async function send(method: string, path: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  const token = session.token();
  if (token) headers.Authorization = `Bearer ${token}`;
  // A file (an export to import) goes as it is; anything else as JSON.
  const file = body instanceof Blob;
  if (body !== undefined) headers['Content-Type'] = file ? 'text/csv' : 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : file ? body : JSON.stringify(body),
    cache: 'no-store',
  });
  if (response.ok) return response;
  let code = 'http_error';
  let message = `${response.status} ${response.statusText}`;
  try {
    // Every error is an RFC 9457 problem: {type, title, status, detail, code}.
    const problem = await response.json();
    if (typeof problem?.code === 'string') code = problem.code;
    if (typeof problem?.detail === 'string') message = problem.detail;
  } catch {
    // Not a JSON error body; keep the status line.
  }
  if (response.status === 401 && token) session.expired();
  throw new ApiError(response.status, code, message);
}

async function json<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await send(method, path, body);
  return response.status === 204 ? (undefined as T) : ((await response.json()) as T);
}

function query(params: Record<string, string | number | boolean | null | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined) search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

/** Follows `next_cursor` until the last page (or `MAX_CHART_READINGS`). */
async function allPages<T>(path: string, params: Record<string, string | null>): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | null = null;
  do {
    const page: Page<T> = await json('GET', path + query({ ...params, limit: PAGE_SIZE, cursor }));
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < MAX_CHART_READINGS);
  return items;
}

export interface TimeRange {
  from: Date;
  to: Date;
}

const patient = (id: string) => `/v1/patients/${encodeURIComponent(id)}`;
const careTeam = (id: string) => `/v1/care-teams/${encodeURIComponent(id)}`;

export const api = {
  readiness: async (): Promise<Readiness> => (await fetch('/readyz', { cache: 'no-store' })).json(),
  login: (email: string, password: string) =>
    json<LoginResponse>('POST', '/v1/auth/login', { email, password }),
  logout: () => json<void>('POST', '/v1/auth/logout'),
  me: () => json<Me>('GET', '/v1/me'),
  patients: () => json<PatientListItem[]>('GET', '/v1/patients'),

  glucose: (id: string, range: TimeRange, unit: GlucoseUnit) =>
    allPages<GlucosePoint>(`${patient(id)}/glucose`, {
      from: range.from.toISOString(),
      to: range.to.toISOString(),
      unit,
    }),
  bloodPressure: (id: string, range: TimeRange) =>
    allPages<BloodPressurePoint>(`${patient(id)}/blood-pressure`, {
      from: range.from.toISOString(),
      to: range.to.toISOString(),
    }),

  treatments: (id: string, range: TimeRange) =>
    allPages<TreatmentPoint>(`${patient(id)}/treatments`, {
      from: range.from.toISOString(),
      to: range.to.toISOString(),
    }),

  /** One page of readings (the panel's 24-hour sparkline). */
  glucosePage: (id: string, range: TimeRange, unit: GlucoseUnit, limit: number) =>
    json<Page<GlucosePoint>>(
      'GET',
      `${patient(id)}/glucose${query({ from: range.from.toISOString(), to: range.to.toISOString(), unit, limit })}`,
    ),

  panel: (q: PanelQuery) => json<PanelPage>('GET', `/v1/panel${query({ ...q })}`),
  patientAlerts: (
    id: string,
    q: { status?: string; kind?: string; category?: string; limit?: number; cursor?: string | null },
  ) =>
    json<Page<AlertItem>>('GET', `${patient(id)}/alerts${query({ ...q })}`),
  acknowledgeAlert: (id: string, alertId: string, note: string | null) =>
    json<AlertItem>('POST', `${patient(id)}/alerts/${encodeURIComponent(alertId)}/acknowledge`, { note }),
  resolveAlert: (id: string, alertId: string, note: string | null) =>
    json<AlertItem>('POST', `${patient(id)}/alerts/${encodeURIComponent(alertId)}/resolve`, { note }),
  targets: (id: string) => json<PatientTargets>('GET', `${patient(id)}/targets`),
  glucoseTrend: (id: string, days: number, unit: GlucoseUnit) =>
    json<GlucoseTrend>('GET', `${patient(id)}/trends/glucose${query({ days, unit })}`),
  /** The printable Ambulatory Glucose Profile report (PDF) of the last `days` days. */
  agpReport: async (id: string, days: number, unit: GlucoseUnit): Promise<Blob> =>
    (await send('GET', `${patient(id)}/reports/agp.pdf${query({ days, unit })}`)).blob(),
  bloodPressureTrend: (id: string, days: number) =>
    json<BloodPressureTrend>('GET', `${patient(id)}/trends/blood-pressure${query({ days })}`),

  grants: (id: string) => json<Grant[]>('GET', `${patient(id)}/grants`),
  createGrant: (id: string, grant: NewGrant) => json<Grant>('POST', `${patient(id)}/grants`, grant),
  revokeGrant: (id: string, grantId: string) =>
    json<Grant>('DELETE', `${patient(id)}/grants/${encodeURIComponent(grantId)}`),

  shareLinks: (id: string) => json<ShareLink[]>('GET', `${patient(id)}/share-links`),
  createShareLink: (id: string, link: NewShareLink) =>
    json<CreatedShareLink>('POST', `${patient(id)}/share-links`, link),
  revokeShareLink: (id: string, linkId: string) =>
    json<ShareLink>('DELETE', `${patient(id)}/share-links/${encodeURIComponent(linkId)}`),

  emergencyAccesses: (id: string) => json<EmergencyAccess[]>('GET', `${patient(id)}/emergency-access`),
  accessLog: (id: string, cursor: string | null) =>
    json<Page<AccessLogItem>>('GET', `${patient(id)}/access-log${query({ cursor, limit: 100 })}`),

  guardians: (id: string) => json<Guardian[]>('GET', `${patient(id)}/guardians`),
  nameGuardian: (id: string, email: string) =>
    json<Guardian>('POST', `${patient(id)}/guardians`, { email }),
  removeGuardian: (id: string, userId: string) =>
    json<void>('DELETE', `${patient(id)}/guardians/${encodeURIComponent(userId)}`),

  /** The export as a file the browser saves. */
  exportFile: async (id: string, format: ExportFormat): Promise<Blob> =>
    (await send('GET', `${patient(id)}/export/${format}`)).blob(),
  erase: (id: string) => json<void>('DELETE', patient(id)),
  channels: () => json<Channel[]>('GET', '/v1/me/channels'),
  addChannel: (channel: NewChannel) => json<CreatedChannel>('POST', '/v1/me/channels', channel),
  removeChannel: (id: string) => json<Channel>('DELETE', `/v1/me/channels/${encodeURIComponent(id)}`),
  notificationDeliveries: () => json<NotificationDelivery[]>('GET', '/v1/me/notifications?limit=50'),
  pushKey: () => json<PushKey>('GET', '/v1/push/vapid-public-key'),
  quietHours: () => json<QuietHoursItem>('GET', '/v1/me/quiet-hours'),
  setQuietHours: (quiet: QuietHours) => json<QuietHoursItem>('PUT', '/v1/me/quiet-hours', quiet),
  clearQuietHours: () => json<void>('DELETE', '/v1/me/quiet-hours'),
  careTeams: () => json<CareTeam[]>('GET', '/v1/care-teams'),
  invitations: (teamId: string) =>
    json<Invitation[]>('GET', `/v1/care-teams/${encodeURIComponent(teamId)}/invitations`),
  createInvitation: (teamId: string, body: NewInvitation) =>
    json<CreatedInvitation>('POST', `/v1/care-teams/${encodeURIComponent(teamId)}/invitations`, body),
  revokeInvitation: (teamId: string, invitationId: string) =>
    json<Invitation>(
      'DELETE',
      `/v1/care-teams/${encodeURIComponent(teamId)}/invitations/${encodeURIComponent(invitationId)}`,
    ),
  teamMembers: (teamId: string) => json<TeamMember[]>('GET', `${careTeam(teamId)}/members`),
  /** Sets (a text) or clears (`null`) a member's duty in the team. */
  setMemberDuty: (teamId: string, userId: string, duty: string | null) =>
    json<void>('PUT', `${careTeam(teamId)}/members/${encodeURIComponent(userId)}/duty`, { duty }),
  escalation: (teamId: string) => json<Escalation>('GET', `${careTeam(teamId)}/escalation`),
  setEscalation: (teamId: string, policy: EscalationPolicy) =>
    json<Escalation>('PUT', `${careTeam(teamId)}/escalation`, policy),
  clearEscalation: (teamId: string) => json<void>('DELETE', `${careTeam(teamId)}/escalation`),
  openInvitation: (code: string) => json<InvitationPreview>('GET', `/v1/invitations/${encodeURIComponent(code)}`),
  acceptInvitation: (code: string, body: AcceptInvitation) =>
    json<Grant>('POST', `/v1/invitations/${encodeURIComponent(code)}/accept`, body),

  /** What importing a vendor export would store (nothing is stored). */
  previewImport: (id: string, file: Blob, options: ImportOptions) =>
    json<ImportPreview>('POST', `${patient(id)}/imports/preview${query({ ...options })}`, file),
  /** Imports a vendor export through the ingest. */
  importFile: (id: string, file: Blob, options: ImportOptions) =>
    json<ImportResult>('POST', `${patient(id)}/imports${query({ ...options })}`, file),
};
