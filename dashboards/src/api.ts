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

/** What the caller may see of a category on the panel. */
export type AccessLevel = 'readings' | 'trends' | 'none';

export interface PanelItem {
  patient_id: string;
  display_name: string;
  time_zone: string;
  access: { glucose: AccessLevel; blood_pressure: AccessLevel };
  glucose: {
    readings: number;
    time_in_range_percent: number | null;
    time_below_70_percent: number | null;
    time_below_54_percent: number | null;
    time_above_180_percent: number | null;
    time_above_250_percent: number | null;
    time_in_target_percent: number | null;
    previous_time_in_target_percent: number | null;
    target_preset: string;
    mean: number | null;
    cv_percent: number | null;
    gmi_percent: number | null;
    cgm_active_percent: number | null;
    sufficient: boolean;
    /** Value and time only when the caller may read single readings; the age always. */
    latest: { age_minutes: number; measured_at: string | null; value: number | null } | null;
  } | null;
  blood_pressure: {
    readings: number;
    mean_systolic: number | null;
    mean_diastolic: number | null;
    category: string | null;
    latest: {
      age_minutes: number;
      measured_at: string | null;
      systolic: number | null;
      diastolic: number | null;
    } | null;
  } | null;
  /** `null`: the caller does not receive this patient's alerts. */
  open_alerts: { open: number; open_urgent: number; acknowledged: number } | null;
  flags: string[];
  risk_score: number;
}

export interface PanelPage {
  items: PanelItem[];
  next_cursor: string | null;
  total: number;
  period_days: number;
  unit: GlucoseUnit;
}

export interface PanelQuery {
  sort?: string;
  order?: 'asc' | 'desc' | null;
  flag?: string | null;
  flagged?: boolean | null;
  q?: string | null;
  unit: GlucoseUnit;
  limit: number;
  cursor?: string | null;
}

export interface AlertItem {
  id: string;
  patient_id: string;
  rule: string;
  category: string;
  severity: 'info' | 'warning' | 'urgent';
  kind: 'alert' | 'historical';
  status: 'open' | 'acknowledged' | 'resolved' | null;
  device_id: string | null;
  triggered_at: string;
  last_seen_at: string;
  cleared_since: string | null;
  trigger_count: number;
  evidence: {
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
  };
  opened_at: string;
  updated_at: string;
  acknowledged_by: string | null;
  acknowledged_at: string | null;
  acknowledgement_note: string | null;
  resolved_by: string | null;
  resolved_at: string | null;
  resolution: string | null;
  resolution_note: string | null;
}

/** One event of the live stream. */
export interface AlertEvent {
  event_id: number;
  type: 'opened' | 'retriggered' | 'escalated' | 'acknowledged' | 'resolved' | 'historical';
  at: string;
  actor_id: string | null;
  alert: AlertItem;
}

export interface PatientTargets {
  glucose_targets: { preset: string; range_low_mg_dl: number; range_high_mg_dl: number };
  custom_thresholds: boolean;
}

export interface GlucoseMetrics {
  readings: number;
  cgm_readings: number;
  days_with_data: number;
  days_with_cgm: number;
  calendar_days: number;
  mean: number | null;
  sd: number | null;
  cv_percent: number | null;
  gmi_percent: number | null;
  time_very_low_percent: number | null;
  time_low_percent: number | null;
  time_in_range_percent: number | null;
  time_high_percent: number | null;
  time_very_high_percent: number | null;
  time_below_70_percent: number | null;
  time_above_180_percent: number | null;
  time_below_target_percent: number | null;
  time_in_target_percent: number | null;
  time_above_target_percent: number | null;
  cgm_active_percent: number | null;
  sufficient: boolean;
  insufficient_reasons: string[];
}

export interface TrendWindow {
  first_day: string;
  last_day: string;
  start: string;
  end: string;
  calendar_days: number;
  data_since: string | null;
}

export interface GlucoseTrend {
  patient_id: string;
  time_zone: string;
  unit: GlucoseUnit;
  individual_readings: boolean;
  window: TrendWindow;
  targets: {
    preset: string;
    range_low: number;
    range_high: number;
    time_in_range_min_percent: number;
    time_below_range_max_percent: number;
    time_below_54_max_percent: number;
    time_above_range_max_percent: number;
    time_above_250_max_percent: number;
    cv_max_percent: number;
  };
  metrics: GlucoseMetrics;
  daily: (GlucoseMetrics & { date: string; hours: number })[];
  agp: {
    bin_minutes: number;
    bins: { start: string; readings: number; p5: number | null; p25: number | null; p50: number | null; p75: number | null; p95: number | null }[];
  };
}

export interface PressurePair {
  readings: number;
  systolic: number;
  diastolic: number;
}

export interface BloodPressureMetrics {
  readings: number;
  days_with_data: number;
  calendar_days: number;
  mean_systolic: number | null;
  mean_diastolic: number | null;
  sd_systolic: number | null;
  sd_diastolic: number | null;
  morning: PressurePair | null;
  evening: PressurePair | null;
  category: string | null;
  low: boolean;
  at_or_above_130_80_percent: number | null;
  at_or_above_135_85_percent: number | null;
  pulse: { readings: number; mean: number | null; sd: number | null };
}

export interface BloodPressureTrend {
  patient_id: string;
  time_zone: string;
  window: TrendWindow;
  metrics: BloodPressureMetrics;
  daily: (BloodPressureMetrics & { date: string })[];
  home_protocol: {
    discarded_day: string;
    first_day: string;
    last_day: string;
    morning: PressurePair | null;
    evening: PressurePair | null;
    mean_systolic: number;
    mean_diastolic: number;
    category: string;
  } | null;
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
  bloodPressureTrend: (id: string, days: number) =>
    json<BloodPressureTrend>('GET', `${patient(id)}/trends/blood-pressure${query({ days })}`),

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
