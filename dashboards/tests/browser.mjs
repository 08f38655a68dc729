// The dashboard in headless Chromium, driven by Playwright (through ./harness.mjs). Run by
// tests/tests/dashboard_browser.rs, which starts a real `chronicle serve`, seeds it through the
// real ingest and passes what it seeded in CHRONICLE_SCENARIO (JSON).

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import {
  askTheTest,
  bodyText,
  checkAccessibility,
  failed,
  finish,
  logIn,
  newPage,
  run,
  scenario,
  screenshot,
  url,
} from './harness.mjs';

const { patient, clinician, guardian, emergency } = scenario;

try {
  const anonymous = await newPage();
  await run('an anonymous visitor lands on the log-in page', async () => {
    await anonymous.goto(url('/patients/' + patient.id));
    await anonymous.waitForURL(/\/login$/);
    await anonymous.getByRole('heading', { name: 'Log in to Chronicle' }).waitFor();
    await anonymous.getByText('Server: ready').waitFor();
    await checkAccessibility(anonymous, 'the log-in page');
    await screenshot(anonymous, '01-login.png');
    await anonymous.getByLabel('E-mail').fill(patient.email);
    await anonymous.getByLabel('Password').fill('not the password');
    await anonymous.getByRole('button', { name: 'Log in' }).click();
    await anonymous.getByRole('alert').filter({ hasText: 'do not match' }).waitFor();
  });

  const maria = await newPage();
  await run('the patient logs in and sees her readings', async () => {
    await logIn(maria, patient.email);
    await maria.waitForURL(url(`/patients/${patient.id}`));
    await maria.getByRole('heading', { level: 1, name: patient.name }).waitFor();
    assert.match(await maria.getByTestId('user-name').innerText(), new RegExp(patient.name));
    assert.match(await maria.getByTestId('patient-time-zone').innerText(), new RegExp(patient.time_zone));
    const glucose = maria.getByRole('img', { name: /^Glucose chart:/ });
    await glucose.waitFor();
    assert.match(
      await glucose.getAttribute('aria-label'),
      new RegExp(`^Glucose chart: ${patient.glucose_readings} readings`),
      'every reading seeded over the last 14 days is on the chart',
    );
    // Her treatments are on the trace, in its description, and in a table.
    await maria.getByRole('img', { name: new RegExp(`Treatments: ${patient.treatments.replace(/[()]/g, '\\$&')}\\.`) }).waitFor();
    const treatments = maria.getByTestId('treatments-table');
    await treatments.getByText(/^Latest 5 treatments as a table$/).click();
    assert.match(await treatments.innerText(), /Carbohydrates\s+60 g\s+lunch/);
    assert.match(await treatments.innerText(), /Insulin \(bolus\)\s+4\.5 U/);
    const pressure = maria.getByRole('img', { name: /^Blood-pressure chart:/ });
    await pressure.waitFor();
    assert.equal(await maria.locator('.plot canvas').count(), 2, 'a glucose and a blood-pressure chart');
    assert.match(await pressure.getAttribute('aria-label'), new RegExp(`${patient.blood_pressure_readings} readings`));
    await maria.getByRole('button', { name: '14 days', pressed: true }).waitFor();
    await checkAccessibility(maria, "the patient's readings");
    await screenshot(maria, '02-patient-readings.png');
  });

  await run('the dashboard installs as an app, and its service worker shows a pushed alert', async () => {
    // The manifest a browser installs from: linked, served as a manifest, with loadable icons.
    const href = await maria.locator('link[rel="manifest"]').getAttribute('href');
    const response = await maria.context().request.get(url(href));
    assert.equal(response.status(), 200);
    assert.match(response.headers()['content-type'], /^application\/manifest\+json/);
    const manifest = await response.json();
    assert.equal(manifest.name, 'Chronicle');
    assert.equal(manifest.display, 'standalone');
    assert.equal(new URL(manifest.start_url, url('/')).toString(), url('/'));
    for (const size of [192, 512]) {
      const icon = manifest.icons.find((i) => i.sizes === `${size}x${size}` && i.type === 'image/png');
      assert.ok(icon, `a ${size} px PNG icon`);
      const png = await (await maria.context().request.get(url(icon.src))).body();
      assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [size, size], `${icon.src} is ${size} px`);
    }
    assert.ok(manifest.icons.some((i) => i.purpose === 'maskable'), 'a maskable icon');

    // The service worker registers for the whole application.
    const script = await maria.evaluate(async () => (await navigator.serviceWorker.ready).active?.scriptURL);
    assert.equal(script, url('/sw.js'));

    // A push delivered to it the way the browser's push service does becomes a notification.
    const origin = new URL(scenario.url).origin;
    await maria.context().grantPermissions(['notifications'], { origin });
    const cdp = await maria.context().newCDPSession(maria);
    const registrationId = await new Promise((resolve) => {
      cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations }) => {
        const found = registrations.find((r) => r.scopeURL === url('/') && !r.isDeleted);
        if (found) resolve(found.registrationId);
      });
      cdp.send('ServiceWorker.enable');
    });
    const pushed = {
      id: 41,
      type: 'alert.opened',
      created_at: new Date().toISOString(),
      detail: 'full',
      title: `Urgent: very low glucose — ${patient.name}`,
      body: `${patient.name}: very low glucose since 03:12 UTC. Open Chronicle to see the readings and respond.`,
      patient: { id: patient.id, name: patient.name },
      alert: { id: '6c1f1bb0-5d43-4b7a-9d35-0e0b5b0e0a41', category: 'glucose', severity: 'urgent' },
    };
    await cdp.send('ServiceWorker.deliverPushMessage', { origin, registrationId, data: JSON.stringify(pushed) });
    let shown = [];
    for (let tries = 0; tries < 50 && shown.length === 0; tries++) {
      shown = await maria.evaluate(async () =>
        (await (await navigator.serviceWorker.ready).getNotifications()).map((n) => ({
          title: n.title,
          body: n.body,
          tag: n.tag,
          requireInteraction: n.requireInteraction,
          path: n.data?.path,
        })),
      );
      if (shown.length === 0) await maria.waitForTimeout(100);
    }
    assert.deepEqual(shown, [
      {
        title: pushed.title,
        body: pushed.body,
        tag: `alert-${pushed.alert.id}`,
        requireInteraction: true,
        path: `/patients/${patient.id}`,
      },
    ]);
    await cdp.detach();
  });

  await run('the patient chooses where her alerts reach her', async () => {
    await maria.getByRole('link', { name: 'Notifications' }).click();
    await maria.waitForURL(/\/notifications$/);
    await maria.getByRole('heading', { level: 1, name: 'Alert notifications' }).waitFor();
    await maria.getByRole('button', { name: 'Send alerts to this browser' }).waitFor();
    await maria.getByLabel('E-mail address').fill(patient.email);
    await maria.getByRole('button', { name: 'Add e-mail' }).click();
    // This server has no mail relay: the address is added unconfirmed, saying no code was sent.
    await maria.getByRole('status').filter({ hasText: `${patient.email} was added but not confirmed` }).waitFor();
    const channel = maria.getByTestId('channel').filter({ hasText: patient.email });
    await channel.waitFor();
    await channel.getByTestId('unconfirmed').waitFor();
    await channel.getByLabel(`Code e-mailed to ${patient.email}`).waitFor();
    await channel.getByRole('button', { name: 'Send again' }).click();
    await maria.getByRole('alert').filter({ hasText: 'no SMTP relay' }).waitFor();
    await maria.getByRole('region', { name: 'What was sent' }).waitFor();
    await maria.getByLabel('From', { exact: true }).fill('22:30');
    await maria.getByLabel('To', { exact: true }).fill('06:45');
    await maria.getByRole('button', { name: 'Set quiet hours' }).click();
    await maria.getByTestId('quiet-hours').filter({ hasText: 'Quiet from 22:30 to 06:45' }).waitFor();
    await checkAccessibility(maria, 'the notification settings');
    await screenshot(maria, '24-patient-notifications.png');
    await channel.getByRole('button', { name: /^Remove E-mail/ }).click();
    const dialog = maria.getByRole('dialog', { name: 'Stop these notifications?' });
    await dialog.getByRole('button', { name: 'Remove' }).click();
    await maria.getByRole('status').filter({ hasText: 'E-mail removed' }).waitFor();
    await channel.waitFor({ state: 'detached' });
    await maria.getByRole('button', { name: 'Remove quiet hours' }).click();
    await maria.getByTestId('quiet-hours').filter({ hasText: 'None: every alert reaches you' }).waitFor();
    await maria.goto(url(`/patients/${patient.id}`));
    await maria.getByRole('heading', { level: 1, name: patient.name }).waitFor();
  });

  await run('a shorter period shows fewer readings', async () => {
    await maria.getByRole('button', { name: '24 hours' }).click();
    await maria.getByRole('button', { name: '24 hours', pressed: true }).waitFor();
    const day = maria.getByRole('img', { name: /^Glucose chart: \d{3} readings/ });
    await day.waitFor();
    const label = await day.getAttribute('aria-label');
    const count = Number(label.match(/(\d+) readings/)[1]);
    assert.ok(count >= 280 && count <= 290, `about 288 CGM readings a day, got ${count}`);
  });

  await run('the patient sees her grants and adds one', async () => {
    await maria.getByRole('link', { name: 'Sharing' }).click();
    await maria.waitForURL(/\/sharing$/);
    const team = maria.getByTestId('grant').filter({ hasText: `${clinician.team} (care team)` });
    await team.waitFor();
    const text = await team.innerText();
    assert.match(text, /Glucose, blood pressure and device information/);
    assert.match(text, /Every reading, receive alerts and export/);
    assert.match(text, /Active/);
    const past = maria.getByRole('region', { name: 'Past grants' });
    assert.match(await past.innerText(), /North Clinic \(organization\)[\s\S]*Revoked on/);
    assert.match(await bodyText(maria), new RegExp(guardian.name), 'the guardians list names her guardian');

    const form = maria.getByRole('region', { name: 'Share with someone' });
    await form.getByLabel('Care team').check();
    await form.getByLabel('Their Chronicle id').fill(scenario.other_team.id);
    await form.getByLabel('Glucose').check();
    await form.getByLabel('Every reading').uncheck();
    await form.getByLabel('Trends only').check();
    await form.getByRole('button', { name: 'Share' }).click();
    await maria.getByRole('status').filter({ hasText: `Shared with ${scenario.other_team.name}` }).waitFor();
    await maria.getByTestId('grant').filter({ hasText: `${scenario.other_team.name} (care team)` }).waitFor();
    await checkAccessibility(maria, "the patient's sharing page");
    await screenshot(maria, '03-patient-sharing.png');
  });

  await run('the access log says in words who looked, and highlights the emergency', async () => {
    await maria.getByRole('link', { name: 'Access log' }).click();
    await maria.waitForURL(/\/access-log$/);
    const summary = maria.getByRole('region', { name: 'Emergency access to your record' });
    await summary.waitFor();
    assert.match(await summary.innerText(), new RegExp(`${emergency.name} opened your record without a grant`));
    assert.match(await summary.innerText(), new RegExp(emergency.reason));
    const entries = maria.getByTestId('log-entry');
    await entries.first().waitFor();
    const lines = await entries.allInnerTexts();
    assert.ok(
      lines.some((l) => l.includes(`${clinician.name} (${clinician.team}) viewed your glucose readings on`)),
      `a plain sentence for the clinician's read:\n${lines.join('\n')}`,
    );
    assert.ok(
      lines.some((l) => /Refused/.test(l) && l.includes(emergency.name)),
      `the refused attempt before the emergency access:\n${lines.join('\n')}`,
    );
    const highlighted = maria.locator('.log-emergency');
    assert.ok((await highlighted.count()) >= 2, 'the opening and the read under emergency access stand out');
    assert.ok(!lines.some((l) => l.startsWith('You ')), 'her own activity is hidden until asked for');
    await maria.getByLabel('Show my own activity too').check();
    await entries.filter({ hasText: /^You / }).first().waitFor();
    await maria.getByLabel('Show my own activity too').uncheck();
    await checkAccessibility(maria, 'the access log');
    await screenshot(maria, '04-patient-access-log.png');
  });

  await run('the patient downloads her data and is asked before erasing', async () => {
    await maria.getByRole('link', { name: 'Your data' }).click();
    await maria.waitForURL(/\/data$/);
    // The emergency access Dr. Okafor opened is on every page of her record, with its reason.
    const notice = maria.getByTestId('emergency-notice');
    await notice.waitFor();
    assert.match(await notice.innerText(), /Dr\. Okafor opened this record in an emergency.*Found unresponsive/s);
    const [csv] = await Promise.all([
      maria.waitForEvent('download'),
      maria.getByRole('button', { name: 'Download CSV' }).click(),
    ]);
    const rows = (await readFile(await csv.path(), 'utf8')).trim().split('\n');
    assert.ok(
      rows.length > patient.glucose_readings + patient.blood_pressure_readings,
      `one row per reading, got ${rows.length}`,
    );
    const [fhir] = await Promise.all([
      maria.waitForEvent('download'),
      maria.getByRole('button', { name: 'Download FHIR (JSON)' }).click(),
    ]);
    const bundle = JSON.parse(await readFile(await fhir.path(), 'utf8'));
    assert.equal(bundle.resourceType, 'Bundle');
    assert.ok(fhir.suggestedFilename().endsWith('.fhir.json'));
    const [everything] = await Promise.all([
      maria.waitForEvent('download'),
      maria.getByRole('button', { name: 'Download everything (JSON)' }).click(),
    ]);
    const record = JSON.parse(await readFile(await everything.path(), 'utf8'));
    assert.equal(record.format, 'chronicle-export/1');
    assert.ok(Array.isArray(record.alerts) && Array.isArray(record.access_log), 'alerts and the access log are in it');
    assert.ok(record.access_log.length > 0, 'the access log is not empty');

    // Importing history: a Nightscout export, previewed then imported, then previewed again
    // (everything already here). A treatment, so the glucose the clinician's steps count and
    // the alerts they see stay the scenario's.
    const imports = maria.getByRole('region', { name: 'Import your history' });
    await imports.getByLabel('Export').selectOption('nightscout');
    const at = Date.now() - 40 * 24 * 3600 * 1000;
    const exported = JSON.stringify({
      entries: [{ type: 'sgv', sgv: 5, date: at }],
      treatments: [{ eventType: 'Carb Correction', carbs: 20, created_at: new Date(at).toISOString() }],
    });
    await imports.getByLabel('File').setInputFiles({
      name: 'entries.json',
      mimeType: 'application/json',
      buffer: Buffer.from(exported),
    });
    await imports.getByRole('button', { name: 'Preview' }).click();
    const preview = imports.getByTestId('import-preview');
    await preview.waitFor();
    assert.match(await preview.innerText(), /0 glucose readings and 1 treatments.*1 new, 0 already here/s);
    assert.match(await preview.innerText(), /1 rows not imported/);
    await imports.getByRole('button', { name: 'Import', exact: true }).click();
    const imported = imports.getByTestId('import-result');
    await imported.waitFor();
    assert.match(await imported.innerText(), /Imported 1 records; 0 were already here/);
    await imports.getByRole('button', { name: 'Preview' }).click();
    await preview.waitFor();
    assert.match(await preview.innerText(), /0 new, 1 already here/);
    await checkAccessibility(maria, 'the import form');

    await maria.getByRole('button', { name: 'Erase everything…' }).click();
    const dialog = maria.getByRole('dialog', { name: 'Erase everything for good?' });
    await dialog.waitFor();
    const confirm = dialog.getByRole('button', { name: 'Erase for good' });
    assert.equal(await confirm.isDisabled(), true, 'nothing is erased before the confirmation is typed');
    await dialog.getByLabel('Type ERASE to confirm').fill('ERASE');
    assert.equal(await confirm.isDisabled(), false);
    await checkAccessibility(maria, 'the erase confirmation');
    await screenshot(maria, '05-patient-erase-confirmation.png');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'hidden' });
  });

  const lee = await newPage();
  await run('the clinician logs in with the keyboard and sees only the patients who share', async () => {
    await lee.goto(url('/'));
    await lee.waitForURL(/\/login$/);
    // After each navigation focus moves to the page's heading, so screen readers announce it.
    await lee.getByRole('heading', { name: 'Log in to Chronicle' }).waitFor();
    await lee.waitForFunction(() => document.activeElement?.tagName === 'H1');
    await lee.keyboard.press('Tab');
    assert.equal(await lee.evaluate(() => document.activeElement?.id), 'email', 'the first stop is the e-mail field');
    await lee.keyboard.type(clinician.email);
    await lee.keyboard.press('Tab');
    await lee.keyboard.type(scenario.password);
    await lee.keyboard.press('Enter');
    await lee.getByRole('heading', { level: 1, name: 'Patients' }).waitFor();
    const table = lee.getByRole('table', { name: /^Patients who share data with you/ });
    await table.getByRole('link', { name: patient.name }).waitFor();
    const rows = table.getByTestId('panel-row');
    const names = await rows.locator('.patient-name').allInnerTexts();
    assert.deepEqual(
      [...names].sort(),
      [patient.name, scenario.trends_only_patient.name].sort(),
      'exactly the patients who share with the team',
    );
    assert.doesNotMatch(await bodyText(lee), new RegExp(scenario.unshared_patient.name), 'no grant, not listed');
    // Maria has an urgent open alert: the riskiest first.
    assert.equal(names[0], patient.name, `risk order puts the patient with an urgent alert first: ${names}`);
    const mariaRow = rows.filter({ hasText: patient.name });
    assert.match(await mariaRow.getByTestId('tir-bar').getAttribute('aria-label'), /^Time in ranges: very low [\d.]+ %, low [\d.]+ %, in range \d+ %/);
    await mariaRow.getByRole('img', { name: /^Glucose over the last 24 hours: \d+ readings/ }).waitFor();
    assert.match(await mariaRow.innerText(), /Urgent alert/, 'flags as readable chips');
    assert.equal((await mariaRow.getByTestId('panel-alerts').innerText()).trim(), patient.open_alerts_text);
    const samRow = rows.filter({ hasText: scenario.trends_only_patient.name });
    assert.match(await samRow.innerText(), /Trends only: no single readings shared/, 'no sparkline without readings');
    assert.match(await samRow.innerText(), /Value not shared/, 'a trends-only grant gives the age, not the value');
    await lee.getByLabel('Search by name').fill('sam');
    await table.getByRole('link', { name: patient.name }).waitFor({ state: 'detached' });
    await table.getByRole('link', { name: scenario.trends_only_patient.name }).waitFor();
    await lee.getByLabel('Search by name').fill('');
    await table.getByRole('link', { name: patient.name }).waitFor();
    await lee.getByLabel('Show').selectOption('urgent_alert');
    await table.getByRole('link', { name: scenario.trends_only_patient.name }).waitFor({ state: 'detached' });
    await table.getByRole('link', { name: patient.name }).waitFor();
    await lee.getByLabel('Show').selectOption('');
    await table.getByRole('link', { name: scenario.trends_only_patient.name }).waitFor();
    await checkAccessibility(lee, "the clinician's panel");
    await screenshot(lee, '06-clinician-patients.png');
  });

  await run('the clinician opens the patient, zooms, and switches units', async () => {
    await lee.getByRole('link', { name: patient.name }).click();
    await lee.waitForURL(url(`/patients/${patient.id}`));
    await lee.getByRole('heading', { level: 1, name: patient.name }).waitFor();
    assert.match(await lee.getByTestId('patient-time-zone').innerText(), new RegExp(`patient's time zone: ${patient.time_zone}`));
    await lee.getByRole('img', { name: new RegExp(`^Glucose chart: ${patient.glucose_readings} readings`) }).waitFor();
    await lee.getByRole('img', { name: /^Blood-pressure chart:/ }).waitFor();
    assert.equal(await lee.getByRole('link', { name: 'Sharing' }).count(), 0, "a care team does not see the patient's settings");
    assert.doesNotMatch(
      await lee.getByRole('img', { name: /^Glucose chart:/ }).getAttribute('aria-label'),
      /Treatments/,
      'her treatments are not shared with the team',
    );
    const latest = lee.getByTestId('latest-glucose');
    assert.match(await latest.innerText(), new RegExp(`^${patient.latest_mg_dl} mg/dL`));
    await checkAccessibility(lee, "the clinician's patient page");
    await screenshot(lee, '07-clinician-patient-mg-dl.png');

    const visible = lee.getByTestId('glucose-visible-range');
    const before = await visible.innerText();
    await lee.getByRole('button', { name: 'Zoom in' }).click();
    await lee.waitForFunction(
      (previous) => document.querySelector('[data-testid="glucose-visible-range"]')?.textContent !== previous,
      before,
    );
    await lee.getByRole('button', { name: 'Whole period' }).click();
    await lee.waitForFunction(
      (previous) => document.querySelector('[data-testid="glucose-visible-range"]')?.textContent === previous,
      before,
    );

    await lee.getByRole('radio', { name: 'mmol/L' }).check();
    const mmol = (patient.latest_mg_dl / 18.01559).toFixed(1);
    await lee.waitForFunction(
      (expected) => document.querySelector('[data-testid="latest-glucose"]')?.textContent?.startsWith(expected),
      `${mmol} mmol/L`,
    );
    assert.match(
      await lee.getByRole('img', { name: /^Glucose chart:/ }).getAttribute('aria-label'),
      /target range 3\.9–10\.0 mmol\/L/,
    );
    await screenshot(lee, '08-clinician-patient-mmol.png');
  });

  await run('on a tablet the patient page fits the screen', async () => {
    await lee.setViewportSize({ width: 820, height: 1180 });
    await lee.getByRole('img', { name: /^Glucose chart:/ }).waitFor();
    await lee.waitForTimeout(300); // the chart follows its container's new width
    const overflow = await lee.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no sideways scrolling on a tablet (${overflow} px too wide)`);
    await screenshot(lee, '09-tablet-clinician-patient.png');
    await lee.setViewportSize({ width: 1280, height: 900 });
    await lee.getByRole('radio', { name: 'mg/dL' }).check();
  });

  await run("the trace shows the patient's target band and alert markers", async () => {
    await lee.getByRole('link', { name: 'Readings', exact: true }).click();
    await lee.getByText(/The shaded band is Maria Garcia's target range \(standard\)/).waitFor();
    await lee
      .getByRole('img', { name: /^Glucose chart: .*target range 70–180 mg\/dL is shaded.*alerts? marked: .*Very low glucose/ })
      .waitFor();
  });

  await run('the clinician reads the AGP and the consensus metrics, in both units', async () => {
    await lee.getByRole('link', { name: 'Trends (AGP)' }).click();
    await lee.waitForURL(/\/trends$/);
    await lee.getByRole('img', { name: /^Ambulatory glucose profile in 15-minute bins/ }).waitFor();
    const table = lee.getByRole('table', { name: /^Consensus metrics against the patient's targets/ });
    await table.waitFor();
    const text = await table.innerText();
    for (const metric of ['Time in range 70–180 mg/dL (TIR)', 'Time below 54 mg/dL', 'Coefficient of variation (CV)', 'Glucose management indicator (GMI)', 'Mean glucose', 'Sensor wear (CGM active)']) {
      assert.ok(text.includes(metric), `the metrics table has ${metric}:\n${text}`);
    }
    assert.match(text, /Mean glucose\s+\d+ mg\/dL/);
    await lee.getByTestId('sufficiency').waitFor();
    await lee.getByRole('img', { name: /^Time in ranges: very low/ }).waitFor();
    await checkAccessibility(lee, 'the AGP and metrics');
    await screenshot(lee, '13-clinician-trends.png');
    // The printable AGP report of the period shown: a PDF the browser saves.
    const [report] = await Promise.all([
      lee.waitForEvent('download'),
      lee.getByRole('button', { name: 'AGP report (PDF)' }).click(),
    ]);
    assert.ok(report.suggestedFilename().endsWith('-14d.pdf'), report.suggestedFilename());
    assert.equal((await readFile(await report.path())).subarray(0, 5).toString('latin1'), '%PDF-');
    await lee.getByRole('radio', { name: 'mmol/L' }).check();
    await table.getByText('Time in range 3.9–10.0 mmol/L (TIR)').waitFor();
    assert.match(await table.innerText(), /Mean glucose\s+\d+\.\d mmol\/L/, 'the mean converted by the API');
    await lee.getByRole('radio', { name: 'mg/dL' }).check();
    await table.getByText('Time in range 70–180 mg/dL (TIR)').waitFor();
  });

  await run('daily overlays draw each day over 24 hours', async () => {
    await lee.getByRole('link', { name: 'Daily overlays' }).click();
    const overlays = lee.getByRole('img', { name: /^Daily glucose overlays: [78] days/ });
    await overlays.waitFor();
    assert.doesNotMatch(await overlays.getAttribute('aria-label'), /Treatments/, 'treatments are not shared with the team');
    await checkAccessibility(lee, 'the daily overlays');
    await screenshot(lee, '14-clinician-daily-overlays.png');
  });

  await run('blood pressure with category bands and morning and evening means', async () => {
    await lee.getByRole('link', { name: 'Blood pressure', exact: true }).click();
    await lee.waitForURL(/\/blood-pressure$/);
    const chart = lee.getByRole('img', { name: /^Blood-pressure chart:/ });
    await chart.waitFor();
    assert.match(await chart.getAttribute('aria-label'), /ACC\/AHA categories/);
    assert.match(await lee.getByTestId('bp-morning').innerText(), /^\d+\/\d+ mm Hg \(\d+ readings\)/);
    assert.match(await lee.getByTestId('bp-evening').innerText(), /^\d+\/\d+ mm Hg \(\d+ readings\)/);
    await checkAccessibility(lee, 'the blood-pressure section');
    await screenshot(lee, '15-clinician-blood-pressure.png');
  });

  await run('the clinician acknowledges the alert with a note', async () => {
    await lee.getByRole('link', { name: 'Alerts', exact: true }).click();
    await lee.waitForURL(/\/alerts$/);
    const alert = lee.getByTestId('alert').filter({ hasText: 'Very low glucose' });
    await alert.waitFor();
    assert.match(await alert.innerText(), /48 mg\/dL/, 'the reading behind the alert');
    await alert.getByRole('button', { name: 'Acknowledge: Very low glucose' }).click();
    const dialog = lee.getByRole('dialog', { name: 'Acknowledge this alert?' });
    await dialog.getByLabel('Note (optional)').fill('Called her: she had juice and feels fine.');
    await checkAccessibility(lee, 'the acknowledge dialog');
    await dialog.getByRole('button', { name: 'Acknowledge' }).click();
    await lee.getByRole('status').filter({ hasText: 'Acknowledged: Very low glucose.' }).waitFor();
    await alert.filter({ hasText: 'she had juice' }).waitFor();
    assert.match(await alert.innerText(), /Acknowledged/);
    assert.equal(await alert.getByRole('button', { name: 'Acknowledge: Very low glucose' }).count(), 0);
    await alert.getByRole('button', { name: 'Resolve: Very low glucose' }).waitFor();
    await checkAccessibility(lee, 'the alerts');
    await screenshot(lee, '16-clinician-alerts.png');
  });

  await run('a new alert arrives live, with a cue, without a reload', async () => {
    await lee.getByTestId('live-state').filter({ hasText: 'Live alerts on' }).waitFor();
    const mute = lee.getByRole('button', { name: 'Mute alert sound' });
    assert.equal(await mute.getAttribute('aria-pressed'), 'false');
    const chimesBefore = Number(await mute.getAttribute('data-chimes'));
    await lee.evaluate(() => {
      window.__sameDocument = true;
    });
    await askTheTest('live-alert');
    const toast = lee.getByTestId('alert-toast').filter({ hasText: 'Blood-pressure crisis' });
    await toast.waitFor({ timeout: 30_000 });
    assert.match(await toast.innerText(), new RegExp(`New alert: Urgent — ${patient.name}: Blood-pressure crisis \\(196/104 mm Hg\\)`));
    await lee.getByTestId('alert').filter({ hasText: 'Blood-pressure crisis' }).waitFor();
    assert.equal(await lee.evaluate(() => window.__sameDocument), true, 'the page was not reloaded');
    assert.ok(Number(await mute.getAttribute('data-chimes')) > chimesBefore, 'the chime played');
    await screenshot(lee, '17-clinician-live-alert.png');

    // The panel's counts are current, and it refreshes by itself too.
    await lee.getByRole('link', { name: 'Chronicle' }).click();
    const row = lee.getByTestId('panel-row').filter({ hasText: patient.name });
    await row.getByTestId('panel-alerts').filter({ hasText: /^\d open \(1 urgent\), 1 acknowledged$/ }).waitFor();
    await checkAccessibility(lee, 'the panel with a live alert');
    await screenshot(lee, '18-clinician-panel-after-alert.png');

    // The sound can be muted, and stays muted.
    await mute.click();
    assert.equal(await mute.getAttribute('aria-pressed'), 'true');
    await lee.reload();
    await lee.getByRole('button', { name: 'Mute alert sound', pressed: true }).waitFor();
    await lee.getByRole('button', { name: 'Mute alert sound' }).click();
  });

  await run('after a dropped connection the stream resumes where it left off', async () => {
    // The test stops the server (the stream breaks), starts it again and raises an alert at
    // once, before the page's next attempt to reconnect: the page must get it when it does
    // reconnect, with Last-Event-ID, from the server's replay.
    await askTheTest('missed-alert');
    await lee
      .getByTestId('alert-toast')
      .filter({ hasText: `${patient.name}: Low blood pressure (84/52 mm Hg)` })
      .waitFor({ timeout: 60_000 });
    await lee.getByTestId('live-state').filter({ hasText: 'Live alerts on' }).waitFor();
  });

  await run('on a tablet the panel becomes cards', async () => {
    await lee.setViewportSize({ width: 820, height: 1180 });
    await lee.getByTestId('panel-row').first().waitFor();
    await lee.waitForTimeout(200);
    const overflow = await lee.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no sideways scrolling on a tablet (${overflow} px too wide)`);
    await screenshot(lee, '19-tablet-clinician-panel.png');
    await lee.setViewportSize({ width: 1280, height: 900 });
  });

  await run('the patient sees a new alert arrive live on her alerts page and acknowledges it', async () => {
    await maria.goto(url(`/patients/${patient.id}`));
    await maria.getByRole('link', { name: 'Alerts', exact: true }).click();
    await maria.waitForURL(/\/alerts$/);
    await maria.getByRole('heading', { level: 2, name: 'Alerts' }).waitFor();
    await maria.getByTestId('alert').first().waitFor();
    // Choosing channels is one click away.
    await maria.getByTestId('alert-channels-link').getByRole('link', { name: 'Notifications' }).waitFor();
    // The very low glucose the care team acknowledged: she sees that they have seen it,
    // not their note, and it is still hers to acknowledge.
    const seen = maria.getByTestId('alert').filter({ hasText: 'Very low glucose' });
    await seen.getByTestId('team-state').filter({ hasText: 'Your care team has seen it' }).waitFor();
    assert.doesNotMatch(await seen.innerText(), /juice/, "the team's note is the team's");
    assert.equal(await maria.getByRole('button', { name: /^Resolve/ }).count(), 0, 'only the care team resolves');
    await maria.evaluate(() => {
      window.__sameDocument = true;
    });
    await askTheTest('patient-alert');
    const alert = maria.getByTestId('alert').filter({ hasText: 'Very high glucose' });
    await alert.waitFor({ timeout: 30_000 });
    assert.equal(await maria.evaluate(() => window.__sameDocument), true, 'the page was not reloaded');
    assert.equal(await alert.getByTestId('team-state').count(), 0, 'the care team has not seen it yet');
    // The live toasts of this and earlier alerts would cover the page: dismiss them.
    const toasts = maria.getByTestId('alert-toast');
    while ((await toasts.count()) > 0) await toasts.first().getByRole('button', { name: 'Dismiss' }).click();
    await alert.getByRole('button', { name: 'Acknowledge: Very high glucose' }).click();
    const dialog = maria.getByRole('dialog', { name: 'Acknowledge this alert?' });
    await dialog.getByText('It does not tell the care team.').waitFor();
    await dialog.getByLabel('Note (optional)').fill('Took my insulin.');
    await checkAccessibility(maria, "the patient's acknowledge dialog");
    await dialog.getByRole('button', { name: 'Acknowledge' }).click();
    await maria.getByRole('status').filter({ hasText: 'Acknowledged: Very high glucose.' }).waitFor();
    await alert.getByTestId('own-acknowledgement').filter({ hasText: /^You acknowledged at .*: “Took my insulin\.”$/ }).waitFor();
    assert.equal(await alert.getByRole('button', { name: 'Acknowledge: Very high glucose' }).count(), 0);
    await checkAccessibility(maria, "the patient's alerts");
    await screenshot(maria, '26-patient-alerts.png');
  });

  await run('a trends-only grant shows no single readings', async () => {
    await lee.goto(url(`/patients/${scenario.trends_only_patient.id}`));
    await lee.getByText('The patient shares only trends of their glucose with you, not single readings.').waitFor();
    await lee.getByRole('img', { name: /^Blood-pressure chart:/ }).waitFor();
    assert.equal(await lee.getByRole('img', { name: /^Glucose chart:/ }).count(), 0);
    // Trends are shared: the AGP. Daily overlays need readings, alerts a grant to receive them.
    await lee.getByRole('link', { name: 'Trends (AGP)' }).click();
    await lee.getByRole('img', { name: /^Ambulatory glucose profile/ }).waitFor();
    await lee.getByRole('link', { name: 'Daily overlays' }).click();
    await lee.getByTestId('section-not-shared').filter({ hasText: 'not shared with you' }).waitFor();
    assert.equal(await lee.locator('canvas').count(), 0, 'no overlay chart');
    await lee.getByRole('link', { name: 'Alerts', exact: true }).click();
    await lee.getByTestId('section-not-shared').filter({ hasText: "The patient's alerts are not shared with you" }).waitFor();
    await screenshot(lee, '20-clinician-trends-only-alerts.png');
  });

  await run('the clinician invites a patient, who opens the link, logs in and shares trends only', async () => {
    await lee.goto(url('/'));
    const card = lee.getByRole('region', { name: `Invite a patient to ${clinician.team}` });
    await card.getByLabel(/^Note for your team/).fill('Noor, clinic visit');
    await card.getByRole('button', { name: 'Create invitation' }).click();
    const code = await card.getByTestId('new-invitation').locator('.invitation-code').innerText();
    assert.match(code, /^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$/);
    await card.getByTestId('invitation').filter({ hasText: 'Noor, clinic visit' }).filter({ hasText: 'Open' }).waitFor();
    await checkAccessibility(lee, "the clinician's invitations");

    const noor = await newPage();
    await noor.goto(url(`/invitations/${code}`));
    await noor.waitForURL(/\/login$/);
    await noor.getByLabel('E-mail').fill('noor@example.org');
    await noor.getByLabel('Password').fill(scenario.password);
    await noor.getByRole('button', { name: 'Log in' }).click();
    // The link survives the log-in.
    await noor.waitForURL(url(`/invitations/${code}`));
    await noor.getByRole('heading', { name: `${clinician.team} at North Clinic invites you to share your data` }).waitFor();
    assert.doesNotMatch(await bodyText(noor), /clinic visit/, "the team's note is the team's");
    await noor.getByLabel('Every reading').uncheck();
    await noor.getByLabel('Trends only').check();
    await noor.getByLabel('Receive alerts').uncheck();
    await noor.getByLabel('Export').uncheck();
    await checkAccessibility(noor, 'the invitation page');
    await screenshot(noor, '23-patient-accepts-invitation.png');
    await noor.getByRole('button', { name: `Share with ${clinician.team}` }).click();
    await noor.waitForURL(/\/sharing$/);
    const grant = noor.getByTestId('grant').filter({ hasText: `${clinician.team} (care team)` });
    assert.match(await grant.innerText(), /Trends only/);

    await lee.goto(url('/'));
    await lee.getByRole('region', { name: `Invite a patient to ${clinician.team}` }).getByTestId('invitation')
      .filter({ hasText: 'Noor, clinic visit' }).filter({ hasText: '1 of 1' }).waitFor();
    await lee.getByRole('link', { name: scenario.unshared_patient.name }).click();
    const shares = lee.getByText(`What ${scenario.unshared_patient.name} shares with you`);
    await shares.click();
    await lee.locator('.shared-summary li').filter({ hasText: /^Glucose.*: trends only, for care/ }).waitFor();
    await noor.close();
  });

  await run('the patient revokes the care team’s grant', async () => {
    await maria.getByRole('link', { name: 'Sharing' }).click();
    await maria.getByRole('button', { name: `Revoke the grant to ${clinician.team} (care team)` }).click();
    const dialog = maria.getByRole('dialog', { name: 'Revoke this grant?' });
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Revoke' }).click();
    await maria.getByRole('status').filter({ hasText: 'Revoked.' }).waitFor();
    const past = maria.getByRole('region', { name: 'Past grants' });
    await past.getByText(`${clinician.team} (care team)`).waitFor();
    await screenshot(maria, '10-patient-revoked.png');
  });

  await run('the clinician’s next page load shows nothing of the patient', async () => {
    await lee.goto(url(`/patients/${patient.id}`));
    await lee.getByTestId('nothing-shared').waitFor();
    const text = await bodyText(lee);
    assert.doesNotMatch(text, /Maria|Garcia/, 'not even her name');
    assert.equal(await lee.locator('canvas').count(), 0, 'no chart');
    await screenshot(lee, '11-clinician-after-revoke.png');
    await lee.getByRole('link', { name: 'Back to your patients' }).click();
    await lee.getByRole('link', { name: scenario.trends_only_patient.name }).waitFor();
    assert.doesNotMatch(await bodyText(lee), /Maria|Garcia/, 'gone from the list too');
  });

  await run('a guardian acts for the patient but cannot name guardians', async () => {
    const elena = await newPage({ width: 820, height: 1180 });
    await logIn(elena, guardian.email);
    await elena.getByRole('heading', { level: 1, name: 'Patients' }).waitFor();
    await elena.getByRole('region', { name: 'Your records' }).getByRole('link', { name: patient.name }).click();
    await elena.getByRole('heading', { level: 1, name: `${patient.name} (you are their guardian)` }).waitFor();
    await elena.getByRole('img', { name: /^Glucose chart:/ }).waitFor();
    // The family shares one acknowledgement: she sees the patient's, by name.
    await elena.getByRole('link', { name: 'Alerts', exact: true }).click();
    await elena
      .getByTestId('alert')
      .filter({ hasText: 'Very high glucose' })
      .getByTestId('own-acknowledgement')
      .filter({ hasText: `Acknowledged by ${patient.name} at` })
      .waitFor();
    await elena.getByRole('link', { name: 'Sharing' }).click();
    await elena.getByRole('heading', { name: 'Guardians' }).waitFor();
    assert.equal(await elena.getByLabel('Name a guardian by e-mail').count(), 0);
    await screenshot(elena, '12-guardian-sharing-tablet.png');
  });

  await run("the patient's access log words what the care team did with her alerts and trends", async () => {
    await maria.getByRole('link', { name: 'Access log' }).click();
    const entries = maria.getByTestId('log-entry');
    await entries.first().waitFor();
    const sentences = [
      'acknowledged one of your alerts',
      'viewed your glucose trends',
      'viewed your blood-pressure trends',
      'viewed your alerts',
      'saw your summary in their patient panel',
    ].map((sentence) => `${clinician.name} (${clinician.team}) ${sentence}`);
    // The care team's name arrives with the grants, after the entries; older entries are a
    // click away. Wait for both rather than reading the first rendering.
    const deadline = Date.now() + 15000;
    let lines = [];
    for (;;) {
      lines = await entries.allInnerTexts();
      const missing = sentences.filter((s) => !lines.some((l) => l.includes(s)));
      if (missing.length === 0) break;
      if (Date.now() > deadline) {
        assert.fail(`${missing.map((m) => `"${m}"`).join(', ')} not in the access log:\n${lines.slice(0, 40).join('\n')}`);
      }
      const older = maria.getByRole('button', { name: 'Show older entries' });
      if (await older.isVisible()) await older.click();
      await maria.waitForTimeout(200);
    }
  });

  await run('logging out ends the session', async () => {
    await maria.getByRole('button', { name: 'Log out' }).click();
    await maria.waitForURL(/\/login$/);
    await maria.getByText('You have logged out.').waitFor();
    assert.equal(await maria.evaluate(() => sessionStorage.getItem('chronicle.token')), null);
    await maria.goto(url(`/patients/${patient.id}`));
    await maria.waitForURL(/\/login$/);
  });
} catch (error) {
  await failed(error);
} finally {
  await finish();
}
