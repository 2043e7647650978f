/**
 * The shape shared by the benchmark's phases. run.ts sets up the context (temp dir, upstreams,
 * options), runs each phase in order and writes their sections into the report. A later phase
 * (e.g. bench/propagation.ts, measuring Consul propagation) is one more `Phase` in run.ts's list.
 */

export interface BenchOptions {
  readonly quick: boolean;
  /** Seconds per measured wrk run. */
  readonly seconds: number;
  /** Interleaved rounds (each round runs every proxy once). */
  readonly rounds: number;
  /** Seconds of the warm-up run per proxy (not measured). */
  readonly warmupSeconds: number;
  readonly connections: number;
  readonly threads: number;
  /** taskset CPU list for the proxy under test, and for wrk + upstreams. */
  readonly proxyCpu: string;
  readonly loadCpu: string;
  /**
   * Before each measured run, wait up to this many seconds for a 1 s window in which other
   * processes on the machine use less than `busyThresholdPct` of a core (0: don't wait).
   */
  readonly idleWaitSeconds: number;
  readonly busyThresholdPct: number;
  /** Target or phase names to run (default: all). */
  readonly only: readonly string[] | undefined;
  /** Where the markdown report goes. */
  readonly outFile: string;
}

export interface Upstream {
  readonly id: string;
  readonly host: string;
  readonly port: number;
}

export interface BenchContext {
  readonly options: BenchOptions;
  /** Repository root (where package.json and dist/ are). */
  readonly root: string;
  /** Per-run temp dir: generated configs, pid files, logs. Removed at the end unless BENCH_KEEP=1. */
  readonly dir: string;
  /** The shared upstream servers every proxy balances over. */
  readonly upstreams: readonly Upstream[];
  /** The upstream nginx's pid (a phase that re-pins the load side needs it). */
  readonly upstreamPid?: number;
  /** Generated config files and commands worth showing in the report. */
  readonly artifacts: Artifact[];
  readonly log: (message: string) => void;
}

export interface Artifact {
  readonly title: string;
  /** Shell command line, or file content. */
  readonly text: string;
  /** Fence language for the markdown (`sh`, `nginx`, `haproxy`, `yaml`). */
  readonly lang: string;
}

export interface PhaseResult {
  /** Printed to the terminal. */
  readonly console: string;
  /** A markdown section (starting with `## `) for docs/benchmarks.md. */
  readonly markdown: string;
  /**
   * Files written next to the report (e.g. `cost-curve.svg` beside docs/benchmarks.md), which the
   * markdown can show by their bare name: `![cost curve](cost-curve.svg)`.
   */
  readonly files?: readonly { readonly name: string; readonly content: string }[];
}

export interface Phase {
  readonly name: string;
  /** The targets it measures: `--only NAME` selects a phase by its name or one of these. */
  readonly targetNames?: readonly string[];
  /** Upper bound on its run time for the watchdog (default 900 s). */
  readonly budgetSeconds?: (o: BenchOptions) => number;
  readonly run: (ctx: BenchContext) => Promise<PhaseResult>;
}
