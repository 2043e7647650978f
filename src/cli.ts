#!/usr/bin/env node
import { COMMANDS } from './commands/commands.js';
import { SwitchyardError } from './errors.js';

/**
 * Entry point. A first argument that is not a flag names a command (`check`, `explain`, `routes`,
 * `help [COMMAND]`: src/commands/); otherwise the flags run the proxy (commands/run.ts). Every
 * module past this one is loaded on demand, so a command never loads the proxy and the proxy
 * never loads a command. Exit codes: 0 done, 1 failed (or, for `check`, invalid), 2 usage error.
 */
async function main(argv: readonly string[]): Promise<void> {
  const name = argv[0];
  if (name === undefined || name.startsWith('-')) {
    await (await import('./commands/run.js')).runProxy(argv);
    return;
  }
  if (name === 'help') {
    const topic = argv[1];
    if (topic === undefined) {
      process.stdout.write(`${(await import('./config/config.js')).helpText()}\n`);
      return;
    }
    const command = COMMANDS[topic];
    if (command === undefined) usage(`help: no command "${topic}" (commands: ${Object.keys(COMMANDS).join(', ')})`);
    process.stdout.write(`${(await command.load()).help}\n`);
    return;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (command === undefined) usage(`unknown command "${name}" (commands: ${Object.keys(COMMANDS).join(', ')}, help; flags start with --)`);
  const loaded = await command.load();
  const rest = argv.slice(1);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${loaded.help}\n`);
    return;
  }
  try {
    // exitCode, not exit(): a large table written to a pipe is flushed before the process ends.
    process.exitCode = await loaded.main(rest, process.env);
  } catch (err) {
    if (err instanceof SwitchyardError && err.code === 'SY_USAGE') usage(`${name}: ${err.message}`, name);
    process.stderr.write(`switchyard ${name}: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}

function usage(message: string, command?: string): never {
  // `switchyard: unknown command ...`, `switchyard check: --bogus ...` (the command's name is in `message`).
  process.stderr.write(`switchyard${command === undefined ? ':' : ''} ${message}${command === undefined ? '' : ` (see: switchyard help ${command})`}\n`);
  process.exit(2);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`switchyard: ${(err as Error).message}\n`);
  process.exit(1);
});
