// Bring history kept elsewhere: a Dexcom Clarity or LibreView CSV export, or a Nightscout JSON
// export. First a preview (what would be stored, what is already here, every refused row),
// then the import. The server reads the file both times; nothing is held in between.

import { useState } from 'preact/hooks';
import { api, type ImportFormat, type ImportPreview, type ImportResult } from '../../api';
import { ErrorNotice } from '../../components/common';
import { formatDateTime } from '../../format';
import type { OwnProps } from './OwnPatient';

const FORMATS: { format: ImportFormat; label: string }[] = [
  { format: 'dexcom_clarity', label: 'Dexcom Clarity (CSV)' },
  { format: 'libreview', label: 'LibreView (CSV)' },
  { format: 'nightscout', label: 'Nightscout (JSON)' },
];

type Refused = ImportPreview['refused'][number];

function RefusedRows(props: { rows: Refused[] }) {
  if (props.rows.length === 0) return null;
  return (
    <details>
      <summary>{props.rows.length} rows not imported</summary>
      <table class="data-table" data-testid="import-refused">
        <thead>
          <tr>
            <th scope="col">Where</th>
            <th scope="col">Why</th>
          </tr>
        </thead>
        <tbody>
          {props.rows.map((row, i) => (
            <tr key={i}>
              <td>{row.line !== null ? `line ${row.line}` : row.entry}</td>
              <td>{row.detail}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </details>
  );
}

export function ImportData(props: OwnProps) {
  const id = props.patient.patient_id;
  const [format, setFormat] = useState<ImportFormat>('dexcom_clarity');
  const [file, setFile] = useState<File | null>(null);
  const [preview, setPreview] = useState<ImportPreview | null>(null);
  const [result, setResult] = useState<ImportResult | null>(null);
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<unknown>(null);

  const run = async (step: 'preview' | 'import') => {
    if (!file) return;
    setBusy(true);
    setProblem(null);
    try {
      if (step === 'preview') {
        setResult(null);
        setPreview(await api.previewImport(id, file, { format }));
      } else {
        setResult(await api.importFile(id, file, { format }));
        setPreview(null);
      }
    } catch (error) {
      setProblem(error);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="card" aria-labelledby="import-heading">
      <h2 id="import-heading">Import your history</h2>
      <p>
        Bring readings kept elsewhere: download your export from Dexcom Clarity, LibreView or Nightscout and choose it
        here. Times without a zone are read in {props.timeZone}. Importing the same file again stores nothing twice.
      </p>
      {problem !== null && <ErrorNotice error={problem} />}
      <div class="form">
        <label for="import-format">Export</label>
        <select
          id="import-format"
          value={format}
          onChange={(e) => {
            setFormat(e.currentTarget.value as ImportFormat);
            setPreview(null);
            setResult(null);
          }}
        >
          {FORMATS.map((f) => (
            <option key={f.format} value={f.format}>
              {f.label}
            </option>
          ))}
        </select>
        <label for="import-file">File</label>
        <input
          id="import-file"
          type="file"
          accept=".csv,.json,text/csv,application/json"
          onChange={(e) => {
            setFile(e.currentTarget.files?.[0] ?? null);
            setPreview(null);
            setResult(null);
          }}
        />
      </div>
      <div class="button-row">
        <button type="button" class="button" disabled={busy || !file} onClick={() => run('preview')}>
          {busy && !preview ? 'Reading…' : 'Preview'}
        </button>
        <button
          type="button"
          class="button button-primary"
          disabled={busy || !preview || preview.new_records === 0}
          onClick={() => run('import')}
        >
          {busy && preview ? 'Importing…' : 'Import'}
        </button>
      </div>
      {preview && (
        <div data-testid="import-preview">
          <p>
            {preview.glucose_readings} glucose readings and {preview.treatments} treatments
            {preview.first_at && preview.last_at
              ? `, from ${formatDateTime(preview.first_at, props.timeZone)} to ${formatDateTime(preview.last_at, props.timeZone)}`
              : ''}
            . {preview.new_records} new, {preview.duplicates} already here.
          </p>
          {preview.other_sources_in_span > 0 && (
            <p class="notice notice-warning" data-testid="import-overlap">
              Your other devices already hold {preview.other_sources_in_span} glucose readings in this period. If this
              export holds the same readings, importing it keeps them twice.
            </p>
          )}
          <RefusedRows rows={preview.refused} />
        </div>
      )}
      {result && (
        <div data-testid="import-result" role="status">
          <p>
            Imported {result.stored} records; {result.duplicates} were already here.
          </p>
          <RefusedRows rows={result.refused} />
        </div>
      )}
    </section>
  );
}
