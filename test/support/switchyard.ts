import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSwitchyard, type Switchyard } from '../../src/app.js';
import { parseCommandLine, type Config } from '../../src/config/config.js';
import type { Logger } from '../../src/observability/logger.js';
import { createLogger } from '../../src/observability/logger.js';
import { waitFor } from './wait.js';

/** A temp directory with a templates/ folder and a services file, rewritten atomically. */
export class Workspace {
  private constructor(readonly dir: string) {}

  static async create(): Promise<Workspace> {
    const dir = await mkdtemp(join(tmpdir(), 'sy-ws-'));
    await writeFile(join(dir, '.keep'), '');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(join(dir, 'templates'));
    return new Workspace(dir);
  }

  get templatesDir(): string {
    return join(this.dir, 'templates');
  }

  get servicesFile(): string {
    return join(this.dir, 'services.yaml');
  }

  /** Write by rename, as deploy tools do, so a reader never sees half a file. */
  async write(path: string, text: string): Promise<void> {
    const tmp = `${path}.${process.pid}.tmp`;
    await writeFile(tmp, text);
    await rename(tmp, path);
  }

  writeServices(text: string): Promise<void> {
    return this.write(this.servicesFile, text);
  }

  writeTemplate(name: string, text: string): Promise<void> {
    return this.write(join(this.templatesDir, name), text);
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Start Switchyard in-process on ephemeral loopback ports and wait until it is ready. */
export async function startTestSwitchyard(
  workspace: Workspace,
  extraArgs: string[] = [],
  logger: Logger = createLogger({ level: 'silent' }),
): Promise<Switchyard> {
  const action = parseCommandLine([
    '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0',
    '--templates', workspace.templatesDir, '--services', workspace.servicesFile,
    '--drain-timeout', '2s', ...extraArgs,
  ], {});
  const config = (action as { config: Config }).config;
  const app = await startSwitchyard(config, { logger, defaultMetrics: false });
  try {
    await waitFor('switchyard to be ready', () => app.watcher.ready);
  } catch (e) {
    // The caller never gets the app to stop: its listeners and watchers would keep the test
    // process alive after the failure (a hang instead of a failed test).
    await app.stop();
    throw e;
  }
  return app;
}

/**
 * Start Switchyard in-process with Consul as the discovery source (`--consul ADDRESS`, no services
 * file); `env` carries CONSUL_HTTP_TOKEN and friends. Waits until ready unless `waitReady` is false
 * (then the proxy listener opens without waiting for the first table).
 */
export async function startConsulSwitchyard(
  workspace: Workspace,
  consulAddress: string,
  options: { env?: NodeJS.ProcessEnv; extraArgs?: string[]; logger?: Logger; waitReady?: boolean } = {},
): Promise<Switchyard> {
  const action = parseCommandLine([
    '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0',
    '--templates', workspace.templatesDir, '--consul', consulAddress,
    '--drain-timeout', '2s', ...(options.extraArgs ?? []),
  ], options.env ?? {});
  const config = (action as { config: Config }).config;
  // Not waiting for readiness: the proxy listener opens at once too (no wait for the first table).
  const app = await startSwitchyard(config, {
    logger: options.logger ?? createLogger({ level: 'silent' }),
    defaultMetrics: false,
    ...(options.waitReady === false ? { firstTableWaitMs: 0 } : {}),
  });
  if (options.waitReady !== false) {
    try {
      await waitFor('switchyard to be ready', () => app.watcher.ready);
    } catch (e) {
      await app.stop(); // as above: a timed-out start must not leak a running app
      throw e;
    }
  }
  return app;
}
