// The operations console in headless Chromium (Debian's package, driven by playwright-core).
// Run by tests/console_browser.rs, which starts the world (intake, worker, git server, fake
// GitHub) and passes what this needs in the environment:
//   CONSOLE_URL, CHROMIUM, ADMIN_TOKEN, READ_TOKEN, TRIGGER_TOKEN, LIVE_ASSESSMENT,
//   DEAD_OPERATION, STRAY_DEAD_LETTER, OTHER_ORG_OPERATION, SIGNAL_DIR, SCREENSHOT_DIR.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');

const env = process.env;
const BASE = env.CONSOLE_URL;
const TIMEOUT = 60000;
const shots = env.SCREENSHOT_DIR || path.join(__dirname, 'screenshots');
const contexts = [];

async function browserContext() {
  // A fresh profile each time: nothing from an earlier run (cookies, cache) is reused.
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'remediator-console-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  context.setDefaultTimeout(TIMEOUT);
  contexts.push({ context, profile });
  return context;
}

async function login(context, token) {
  const page = context.pages()[0] || await context.newPage();
  await page.goto(`${BASE}/console/login`);
  await page.fill('#token', token);
  const [answer] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${BASE}/console/login` && r.request().method() === 'POST'),
    page.click('button[type=submit]'),
  ]);
  assert.equal(answer.status(), 303, `login answered ${answer.status()}: ${await page.textContent('main').catch(() => '')}`);
  await page.waitForURL(`${BASE}/console/`);
  assert.equal(await page.textContent('h1'), 'Overview');
  return page;
}

async function shot(page, name) {
  fs.mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, name), fullPage: true });
}

before(() => {
  for (const key of ['CONSOLE_URL', 'ADMIN_TOKEN', 'READ_TOKEN', 'TRIGGER_TOKEN', 'SIGNAL_DIR']) {
    assert.ok(env[key], `${key} must be set (run through tests/console_browser.rs)`);
  }
});

after(async () => {
  for (const { context, profile } of contexts) {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
});

let admin;

test('an admin logs in and the session cookie is HttpOnly and SameSite=Strict', async () => {
  const context = await browserContext();
  admin = await login(context, env.ADMIN_TOKEN);
  const cookies = await context.cookies(`${BASE}/console/`);
  const session = cookies.find((c) => c.name === 'remediator_console');
  assert.ok(session, 'session cookie set');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');
  // The script cannot read it, and the token is nowhere in the page.
  assert.equal(await admin.evaluate(() => document.cookie.includes('remediator_console=')), false);
  assert.equal((await admin.content()).includes(env.ADMIN_TOKEN), false);
});

test('a triggered remediation goes PENDING -> RUNNING (with its step) -> SUCCEEDED without a reload', async () => {
  await admin.goto(`${BASE}/console/operations`);
  // A marker that a reload would wipe.
  await admin.evaluate(() => { window.__notReloaded = true; });
  const response = await fetch(`${BASE}/v1/findings/auto-remediation`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${env.TRIGGER_TOKEN}` },
    body: JSON.stringify({ assessment_id: env.LIVE_ASSESSMENT }),
  });
  assert.equal(response.status, 200);
  const { operation_id: id } = await response.json();
  const row = `#operations tr[data-operation-id="${id}"]`;

  await admin.waitForSelector(`${row}[data-status="PENDING"]`);
  // Now the worker may start (the harness waits for this file).
  fs.writeFileSync(path.join(env.SIGNAL_DIR, 'start-worker'), id);
  await admin.waitForSelector(`${row}[data-status="RUNNING"] .step-name`);
  const step = await admin.textContent(`${row} .step-name`);
  // Any step of a running job: a loaded machine can show the claim itself before the clone.
  assert.match(step, /^(claim|clone|generate|lock|test|commit|push|pull_request|write_back)$/);
  await admin.waitForSelector(`${row}[data-status="SUCCEEDED"]`);
  assert.equal(await admin.evaluate(() => window.__notReloaded), true, 'the page was not reloaded');

  // Its page: the PR link, the patcher, the timings and the timeline.
  await admin.click(`${row} a`);
  await admin.waitForSelector('[data-pr-link]');
  const facts = await admin.textContent('dl.facts');
  assert.match(facts, /bump/);
  assert.match(facts, /package\.json/, 'the changed files');
  assert.ok(await admin.$('#timings'));
  assert.ok((await admin.$$('#timeline tbody tr')).length >= 8);
  assert.equal(await admin.$('[data-action="cancel"]'), null, 'no cancel once it ended');
  await shot(admin, 'operation.png');
});

test('a dead-lettered job is opened, replayed, and succeeds', async () => {
  await admin.goto(`${BASE}/console/dead-letters`);
  const row = `tr[data-dead-letter="${env.DEAD_OPERATION}"]`;
  await admin.waitForSelector(row);
  assert.match(await admin.textContent(row), /max_attempts/);
  await admin.click(`${row} a`);
  await admin.waitForSelector('#headers');
  assert.match(await admin.textContent('#headers'), /x-remediator-dead-reason/);
  assert.match(await admin.textContent('#body'), /remediation\.v1/);
  await shot(admin, 'dead-letter.png');

  await Promise.all([admin.waitForURL(`${BASE}/console/dead-letters/replay`), admin.click('[data-action="replay-one"]')]);
  assert.match(await admin.textContent('.notice'), /replayed 1, skipped 0/);
  await admin.goto(`${BASE}/console/operations/${env.DEAD_OPERATION}`);
  // The operation page follows the replayed job live until it ends.
  await admin.waitForSelector('dd[data-status="SUCCEEDED"]');
  await admin.waitForSelector('[data-pr-link]');
  assert.match(await admin.textContent('#timeline'), /replayed from the dead-letter queue by tester \(console\)/);
});

