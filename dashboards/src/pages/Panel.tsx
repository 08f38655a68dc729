// The care team's panel (GET /v1/panel): every patient who shares with the user, riskiest
// first, with the latest glucose and its age, the last 24 hours as a sparkline, the 14-day
// time in ranges, CV and sensor wear, the blood-pressure category and open alerts. Filter by
// flag, search by name, sort, page. A new alert refreshes the rows without a reload.

import { useEffect, useRef, useState } from 'preact/hooks';
import { api, type GlucoseUnit, type PanelItem, type PanelQuery, type PanelSort } from '../api';
import { useAlertEvents, useAlertFeed } from '../components/AlertFeed';
import { ErrorNotice, Link, Loading } from '../components/common';
import { Sparkline } from '../components/Sparkline';
import { TimeInRangeBar, TimeInRangeKey, sharesFromCumulative } from '../components/TimeInRange';
import { UnitSwitch } from '../components/UnitSwitch';
import {
  ageOfMinutes,
  bpCategoryInWords,
  flagInWords,
  formatGlucose,
  formatPercent,
  PANEL_FLAGS,
} from '../format';
import { useAsync, useStoredPreference } from '../hooks';
import { patientPath } from '../router';
import { GLUCOSE_UNITS } from '../units';

const PAGE_SIZE = 20;
const HIGHLIGHT_MS = 15_000;

const SORTS: { key: PanelSort; label: string }[] = [
  { key: 'risk', label: 'Risk (highest first)' },
  { key: 'name', label: 'Name' },
  { key: 'time_in_range', label: 'Time in range (lowest first)' },
  { key: 'time_below_70', label: 'Time below 70 (most first)' },
  { key: 'time_below_54', label: 'Time below 54 (most first)' },
  { key: 'cv', label: 'Glucose variability, CV (highest first)' },
  { key: 'cgm_active', label: 'Sensor wear (lowest first)' },
  { key: 'latest', label: 'Latest reading (oldest first)' },
  { key: 'blood_pressure', label: 'Blood pressure (highest first)' },
];

/** Flags that mean danger, shown in red. */
const URGENT_FLAGS = new Set(['urgent_alert', 'below_54', 'bp_crisis']);

function useDebounced<T>(value: T, ms: number): T {
  const [debounced, setDebounced] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setDebounced(value), ms);
    return () => clearTimeout(timer);
  }, [value, ms]);
  return debounced;
}

