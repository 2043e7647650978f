/**
 * The built CLI (npm test builds before testing) run as a child process, as users run it: its
 * output collected, its exit awaited, and the addresses from its start-up line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { waitFor } from '../support/wait.js';

const CLI = new URL('../../dist/cli.js', import.meta.url).pathname;

export interface Cli {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** Start `node dist/cli.js ARGS` with only PATH and `env` in its environment. */
export function startCli(args: string[], env: Record<string, string> = {}): Cli {
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env['PATH'], ...env } });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

/** The proxy and admin addresses, from the `switchyard listening` line (20 s deadline). */
export async function listening(cli: Cli): Promise<{ proxy: AddressInfo; admin: AddressInfo }> {
  return waitFor('the listening log line', () => {
    const line = cli.output().split('\n').find((l) => l.includes('switchyard listening'));
    return line === undefined ? undefined : JSON.parse(line) as { proxy: AddressInfo; admin: AddressInfo };
  }, 20_000);
}
