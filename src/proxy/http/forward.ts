/**
 * Transitional re-exports for src/proxy/server.ts, which still imports from here (not owned by
 * the exchange's maintainers in this change). Delete once server.ts imports ./proxy-response.js.
 */
export { ProxyResponse } from './proxy-response.js';
