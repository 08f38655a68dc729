// Everything held about the patient: import history from vendor exports, download it (JSON,
// FHIR R4 or CSV), or erase it.

import { useState } from 'preact/hooks';
import { api, type ExportFormat } from '../../api';
import { ConfirmDialog, ErrorNotice } from '../../components/common';
import { saveFile } from '../../download';
import { dayOf } from '../../format';
import { session } from '../../session';
import { ImportData } from './ImportData';
import type { OwnProps } from './OwnPatient';

const FILE_ENDINGS: Record<ExportFormat, string> = { json: 'json', fhir: 'fhir.json', csv: 'csv' };

/** What the person must type to confirm erasure. */
const CONFIRMATION = 'ERASE';

export function YourData(props: OwnProps) {
  const id = props.patient.patient_id;
  const [busy, setBusy] = useState<string | null>(null);
  const [problem, setProblem] = useState<unknown>(null);
  const [confirming, setConfirming] = useState(false);
  const [typed, setTyped] = useState('');

  const download = async (format: ExportFormat) => {
    setBusy(format);
    setProblem(null);
    try {
      const blob = await api.exportFile(id, format);
      const day = dayOf(new Date(), props.timeZone);
      saveFile(blob, `chronicle-${day}.${FILE_ENDINGS[format]}`);
    } catch (error) {
      setProblem(error);
    } finally {
      setBusy(null);
    }
  };

  const erase = async () => {
    setConfirming(false);
    setBusy('erase');
    try {
      await api.erase(id);
      // The patient's accounts are disabled with the record; a guardian stays logged in.
      if (props.isPatient) session.end('Your record has been erased and your account closed.');
      else window.location.assign('/');
    } catch (error) {
      setProblem(error);
      setBusy(null);
    }
  };

  return (
    <>
      {problem !== null && <ErrorNotice error={problem} />}
      <ImportData {...props} />
      <section class="card" aria-labelledby="export-heading">
        <h2 id="export-heading">Download your data</h2>
        <p>
          Everything Chronicle holds about you — your record, devices, readings, sharing, alerts with your care team's
          notes, your targets and their history, and your access log — is in the JSON file. The FHIR file is your
          clinical record in the standard format other health systems read; the CSV file holds your readings and
          opens in a spreadsheet.
        </p>
        <div class="button-row">
          <button type="button" class="button button-primary" disabled={busy !== null} onClick={() => download('json')}>
            {busy === 'json' ? 'Preparing…' : 'Download everything (JSON)'}
          </button>
          <button type="button" class="button button-primary" disabled={busy !== null} onClick={() => download('fhir')}>
            {busy === 'fhir' ? 'Preparing…' : 'Download FHIR (JSON)'}
          </button>
          <button type="button" class="button button-primary" disabled={busy !== null} onClick={() => download('csv')}>
            {busy === 'csv' ? 'Preparing…' : 'Download CSV'}
          </button>
        </div>
      </section>
      <section class="card danger-zone" aria-labelledby="erase-heading">
        <h2 id="erase-heading">Erase your record</h2>
        <p>
          Erasing deletes all your readings, devices, grants, alerts, targets, emergency accesses and guardians, and your
          record itself, at once and for good.{' '}
          {props.isPatient
            ? 'Your account is closed and your name and e-mail are removed.'
            : 'A guardian can erase only a record whose patient has no account of their own.'}{' '}
          The access log is kept: it holds no health data and is the record of who saw what.
        </p>
        <button
          type="button"
          class="button button-danger"
          disabled={busy !== null}
          onClick={() => {
            setTyped('');
            setConfirming(true);
          }}
        >
          Erase everything…
        </button>
      </section>
      <ConfirmDialog
        open={confirming}
        title="Erase everything for good?"
        confirmLabel="Erase for good"
        danger
        confirmDisabled={typed.trim() !== CONFIRMATION}
        onConfirm={erase}
        onCancel={() => setConfirming(false)}
      >
        <p>
          This cannot be undone. Download your data first if you may want it later. Nobody, not even Chronicle's
          administrators, can bring it back.
        </p>
        <label for="erase-confirmation">
          Type <strong>{CONFIRMATION}</strong> to confirm
        </label>
        <input
          id="erase-confirmation"
          autocomplete="off"
          value={typed}
          onInput={(e) => setTyped(e.currentTarget.value)}
        />
      </ConfirmDialog>
    </>
  );
}
