import { basename, resolve } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { Logger } from '../observability/logger.js';

/** How long after the last relevant event in the directory the files are read once more. */
const TRAILING_READ_MS = 75;

export interface DirectoryWatch {
  close(): Promise<void>;
}

export interface WatchOptions {
  /**
   * Names whose events matter at all; every other name in the directory is ignored by chokidar
   * itself (never stat'ed, never watched, no event, no read). Default: every name, for callers
   * that act only on the trailing read of any change. A log file written next to a watched file
   * (`switchyard --services ./services.yaml > ./switchyard.log`) must cost nothing, so providers
   * that know their names pass them here.
   */
  readonly relevant?: (name: string) => boolean;
}

const everyName = (): boolean => true;

/**
 * Watch the files directly inside `dir`: `onChange` runs on add, change and unlink of a name that
 * passes `accept`. Watching the directory rather than a file keeps working when editors or
 * deploy tools replace a file by rename (the final name's add/change is seen; a temporary name
 * such as `.services.yaml.tmp` need not be relevant).
 *
 * chokidar throttles change events per path (50 ms) and drops, rather than delays, the ones inside
 * its window: in a burst of rewrites the final state can arrive with no event for it (seen with
 * write-temp-then-rename every 20 ms). So every relevant event also arms one trailing `onChange`
 * TRAILING_READ_MS after the burst ends (longer than chokidar's window, so a dropped event always
 * follows a kept one by less than the trailing delay): the newest state is always read.
 */
export async function watchDirectory(
  dir: string,
  accept: (name: string) => boolean,
  onChange: () => void,
  logger: Logger,
  options: WatchOptions = {},
): Promise<DirectoryWatch> {
  const relevant = options.relevant ?? everyName;
  const root = resolve(dir);
  // chokidar asks before it stats or watches an entry (and on its directory re-reads), never per
  // raw event: an ignored file's writes reach only the directory's own fs.watch callback.
  const ignored = relevant === everyName ? undefined : (path: string): boolean => !relevant(basename(path)) && resolve(path) !== root;
  const watcher: FSWatcher = watch(dir, { ignoreInitial: true, depth: 0, ...(ignored === undefined ? {} : { ignored }) });
  let trailing: NodeJS.Timeout | undefined;
  const fireTrailing = (): void => {
    trailing = undefined;
    onChange();
  };
  const handle = (path: string): void => {
    const name = basename(path);
    if (!relevant(name)) return;
    if (accept(name)) onChange();
    if (trailing !== undefined) clearTimeout(trailing);
    trailing = setTimeout(fireTrailing, TRAILING_READ_MS);
  };
  watcher.on('add', handle).on('change', handle).on('unlink', handle);
  watcher.on('error', (err) => logger.error({ err, dir }, 'file watcher error'));
  await new Promise<void>((resolve) => watcher.once('ready', resolve));
  return {
    close: async () => {
      if (trailing !== undefined) clearTimeout(trailing);
      await watcher.close();
    },
  };
}
