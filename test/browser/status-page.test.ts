/**
 * The status page in a real browser: Debian's chromium (/usr/bin/chromium; .ci/install-clients
 * installs it) driven by playwright-core, against Switchyard started in-process with a services
 * file (services and KV) and real upstreams on 127.0.0.1. No chromium is a failure, not a skip.
 *
 * A screenshot of the page is saved (SWITCHYARD_SCREENSHOT, else a temp directory; the path is
 * logged). Render times are measured in the page and logged, not asserted.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { request } from 'undici';
import type { Switchyard } from '../../src/app.js';
import { startTestSwitchyard, Workspace } from '../support/switchyard.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';
import { waitFor } from '../support/wait.js';
import { launch, pageCondition, rowsAtLeast, watchedPage, type Win } from './browser.js';

const XSS_NAME = '<script>alert(1)</script>';
const TOKEN = 'sy-status-page-3b9e1c7a5f2d4e6081a3c5e7b9d1f2a4';

/** Text of the cells of the endpoint row whose first cell starts with `id`, or undefined. */
function endpointRow(page: Page, id: string): Promise<string[] | undefined> {
  return page.evaluate((prefix) => {
    for (const row of (globalThis as unknown as Win).document.querySelectorAll('table.routes tr.ep')) {
      const cells = Array.from(row.cells).map((c) => c.textContent ?? '');
      if (cells[0]!.startsWith(`${prefix} `)) return cells;
    }
    return undefined;
  }, id);
}

const renderStats = (page: Page): Promise<Win['__switchyardStatus']> => page.evaluate(() => (globalThis as unknown as Win).__switchyardStatus);

