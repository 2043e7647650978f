import type { Stats } from 'node:fs';
import { basename, resolve, sep } from 'node:path';
import { watch } from 'chokidar';
import type { Logger } from '../observability/logger.js';

/** How often chokidar stats the directory and each watched file (fs.watchFile). */
const POLL_MS = 100;
/** How long after the last relevant event the files are read once more. */
const TRAILING_READ_MS = 75;
/** At most one immediate read per this window; later events in it are left to the trailing read. */
const IMMEDIATE_WINDOW_MS = 50;

/** A running watch (one chokidar watcher). */
export interface DirectoryWatch {
  close(): Promise<void>;
}

export interface WatchOptions {
  /**
   * Names whose entries are watched at all. Default: every name, for callers that act only on the
   * trailing read of any change (the TLS directory). Any other name is chokidar-`ignored`: it gets
   * no watch, no event and no read (see below).
   */
  readonly relevant?: (name: string) => boolean;
}

/*
 * Watching is chokidar's (4.x, required by the product: a kept library, not a hand-written watch).
 * What it does per event (node_modules/chokidar/esm/handler.js, esm/index.js) decides the design.
 *
 * With fs.watch (chokidar's default, inotify):
 * - A watched FILE (`_handleFile`, handler.js:337) is one fs.watch on that file. On each event it
 *   stats the path, emits `change` if the mtime moved, and re-watches if the inode changed (a temp
 *   file renamed over it, :363). But events within 5 ms of the previous one are dropped (:350) with
 *   no second look: a file replaced by rename twice within 5 ms leaves it watching a deleted inode,
 *   dead for good. A deploy tool or generator rewriting the services file in a burst does that
 *   (test/providers/watch-unrelated.test.ts "a burst of rewrites" fails on a single-file watch).
 * - A watched DIRECTORY (`_handleDir`) forwards each directory event to the named file's watch
 *   (:122), so a replaced inode is always seen again; but on ANY event in the directory it lists
 *   it again (`_handleRead`, :447: readdirp with `alwaysStat` and `lstat`, one lstat per entry,
 *   before `ignored` is asked, index.js:769), one listing at a time and one more if events came
 *   during it (:450, :512): back to back under a steady stream of log writes beside the file.
 *   `ignored`, `atomic`, `awaitWriteFinish` and `alwaysStat` all act after that listing.
 *   Measured: ~350-450 µs of CPU per unrelated write (bench/profile-file-watch.sh).
 *
 * With `usePolling` (fs.watchFile, handler.js:263): the directory and each watched file are stat'ed
 * every POLL_MS, and a listener runs only when that path's own size or mtime moved (:268). Writing
 * to another file does not change the directory's mtime: an unrelated file costs nothing per write
 * (only creating, deleting or renaming an entry lists the directory once). Polling by path also
 * follows any replacement of a watched file (rename, vim's save, a symlink swap) with no inode to
 * lose. The price: a change is seen up to POLL_MS late, and each watched path costs one stat per
 * POLL_MS (a few paths: the directory and the files the caller reads).
 *
 * Hence every watch here is a polling directory watch (depth 0) with `ignored` for the names the
 * caller does not read: the services file's directory, the templates directory, the TLS directory.
 * A log written beside the services file (`switchyard --services ./services.yaml > ./switchyard.log`)
 * causes no event, no read and no listing. `change` is dropped within 50 ms of the previous one
 * for the same path (index.js `_emit`): our trailing read after the last event reads the newest.
 */

/** Decides when `onChange` runs, from chokidar's events. */
class ReadScheduler {
  private trailing: NodeJS.Timeout | undefined;
  private lastImmediate = -Infinity;
  private closed = false;
  /** The inode each path had at its last event: a new inode means it was replaced whole. */
  private readonly inodes = new Map<string, number>();

  constructor(private readonly onChange: () => void) {}

  remember(path: string, stats: Stats | undefined): void {
    if (stats !== undefined) this.inodes.set(path, stats.ino);
  }