export function Panel() {
  const [unit, setUnit] = useStoredPreference<GlucoseUnit>('chronicle.glucose-unit', GLUCOSE_UNITS, 'mg/dL');
  const [search, setSearch] = useState('');
  const q = useDebounced(search.trim(), 250);
  const [filter, setFilter] = useState('');
  const [sort, setSort] = useState<PanelSort>('risk');
  const [reversed, setReversed] = useState(false);
  // The cursors of the pages before the current one, to go back.
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const cursor = cursors[cursors.length - 1];
  const [highlighted, setHighlighted] = useState<Set<string>>(new Set());
  const feed = useAlertFeed();

  useEffect(() => setCursors([null]), [q, filter, sort, reversed, unit]);

  const query: PanelQuery = {
    unit,
    limit: PAGE_SIZE,
    cursor,
    q: q || null,
    sort,
    order: reversed ? (['name', 'time_in_range', 'cgm_active'].includes(sort) ? 'desc' : 'asc') : null,
    flagged: filter === 'any' ? true : filter === 'none' ? false : null,
    flag: filter && filter !== 'any' && filter !== 'none' ? filter : null,
  };
  const panel = useAsync(() => api.panel(query), [unit, cursor, q, sort, reversed, filter]);

  useEffect(() => {
    feed?.rememberNames((panel.data?.items ?? []).map((p) => ({ id: p.patient_id, name: p.display_name })));
  }, [panel.data, feed]);

  // A new alert (or one acknowledged elsewhere) changes the counts and the order: read the
  // panel again, and mark the row for a while.
  const refresh = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useAlertEvents((event) => {
    const id = event.alert.patient_id;
    if (['opened', 'retriggered', 'escalated'].includes(event.type)) {
      setHighlighted((current) => new Set(current).add(id));
      setTimeout(
        () =>
          setHighlighted((current) => {
            const next = new Set(current);
            next.delete(id);
            return next;
          }),
        HIGHLIGHT_MS,
      );
    }
    clearTimeout(refresh.current);
    refresh.current = setTimeout(panel.reload, 300);
  });

  const page = panel.data;
  const first = (cursors.length - 1) * PAGE_SIZE;
  return (
    <section aria-labelledby="panel-heading" class="card panel">
      <h2 id="panel-heading">Your patients</h2>
      <div class="panel-controls">
        <div class="search">
          <label for="patient-search">Search by name</label>
          <input id="patient-search" type="search" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />
        </div>
        <div class="search">
          <label for="panel-filter">Show</label>
          <select id="panel-filter" value={filter} onChange={(e) => setFilter(e.currentTarget.value)}>
            <option value="">All patients</option>
            <option value="any">Patients with any flag</option>
            <option value="none">Patients without flags</option>
            {PANEL_FLAGS.map((f) => (
              <option key={f} value={f}>
                Flag: {flagInWords(f)}
              </option>
            ))}
          </select>
        </div>
        <div class="search">
          <label for="panel-sort">Sort by</label>
          <select id="panel-sort" value={sort} onChange={(e) => setSort(e.currentTarget.value as PanelSort)}>
            {SORTS.map((s) => (
              <option key={s.key} value={s.key}>
                {s.label}
              </option>
            ))}
          </select>
        </div>
        <button type="button" class="button" aria-pressed={reversed} onClick={() => setReversed(!reversed)}>
          Reverse order
        </button>
        <UnitSwitch value={unit} onChange={setUnit} />
      </div>
      <TimeInRangeKey unit={unit} />
      {panel.error ? (
        <ErrorNotice error={panel.error} what="your patients" />
      ) : !page ? (
        <Loading what="your patients" />
      ) : page.total === 0 ? (
        <p class="empty">
          {q || filter
            ? 'No patient matches.'
            : 'No patient shares data with you at the moment. A patient shares by adding a grant for you, your care team or your organization.'}
        </p>
      ) : (
        <>
          <p class="muted" role="status" data-testid="panel-count">
            Patients {first + 1}–{first + page.items.length} of {page.total}; figures over the last {page.period_days}{' '}
            days{panel.loading ? ' (updating…)' : ''}.
          </p>
          <table class="data-table panel-table">
            <caption class="visually-hidden">Patients who share data with you, in the order chosen above</caption>
            <thead>
              <tr>
                <th scope="col">Patient</th>
                <th scope="col">Latest glucose</th>
                <th scope="col">Last 24 hours</th>
                <th scope="col">Time in ranges</th>
                <th scope="col">CV · wear</th>
                <th scope="col">Blood pressure</th>
                <th scope="col">Alerts</th>
              </tr>
            </thead>
            <tbody>
              {page.items.map((p) => (
                <PanelRow key={p.patient_id} item={p} unit={page.unit} highlighted={highlighted.has(p.patient_id)} />
              ))}
            </tbody>
          </table>
          <div class="button-row pager">
            <button
              type="button"
              class="button"
              disabled={cursors.length === 1}
              onClick={() => setCursors(cursors.slice(0, -1))}
            >
              Previous page
            </button>
            <button
              type="button"
              class="button"
              disabled={!page.next_cursor}
              onClick={() => page.next_cursor && setCursors([...cursors, page.next_cursor])}
            >
              Next page
            </button>
          </div>
        </>
      )}
    </section>
  );
}

