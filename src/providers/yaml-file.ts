import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from '../errors.js';

/** Describe zod issues in one line: `routes.0.to: expected array`. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(root)'}: ${issue.message}`)
    .join('; ');
}

/** Parse YAML text and validate it; any failure is a ConfigError naming the source. */
export function parseYamlWith<S extends z.ZodType>(source: string, text: string, schema: S): z.output<S> {
  let data: unknown;
  try {
    data = parseYaml(text, { prettyErrors: true, uniqueKeys: true });
  } catch (err) {
    throw new ConfigError(source, `invalid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  const result = schema.safeParse(data ?? {});
  if (!result.success) throw new ConfigError(source, describeIssues(result.error));
  return result.data;
}

export async function readYamlFile<S extends z.ZodType>(path: string, schema: S): Promise<z.output<S>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseYamlWith(path, text, schema);
}
