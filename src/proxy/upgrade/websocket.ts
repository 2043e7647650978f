/**
 * Transitional re-export for src/proxy/server.ts, which still imports from here (not owned by the
 * tunnel's maintainers in this change). Delete once server.ts imports ./upgrade-proxy.js.
 */
export { UpgradeProxy } from './upgrade-proxy.js';
