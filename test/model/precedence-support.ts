/** Route templates with match conditions, for the precedence and route-index tests. */
import { compareCodeUnits } from '../../src/model/compare-code-units.js';
import type { MatchConditions, RequestFacts, RouteTemplate } from '../../src/model/types.js';
import { discovery, instance, SOURCE } from './fixtures.js';

export const snap = discovery([instance('svc', 'svc-1')]);

export interface Conditions {
  readonly methods?: readonly string[];
  readonly headers?: Readonly<Record<string, string>>;
  readonly query?: Readonly<Record<string, string>>;
}

/** Normalised as the template parser leaves them: methods upper-case sorted, pairs sorted by name. */
export function conditions(c: Conditions): MatchConditions {
  const pairs = (record: Readonly<Record<string, string>> | undefined, lower: boolean): [string, string][] =>
    Object.entries(record ?? {})
      .map(([name, value]): [string, string] => [lower ? name.toLowerCase() : name, value])
      .sort((a, b) => compareCodeUnits(a[0], b[0]));
  return {
    methods: [...new Set((c.methods ?? []).map((m) => m.toUpperCase()))].sort(compareCodeUnits),
    headers: pairs(c.headers, true),
    query: pairs(c.query, false),
  };
}

/** A template route to `svc`; `hosts` empty = any host; `when` = match conditions. */
export function route(name: string, hosts: readonly string[], path: string, when?: Conditions, source = SOURCE): RouteTemplate {
  return {
    name,
    match: { hosts, path },
    to: [{ service: 'svc', weight: 1 }],
    source,
    ...(when === undefined ? {} : { options: { conditions: conditions(when) } }),
  };
}

/** Request facts: a method and headers given as [name, value] pairs (sent as written). */
export function request(method: string | undefined, headers: readonly (readonly [string, string])[] = []): RequestFacts {
  return { method, rawHeaders: headers.flatMap(([n, v]) => [n, v]) };
}
