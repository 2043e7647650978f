import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../observability/logger.js';

/** How long after the last relevant event in the directory the files are read once more. */
const TRAILING_READ_MS = 75;
/** At most one immediate read per this window; later events in it are left to the trailing read. */
const IMMEDIATE_WINDOW_MS = 50;

export interface DirectoryWatch {
  close(): Promise<void>;
}

export interface WatchOptions {
  /**
   * Names whose writes matter at all. Default: every name, for callers that act only on the
   * trailing read of any change (the TLS directory). A write to any other name costs one check of
   * its name and nothing else: a log file next to the services file
   * (`switchyard --services ./services.yaml > ./switchyard.log`) is written on every flush.
   */
  readonly relevant?: (name: string) => boolean;
}

const everyName = (): boolean => true;

/**
 * Watch the files directly inside `dir` with one fs.watch on the directory (inotify on Linux):
 * `onChange` runs when a name that passes `accept` is written, created, replaced or removed.
 * Watching the directory rather than a file keeps working when editors or deploy tools replace a
 * file by rename (the final name's event is seen; a temporary name need not be relevant).
 *
 * Not chokidar: its directory watch re-reads the directory and lstat's every entry on any event
 * inside it, whatever its `ignored` option says (its readdir throttle reruns back to back while
 * events keep coming), so a log file written next to the services file kept it busy: measured
 * ~0.4 ms of CPU per log write (bench/profile-file-watch.sh). Here the event's name is checked first.
 *
 * - An accepted name replaced by rename (how deploy tools write: the file is complete) is read at
 *   once, at most once per IMMEDIATE_WINDOW_MS.
 * - An accepted name written in place (`change`: truncate, then write) is read only by the trailing
 *   read: read at once it could be empty or half written, and an empty services file is valid
 *   (no instances: every route would lose its endpoints until the next read).
 * - Every relevant event arms one trailing `onChange` TRAILING_READ_MS after the burst ends, so the
 *   newest state is always read, whatever the window skipped.
 * - An entry of any name appearing, going or renamed (`rename`) arms the trailing read: that is how
 *   a symlink swap looks (Kubernetes ConfigMap and Secret volumes replace `..data`, never the file
 *   name itself). Such events are rare; writes to unrelated files are not.
 * - An accepted name's `rename` reads at once only if the file is there: an editor that saves by
 *   moving the old file away and writing a new one would otherwise have it read while missing.
 */
export async function watchDirectory(
  dir: string,
  accept: (name: string) => boolean,
  onChange: () => void,
  logger: Logger,
  options: WatchOptions = {},
): Promise<DirectoryWatch> {
  const relevant = options.relevant ?? everyName;
  let trailing: NodeJS.Timeout | undefined;
  let lastImmediate = -Infinity;
  let closed = false;
  const fireTrailing = (): void => {
    trailing = undefined;
    if (!closed) onChange();
  };
  const armTrailing = (): void => {
    if (trailing !== undefined) clearTimeout(trailing);
    trailing = setTimeout(fireTrailing, TRAILING_READ_MS);
  };
  const readNow = (): void => {
    const now = performance.now();
    if (closed || now - lastImmediate < IMMEDIATE_WINDOW_MS) return;
    lastImmediate = now;
    onChange();
  };
  const onEvent = (event: string, filename: string | null): void => {
    // No name (possible on some platforms): anything may have changed.
    if (filename === null) return armTrailing();
    if (!relevant(filename)) {
      if (event === 'rename') armTrailing();
      return;
    }
    armTrailing();
    if (event === 'change' || !accept(filename)) return;
    stat(join(dir, filename)).then(readNow, () => undefined);
  };
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dir, { persistent: true }, onEvent);
    watcher.on('error', (err) => logger.error({ err, dir }, 'file watcher error'));
  } catch (err) {
    logger.error({ err, dir }, 'file watcher error: changes in this directory are not followed');
  }
  return {
    close: () => {
      closed = true;
      if (trailing !== undefined) clearTimeout(trailing);
      watcher?.close();
      return Promise.resolve();
    },
  };
}
