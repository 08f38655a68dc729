// How things read: dates in the patient's time zone, and the API's codes in plain language.

import type {
  Access,
  AccessAction,
  AccessLogItem,
  AlertItem,
  AlertStatus,
  DataCategory,
  GlucoseUnit,
  Grant,
  GranteeType,
  PanelFlag,
  Purpose,
  RuleId,
  Severity,
  SharedItem,
  TreatmentKind,
  TreatmentPoint,
} from './api';

const LOCALE = 'en-GB';

function formatter(timeZone: string, options: Intl.DateTimeFormatOptions): Intl.DateTimeFormat {
  return new Intl.DateTimeFormat(LOCALE, { timeZone, ...options });
}

/** "3 March 2026" */
export function formatDate(at: string | Date, timeZone: string): string {
  return formatter(timeZone, { day: 'numeric', month: 'long', year: 'numeric' }).format(new Date(at));
}

/** "3 March 2026, 14:05" */
export function formatDateTime(at: string | number | Date, timeZone: string): string {
  return formatter(timeZone, {
    day: 'numeric',
    month: 'long',
    year: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
  }).format(new Date(at));
}

/** "3 Mar, 14:05" for dense lists. */
export function formatShortDateTime(at: string | number | Date, timeZone: string): string {
  return formatter(timeZone, { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' }).format(
    new Date(at),
  );
}

/** "America/Chicago (GMT-6)" */
export function describeTimeZone(timeZone: string, at: Date = new Date()): string {
  const offset = formatter(timeZone, { timeZoneName: 'shortOffset' })
    .formatToParts(at)
    .find((part) => part.type === 'timeZoneName')?.value;
  return offset ? `${timeZone} (${offset})` : timeZone;
}

/** The browser's own zone, for users without a patient record. */
export function browserTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

/** How long ago, in words: "5 minutes ago". */
export function age(at: string | Date, now: Date = new Date()): string {
  const minutes = Math.round((now.getTime() - new Date(at).getTime()) / 60_000);
  if (minutes < 1) return 'just now';
  if (minutes < 60) return `${minutes} minute${minutes === 1 ? '' : 's'} ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours} hour${hours === 1 ? '' : 's'} ago`;
  return `${Math.round(hours / 24)} days ago`;
}

/** Milliseconds to add to UTC to get the wall-clock time in `timeZone` at `at`. */
function zoneOffset(at: number, timeZone: string): number {
  const parts = formatter(timeZone, {
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).formatToParts(new Date(at));
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value);
  const wall = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'));
  return wall - Math.floor(at / 1000) * 1000;
}

/** The instant a calendar day (`YYYY-MM-DD`) starts in `timeZone`. */
export function startOfDay(day: string, timeZone: string): Date {
  const [year, month, date] = day.split('-').map(Number);
  const wall = Date.UTC(year, month - 1, date);
  // Twice, because the offset at the first guess may differ across a DST change.
  let at = wall - zoneOffset(wall, timeZone);
  at = wall - zoneOffset(at, timeZone);
  return new Date(at);
}

/** The calendar day (`YYYY-MM-DD`) of an instant in `timeZone`, for date inputs. */
export function dayOf(at: Date, timeZone: string): string {
  return new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(at);
}

export function formatGlucose(value: number, unit: GlucoseUnit): string {
  return unit === 'mmol/L' ? value.toFixed(1) : value.toFixed(0);
}

// The API's vocabulary (docs/sharing.md) in words. Each table is typed by the vocabulary's
// schema, so a word the server adds is a compile error here until it has its words.

export const CATEGORY_LABELS: Record<DataCategory, string> = {
  glucose: 'glucose',
  blood_pressure: 'blood pressure',
  treatments: 'treatments (insulin, carbohydrates, exercise, notes)',
  device_info: 'device information',
};

export const ACCESS_LABELS: Record<Access, string> = {
  view_readings: 'every reading',
  view_trends: 'trends only',
  receive_alerts: 'receive alerts',
  export: 'export',
};

export const PURPOSE_LABELS: Record<Purpose, string> = {
  care: 'care',
  caregiving: 'caregiving (family, friends)',
  research: 'research (de-identified)',
  peer_support: 'peer support',
};

export const GRANTEE_TYPE_LABELS: Record<GranteeType, string> = {
  user: 'person',
  care_team: 'care team',
  organization: 'organization',
  share_link: 'share link',
};

const label = (labels: Record<string, string>, code: string) => labels[code] ?? code.replaceAll('_', ' ');

/** A vocabulary table's codes with their words, the codes keeping their type. */
export const labelEntries = <K extends string>(labels: Record<K, string>) =>
  Object.entries(labels) as [K, string][];

export function listInWords(items: string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

export function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export const categoriesInWords = (codes: string[]) => listInWords(codes.map((c) => label(CATEGORY_LABELS, c)));
export const accessInWords = (codes: string[]) => listInWords(codes.map((c) => label(ACCESS_LABELS, c)));
export const purposeInWords = (code: string) => label(PURPOSE_LABELS, code);

/** "Glucose and blood pressure: every reading and export, for care, until 3 June 2026" */
export function sharedInWords(shared: SharedItem, timeZone: string): string {
  const parts = [`${capitalize(categoriesInWords(shared.categories))}: ${accessInWords(shared.access)}`];
  parts.push(`for ${purposeInWords(shared.purpose)}`);
  if (shared.data_since) parts.push(`data since ${formatDate(shared.data_since, timeZone)}`);
  parts.push(shared.expires_at ? `until ${formatDate(shared.expires_at, timeZone)}` : 'no end date');
  return parts.join(', ');
}

/** "Diabetes team (care team)"; a grantee that no longer exists keeps its id. */
export function granteeInWords(grant: Grant): string {
  const type = label(GRANTEE_TYPE_LABELS, grant.grantee.type);
  return grant.grantee.name ? `${grant.grantee.name} (${type})` : `an unknown ${type} (${grant.grantee.id})`;
}

/** An action as done and as attempted ("tried to …"). */
const phrase = (done: string, attempted: string) => ({ done, tried: `tried to ${attempted}` });
/** An action that shows something, as done and as refused ("was not shown …"). */
const shown = (done: string, refused: string) => ({ done, tried: `was not ${refused}` });

/** What an access-log action did, as a verb phrase about "your" data: one for every action
 * the server logs (the type makes a new one a compile error until it has its words). */
const ACTIONS: Record<AccessAction, { done: string; tried: string }> = {
  read_glucose_readings: phrase('viewed your glucose readings', 'view your glucose readings'),
  read_blood_pressure_readings: phrase('viewed your blood-pressure readings', 'view your blood-pressure readings'),
  read_treatments: phrase('viewed your treatments', 'view your treatments'),
  read_glucose_trend: phrase('viewed your glucose trends', 'view your glucose trends'),
  read_blood_pressure_trend: phrase('viewed your blood-pressure trends', 'view your blood-pressure trends'),
  list_patients: shown('saw your name in a list of patients', 'shown your name in a list of patients'),
  read_panel: shown('saw your summary in their patient panel', 'shown your summary in their patient panel'),
  read_panel_alerts: shown(
    'saw how many alerts you have open, in their patient panel',
    'shown your open alerts in their patient panel',
  ),
  read_devices: phrase('viewed your devices', 'view your devices'),
  pair_device: phrase('paired a device', 'pair a device'),
  revoke_device: phrase('revoked a device', 'revoke a device'),
  preview_import: phrase('previewed an import into your record', 'preview an import into your record'),
  import_readings: phrase('imported data into your record', 'import data into your record'),
  submit_cgm_bundle: phrase('submitted CGM data to your record (FHIR)', 'submit CGM data to your record (FHIR)'),
  read_gateways: phrase('viewed your gateways (apps and hubs)', 'view your gateways'),
  register_gateway: phrase('registered a gateway (an app or hub)', 'register a gateway'),
  revoke_gateway: phrase('revoked a gateway', 'revoke a gateway'),
  read_grants: phrase('looked at your sharing settings', 'look at your sharing settings'),
  create_grant: phrase('shared your data (a new grant)', 'share your data'),
  revoke_grant: phrase('revoked a grant', 'revoke a grant'),
  read_access_log: phrase('read your access log', 'read your access log'),
  open_emergency_access: phrase('opened your record in an emergency, without a grant', 'open your record in an emergency'),
  read_emergency_accesses: phrase('viewed the emergency accesses to your record', 'view the emergency accesses to your record'),
  grantee_member_added: phrase('added someone to a team you share with', 'add someone to a team you share with'),
  grantee_member_removed: phrase('removed someone from a team you share with', 'remove someone from a team you share with'),
  read_guardians: phrase('viewed your guardians', 'view your guardians'),
  name_guardian: phrase('named a guardian', 'name a guardian'),
  remove_guardian: phrase('removed a guardian', 'remove a guardian'),
  read_glucose_report: phrase('printed your glucose report (AGP)', 'print your glucose report (AGP)'),
  read_cgm_summary: phrase('read your CGM summary (FHIR)', 'read your CGM summary (FHIR)'),
  export_fhir: phrase('exported your record (FHIR)', 'export your record (FHIR)'),
  export_csv: phrase('exported your readings (CSV)', 'export your readings (CSV)'),
  export_json: phrase('exported everything held about you (JSON)', 'export everything held about you'),
  erase: phrase('erased your record', 'erase your record'),
  read_alerts: phrase('viewed your alerts', 'view your alerts'),
  list_alerts: shown('saw your alerts in their list of alerts', 'shown your alerts in a list'),
  receive_alert: shown('received an alert about you', 'sent an alert about you'),
  acknowledge_alert: phrase('acknowledged one of your alerts', 'acknowledge one of your alerts'),
  resolve_alert: phrase('resolved one of your alerts', 'resolve one of your alerts'),
  snooze_alerts: phrase('snoozed your alerts for themselves', 'snooze your alerts'),
  webhook_alert: shown(
    "sent one of your alerts to their organization's systems",
    "sent one of your alerts for their organization's systems",
  ),
  notify_alert: shown(
    'was sent one of your alerts on their own phone, e-mail or webhook',
    'sent one of your alerts on their own phone, e-mail or webhook',
  ),
  read_targets: phrase('viewed your targets and alert thresholds', 'view your targets'),
  read_target_changes: phrase('viewed the history of your targets', 'view the history of your targets'),
  update_targets: phrase('changed your targets or alert thresholds', 'change your targets or alert thresholds'),
  read_research_glucose: phrase('read your glucose readings for research, de-identified', 'read your glucose readings for research'),
  create_nightscout_uploader: phrase('made a Nightscout upload credential', 'make a Nightscout upload credential'),
  read_share_links: phrase('viewed your share links', 'view your share links'),
  create_share_link: phrase('made a share link', 'make a share link'),
  revoke_share_link: phrase('revoked a share link', 'revoke a share link'),
};

function actionInWords(entry: AccessLogItem): string {
  const known: { done: string; tried: string } | undefined = ACTIONS[entry.action];
  const allowed = entry.outcome === 'allowed';
  if (known) return allowed ? known.done : known.tried;
  // An action this page does not know yet (a newer server): say what the log says.
  const what = entry.category ? ` (${label(CATEGORY_LABELS, entry.category)})` : '';
  const action = entry.action.replaceAll('_', ' ');
  return allowed ? `did "${action}"${what}` : `tried "${action}"${what}`;
}

const REFUSALS: Record<string, string> = {
  no_grant: 'you had not shared this with them',
  category_not_granted: 'you had not shared this kind of data with them',
  access_not_granted: 'you had not allowed this use',
  no_purpose: 'their role has no purpose you share for',
  deidentified_only: 'you share only de-identified data with them',
};

export interface LogSentence {
  who: string;
  /** The care team or organization whose grant allowed the access, if it was one. */
  via: string | null;
  what: string;
  refusal: string | null;
}

/** One access-log entry in words: "Dr. Lee (Diabetes team) viewed your glucose readings". */
export function logSentence(entry: AccessLogItem, meId: string, grants: Map<string, Grant>): LogSentence {
  const who =
    entry.actor_id === meId ? 'You' : (entry.actor_name ?? (entry.actor_id ? 'Someone' : 'Chronicle'));
  const grant = entry.grant_id ? grants.get(entry.grant_id) : undefined;
  const via = grant && grant.grantee.type !== 'user' ? grant.grantee.name : null;
  const refusal =
    entry.outcome === 'denied' ? (entry.reason ? (REFUSALS[entry.reason] ?? entry.reason) : 'refused') : null;
  return { who, via, what: actionInWords(entry), refusal };
}

// Alerts, the panel's flags and blood-pressure categories in words.

export const RULE_LABELS: Record<RuleId, string> = {
  glucose_very_low: 'Very low glucose',
  glucose_low: 'Low glucose',
  glucose_predicted_low: 'Low glucose expected soon',
  glucose_very_high: 'Very high glucose',
  glucose_rapid_fall: 'Glucose falling fast',
  bp_crisis: 'Blood-pressure crisis',
  bp_low: 'Low blood pressure',
  bp_stage2_trend: 'Blood pressure high for a week',
  no_data: 'No data from a device',
};

export const ruleInWords = (rule: string) => label(RULE_LABELS, rule);

export const SEVERITY_LABELS: Record<Severity, string> = { info: 'Info', warning: 'Warning', urgent: 'Urgent' };

export const STATUS_LABELS: Record<AlertStatus, string> = {
  open: 'Open',
  acknowledged: 'Acknowledged',
  resolved: 'Resolved',
};

/** What the reading behind an alert showed, in the chosen unit. */
export function evidenceInWords(alert: AlertItem, unit: GlucoseUnit, timeZone: string): string {
  const e = alert.evidence;
  const glucose = (mgDl: number) => `${formatGlucose(unit === 'mmol/L' ? mgDl / MG_DL_PER_MMOL_L : mgDl, unit)} ${unit}`;
  const parts: string[] = [];
  if (e.flag === 'lo') parts.push('sensor reads LO');
  else if (e.flag === 'hi') parts.push('sensor reads HI');
  else if (e.value_mg_dl !== undefined) parts.push(glucose(e.value_mg_dl) + (e.source ? ` (${e.source})` : ''));
  if (e.forecast_mg_dl !== undefined) parts.push(`forecast ${glucose(e.forecast_mg_dl)} in 20 minutes`);
  if (e.fall_mg_dl_per_minute !== undefined) {
    const perMinute = unit === 'mmol/L' ? e.fall_mg_dl_per_minute / MG_DL_PER_MMOL_L : e.fall_mg_dl_per_minute;
    parts.push(`falling ${perMinute.toFixed(unit === 'mmol/L' ? 2 : 1)} ${unit} a minute`);
  }
  if (e.systolic !== undefined && e.diastolic !== undefined) parts.push(`${e.systolic}/${e.diastolic} mm Hg`);
  if (e.mean_systolic !== undefined && e.mean_diastolic !== undefined) {
    parts.push(`7-day mean ${Math.round(e.mean_systolic)}/${Math.round(e.mean_diastolic)} mm Hg over ${e.readings ?? '?'} readings`);
  }
  if (e.last_reading_at) parts.push(`last reading ${formatShortDateTime(e.last_reading_at, timeZone)}`);
  return parts.join(', ');
}

/** 1 mmol/L of glucose = 18.01559 mg/dL (as the API converts). */
export const MG_DL_PER_MMOL_L = 18.01559;

export const FLAG_LABELS: Record<PanelFlag, string> = {
  urgent_alert: 'Urgent alert',
  below_54: 'Time below 54',
  below_range: 'Time below range',
  bp_crisis: 'BP crisis',
  open_alert: 'Open alert',
  above_250: 'Time above 250',
  tir_dropped: 'Time in range dropped',
  tir_below_target: 'Time in range below target',
  bp_stage_2: 'BP stage 2',
  above_range: 'Time above range',
  no_data: 'No data',
  no_recent_data: 'No recent data',
  low_wear: 'Low sensor wear',
};

/** The flags in the panel's order of severity, for the filter. */
export const PANEL_FLAGS = Object.keys(FLAG_LABELS);

export const flagInWords = (flag: string) => label(FLAG_LABELS, flag);

export const BP_CATEGORY_LABELS: Record<string, string> = {
  normal: 'Normal',
  elevated: 'Elevated',
  stage_1: 'Stage 1 hypertension',
  stage_2: 'Stage 2 hypertension',
  crisis: 'Hypertensive crisis',
};

export const bpCategoryInWords = (category: string) => label(BP_CATEGORY_LABELS, category);

/** "12 %" with one decimal under 10. */
export function formatPercent(value: number | null | undefined): string {
  if (value === null || value === undefined) return '–';
  return `${value < 9.95 && value > 0 ? value.toFixed(1) : value.toFixed(0)} %`;
}

/** How long ago, from minutes: "5 minutes ago". */
export function ageOfMinutes(minutes: number, now: Date = new Date()): string {
  return age(new Date(now.getTime() - minutes * 60_000), now);
}

export const TREATMENT_LABELS: Record<TreatmentKind, string> = {
  bolus_insulin: 'insulin (bolus)',
  basal_insulin: 'insulin (basal)',
  carbohydrates: 'carbohydrates',
  exercise: 'exercise',
  note: 'note',
  sensor_start: 'sensor started',
  sensor_change: 'sensor changed',
  calibration: 'calibration',
};

/** "4.5 U", "45 g", "30 min", or "" for a treatment without an amount. */
export function treatmentAmount(t: TreatmentPoint): string {
  const parts: string[] = [];
  if (t.amount !== null) {
    const unit = t.amount_unit === '[iU]' ? 'U' : (t.amount_unit ?? '');
    parts.push(`${Number(t.amount.toFixed(1))} ${unit}`.trim());
  }
  if (t.duration_minutes !== null) parts.push(`${t.duration_minutes} min`);
  return parts.join(' over ');
}
