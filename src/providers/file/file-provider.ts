import { basename, dirname, resolve } from 'node:path';
import { ConfigError } from '../../errors.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import { StatusTracker, type DiscoveryProvider, type DiscoveryUpdate, type ProviderStatus } from '../provider.js';
import { watchDirectory, type DirectoryWatch } from '../watch-dir.js';
import { readYamlFile } from '../yaml-file.js';
import { servicesFileSchema } from './services-schema.js';
import { kvUnderPrefix, servicesToDiscovery } from './to-snapshot.js';

/**
 * The file provider: a services file (services + KV, Consul's shapes) read whole on every change.
 * A file that fails to read, parse or validate is rejected with a log line and a metric; the last
 * good snapshot stays in force because nothing is emitted.
 */
export class FileProvider implements DiscoveryProvider {
  readonly name = 'file';
  private readonly tracker = new StatusTracker(this.name);
  private readonly path: string;
  private watcher: DirectoryWatch | undefined;
  private emit: ((update: DiscoveryUpdate) => void) | undefined;
  private reading: Promise<void> = Promise.resolve();
  private lastError: string | undefined;

  constructor(
    path: string,
    private readonly kvPrefix: string,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
  ) {
    this.path = resolve(path);
  }

  async start(emit: (update: DiscoveryUpdate) => void): Promise<void> {
    this.emit = emit;
    const name = basename(this.path);
    const isServicesFile = (n: string): boolean => n === name;
    // Its directory, with every other name ignored (why not the file alone: watch-dir.ts). A log
    // file or an editor's temp file beside it causes no event and no read; a rename into place,
    // a vim save, a symlink swap, a deletion and a re-creation are seen.
    // Watch first, then read: a file created or changed between a first read and the watch's
    // initial scan was taken by the scan as already read, and never read (seen: a services file
    // created just after start-up stayed "cannot read: ENOENT").
    this.watcher = await watchDirectory(dirname(this.path), isServicesFile, () => void this.reload(), this.logger, { relevant: isServicesFile });
    await this.reload();
  }

  /** Serialised so that a burst of events reads the file in order and the newest read wins. */
  reload(): Promise<void> {
    this.reading = this.reading.then(() => this.read());
    return this.reading;
  }

  private async read(): Promise<void> {
    try {
      const file = await readYamlFile(this.path, servicesFileSchema);
      this.tracker.succeeded();
      if (this.lastError !== undefined) this.logger.info({ file: this.path }, 'services file is valid again');
      this.lastError = undefined;
      this.emit?.({ discovery: servicesToDiscovery(file), kv: kvUnderPrefix(file.kv, this.kvPrefix) });
    } catch (err) {
      const message = err instanceof ConfigError ? err.message : `${this.path}: ${(err as Error).message}`;
      this.tracker.failed(message);
      // The same broken file can be read again without changing (a touch, the trailing read after
      // a burst): a rejection is logged and counted once, until it changes or becomes valid.
      if (message !== this.lastError) {
        this.metrics.configErrors.inc({ kind: 'services' });
        const kept = this.tracker.snapshot().synced;
        this.logger.error({ file: this.path, code: 'SY_CONFIG_INVALID', kept },
          `services file rejected, ${kept ? 'last good version kept' : 'no earlier good version'}: ${message}`);
      }
      this.lastError = message;
    }
  }

  status(): ProviderStatus {
    return this.tracker.snapshot({ file: this.path });
  }

  async stop(): Promise<void> {
    await this.watcher?.close();
    this.watcher = undefined;
  }
}
