import { z } from 'zod';

/** Shape of one `templates/*.yaml` file. Semantic checks (duplicates, placeholders) are the model's. */
const weight = z.number().finite().nonnegative();

const destination = z.strictObject({
  service: z.string().min(1),
  tag: z.string().min(1).optional(),
  weight: weight.default(1),
});

const route = z.strictObject({
  name: z.string().min(1),
  each: z.strictObject({ tag: z.string().min(1).optional(), service: z.string().min(1).optional() })
    .refine((each) => each.tag !== undefined || each.service !== undefined, 'each needs tag or service')
    .optional(),
  match: z.strictObject({ host: z.string().min(1).optional(), path: z.string().startsWith('/').default('/') }).default({ path: '/' }),
  strip: z.string().startsWith('/').optional(),
  to: z.array(destination).min(1),
});

export const templatesFileSchema = z.strictObject({ routes: z.array(route).default([]) });

export type TemplatesFile = z.output<typeof templatesFileSchema>;
