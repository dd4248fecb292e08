// The operator page in a real browser: Debian's chromium driven by playwright-core,
// headless, background networking off. Run by tests/e2e/test_opsui_page.py, which starts
// redis-server, fosim and fogate and prepares the scenario (an import that failed, whose
// file name holds a <script> tag; two exports left unconfirmed, made 20 and 26 minutes old
// in the ledger). This script asserts what the page shows, works the actions through the
// page's confirmation step, and saves screenshots at 1280x800 and at a phone width.
//
// Environment: ADMIN_URL (http://127.0.0.1:port of the admin listener), CLIENT_URL and
// CLIENT_KEY_FILE (the client listener and a file holding a test API key), TOKEN_FILE (the
// admin token file), IMPORT_JOB, EXPORT_JOB, XSS_NAME (the hostile file name), SHOT_DIR.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const ADMIN = env('ADMIN_URL');
const CLIENT = env('CLIENT_URL');
const KEY = readFileSync(env('CLIENT_KEY_FILE'), 'utf8').trim();
const TOKEN = readFileSync(env('TOKEN_FILE'), 'utf8').split('\n')[0].trim();
const IMPORT_JOB = env('IMPORT_JOB');
const EXPORT_JOB = env('EXPORT_JOB');
const XSS_NAME = env('XSS_NAME');
const SHOTS = env('SHOT_DIR');
const TIMEOUT = 15000;

mkdirSync(SHOTS, { recursive: true });
// a fresh profile: launch() gives chromium a new temporary --user-data-dir of its own
// (playwright refuses the flag here) and removes it on close; TMPDIR keeps it in our dir
const profile = mkdtempSync(join(tmpdir(), 'fogate-chromium-'));
process.env.TMPDIR = profile;
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
});
const offsite = [];
const consoleErrors = [];

function watch(page) {
  page.on('request', (req) => {
    if (!req.url().startsWith(ADMIN)) offsite.push(req.url());
  });
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
}

async function confirmDialog(page, expect, ok) {
  const dlg = page.locator('#confirm');
  await dlg.waitFor({ state: 'visible', timeout: TIMEOUT });
  assert.match(await page.locator('#confirm-text').textContent(), expect);
  await page.click(ok ? '#confirm-ok' : '#confirm-cancel');
  await dlg.waitFor({ state: 'hidden', timeout: TIMEOUT });
}

async function clientEnqueue() {
  const r = await fetch(`${CLIENT}/v1/jobs/${IMPORT_JOB}/messages`, {
    method: 'POST', headers: { 'X-Api-Key': KEY, 'X-File-Name': 'after-pause.csv' },
    body: 'code;name\nP1;paused\n',
  });
  return { status: r.status, body: await r.json() };
}

