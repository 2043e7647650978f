/**
 * Makes docs/status-page.png from a real run: Switchyard in-process with a services file (services
 * and KV), real upstreams on 127.0.0.1 with a spread of latencies, one endpoint that refuses
 * connections (ejected by outlier detection), a KV weight override, and chromium.
 *
 *   node --import tsx test/browser/docs-screenshot.ts [docs/status-page.png]
 *
 * Not a test (no assertions beyond what it waits for); the browser test is status-page.test.ts.
 */
import { request } from 'undici';
import { startTestSwitchyard, Workspace } from '../support/switchyard.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';
import { launch, pageCondition, rowsAtLeast, watchedPage, type Win } from './browser.js';

const out = process.argv[2] ?? 'docs/status-page.png';
const ups: TestUpstream[] = [];
for (const name of ['web-1', 'web-2', 'users-1', 'users-2', 'orders-1']) ups.push(await startUpstream({ name }));
const port = (name: string): number => ups.find((u) => u.name === name)!.port;
const gone = await startUpstream({ name: 'gone' });
const gonePort = gone.port;
await gone.close();

const workspace = await Workspace.create();
await workspace.writeTemplate('edge.yaml', `routes:
  - name: storefront
    match: { host: shop.example.com, path: / }
    to: [ { service: web } ]
    policy:
      outlier: { consecutiveFailures: 3, baseEjectionMs: 5m, maxEjectionMs: 10m, maxEjectionPercent: 50 }
  - name: api-users
    match: { host: api.example.com, path: /users }
    to:
      - { service: users, tag: v1, weight: 9 }
      - { service: users, tag: v2, weight: 1 }
  - name: api-orders
    match: { host: api.example.com, path: /orders }
    strip: /orders
    to: [ { service: orders } ]
`);
await workspace.writeServices(`services:
  web:
    - { id: web-1, address: 127.0.0.1, port: ${port('web-1')} }
    - { id: web-2, address: 127.0.0.1, port: ${port('web-2')} }
    - { id: web-3, address: 127.0.0.1, port: ${gonePort} }
  users:
    - { id: users-1, address: 127.0.0.1, port: ${port('users-1')}, tags: [v1] }
    - { id: users-2, address: 127.0.0.1, port: ${port('users-2')}, tags: [v2] }
  orders:
    - { id: orders-1, address: 127.0.0.1, port: ${port('orders-1')} }
    - { id: orders-2, address: 127.0.0.1, port: ${port('orders-1')}, status: warning }
kv:
  switchyard/routes/api-users/weights: '{"users:v1": 1, "users:v2": 1}'
`);
const app = await startTestSwitchyard(workspace);
const proxy = `http://127.0.0.1:${app.proxyAddress.port}`;
const send = async (host: string, path: string, n: number, delay: () => number, status?: () => number): Promise<void> => {
  await Promise.all(Array.from({ length: 4 }, async () => {
    for (let i = 0; i < n / 4; i++) {
      const headers: Record<string, string> = { host, 'x-test-delay-ms': String(Math.round(delay())) };
      const code = status?.();
      if (code !== undefined) headers['x-test-status'] = String(code);
      await (await request(`${proxy}${path}`, { headers })).body.dump();
    }
  }));
};
const browser = await launch();
try {
  await Promise.all([
    send('shop.example.com', '/', 400, () => (Math.random() < 0.05 ? 40 + Math.random() * 80 : Math.random() * 6)),
    send('api.example.com', '/users/42', 240, () => 2 + Math.random() * 12, () => (Math.random() < 0.02 ? 503 : 200)),
    send('api.example.com', '/orders/7', 120, () => 10 + Math.random() * 30),
  ]);
  const { page, errors } = await watchedPage(browser);
  await page.setViewportSize({ width: 1440, height: 800 });
  await page.goto(`http://127.0.0.1:${app.adminAddress.port}/`);
  await pageCondition(page, 'the routes', rowsAtLeast, ['table.routes tr.route', 3], 10_000);
  await pageCondition(page, 'web-3 ejected', () => Array.from((globalThis as unknown as Win).document.querySelectorAll('table.routes tr.ep'))
    .some((r) => r.cells[0]!.textContent!.startsWith('web/web-3 ') && r.cells[3]!.textContent!.startsWith('ejected')), undefined, 10_000);
  await page.fill('#match-host', 'api.example.com');
  await page.fill('#match-path', '/users/42?expand=orders');
  await page.click('#match-form button');
  await pageCondition(page, 'the match result', () => (globalThis as unknown as Win).document.querySelector('#match-result .outcome') !== null, undefined, 5_000);
  await page.screenshot({ path: out, fullPage: true });
  console.log(`screenshot: ${out}${errors.length === 0 ? '' : `; console errors: ${errors.join(' | ')}`}`);
} finally {
  await browser.close();
  await app.stop();
  await Promise.all(ups.map((u) => u.close()));
  await workspace.remove();
}
