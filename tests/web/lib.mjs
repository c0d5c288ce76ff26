// Shared by the browser specs: launches Debian's Chromium through
// playwright-core, watches the page for script that must never run, and
// offers the few steps every spec takes. Run by tests/web.rs, which passes
// RAGSTREAM_URL (the server), UPSTREAM_URL (the scripted upstream) and
// SCREENSHOTS (where screenshots go).

import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export { assert };

export const URL = required('RAGSTREAM_URL');
export const UPSTREAM = process.env.UPSTREAM_URL;
const SCREENSHOTS = process.env.SCREENSHOTS || 'target/web-screenshots';

/** The longest any single wait may take before the spec fails. */
export const WAIT = 20_000;

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set: run this through \`cargo test --test web\``);
    process.exit(2);
  }
  return value;
}

/** Logs one step of the spec. */
export function step(text) {
  console.log(`- ${text}`);
}

/**
 * Runs `body(page, context)` in a fresh headless Chromium with its own
 * profile, then closes it. The spec fails if the page raises an uncaught
 * error, opens a dialog (alert), or breaks the Content-Security-Policy.
 */
export async function withPage({ locale = 'en-US', viewport = { width: 1100, height: 760 } }, body) {
  const profile = mkdtempSync(join(tmpdir(), 'ragstream-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    locale,
    viewport,
    deviceScaleFactor: 1,
  });
  const problems = [];
  const killer = setTimeout(() => {
    console.error('the spec took over 120 s: giving up');
    process.exit(1);
  }, 120_000);
  try {
    const page = context.pages()[0] ?? await context.newPage();
    page.on('pageerror', (err) => problems.push(`uncaught error in the page: ${err.message}`));
    page.on('dialog', (dialog) => { problems.push(`the page opened a ${dialog.type()}: ${dialog.message()}`); dialog.dismiss(); });
    page.on('console', (msg) => {
      if (msg.type() === 'error' && /Content Security Policy|Refused to/i.test(msg.text())) {
        problems.push(`CSP violation: ${msg.text()}`);
      }
    });
    await body(page, context);
    assert.deepEqual(problems, [], 'the page misbehaved');
  } finally {
    clearTimeout(killer);
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

/** Opens the page and waits until its script has run. */
export async function openPage(page) {
  const response = await page.goto(URL);
  assert.equal(response.status(), 200);
  await page.waitForSelector('body[data-ready="true"]', { timeout: WAIT });
  return response;
}

/** Types `text` into the composer and sends it with Enter. */
export async function ask(page, text) {
  await page.locator('#input').fill(text);
  await page.locator('#input').press('Enter');
}

/** The last answer element's locator. */
export function lastAnswer(page) {
  return page.locator('.message.assistant').last();
}

/** Waits until the last answer is no longer being written. */
export async function waitFinished(page) {
  await page.waitForFunction(() => {
    const all = document.querySelectorAll('.message.assistant');
    return all.length > 0 && all[all.length - 1].getAttribute('aria-busy') === 'false';
  }, null, { timeout: WAIT });
}

/**
 * Records, in order, what the page shows while it answers: every distinct
 * text of the last answer, of the status region, and the number of sources,
 * each as { kind, value }. Read it back with `timeline(page)`.
 */
export async function recordTimeline(page) {
  await page.evaluate(() => {
    const seen = [];
    window.__timeline = seen;
    const last = { answer: null, status: null, sources: 0, busy: null };
    const note = () => {
      const all = document.querySelectorAll('.message.assistant');
      const message = all[all.length - 1];
      const answer = message?.querySelector('.answer')?.textContent ?? null;
      const status = document.getElementById('status').textContent;
      const sources = message ? message.querySelectorAll('.source').length : 0;
      const busy = message?.getAttribute('aria-busy') ?? null;
      if (answer !== last.answer) seen.push({ kind: 'answer', value: answer });
      if (status !== last.status) seen.push({ kind: 'status', value: status });
      if (sources !== last.sources) seen.push({ kind: 'sources', value: sources });
      if (busy !== last.busy) seen.push({ kind: 'busy', value: busy });
      Object.assign(last, { answer, status, sources, busy });
    };
    new MutationObserver(note).observe(document.body, {
      subtree: true, childList: true, characterData: true, attributes: true,
    });
    note();
  });
}

export async function timeline(page) {
  return page.evaluate(() => window.__timeline);
}

/** Saves a screenshot as an artifact under SCREENSHOTS. */
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path });
  step(`screenshot ${path}`);
}

/** Asks the scripted upstream how many reply streams are still open. */
export async function upstreamOpen() {
  const response = await fetch(`${UPSTREAM}/test/open`);
  return Number(await response.text());
}

/** Polls `check` until it returns true, up to WAIT. */
export async function eventually(what, check) {
  const deadline = Date.now() + WAIT;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`gave up waiting: ${what}`);
}
