#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { startSwitchyard } from './app.js';
import { helpText, parseCommandLine, type CliAction } from './config/config.js';
import { SwitchyardError } from './errors.js';

/** Entry point: flags and environment → start; SIGHUP reloads, SIGTERM/SIGINT drain and exit 0. */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(): Promise<void> {
  let action: CliAction;
  try {
    action = parseCommandLine(process.argv.slice(2), process.env);
  } catch (err) {
    if (err instanceof SwitchyardError && err.code === 'SY_USAGE') {
      process.stderr.write(`switchyard: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (action.kind === 'help') {
    process.stdout.write(`${helpText()}\n`);
    return;
  }
  if (action.kind === 'version') {
    process.stdout.write(`switchyard ${version()}\n`);
    return;
  }
  const app = await startSwitchyard(action.config);
  process.on('SIGHUP', () => {
    app.logger.info('SIGHUP: reloading every source');
    void app.reload();
  });
  const shutdown = (signal: string): void => {
    app.logger.info({ signal, drainTimeoutMs: action.config.drainTimeoutMs }, 'draining and stopping');
    void app.stop().then(() => app.logger.flush(() => process.exit(0)));
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`switchyard: ${(err as Error).message}\n`);
  process.exit(1);
});
