// A clinician sets who of their care team an urgent alert reaches, on the home page: a
// colleague's duty, a two-step chain (themselves with the alarm, the duty after 10 minutes)
// with reminders every 5 minutes, then removes it. Run by the test
// `a_clinician_sets_the_team_escalation_in_the_browser` in tests/tests/dashboard_browser.rs,
// which checks through the API what the page saved (`@request saved-escalation`).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  askTheTest,
  checkAccessibility,
  failed,
  finish,
  logIn,
  newPage,
  run,
  scenario,
} from './harness.mjs';

const { clinician, colleague, team } = scenario;

try {
  const page = await newPage();
  const card = page.getByRole('region', { name: `Urgent alerts to ${team}: who is told` });
  const state = card.getByTestId('escalation-state');
  const firstStep = card.getByRole('group', { name: 'Step 1, told with the alarm' });
  const secondStep = card.getByRole('group', { name: 'Step 2', exact: true });

  await run('the clinician sees that without a chain the whole team is told at once', async () => {
    await logIn(page, clinician.email);
    await page.getByRole('heading', { level: 1, name: 'Patients' }).waitFor();
    await card.waitFor();
    assert.equal(await state.innerText(), `${team} has no chain: everyone on the team is told at once.`);
    assert.match(await card.innerText(), /only the team's acknowledgement/);
    assert.equal(await card.getByRole('button', { name: 'Remove the chain' }).count(), 0, 'nothing to remove yet');
    await checkAccessibility(page, 'the home page with the escalation card');
  });

  await run('the clinician gives a colleague the duty "physician"', async () => {
    await card.getByRole('textbox', { name: `Duty of ${colleague.name}` }).fill('Physician');
    await card.getByRole('button', { name: `Save the duty of ${colleague.name}` }).click();
    await card.getByRole('status').filter({ hasText: `Duty of ${colleague.name} saved.` }).waitFor();
    // Stored in lower case, and offered to every step.
    await firstStep.getByRole('checkbox', { name: 'physician' }).waitFor();
    assert.equal(await card.getByRole('textbox', { name: `Duty of ${colleague.name}` }).inputValue(), 'physician');
  });

  await run('a step that waits less than the one before is refused in words', async () => {
    await firstStep.getByRole('checkbox', { name: clinician.name }).check();
    await card.getByRole('button', { name: 'Add a step' }).click();
    await secondStep.getByLabel('Minutes after the alarm, if nobody has acknowledged it').fill('10');
    await secondStep.getByRole('checkbox', { name: 'physician' }).check();
    await card.getByRole('button', { name: 'Add a step' }).click();
    const thirdStep = card.getByRole('group', { name: 'Step 3', exact: true });
    await thirdStep.getByLabel('Minutes after the alarm, if nobody has acknowledged it').fill('5');
    await thirdStep.getByRole('checkbox', { name: colleague.name }).check();
    await card.getByRole('button', { name: 'Save the chain' }).click();
    const refusal = card.getByRole('alert');
    await refusal.waitFor();
    assert.match(await refusal.innerText(), /^The chain was not saved: step 3: .*later than the step before/);
    assert.equal(await state.innerText(), `${team} has no chain: everyone on the team is told at once.`);
    await thirdStep.getByRole('button', { name: 'Remove step 3' }).click();
    assert.equal(await card.getByTestId('escalation-step').count(), 2);
  });

  await run('the clinician saves a two-step chain with reminders every 5 minutes', async () => {
    await card.getByLabel('Remind everyone told so far every … minutes').fill('5');
    await card.getByRole('button', { name: 'Save the chain' }).click();
    await card.getByRole('status').filter({ hasText: 'The chain is saved.' }).waitFor();
    assert.equal(await card.getByRole('alert').count(), 0, 'the refusal is gone');
    // The summary follows once the page has read the saved chain back.
    const saved = `${team} has a chain of 2 steps, with reminders every 5 minutes.`;
    await state.filter({ hasText: saved }).waitFor();
    assert.equal(await state.innerText(), saved);
    await askTheTest('saved-escalation');
  });

  await run('the saved chain is what the page shows after a reload', async () => {
    await page.reload();
    await state.filter({ hasText: 'a chain of 2 steps' }).waitFor();
    assert.ok(await firstStep.getByRole('checkbox', { name: clinician.name }).isChecked());
    assert.ok(!(await firstStep.getByRole('checkbox', { name: colleague.name }).isChecked()));
    assert.ok(!(await firstStep.getByRole('checkbox', { name: 'physician' }).isChecked()));
    const wait = secondStep.getByLabel('Minutes after the alarm, if nobody has acknowledged it');
    assert.equal(await wait.inputValue(), '10');
    assert.ok(await secondStep.getByRole('checkbox', { name: 'physician' }).isChecked());
    assert.ok(!(await secondStep.getByRole('checkbox', { name: clinician.name }).isChecked()));
    assert.equal(await card.getByLabel('Remind everyone told so far every … minutes').inputValue(), '5');
    await checkAccessibility(page, 'the escalation card with a chain');
    await card.screenshot({ path: join(scenario.screenshots, '25-clinician-escalation.png') });
  });

  await run('the clinician removes the chain after confirming', async () => {
    await card.getByRole('button', { name: 'Remove the chain' }).click();
    const dialog = page.getByRole('dialog', { name: `Remove the chain of ${team}?` });
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Remove the chain' }).click();
    await card.getByRole('status').filter({ hasText: 'The chain is removed' }).waitFor();
    await state.filter({ hasText: 'has no chain' }).waitFor();
    assert.equal(await card.getByRole('button', { name: 'Remove the chain' }).count(), 0);
  });
} catch (error) {
  await failed(error);
} finally {
  await finish();
}