function PanelRow(props: { item: PanelItem; unit: GlucoseUnit; highlighted: boolean }) {
  const { item: p, unit } = props;
  const g = p.glucose;
  const bp = p.blood_pressure;
  return (
    <tr class={props.highlighted ? 'row-alerted' : undefined} data-testid="panel-row">
      <td data-label="Patient">
        <Link href={patientPath(p.patient_id)} class="patient-name">
          {p.display_name}
        </Link>
        {p.flags.length > 0 && (
          <ul class="chips" aria-label="Flags">
            {p.flags.map((f) => (
              <li key={f} class={URGENT_FLAGS.has(f) ? 'chip chip-urgent' : 'chip'}>
                {flagInWords(f)}
              </li>
            ))}
          </ul>
        )}
      </td>
      <td data-label="Latest glucose">
        {!g ? (
          <span class="muted">Not shared</span>
        ) : !g.latest ? (
          <span class="muted">No readings</span>
        ) : (
          <>
            {g.latest.value !== null ? (
              <strong>
                {formatGlucose(g.latest.value, unit)} {unit}
              </strong>
            ) : (
              <span class="muted">Value not shared</span>
            )}
            <br />
            <span class="muted">{ageOfMinutes(g.latest.age_minutes)}</span>
          </>
        )}
      </td>
      <td data-label="Last 24 hours">
        {p.access.glucose === 'readings' ? (
          <RowSparkline patientId={p.patient_id} unit={unit} />
        ) : p.access.glucose === 'trends' ? (
          <span class="muted">Trends only: no single readings shared</span>
        ) : (
          <span class="muted">Glucose not shared</span>
        )}
      </td>
      <td data-label="Time in ranges">
        {g ? (
          <>
            <TimeInRangeBar
              compact
              shares={sharesFromCumulative({
                below54: g.time_below_54_percent,
                below70: g.time_below_70_percent,
                inRange: g.time_in_range_percent,
                above180: g.time_above_180_percent,
                above250: g.time_above_250_percent,
              })}
            />
            {!g.sufficient && g.readings > 0 && <span class="muted small">Too little data for a 14-day judgement</span>}
          </>
        ) : (
          <span class="muted">Not shared</span>
        )}
      </td>
      <td data-label="CV · wear">
        {g ? (
          <>
            CV {formatPercent(g.cv_percent)}
            <br />
            <span class="muted">
              {g.cgm_active_percent === null ? 'no CGM' : `wear ${formatPercent(g.cgm_active_percent)}`}
            </span>
          </>
        ) : (
          <span class="muted">–</span>
        )}
      </td>
      <td data-label="Blood pressure">
        {!bp ? (
          <span class="muted">Not shared</span>
        ) : bp.category ? (
          <>
            <span class={`bp-category bp-${bp.category}`}>{bpCategoryInWords(bp.category)}</span>
            <br />
            <span class="muted">
              mean {Math.round(bp.mean_systolic ?? 0)}/{Math.round(bp.mean_diastolic ?? 0)}
            </span>
          </>
        ) : (
          <span class="muted">No readings</span>
        )}
      </td>
      <td data-label="Alerts" data-testid="panel-alerts">
        {p.open_alerts === null ? (
          <span class="muted">Not received</span>
        ) : p.open_alerts.open + p.open_alerts.acknowledged === 0 ? (
          <span class="muted">None open</span>
        ) : (
          <Link href={patientPath(p.patient_id, 'alerts')}>
            {p.open_alerts.open} open
            {p.open_alerts.open_urgent > 0 && <strong class="urgent-text"> ({p.open_alerts.open_urgent} urgent)</strong>}
            {p.open_alerts.acknowledged > 0 && `, ${p.open_alerts.acknowledged} acknowledged`}
          </Link>
        )}
      </td>
    </tr>
  );
}

/** The row's last 24 hours, asked only for rows shown and only when single readings are shared. */
function RowSparkline(props: { patientId: string; unit: GlucoseUnit }) {
  const [range] = useState(() => {
    const to = new Date();
    return { from: new Date(to.getTime() - 24 * 3_600_000), to };
  });
  const points = useAsync(() => api.glucosePage(props.patientId, range, props.unit, 1000), [props.patientId, props.unit]);
  if (points.error) return <span class="muted">Could not load</span>;
  if (!points.data) return <span class="muted">Loading…</span>;
  return <Sparkline points={points.data.items} unit={props.unit} from={range.from} to={range.to} />;
}
