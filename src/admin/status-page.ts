import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../observability/logger.js';

/**
 * The status page's files (src/admin/ui/: plain HTML, CSS and JS, no build step, nothing from
 * elsewhere), read once at start and answered from memory. The directory is found relative to
 * this module: `../../src/admin/ui/` is the same directory from `src/admin/` (tsx) and from
 * `dist/admin/` (the build), so the built package serves the files of its own source tree.
 */
export const UI_DIR = fileURLToPath(new URL('../../src/admin/ui/', import.meta.url));

const FILES: Readonly<Record<string, { file: string; type: string }>> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/status.css': { file: 'status.css', type: 'text/css; charset=utf-8' },
  '/status.js': { file: 'status.js', type: 'text/javascript; charset=utf-8' },
  '/favicon.svg': { file: 'favicon.svg', type: 'image/svg+xml' },
};

/**
 * Only this origin's files and API; no inline script or style, so even a bug that put data into
 * markup could not run it (the page writes data with textContent only).
 */
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

export class StatusPage {
  private constructor(private readonly files: ReadonlyMap<string, { body: Buffer; type: string }>) {}

  /**
   * Read the files; one missing leaves the page out (logged), the API serves on. With a token the
   * page is told so (`<body data-auth="token">`) and asks for it before its first request, rather
   * than learn it from a 401 (which a browser logs as a console error).
   */
  static load(logger: Logger, tokenRequired: boolean, dir = UI_DIR): StatusPage {
    const files = new Map<string, { body: Buffer; type: string }>();
    try {
      for (const [path, { file, type }] of Object.entries(FILES)) {
        let text = readFileSync(`${dir}${file}`, 'utf8');
        if (file === 'index.html' && tokenRequired) text = text.replace('<body data-auth="none">', '<body data-auth="token">');
        files.set(path, { body: Buffer.from(text, 'utf8'), type });
      }
    } catch (err) {
      logger.warn({ err, dir }, 'status page files not found: the admin server serves no page at /');
      files.clear();
    }
    return new StatusPage(files);
  }

  serves(path: string): boolean {
    return this.files.has(path);
  }

  send(path: string, res: ServerResponse): void {
    const file = this.files.get(path)!;
    res.writeHead(200, { 'content-type': file.type, 'content-length': file.body.length, ...SECURITY_HEADERS });
    res.end(file.body);
  }
}