  /**
   * - `change` of the same inode is a write in place (truncate, then write): read only by the
   *   trailing read; read at once it could be empty or half written, and an empty services file is
   *   valid (no instances: every route would lose its endpoints until the next read).
   * - A new inode (renamed into place, how deploy tools write: the file is complete) or an `add`
   *   is read at once, at most once per IMMEDIATE_WINDOW_MS.
   * - `unlink` only by the trailing read: an editor that saves by moving the old file away and
   *   writing a new one would otherwise have it read (and rejected) while missing.
   * - Every event arms the trailing read, so the newest state is read whatever was skipped.
   */
  event(kind: string, path: string, stats: Stats | undefined): void {
    if (this.closed) return;
    this.armTrailing();
    if (kind === 'unlink') {
      this.inodes.delete(path);
      return;
    }
    if (kind !== 'add' && kind !== 'change') return;
    const previous = this.inodes.get(path);
    this.remember(path, stats);
    if (kind === 'add' || stats === undefined || stats.ino !== previous) this.readNow();
  }

  /** Only the trailing read. */
  later(): void {
    if (!this.closed) this.armTrailing();
  }

  close(): void {
    this.closed = true;
    if (this.trailing !== undefined) clearTimeout(this.trailing);
  }

  private armTrailing(): void {
    if (this.trailing !== undefined) clearTimeout(this.trailing);
    this.trailing = setTimeout(() => {
      this.trailing = undefined;
      if (!this.closed) this.onChange();
    }, TRAILING_READ_MS);
  }

  private readNow(): void {
    const now = performance.now();
    if (now - this.lastImmediate < IMMEDIATE_WINDOW_MS) return;
    this.lastImmediate = now;
    this.onChange();
  }
}

const everyName = (): boolean => true;

/**
 * Watch the files directly inside `dir` (chokidar, depth 0): `onChange` runs when a name that
 * passes `relevant` is written, created, replaced or removed; other names are `ignored` by
 * chokidar (no watch, no event, no read). Names `accept` rejects only arm the trailing read (the
 * TLS directory passes `() => false`: a .crt and its .key are renamed in turn, and must be read
 * together, after the burst).
 */
export async function watchDirectory(
  dir: string,
  accept: (name: string) => boolean,
  onChange: () => void,
  logger: Logger,
  options: WatchOptions = {},
): Promise<DirectoryWatch> {
  const root = resolve(dir);
  const relevant = options.relevant ?? everyName;
  const scheduler = new ReadScheduler(onChange);
  // chokidar joins the entries' names to `root`: only entries directly inside it are judged by
  // name, the directory itself never is.
  const prefix = root + sep;
  const ignored = (p: string): boolean => {
    if (!p.startsWith(prefix)) return false;
    const name = p.slice(prefix.length);
    return !name.includes(sep) && !relevant(name);
  };
  // `atomic` off: it would hold an `unlink` back 100 ms and ignore names of its own choosing
  // (`~`, `.swp`); `relevant` decides the names, and every event arms the trailing read anyway.
  // Polling: see the header (no directory listing per write to another file).
  const watcher = watch(root, {
    depth: 0,
    ignored,
    atomic: false,
    ignoreInitial: false,
    persistent: true,
    usePolling: true,
    interval: POLL_MS,
    binaryInterval: POLL_MS,
  });
  let ready = false;
  watcher.on('all', (kind: string, p: string, stats?: Stats) => {
    // Its first scan's `add`s tell the inodes the files had when the caller read them.
    if (!ready) scheduler.remember(p, stats);
    else if (accept(basename(p))) scheduler.event(kind, p, stats);
    else scheduler.later();
  });
  watcher.on('error', (err: unknown) => logger.error({ err, dir: root }, 'file watcher error'));
  await new Promise<void>((done) => watcher.once('ready', done));
  ready = true;
  return {
    close: async () => {
      scheduler.close();
      await watcher.close();
    },
  };
}
