import { z } from 'zod';
import { resolvePolicy } from '../../model/policy.js';
import { parsePolicyInput } from '../../model/policy-parse.js';

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

const route = z.strictObject({
  name: z.string().min(1),
  each: z.strictObject({ tag: z.string().min(1).optional(), service: z.string().min(1).optional() })
    .refine((each) => each.tag !== undefined || each.service !== undefined, 'each needs tag or service')
    .optional(),
  match: z.strictObject({
    // One host or a list; `*.example.com` matches one or more labels before the suffix.
    host: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
    path: z.string().startsWith('/').default('/'),
  }).default({ path: '/' }),
  strip: z.string().startsWith('/').optional(),
  to: z.array(destination).min(1),
  policy: policy.optional(),
});

export const templatesFileSchema = z.strictObject({ routes: z.array(route).default([]) });

export type TemplatesFile = z.output<typeof templatesFileSchema>;
