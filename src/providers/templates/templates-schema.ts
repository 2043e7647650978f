import { z } from 'zod';
import { resolvePolicy } from '../../model/policy.js';
import { parsePolicyInput } from '../../model/policy-parse.js';
import { isOptionsProblem, mergeRouteOptions, optionsConflict, readRouteOptions, type RouteOptionsProblem } from '../../model/route-options.js';
import type { RouteOptions } from '../../model/types.js';

/** Shape of one `templates/*.yaml` file. Semantic checks (duplicates, placeholders) are the model's. */
const weight = z.number().finite().nonnegative();

const destination = z.strictObject({
  service: z.string().min(1),
  tag: z.string().min(1).optional(),
  weight: weight.default(1),
});

/**
 * A route's `policy:` block, validated by the model's parser (the same one KV values go through),
 * and required to resolve on its own (e.g. a rateLimit block needs requestsPerSecond).
 */
const policy = z.unknown().transform((value, ctx) => {
  const parsed = parsePolicyInput(value);
  const problem = typeof parsed === 'string' ? parsed : resolvePolicy([parsed]);
  if (typeof problem === 'string') {
    ctx.addIssue({ code: 'custom', message: problem });
    return z.NEVER;
  }
  return parsed as Exclude<typeof parsed, string>;
});

/** Fields whose content is the model's parser's (route-options.ts), as for `policy`: one parser for YAML and KV. */
const option = z.unknown().optional();

/**
 * A route. Its gateway options (match.methods/headers/query, rewrite, headers, sticky, mirror,
 * redirect) are parsed by route-options.ts; a problem is reported at the field it names (so at its
 * line), under the route. `to` is absent exactly when the route redirects.
 */
const route = z.strictObject({
  name: z.string().min(1),
  each: z.strictObject({ tag: z.string().min(1).optional(), service: z.string().min(1).optional() })
    .refine((each) => each.tag !== undefined || each.service !== undefined, 'each needs tag or service')
    .optional(),
  match: z.strictObject({
    // One host or a list; `*.example.com` matches one or more labels before the suffix.
    host: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
    path: z.string().startsWith('/').default('/'),
    methods: option,
    headers: option,
    query: option,
  }).default({ path: '/' }),
  strip: z.string().startsWith('/').optional(),
  to: z.array(destination).min(1).optional(),
  policy: policy.optional(),
  rewrite: option,
  headers: option,
  sticky: option,
  mirror: option,
  redirect: option,
}).transform((r, ctx) => {
  const issue = (problem: RouteOptionsProblem): typeof z.NEVER => {
    ctx.addIssue({ code: 'custom', message: problem.message, path: [...problem.path] });
    return z.NEVER;
  };
  const { methods, headers: headerConditions, query, host, path } = r.match;
  const input = present({
    match: present({ methods, headers: headerConditions, query }),
    rewrite: r.rewrite, headers: r.headers, sticky: r.sticky, mirror: r.mirror, redirect: r.redirect,
  }) ?? {};
  const layer = readRouteOptions(input, 'template');
  if (isOptionsProblem(layer)) return issue(layer);
  const options = mergeRouteOptions(undefined, layer);
  if (isOptionsProblem(options)) return issue(options);
  const conflict = optionsConflict(options, r.strip);
  if (conflict !== undefined) return issue(conflict);
  if (r.to === undefined && options.redirect === undefined) return issue({ path: ['to'], message: 'required (only a redirect route has no "to")' });
  if (r.to !== undefined && options.redirect !== undefined) return issue({ path: ['redirect'], message: 'a redirect route answers by itself: it has no "to"' });
  return {
    name: r.name,
    ...(r.each === undefined ? {} : { each: r.each }),
    match: { ...(host === undefined ? {} : { host }), path },
    ...(r.strip === undefined ? {} : { strip: r.strip }),
    to: r.to ?? [],
    ...(r.policy === undefined ? {} : { policy: r.policy }),
    ...(Object.keys(options).length === 0 ? {} : { options: options as RouteOptions }),
  };
});

/** The object without its undefined fields (undefined when none is left). */
function present(fields: Record<string, unknown>): Record<string, unknown> | undefined {
  const out = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
  return Object.keys(out).length === 0 ? undefined : out;
}

export const templatesFileSchema = z.strictObject({ routes: z.array(route).default([]) });

export type TemplatesFile = z.output<typeof templatesFileSchema>;