describe('status page in chromium', () => {
  let browser: Browser;
  let workspace: Workspace;
  let app: Switchyard;
  const ups: TestUpstream[] = [];
  let deadPort = 0;

  const services = (apiWeights: string): string => [
    'services:',
    '  shop:',
    `    - { id: a, address: 127.0.0.1, port: ${ups[0]!.port} }`,
    `    - { id: b, address: 127.0.0.1, port: ${ups[1]!.port} }`,
    `    - { id: bad, address: 127.0.0.1, port: ${deadPort} }`,
    '  api:',
    `    - { id: api-1, address: 127.0.0.1, port: ${ups[0]!.port}, tags: [v1] }`,
    `    - { id: api-2, address: 127.0.0.1, port: ${ups[1]!.port}, tags: [v2] }`,
    `    - { id: api-3, address: 127.0.0.1, port: ${ups[1]!.port}, tags: [v2], weights: { passing: 2, warning: 1 } }`,
    '  odd:',
    `    - { id: odd-1, address: 127.0.0.1, port: ${ups[0]!.port} }`,
    'kv:',
    `  switchyard/routes/api/weights: '${apiWeights}'`,
    '',
  ].join('\n');

  before(async () => {
    browser = await launch();
    for (const name of ['a', 'b']) ups.push(await startUpstream({ name }));
    const dead = await startUpstream({ name: 'dead' });
    deadPort = dead.port;
    await dead.close(); // connections to it are refused: the endpoint fails and is ejected
    workspace = await Workspace.create();
    await workspace.writeTemplate('routes.yaml', [
      'routes:',
      '  - name: shop',
      '    match: { host: shop.example, path: / }',
      '    to: [ { service: shop } ]',
      '    policy:',
      '      outlier: { consecutiveFailures: 2, baseEjectionMs: 10m, maxEjectionMs: 10m, maxEjectionPercent: 50 }',
      '  - name: api',
      '    match: { path: /api }',
      '    strip: /api',
      '    to:',
      '      - { service: api, tag: v1, weight: 3 }',
      '      - { service: api, tag: v2, weight: 1 }',
      // Route names are free text in templates (the validator asks only for a non-empty, unique name).
      `  - name: "${XSS_NAME}"`,
      '    match: { path: /odd }',
      '    to: [ { service: odd } ]',
      '',
    ].join('\n'));
    await workspace.writeServices(services('{"api:v1": 3}'));
    app = await startTestSwitchyard(workspace);
  });

  after(async () => {
    await browser?.close();
    await app?.stop();
    await Promise.all(ups.map((u) => u.close()));
    await workspace?.remove();
  });

  it('shows routes, weights, endpoints, an ejection and a KV change; names are text; no console error', async () => {
    const { page, errors, dialogs } = await watchedPage(browser);
    const admin = `http://127.0.0.1:${app.adminAddress.port}`;
    const proxy = `http://127.0.0.1:${app.proxyAddress.port}`;
    await page.goto(`${admin}/`);
    await pageCondition(page, 'the shop route and its endpoints', rowsAtLeast, ['table.routes tr.ep', 7], 10_000);
    const rows = await page.locator('table.routes tr.route td:first-child').allTextContents();
    assert.deepEqual(rows, ['shop', 'api', XSS_NAME]);
    for (const id of ['shop/a', 'shop/b', 'shop/bad', 'api/api-1', 'api/api-2', 'api/api-3']) assert.ok(await endpointRow(page, id), id);
    assert.deepEqual((await endpointRow(page, 'shop/a'))!.slice(1, 4), ['weight 1', 'passing', 'active']);

    // The route named like a script tag is text: no script element, no dialog.
    assert.equal(await page.locator('table.routes script').count(), 0);
    assert.equal(await page.locator('#sources tr').count() >= 2, true);

    // Traffic, some of it to the refused endpoint: it is ejected after two failures.
    for (let i = 0; i < 30; i++) {
      const res = await request(`${proxy}/cart`, { headers: { host: 'shop.example' } });
      await res.body.dump();
    }
    for (let i = 0; i < 12; i++) await (await request(`${proxy}/api/items`)).body.dump();
    await pageCondition(page, 'shop/bad ejected', () => Array.from((globalThis as unknown as Win).document.querySelectorAll('table.routes tr.ep'))
      .some((r) => r.cells[0]!.textContent!.startsWith('shop/bad ') && r.cells[3]!.textContent!.startsWith('ejected until')), undefined, 10_000);
    // Its failed attempts show although each was retried on another endpoint.
    assert.match((await endpointRow(page, 'shop/bad'))![6]!, /\(\d+ failed\)/);
    for (const good of ['shop/a', 'shop/b']) assert.doesNotMatch((await endpointRow(page, good))![6]!, /failed/, good);
    const a = (await endpointRow(page, 'shop/a'))!;
    assert.notEqual(a[5], '–', `requests/s of shop/a: ${a.join(' | ')}`);

    // A KV weight change in the services file: on the page within 2 s of the swap.
    const version = app.store.version;
    const written = Date.now();
    await workspace.writeServices(services('{"api:v1": 1, "api:v2": 5}'));
    await waitFor('the KV change to swap a table', () => app.store.version > version, 10_000);
    const swapped = Date.now();
    await pageCondition(page, 'the new KV weights', () => Array.from((globalThis as unknown as Win).document.querySelectorAll('table.routes tr.dest'))
      .some((r) => r.cells[0]!.textContent === 'api:v2' && r.cells[1]!.textContent === 'weight 1 → 5 (KV)'), undefined, 2_000);
    console.log(`# KV change on the page ${Date.now() - written} ms after the write (${Date.now() - swapped} ms after the swap)`);

    // "Where would this request go" asks /api/match.
    await page.fill('#match-host', 'shop.example');
    await page.fill('#match-path', '/cart?x=1');
    await page.click('#match-form button');
    await pageCondition(page, 'the match result', () => (globalThis as unknown as Win).document.querySelector('#match-result .outcome')?.textContent === 'routed to route "shop"', undefined, 5_000);
    // Shares are of the route, as `switchyard explain` prints them (api:v2 has 5 of 6; api-3 two
    // thirds of that); an empty Host box says what it asks.
    await page.fill('#match-host', '');
    await page.fill('#match-path', '/api/items');
    await page.click('#match-form button');
    await pageCondition(page, 'the api match result', () => (globalThis as unknown as Win).document.querySelector('#match-result .outcome')?.textContent === 'routed to route "api"', undefined, 5_000);
    const answer = await page.locator('#match-result').textContent() ?? '';
    assert.match(answer, /api:v2: 83\.3% of the route/);
    assert.match(answer, /api\/api-3 127\.0\.0\.1:\d+ · 55\.6% of the route \(66\.7% of api:v2\)/);
    assert.match(answer, /Host left empty: the answer is for a request without a Host header/);

    const screenshot = process.env['SWITCHYARD_SCREENSHOT'] ?? join(await mkdtemp(join(tmpdir(), 'sy-status-')), 'status-page.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`# status page screenshot: ${screenshot}`);

    // A template file that does not parse: its source row and the problems box name it.
    await workspace.writeTemplate('broken.yaml', 'routes:\n  - name: x\n    match: { path: /x\n');
    await pageCondition(page, 'the rejected file on the page', () => {
      const doc = (globalThis as unknown as Win).document;
      const row = Array.from(doc.querySelectorAll('#sources tr')).find((r) => r.cells[0]!.textContent === 'templates');
      return row !== undefined && row.cells[1]!.textContent === 'synced, 1 file(s) rejected' && /broken\.yaml: line \d+/.test(row.cells[3]!.textContent ?? '')
        && /^Rejected file\(s\): templates: \S*broken\.yaml: line \d+/.test(doc.querySelector('#problems')?.textContent ?? '');
    }, undefined, 10_000);
    await rm(join(workspace.templatesDir, 'broken.yaml'));

    assert.equal(await page.locator('table.routes tr.route td:first-child', { hasText: 'script' }).textContent(), XSS_NAME);
    assert.deepEqual(dialogs, []);
    assert.deepEqual(errors, []);
    await page.context().close();
  });

  it('with --admin-token: asks for the token once per tab, then shows the routes', async () => {
    const tokenApp = await startTestSwitchyard(workspace, ['--admin-token', TOKEN]);
    try {
      const { page, errors } = await watchedPage(browser);
      const admin = `http://127.0.0.1:${tokenApp.adminAddress.port}`;
      await page.goto(`${admin}/`);
      await page.locator('#token-input').waitFor({ state: 'visible', timeout: 5_000 });
      assert.equal(await page.locator('#main').isHidden(), true);
      await page.fill('#token-input', TOKEN);
      await page.click('#token-form button');
      await pageCondition(page, 'the routes after the token', rowsAtLeast, ['table.routes tr.route', 3], 10_000);
      // Kept for the tab: a reload asks no more.
      await page.reload();
      await pageCondition(page, 'the routes after a reload', rowsAtLeast, ['table.routes tr.route', 3], 10_000);
      assert.equal(await page.locator('#token-form').isHidden(), true);
      assert.deepEqual(errors, []);
      await page.context().close();
    } finally {
      await tokenApp.stop();
    }
  });
});

describe('status page with 1,000 routes', () => {
  let browser: Browser;
  let workspace: Workspace;
  let app: Switchyard;
  let up: TestUpstream;
  const ROUTES = 1000;

  before(async () => {
    browser = await launch();
    up = await startUpstream({ name: 'one' });
    workspace = await Workspace.create();
    const routes = ['routes:'];
    const services = ['services:'];
    for (let i = 0; i < ROUTES; i++) {
      routes.push(`  - { name: r${i}, match: { path: /r${i} }, to: [ { service: s${i} } ] }`);
      services.push(`  s${i}:`, `    - { id: s${i}-1, address: 127.0.0.1, port: ${up.port} }`, `    - { id: s${i}-2, address: 127.0.0.1, port: ${up.port} }`);
    }
    await workspace.writeTemplate('many.yaml', `${routes.join('\n')}\n`);
    await workspace.writeServices(`${services.join('\n')}\n`);
    app = await startTestSwitchyard(workspace);
  });

  after(async () => {
    await browser?.close();
    await app?.stop();
    await up?.close();
    await workspace?.remove();
  });

  it('renders and refreshes without console errors (render times logged)', async () => {
    const { page, errors } = await watchedPage(browser);
    await page.goto(`http://127.0.0.1:${app.adminAddress.port}/`);
    await pageCondition(page, `${ROUTES} routes`, rowsAtLeast, ['table.routes tr.route', ROUTES], 20_000);
    const first = await renderStats(page);
    // Traffic on a few routes, then refreshes that update their cells in place.
    for (let i = 0; i < 20; i++) await (await request(`http://127.0.0.1:${app.proxyAddress.port}/r${i % 5}`)).body.dump();
    await pageCondition(page, 'two more refreshes', (n) => (globalThis as unknown as Win).__switchyardStatus.renders >= n, first.renders + 2, 10_000);
    await pageCondition(page, 'traffic on r0', () => (globalThis as unknown as Win).document.querySelector('table.routes tr.route')!.cells[5]!.textContent !== '–', undefined, 5_000);
    const later = await renderStats(page);
    const asked = performance.now();
    const json = await (await request(`http://127.0.0.1:${app.adminAddress.port}/api/status`)).body.text();
    console.log(`# /api/status at ${ROUTES} routes: ${(json.length / 1024).toFixed(0)} KiB in ${(performance.now() - asked).toFixed(1)} ms`);
    // The filter hides what does not match.
    await page.fill('#filter', 'r999');
    assert.equal(await page.locator('table.routes tbody:not([hidden]) tr.route').count(), 1);
    console.log(`# 1,000 routes (2,000 endpoints): first render ${first.firstRenderMs?.toFixed(1)} ms, refresh ${later.lastRenderMs?.toFixed(1)} ms (max ${later.maxRenderMs.toFixed(1)} ms over ${later.renders} renders)`);
    assert.equal(later.routes, ROUTES);
    assert.deepEqual(errors, []);
    await page.context().close();
  });
});
