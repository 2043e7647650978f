/**
 * The commands `switchyard COMMAND` runs besides the proxy. Each is its own module, loaded only when
 * it runs: a command loads neither the proxy nor the cluster modules, and the proxy none of these.
 */
export interface Command {
  /** Runs the command; resolves with the exit code. Throws UsageError for a bad command line (exit 2). */
  main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number>;
  /** `switchyard help COMMAND` and `COMMAND --help`. */
  readonly help: string;
}

export const COMMANDS: Readonly<Record<string, { readonly summary: string; load(): Promise<Command> }>> = {
  check: {
    summary: 'build the routing table from the sources once and print it, or every problem with its file and line; exit 0 valid, 1 not',
    load: () => import('./check.js'),
  },
  explain: {
    summary: 'ask a running Switchyard where a request would go, and why (/api/match)',
    load: () => import('./explain.js'),
  },
  routes: {
    summary: 'print a running Switchyard\'s live routing table (/api/routes)',
    load: () => import('./routes.js'),
  },
};
