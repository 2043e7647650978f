import { parseArgs } from 'node:util';
import { UsageError } from '../errors.js';
import { ADMIN_HELP, ADMIN_OPTIONS, adminGet, adminTarget } from './admin-client.js';
import { printableLines } from './text-table.js';
import { renderProblems, renderRoutes, type RoutesJson } from './routes-table.js';

/** `switchyard routes`: a running Switchyard's live table (/api/routes) as an aligned text table. */
export const help = [
  'Usage: switchyard routes [--admin HOST:PORT] [--admin-token-file FILE]',
  '',
  'Print the live routing table of a running Switchyard (its /api/routes): each route with its match',
  '(hosts, path prefix and conditions: [GET,POST] [x-canary=1] [?beta=true]), destinations with their',
  'weights (KV overrides shown beside the configured weight), and every endpoint with its address, health,',
  'state (active, draining, unhealthy, ejected until ...) and weight. A redirect route shows `→ STATUS TO`;',
  'a `↳` line under a route lists its rewrite, header edits (names only), sticky cookie and mirror.',
  'Problems the last build skipped (bad KV values, unusable addresses) follow the table.',
  '',
  ADMIN_HELP,
  '',
  'Exit status: 0 printed, 1 the admin API could not be asked, 2 usage error.',
].join('\n');

export async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: [...argv], options: ADMIN_OPTIONS, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new UsageError(noAdminTokenFlag((err as Error).message));
  }
  const target = adminTarget(values, env);
  const view = await adminGet(target, '/api/routes') as RoutesJson;
  const config = await adminGet(target, '/api/config') as ConfigJson;
  process.stdout.write(`${routesReport(view, target.shown, config)}\n`);
  return 0;
}

/** The parts of /api/config (app.ts configView) `routes` prints; read defensively. */
export interface ConfigJson {
  readonly lastRejectedBuild?: { readonly at: number; readonly code: string; readonly message: string } | null;
  readonly providers?: readonly { readonly name: string; readonly healthy: boolean; readonly lastError?: string }[];
}

/**
 * The table with a heading line, then the problems the build skipped, the configuration sources
 * that fail or have rejected files (their last error), and the last rejected build: the table
 * shown is then not what the files (or the catalog, for `each` templates) say: the rejected part
 * (a template file, or the catalog's expansion) is at its last good version, everything else,
 * instances and KV included, is current (control/watcher.ts).
 */
export function routesReport(view: RoutesJson, where: string, config: ConfigJson = {}): string {
  const lines = [`Switchyard at ${where}: table version ${view.version}${view.swappedAt === null ? ', no table yet' : `, swapped ${view.swappedAt}`}, ${view.routes.length} route(s)`];
  if (view.routes.length > 0) lines.push('', renderRoutes(view.routes));
  if (view.problems.length > 0) lines.push('', `Problems the build skipped (${view.problems.length}):`, printableLines(renderProblems(view.problems)));
  const failing = (config.providers ?? []).filter((p) => typeof p.lastError === 'string');
  if (failing.length > 0) {
    lines.push('', `Sources with errors (${failing.length}):`, printableLines(failing.map((p) => `  ${p.name}: ${p.lastError}`).join('\n')));
  }
  const rejected = config.lastRejectedBuild;
  if (rejected != null) {
    lines.push('', printableLines(`Last rejected build (${new Date(rejected.at).toISOString()}; in the table above the rejected part is at its last good version, the rest is current):\n  ${rejected.code}: ${rejected.message}`));
  }
  return lines.join('\n');
}

/** parseArgs' first line; for `--admin-token`, why it is not taken here and what to use. */
export function noAdminTokenFlag(message: string): string {
  const first = message.split('\n')[0] ?? message;
  return /'--admin-token'/.test(first)
    ? '--admin-token is not taken by the client commands (ps would show the token): set SWITCHYARD_ADMIN_TOKEN or use --admin-token-file FILE'
    : first;
}
