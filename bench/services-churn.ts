/**
 * Rewrites a services file at a fixed rate so that every rewrite is a real change (and a swap):
 * the states cycle S0 → S1 → S2 → S3 → S0, where S0 is the plain file, S1 raises the first
 * instance's weight, S2 adds an instance (a new id on the second upstream's port), S3 puts the
 * weight back; S3 → S0 removes the added instance. Each rewrite writes a temporary file and renames
 * it over the services file, as deploy tools do, so the provider never reads half a file.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Upstream } from './phase.js';

export const CHURN_STATES = 4;

/** The services file of churn state `step` (taken modulo CHURN_STATES). */
export function churnServices(upstreams: readonly Upstream[], step: number): string {
  const s = ((step % CHURN_STATES) + CHURN_STATES) % CHURN_STATES;
  const heavy = s === 1 || s === 2;
  const extra = s === 2 || s === 3;
  const lines = upstreams.map((u, i) =>
    `    - { id: ${u.id}, address: ${u.host}, port: ${u.port}, tags: [], status: passing${i === 0 && heavy ? ', weights: { passing: 2, warning: 1 }' : ''} }`);
  const second = upstreams[1] ?? upstreams[0];
  if (extra && second !== undefined) lines.push(`    - { id: ${second.id}-extra, address: ${second.host}, port: ${second.port}, tags: [], status: passing }`);
  return `services:\n  bench:\n${lines.join('\n')}\n`;
}

/** Writes `text` to `file` atomically (temporary file in the same directory, then rename). */
export function replaceFile(file: string, text: string): void {
  const tmp = join(dirname(file), `.${basename(file)}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

export interface Churn {
  /** Stops rewriting; returns how many rewrites were made. Puts the file back to S0. */
  readonly stop: () => number;
}

/** Rewrites `file` `perSecond` times a second, starting from state S1 (the file is in S0). */
export function startChurn(file: string, upstreams: readonly Upstream[], perSecond: number): Churn {
  let step = 0;
  const timer = setInterval(() => {
    step += 1;
    replaceFile(file, churnServices(upstreams, step));
  }, 1000 / perSecond);
  return {
    stop: () => {
      clearInterval(timer);
      if (step % CHURN_STATES !== 0) replaceFile(file, churnServices(upstreams, 0));
      return step;
    },
  };
}
