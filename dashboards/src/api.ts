// The public HTTP API, as the dashboard uses it. The dashboard holds no privilege of its own:
// every call carries the user's bearer token and the server's gate decides what comes back.
// Types mirror the OpenAPI document served at /openapi.json.

import { session } from './session';

export type GlucoseUnit = 'mg/dL' | 'mmol/L';
export type Basis = 'own' | 'guardian' | 'grant';

export interface Me {
  id: string;
  email: string;
  display_name: string;
  role: string;
  patient_id: string | null;
  guardian_of: string[];
  care_teams: string[];
  organizations: string[];
}

/** What one of the patient's grants shares with the caller. */
export interface SharedItem {
  categories: string[];
  access: string[];
  purpose: string;
  data_since: string | null;
  expires_at: string | null;
}

export interface PatientListItem {
  patient_id: string;
  display_name: string | null;
  time_zone: string | null;
  basis: Basis;
  shared: SharedItem[];
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface GlucosePoint {
  measured_at: string;
  value: number;
  unit: GlucoseUnit;
  source: string;
  flag: string | null;
  device_id: string;
}

export interface BloodPressurePoint {
  measured_at: string;
  systolic: number;
  diastolic: number;
  pulse: number | null;
  device_id: string;
}

export type GranteeType = 'user' | 'care_team' | 'organization';

export interface Grant {
  id: string;
  grantee: { type: GranteeType; id: string; name: string | null };
  categories: string[];
  access: string[];
  purpose: string;
  data_since: string | null;
  expires_at: string | null;
  revoked_at: string | null;
  created_at: string;
  active: boolean;
}

export interface NewGrant {
  grantee: { type: GranteeType; id: string };
  categories: string[];
  access: string[];
  purpose: string;
  data_since: string | null;
  expires_at: string | null;
}

export interface AccessLogItem {
  at: string;
  actor_id: string | null;
  actor_name: string | null;
  actor_role: string | null;
  action: string;
  category: string | null;
  purpose: string | null;
  grant_id: string | null;
  emergency_id: string | null;
  outcome: 'allowed' | 'denied';
  reason: string | null;
}

export interface Guardian {
  user_id: string;
  display_name: string;
  email: string;
}

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
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  if (response.ok) return response;
  let code = 'http_error';
  let message = `${response.status} ${response.statusText}`;
  try {
    const error = (await response.json()).error;
    if (error?.code) code = error.code;
    if (error?.message) message = error.message;
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

function query(params: Record<string, string | number | null | undefined>): string {
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

export const api = {
  readiness: async (): Promise<Readiness> => (await fetch('/readyz', { cache: 'no-store' })).json(),
  login: (email: string, password: string) =>
    json<{ token: string; expires_at: string | null }>('POST', '/v1/auth/login', { email, password }),
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

  grants: (id: string) => json<Grant[]>('GET', `${patient(id)}/grants`),
  createGrant: (id: string, grant: NewGrant) => json<Grant>('POST', `${patient(id)}/grants`, grant),
  revokeGrant: (id: string, grantId: string) =>
    json<Grant>('DELETE', `${patient(id)}/grants/${encodeURIComponent(grantId)}`),

  accessLog: (id: string, cursor: string | null) =>
    json<Page<AccessLogItem>>('GET', `${patient(id)}/access-log${query({ cursor, limit: 100 })}`),

  guardians: (id: string) => json<Guardian[]>('GET', `${patient(id)}/guardians`),
  nameGuardian: (id: string, email: string) =>
    json<Guardian>('POST', `${patient(id)}/guardians`, { email }),
  removeGuardian: (id: string, userId: string) =>
    json<void>('DELETE', `${patient(id)}/guardians/${encodeURIComponent(userId)}`),

  /** The export as a file the browser saves. */
  exportFile: async (id: string, format: 'fhir' | 'csv'): Promise<Blob> =>
    (await send('GET', `${patient(id)}/export/${format}`)).blob(),
  erase: (id: string) => json<void>('DELETE', patient(id)),
};