function purgeResponse() {
  return admin.waitForResponse((r) => r.url() === `${BASE}/console/dead-letters/purge` && r.request().method() === 'POST');
}

test('a purge needs the operator to type the count', async () => {
  await admin.goto(`${BASE}/console/dead-letters`);
  await admin.waitForSelector(`tr[data-dead-letter="${env.STRAY_DEAD_LETTER}"]`);
  await Promise.all([admin.waitForURL(`${BASE}/console/dead-letters/purge`), admin.click('[data-action="purge-all"]')]);
  const count = await admin.getAttribute('[data-purge-count]', 'data-purge-count');
  assert.equal(count, '1');
  // The browser itself refuses an empty confirmation (required field): nothing is sent.
  await admin.click('[data-action="purge-confirm"]');
  assert.equal(await admin.$('[data-purge-refused]'), null);
  await admin.fill('#confirm', '5');
  const [refused] = await Promise.all([purgeResponse(), admin.click('[data-action="purge-confirm"]')]);
  assert.equal(refused.status(), 409);
  await admin.waitForSelector('[data-purge-refused]');
  await admin.goto(`${BASE}/console/dead-letters`);
  await admin.waitForSelector(`tr[data-dead-letter="${env.STRAY_DEAD_LETTER}"]`);
  await admin.click('[data-action="purge-all"]');
  await admin.waitForSelector('#confirm');
  await admin.fill('#confirm', count);
  const [done] = await Promise.all([purgeResponse(), admin.click('[data-action="purge-confirm"]')]);
  assert.equal(done.status(), 200);
  await admin.waitForSelector('.notice');
  assert.match(await admin.textContent('.notice'), /Purged 1/);
  await admin.goto(`${BASE}/console/dead-letters`);
  assert.match(await admin.textContent('main'), /nothing that matches/);

  await admin.goto(`${BASE}/console/audit`);
  const audit = await admin.textContent('#audit');
  assert.match(audit, /replay/);
  assert.match(audit, /purged 1/);
  assert.match(audit, /refused: typed "5", 1 matched/);
});

test('the overview shows queues, jobs per minute and workers, refreshed live', async () => {
  await admin.goto(`${BASE}/console/`);
  await admin.waitForSelector('[data-queue="work"]');
  await admin.waitForSelector('[data-queue="dead"] [data-depth="0"]');
  await admin.waitForSelector('#per-minute');
  await admin.waitForSelector('#workers');
  // The live stamp changes once the script has refreshed the figures.
  await admin.waitForFunction(() => /updated/.test(document.querySelector('[data-live-stamp]').textContent));
  await shot(admin, 'overview.png');
  await admin.goto(`${BASE}/console/repositories`);
  await admin.waitForSelector('#repositories');
  await shot(admin, 'repositories.png');
});

test('an operations:read token sees no dead-letter actions and no other organisation', async () => {
  const context = await browserContext();
  const reader = await login(context, env.READ_TOKEN);
  assert.equal(await reader.$('[data-queue]'), null, 'no fleet figures');
  await reader.goto(`${BASE}/console/dead-letters`);
  assert.equal(await reader.$('[data-action]'), null);
  assert.equal(await reader.$('input[name="id"]'), null);
  await reader.goto(`${BASE}/console/operations`);
  await reader.waitForSelector(`tr[data-operation-id="${env.DEAD_OPERATION}"]`);
  assert.equal(await reader.$(`tr[data-operation-id="${env.OTHER_ORG_OPERATION}"]`), null);
  const other = await reader.goto(`${BASE}/console/operations/${env.OTHER_ORG_OPERATION}`);
  assert.equal(other.status(), 404);
  await reader.goto(`${BASE}/console/operations/${env.DEAD_OPERATION}`);
  assert.equal(await reader.$('[data-action="cancel"]'), null);
  const audit = await reader.goto(`${BASE}/console/audit`);
  assert.equal(audit.status(), 403);
  await shot(reader, 'read-only-audit-refused.png');
});

test('every page reads with JavaScript off', async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'remediator-console-nojs-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    javaScriptEnabled: false,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  contexts.push({ context, profile });
  context.setDefaultTimeout(TIMEOUT);
  const page = await login(context, env.ADMIN_TOKEN);
  for (const [url, selector] of [
    ['/console/', '[data-queue="work"]'],
    ['/console/operations', '#operations table'],
    [`/console/operations/${env.DEAD_OPERATION}`, '#timeline'],
    ['/console/dead-letters', 'main'],
    ['/console/repositories', '#repositories'],
    ['/console/audit', '#audit'],
  ]) {
    const response = await page.goto(`${BASE}${url}`);
    assert.equal(response.status(), 200, url);
    assert.ok(await page.$(selector), `${url} shows ${selector}`);
  }
});
