// What the browser scripts share: the scenario the Rust test passes in CHRONICLE_SCENARIO
// (JSON), headless Chromium driven by Playwright, named steps, the axe-core check, log-in,
// screenshots, and the conversation with the test on stdin/stdout. Run through
// tests/tests/dashboard_browser.rs, never alone.
//
// Elements are found the way people find them, by role and accessible name (getByRole,
// getByLabel), so a control without a label fails the test. Each page is also checked with
// axe-core against WCAG 2.1 A and AA (contrast, labels, landmarks), and screenshotted into the
// scenario's folder.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import axe from 'axe-core';
import { chromium } from 'playwright-core';

export const scenario = JSON.parse(process.env.CHRONICLE_SCENARIO ?? 'null');
if (!scenario) {
  console.error('CHRONICLE_SCENARIO is not set: run this through `cargo test -p chronicle-tests --test dashboard_browser`.');
  process.exit(2);
}
export const url = (path) => new URL(path, scenario.url).toString();

// Chromium as this machine runs it: no sandbox (root), no GPU, and no traffic of its own to
// the outside (which is closed here). Playwright gives it a fresh profile directory.
const browser = await chromium.launch({
  executablePath: scenario.chromium,
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});

let step = 'start';

// What only the test can do (publish through MQTT) is asked for on stdout; the test answers on
// stdin when it is done.
const questions = createInterface({ input: process.stdin });
const answers = questions[Symbol.asyncIterator]();
export async function askTheTest(what) {
  console.log(`@request ${what}`);
  const { value, done } = await answers.next();
  assert.ok(!done && value === what, `the test answered ${JSON.stringify(value)} to ${what}`);
}
const pages = [];

export async function newPage(viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport, acceptDownloads: true, locale: 'en-GB' });
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  page.on('pageerror', (error) => console.error(`[page error during "${step}"] ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') console.error(`[console during "${step}"] ${message.text()}`);
  });
  pages.push(page);
  return page;
}

export async function run(name, action) {
  step = name;
  const started = Date.now();
  await action();
  console.log(`ok - ${name} (${Date.now() - started} ms)`);
}

export async function screenshot(page, name) {
  await page.screenshot({ path: join(scenario.screenshots, name), fullPage: true });
}

/** WCAG 2.1 A and AA: no violations at all. */
export async function checkAccessibility(page, what) {
  await page.evaluate(axe.source);
  const results = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }),
  );
  const problems = results.violations.map(
    (v) => `${v.id} (${v.impact}): ${v.help}\n    ${v.nodes.map((n) => n.target.join(' ')).join('\n    ')}`,
  );
  assert.deepEqual(problems, [], `accessibility problems on ${what}:\n${problems.join('\n')}`);
  assert.ok(results.passes.length > 10, `axe-core checked ${what} (${results.passes.length} rules passed)`);
}

export async function logIn(page, email) {
  await page.goto(url('/'));
  await page.waitForURL(/\/login$/);
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill(scenario.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('button', { name: 'Log out' }).waitFor();
}

export async function bodyText(page) {
  return page.locator('body').innerText();
}

/** Reports the step that failed, with a screenshot of every page, and fails the script. */
export async function failed(error) {
  console.error(`not ok - ${step}`);
  console.error(error);
  for (const [i, page] of pages.entries()) {
    await page.screenshot({ path: join(scenario.screenshots, `failure-${i}.png`), fullPage: true }).catch(() => {});
  }
  process.exitCode = 1;
}

export async function finish() {
  await browser.close();
  // Stop listening to the test, or node would wait on stdin for ever.
  questions.close();
  process.stdin.destroy();
}
