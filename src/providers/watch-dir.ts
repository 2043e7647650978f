import { basename } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { Logger } from '../observability/logger.js';

/** How long after the last event in the directory the files are read once more. */
const TRAILING_READ_MS = 75;

export interface DirectoryWatch {
  close(): Promise<void>;
}

/**
 * Watch the files directly inside `dir` whose base name passes `accept`, calling `onChange` on add,
 * change and unlink. Watching the directory rather than a file keeps working when editors or
 * deploy tools replace a file by rename.
 *
 * chokidar throttles change events per path and drops, rather than delays, the ones inside its
 * window: in a burst of rewrites the final state can arrive with no event for it (seen with
 * write-temp-then-rename every 20 ms). So every event in the directory, for any name, also arms
 * one trailing `onChange` shortly after the burst ends: the newest state is always read.
 */
export async function watchDirectory(
  dir: string,
  accept: (name: string) => boolean,
  onChange: () => void,
  logger: Logger,
): Promise<DirectoryWatch> {
  const watcher: FSWatcher = watch(dir, { ignoreInitial: true, depth: 0 });
  let trailing: NodeJS.Timeout | undefined;
  const fireTrailing = (): void => {
    trailing = undefined;
    onChange();
  };
  const handle = (path: string): void => {
    if (accept(basename(path))) onChange();
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