try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  watch(page);
  const resp = await page.goto(`${ADMIN}/ui`);
  assert.equal(resp.status(), 200);
  const h = resp.headers();
  assert.match(h['content-security-policy'], /script-src 'self'/);
  assert.match(h['content-security-policy'], /frame-ancestors 'none'/);
  assert.doesNotMatch(h['content-security-policy'], /unsafe-inline/);
  assert.equal(h['x-content-type-options'], 'nosniff');
  assert.equal(h['referrer-policy'], 'no-referrer');

  // before the token: reads work from loopback, actions are disabled
  await page.locator('#envs tbody tr').first().waitFor({ timeout: TIMEOUT });
  assert.equal(await page.locator('#jobs button').first().isDisabled(), true);
  await page.fill('#token', TOKEN);
  await page.click('#tokenuse');
  await page.waitForFunction(() => !document.querySelector('#jobs button').disabled,
    null, { timeout: TIMEOUT });
  const stored = await page.evaluate(() => ({
    session: sessionStorage.getItem('fogate.adminToken'),
    local: localStorage.length, cookie: document.cookie,
  }));
  assert.equal(stored.session, TOKEN);
  assert.equal(stored.local, 0);
  assert.equal(stored.cookie, '');

  // environments: the token is held, the gate open
  const envRow = page.locator('#envs tbody tr').first();
  assert.match(await envRow.textContent(), /sim/);
  assert.match(await envRow.textContent(), /held/);
  assert.match(await envRow.textContent(), /HTTP 500/);

  // exports left unconfirmed: 20 minutes amber, 26 minutes red
  await page.locator('#exports tbody tr.age-red').first().waitFor({ timeout: TIMEOUT });
  assert.equal(await page.locator('#exports tbody tr.age-amber').count(), 1);
  assert.equal(await page.locator('#exports tbody tr.age-red').count(), 1);
  assert.match(await page.locator('#exports tbody tr.age-red').textContent(), /26 min/);
  assert.match(await page.locator('#exports tbody tr.age-amber').textContent(), /20 min/);

  // the failed import: its hostile file name is text, never markup, never run
  const hist = page.locator('#history tbody tr', { hasText: 'ProcessedWithErrors' }).first();
  await hist.waitFor({ timeout: TIMEOUT });
  assert.equal(await hist.locator('td.file').textContent(), XSS_NAME);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.equal(await page.evaluate(() => document.scripts.length), 1);
  assert.equal(await page.locator('#history td.file script').count(), 0);
  // today's counts in the jobs table: counted in Redis by UTC day (the admin API's overview)
  const importRow = page.locator(`#jobs tbody tr[data-job="${IMPORT_JOB}"]`);
  await page.waitForFunction((j) => /ProcessedWithErrors 1/.test(
    document.querySelector(`#jobs tbody tr[data-job="${j}"]`).textContent), IMPORT_JOB,
  { timeout: TIMEOUT });
  const day = new Date().toISOString().slice(0, 10);
  assert.match(await page.locator('#today-note').textContent(), new RegExp(day + ' UTC'));
  assert.match(await page.locator('#jobs thead').textContent(), /Today \(UTC\)/);

  // its detail: statuses over time, the errors D365 gave
  await hist.click();
  await page.locator('#detail').waitFor({ state: 'visible', timeout: TIMEOUT });
  assert.equal(await page.locator('#detail-title').textContent(), 'import ' + XSS_NAME);
  const statuses = await page.locator('#detail-statuses li').allTextContents();
  assert.ok(statuses.length >= 3, statuses.join(' | '));
  assert.ok(statuses.some((s) => /Received/.test(s)) &&
    statuses.some((s) => /ProcessedWithErrors/.test(s)), statuses.join(' | '));
  assert.notEqual((await page.locator('#detail-errors').textContent()).trim(), 'none');
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  await page.screenshot({ path: join(SHOTS, 'opsui-1280x800-detail.png'), fullPage: true });

  // pause: cancel first (nothing happens), then confirm
  await importRow.getByRole('button', { name: 'Pause' }).click();
  await confirmDialog(page, new RegExp(`Pause job ${IMPORT_JOB}`), false);
  assert.match(await importRow.textContent(), /running/);
  await importRow.getByRole('button', { name: 'Pause' }).click();
  await confirmDialog(page, new RegExp(`Pause job ${IMPORT_JOB}`), true);
  await page.waitForFunction((j) => /paused by token:/.test(
    document.querySelector(`#jobs tbody tr[data-job="${j}"]`).textContent), IMPORT_JOB,
  { timeout: TIMEOUT });
  let e = await clientEnqueue();
  for (let i = 0; i < 40 && e.status !== 503; i++) {
    await new Promise((r) => setTimeout(r, 100));
    e = await clientEnqueue();
  }
  assert.equal(e.status, 503);
  assert.equal(e.body.code, 'job_paused');

  // release the red export's lease through the page
  const red = page.locator('#exports tbody tr.age-red');
  await red.getByRole('button', { name: 'Release' }).click();
  await confirmDialog(page, /Release the lease/, true);
  await page.waitForFunction(() => /released/.test(
    document.querySelector('#exports tbody tr.age-red').textContent), null, { timeout: TIMEOUT });

  await page.locator('#detail-close').click();
  await page.screenshot({ path: join(SHOTS, 'opsui-1280x800.png'), fullPage: true });

  // a phone: nothing wider than the screen (tables scroll inside their sections)
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 },
    isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const pp = await phone.newPage();
  watch(pp);
  await pp.goto(`${ADMIN}/ui`);
  await pp.locator('#exports tbody tr.age-red').waitFor({ timeout: TIMEOUT });
  const width = await pp.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `the page is ${width} px wide on a 390 px screen`);
  assert.equal(await pp.evaluate(() => sessionStorage.getItem('fogate.adminToken')), null);
  await pp.screenshot({ path: join(SHOTS, 'opsui-390x844.png'), fullPage: true });

  // resume through the page again, and the job takes files
  await page.bringToFront();
  await importRow.getByRole('button', { name: 'Resume' }).click();
  await confirmDialog(page, /Resume job/, true);
  await page.waitForFunction((j) => /running/.test(
    document.querySelector(`#jobs tbody tr[data-job="${j}"]`).textContent), IMPORT_JOB,
  { timeout: TIMEOUT });

  assert.deepEqual(offsite, [], 'the page asked for something off its own origin');
  assert.deepEqual(consoleErrors.filter((m) => !/Failed to load resource/.test(m)), []);
  for (const f of ['opsui-1280x800.png', 'opsui-1280x800-detail.png', 'opsui-390x844.png'])
    console.log('screenshot: ' + join(SHOTS, f));
  void EXPORT_JOB;
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
