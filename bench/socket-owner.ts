/**
 * Which process accepted a TCP connection: the server-side socket of 127.0.0.1:clientPort →
 * 127.0.0.1:listenPort (from /proc/net/tcp) and the process holding that socket's inode among its
 * file descriptors. The propagation phase uses it to check that its probe connections reach every
 * Switchyard worker, so that "the slowest worker" covers them all.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

/** Inode of the established socket whose local port is `localPort` and remote port `remotePort`. */
export function socketInode(tcpTable: string, localPort: number, remotePort: number): string | undefined {
  for (const line of tcpTable.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const local = parseInt(f[1]!.split(':')[1]!, 16);
    const remote = parseInt(f[2]!.split(':')[1]!, 16);
    if (local === localPort && remote === remotePort && f[3] === '01') return f[9];
  }
  return undefined;
}

/** The pid among `pids` holding socket `inode` (undefined if none does). */
export function pidHoldingSocket(inode: string, pids: readonly number[]): number | undefined {
  const target = `socket:[${inode}]`;
  for (const pid of pids) {
    let fds: string[];
    try { fds = readdirSync(`/proc/${pid}/fd`); } catch { continue; }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === target) return pid;
      } catch { /* closed meanwhile */ }
    }
  }
  return undefined;
}

/** The pid (among `pids`) that accepted the connection from `clientPort` to `listenPort`. */
export function acceptingPid(listenPort: number, clientPort: number, pids: readonly number[]): number | undefined {
  let table = '';
  try { table = readFileSync('/proc/net/tcp', 'utf8'); } catch { return undefined; }
  const inode = socketInode(table, listenPort, clientPort);
  return inode === undefined ? undefined : pidHoldingSocket(inode, pids);
}
