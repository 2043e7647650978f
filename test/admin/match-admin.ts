/** An admin server whose /api/match explains with a test proxy's live runtime, as app.ts wires it. */
import { AdminServer } from '../../src/admin/admin-server.js';
import { createLogger } from '../../src/observability/logger.js';
import { explainRequest } from '../../src/proxy/runtime/explain.js';
import type { TestProxy } from '../proxy/harness.js';

export async function startMatchAdmin(p: TestProxy): Promise<{ admin: AdminServer; base: string }> {
  const admin = new AdminServer({
    store: p.store,
    metrics: p.metrics,
    logger: createLogger({ level: 'silent' }),
    ready: () => true,
    config: () => ({}),
    matcher: { explain: (host, target, asked) => explainRequest(p.proxy.runtimes.current, host, target, asked) },
  });
  return { admin, base: `http://127.0.0.1:${(await admin.listen('127.0.0.1', 0)).port}` };
}
