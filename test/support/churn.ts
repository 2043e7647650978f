/**
 * Shared pieces of the tests that rewrite a services file over and over (zero-downtime, the
 * workers' swaps) and of property tests: a seeded generator, so a failure replays exactly.
 */

/**
 * mulberry32: a 32-bit generator, every step kept in 32-bit integers (Math.imul, >>> 0), giving
 * numbers in [0, 1). The LCG it replaced multiplied in doubles: `seed * 1103515245` passed 2^53,
 * the low bits were lost, and over 100 rewrites it produced only 4 member sets.
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Integers in [0, n) from mulberry32(seed). */
export function seededBelow(seed: number): (n: number) => number {
  const next = mulberry32(seed);
  return (n: number): number => (next() * n) | 0;
}

/** A services file with one service `app`: instance i of `members` on `ports[i]`, weight `weights[i]`. */
export function appServicesFile(ports: readonly number[], members: readonly number[], weights: readonly number[]): string {
  const lines = ['services:', '  app:'];
  for (const i of members) lines.push(`    - { id: app-${i}, address: 127.0.0.1, port: ${ports[i]}, weights: { passing: ${weights[i]}, warning: 1 } }`);
  return `${lines.join('\n')}\n`;
}
