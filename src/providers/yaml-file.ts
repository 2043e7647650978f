import { readFile } from 'node:fs/promises';
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from '../errors.js';

/** One thing wrong with a YAML file: where (1-based line and column, when known), what and why. */
export interface YamlProblem {
  readonly line: number | undefined;
  readonly column: number | undefined;
  /** The schema path (`routes.0.to`), or '' for a YAML syntax error or the whole document. */
  readonly path: string;
  readonly message: string;
}

/** `line 12, column 5: routes.0.to: expected array` (a path of '' is left out). */
export function describeProblem(problem: YamlProblem): string {
  const where = problem.line === undefined ? '' : `line ${problem.line}, column ${problem.column ?? 1}: `;
  return `${where}${problem.path === '' ? '' : `${problem.path}: `}${problem.message}`;
}

/** Where the node at a path (`['routes', 2, 'name']`) of a parsed file starts, 1-based. */
export type Locate = (path: readonly PropertyKey[]) => { line: number; column: number } | undefined;

/**
 * Parse YAML text and validate it, keeping every problem with its line and column: YAML syntax
 * errors where the parser found them, schema errors at the node their path names (for a missing
 * field, the mapping that lacks it; for an unknown field, that key).
 */
export function parseYamlChecked<S extends z.ZodType>(text: string, schema: S): { data: z.output<S>; locate: Locate } | { problems: YamlProblem[] } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true, lineCounter });
  if (doc.errors.length > 0) {
    return {
      problems: doc.errors.map((err) => ({
        line: err.linePos?.[0].line,
        column: err.linePos?.[0].col,
        path: '',
        // prettyErrors: the first line, without the " at line L, column C:" the position repeats.
        message: `invalid YAML: ${(err.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')}`,
      })),
    };
  }
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (err) {
    // An alias count over the limit, an alias to nothing: the document as a whole.
    return { problems: [{ line: undefined, column: undefined, path: '', message: `invalid YAML: ${(err as Error).message.split('\n')[0]}` }] };
  }
  const result = schema.safeParse(data ?? {});
  if (result.success) {
    return {
      data: result.data,
      locate: (path) => {
        const offset = offsetOf(doc, path, undefined);
        return offset === undefined ? undefined : { line: lineCounter.linePos(offset).line, column: lineCounter.linePos(offset).col };
      },
    };
  }
  return {
    problems: result.error.issues.map((issue) => {
      const offset = offsetOf(doc, issue.path, issue.code === 'unrecognized_keys' ? issue.keys[0] : undefined);
      const pos = offset === undefined ? undefined : lineCounter.linePos(offset);
      return { line: pos?.line, column: pos?.col, path: issue.path.map(String).join('.'), message: issue.message };
    }),
  };
}

/** Where the node at `path` starts: the deepest node the path reaches (and `key`'s key, for an unknown field). */
function offsetOf(doc: Document, path: readonly PropertyKey[], key: string | undefined): number | undefined {
  let node: unknown = doc.contents;
  let offset = rangeStart(node);
  const steps = key === undefined ? path : [...path, key];
  for (const [at, step] of steps.entries()) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(step));
      if (pair === undefined) break;
      // The unknown key itself, or the value (its key when the value is empty).
      const isUnknownKey = key !== undefined && at === steps.length - 1;
      offset = (isUnknownKey ? rangeStart(pair.key) : rangeStart(pair.value) ?? rangeStart(pair.key)) ?? offset;
      node = pair.value;
    } else if (isSeq(node)) {
      const item: unknown = node.items[Number(step)];
      if (item === undefined) break;
      offset = rangeStart(item) ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return offset;
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as { range?: readonly number[] } | null | undefined)?.range;
  return range?.[0];
}

/** Parse YAML text and validate it; any failure is a ConfigError naming the source, its first problems with their lines. */
export function parseYamlWith<S extends z.ZodType>(source: string, text: string, schema: S): z.output<S> {
  const parsed = parseYamlChecked(text, schema);
  if ('problems' in parsed) throw new ConfigError(source, parsed.problems.slice(0, 5).map(describeProblem).join('; '));
  return parsed.data;
}

/** The file's text; a ConfigError naming the file when it cannot be read. */
export async function readTextFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export async function readYamlFile<S extends z.ZodType>(path: string, schema: S): Promise<z.output<S>> {
  return parseYamlWith(path, await readTextFile(path), schema);
}
