import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { RouteTemplate } from '../../model/types.js';
import { ConfigError } from '../../errors.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import { StatusTracker, type ProviderStatus, type TemplatesProvider } from '../provider.js';
import type { DirectoryWatch } from '../watch-dir.js';
import { readYamlFile } from '../yaml-file.js';
import { templatesFileSchema } from './templates-schema.js';

/** The names the provider reads: `*.yaml`, not hidden (editor swap and temp files are). */
export const isTemplateFile = (name: string): boolean => name.endsWith('.yaml') && !name.startsWith('.');

/**
 * Route templates: every `*.yaml` in a directory, watched (watch-dir.ts). Each file keeps its last
 * good parse: a broken file is logged and counted, and its previous routes stay in force while the
 * other files' changes still apply. A deleted file's routes go away.
 */
export class DirectoryTemplatesProvider implements TemplatesProvider {
  readonly name = 'templates';
  private readonly tracker = new StatusTracker(this.name);
  private readonly lastGood = new Map<string, readonly RouteTemplate[]>();
  private readonly broken = new Map<string, string>();
  private watcher: DirectoryWatch | undefined;
  private emit: ((templates: readonly RouteTemplate[]) => void) | undefined;
  private reading: Promise<void> = Promise.resolve();

  constructor(
    private readonly dir: string,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
  ) {}

  async start(emit: (templates: readonly RouteTemplate[]) => void): Promise<void> {
    this.emit = emit;
    // Loaded here, before the first read (so the read-to-watch window is as short as before), not
    // at the top: `switchyard check` reads templates with this module's helpers and watches nothing.
    const { watchDirectory } = await import('../watch-dir.js');
    await this.reload();
    // Other names in the directory (notes, editor swap files, a log file) cost nothing.
    this.watcher = await watchDirectory(this.dir, isTemplateFile, () => void this.reload(), this.logger, { relevant: isTemplateFile });
  }

  /** Serialised: a burst of file events reads the directory once per event, in order, newest last. */
  reload(): Promise<void> {
    this.reading = this.reading.then(() => this.readAll());
    return this.reading;
  }

  private async readAll(): Promise<void> {
    let names: string[];
    try {
      names = (await readdir(this.dir)).filter(isTemplateFile).sort();
    } catch (err) {
      const message = `templates directory ${this.dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
      this.tracker.failed(message);
      this.metrics.configErrors.inc({ kind: 'template' });
      this.logger.error({ dir: this.dir }, message);
      return;
    }
    for (const known of [...this.lastGood.keys()]) if (!names.includes(known)) this.lastGood.delete(known);
    for (const known of [...this.broken.keys()]) if (!names.includes(known)) this.broken.delete(known);
    for (const name of names) await this.readOne(name);
    this.tracker.succeeded();
    this.emit?.(names.flatMap((name) => this.lastGood.get(name) ?? []));
  }

  private async readOne(name: string): Promise<void> {
    const path = join(this.dir, name);
    try {
      const file = await readYamlFile(path, templatesFileSchema);
      this.lastGood.set(name, file.routes.map((route) => toTemplate(route, path)));
      if (this.broken.delete(name)) this.logger.info({ file: path }, 'template file is valid again');
    } catch (err) {
      const message = err instanceof ConfigError ? err.message : `${path}: ${(err as Error).message}`;
      if (this.broken.get(name) !== message) {
        this.metrics.configErrors.inc({ kind: 'template' });
        const kept = this.lastGood.has(name);
        this.logger.error({ file: path, code: 'SY_CONFIG_INVALID', kept },
          `template rejected, ${kept ? 'last good version kept' : 'no earlier good version: the file adds no routes'}: ${message}`);
      }
      this.broken.set(name, message);
    }
  }

  /**
   * Reading the directory can succeed while files in it are rejected: the source then reports them
   * as its last error (each message names its file), so /api/status, the page and `routes` show them.
   */
  status(): ProviderStatus {
    const status = this.tracker.snapshot({ dir: this.dir, files: [...this.lastGood.keys()], broken: Object.fromEntries(this.broken) });
    if (status.lastError !== undefined || this.broken.size === 0) return status;
    return { ...status, lastError: `${this.broken.size} file(s) rejected: ${[...this.broken.values()].join('; ')}` };
  }

  async stop(): Promise<void> {
    await this.watcher?.close();
    this.watcher = undefined;
  }
}

/** A validated route of a templates file as the model takes it; `source` is the file. */
export function toTemplate(route: import('./templates-schema.js').TemplatesFile['routes'][number], source: string): RouteTemplate {
  return {
    name: route.name,
    ...(route.each === undefined ? {} : { each: route.each }),
    match: { hosts: route.match.host === undefined ? [] : typeof route.match.host === 'string' ? [route.match.host] : route.match.host, path: route.match.path },
    ...(route.strip === undefined ? {} : { strip: route.strip }),
    to: route.to.map((d) => (d.tag === undefined ? { service: d.service, weight: d.weight } : { service: d.service, tag: d.tag, weight: d.weight })),
    ...(route.policy === undefined ? {} : { policy: route.policy }),
    ...(route.options === undefined ? {} : { options: route.options }),
    source,
  };
}
