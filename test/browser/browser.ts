/**
 * Debian's chromium (/usr/bin/chromium; .ci/install-clients installs it) driven by playwright-core,
 * for the status page's browser test and its screenshot script.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

/**
 * The little of the DOM the probes below use (they run in the page; the tests compile without
 * the DOM library): `(globalThis as unknown as Win)` is `window` there.
 */
interface Cell { readonly textContent: string | null }
interface Row extends Cell { readonly cells: ArrayLike<Cell> }
export interface Win {
  readonly document: { querySelectorAll(selector: string): Iterable<Row> & ArrayLike<Row>; querySelector(selector: string): Row | null };
  readonly __switchyardStatus: { renders: number; firstRenderMs: number | null; lastRenderMs: number | null; maxRenderMs: number; routes: number };
}

const CHROMIUM = '/usr/bin/chromium';

export async function launch(): Promise<Browser> {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: the status page test needs Debian's chromium (apt-get install chromium; .ci/install-clients installs it)`);
  // launch() gives every browser a fresh temporary profile (user-data dir), removed on close.
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

/** A page that records console errors, uncaught exceptions and dialogs (an alert would be one). */
export async function watchedPage(browser: Browser): Promise<{ page: Page; errors: string[]; dialogs: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  const errors: string[] = [];
  const dialogs: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('dialog', (dialog) => {
    dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    void dialog.dismiss();
  });
  return { page, errors, dialogs };
}


/**
 * Wait until `probe(arg)`, run in the page, returns true, or fail after `timeoutMs`. Polled with
 * page.evaluate: the page's CSP (script-src 'self', no eval) refuses waitForFunction's string form.
 */
export async function pageCondition<A>(page: Page, what: string, probe: (arg: A) => boolean, arg: A, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await page.evaluate(probe as (arg: unknown) => boolean, arg as unknown)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for the page to show ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The page has at least `n` rows matching `selector`. */
export const rowsAtLeast = ([selector, n]: [string, number]): boolean => (globalThis as unknown as Win).document.querySelectorAll(selector).length >= n;
