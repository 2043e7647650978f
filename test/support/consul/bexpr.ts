/**
 * The part of go-bexpr (hashicorp/go-bexpr, Consul's `?filter=` language) the test server
 * evaluates, on string fields of one element type (for /v1/health/state: HealthCheck):
 *
 *   Expr  := Or ; Or := And ("or" And)* ; And := Not ("and" Not)* ; Not := "not" Not | Term
 *   Term  := "(" Expr ")" | Selector ("==" | "!=") Value
 *   Value := "double-quoted" | `backquoted` | an identifier (letters, digits, _)
 *
 * What Consul does with a bad expression: the server builds the filter before the query
 * (agent/consul/health_endpoint.go ChecksInState: bexpr.CreateFilter), go-bexpr's filter.go wraps
 * the parse error as `Failed to create boolean expression evaluator: <why>`, and the agent's HTTP
 * layer (agent/http.go wrap → handleErr) maps this untyped RPC error to 500 with the message as
 * the body (hashicorp/consul#7338, #9441 show it: "Unexpected response code: 500 (Failed to create
 * boolean expression evaluator: 1:4 (3): no match found, expected: ...)"). An unknown selector is
 * refused the same way (go-bexpr validates selectors against the element type). Positions in the
 * test server's messages are not go-bexpr's.
 *
 * What the test server cannot evaluate (the other operators: in, contains, matches, is empty; a
 * selector into a collection or a map) is refused with 400 and says so: never ignored, never
 * guessed.
 */

export type FieldLookup = (selector: string) => string | undefined;
export type CompiledFilter = (lookup: FieldLookup) => boolean;

export class BexprError extends Error {
  /** 500: what Consul answers for an invalid expression; 400: valid, not implemented here. */
  constructor(readonly status: 400 | 500, message: string) {
    super(message);
    this.name = 'BexprError';
  }
}

const EVALUATOR = 'Failed to create boolean expression evaluator';
const UNSUPPORTED_OPERATORS = new Set(['in', 'contains', 'matches', 'is']);

type Token = { kind: 'word' | 'string' | 'op' | 'paren'; text: string; at: number };

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const c = source[i] as string;
    if (/\s/.test(c)) {
      i += 1;
    } else if (c === '(' || c === ')') {
      tokens.push({ kind: 'paren', text: c, at: i });
      i += 1;
    } else if (source.startsWith('==', i) || source.startsWith('!=', i)) {
      tokens.push({ kind: 'op', text: source.slice(i, i + 2), at: i });
      i += 2;
    } else if (c === '"' || c === '`') {
      let j = i + 1;
      let text = '';
      while (j < source.length && source[j] !== c) {
        if (c === '"' && source[j] === '\\' && j + 1 < source.length) j += 1;
        text += source[j];
        j += 1;
      }
      if (j >= source.length) throw new BexprError(500, `${EVALUATOR}: 1:${i + 1} (${i}): unterminated string literal`);
      tokens.push({ kind: 'string', text, at: i });
      i = j + 1;
    } else if (/[A-Za-z0-9_.\-/]/.test(c)) {
      let j = i;
      while (j < source.length && /[A-Za-z0-9_.\-/]/.test(source[j] as string)) j += 1;
      tokens.push({ kind: 'word', text: source.slice(i, j), at: i });
      i = j;
    } else {
      throw new BexprError(500, `${EVALUATOR}: 1:${i + 1} (${i}): no match found, unexpected ${JSON.stringify(c)}`);
    }
  }
  return tokens;
}

/** Compiles `expression` for elements whose string fields are `selectors`; throws BexprError. */
export function compileFilter(expression: string, selectors: ReadonlySet<string>): CompiledFilter {
  const tokens = tokenize(expression);
  let pos = 0;
  const peek = (): Token | undefined => tokens[pos];
  const fail = (why: string, at = peek()?.at ?? expression.length): never => {
    throw new BexprError(500, `${EVALUATOR}: 1:${at + 1} (${at}): ${why}`);
  };
  const keyword = (word: string): boolean => {
    const t = peek();
    if (t?.kind === 'word' && t.text === word) {
      pos += 1;
      return true;
    }
    return false;
  };

  const term = (): CompiledFilter => {
    const t = peek();
    if (t === undefined) return fail('no match found, expected a selector or "("');
    if (t.kind === 'paren' && t.text === '(') {
      pos += 1;
      const inner = or();
      const close = peek();
      if (close?.kind !== 'paren' || close.text !== ')') return fail('no match found, expected ")"');
      pos += 1;
      return inner;
    }
    if (t.kind !== 'word') return fail('no match found, expected a selector');
    pos += 1;
    const selector = t.text;
    const op = peek();
    if (op?.kind === 'word' && (UNSUPPORTED_OPERATORS.has(op.text) || op.text === 'not')) {
      throw new BexprError(400, `The Consul test server does not implement the filter operator "${op.text}" (only ==, !=, and, or, not): ${expression}`);
    }
    if (op?.kind !== 'op') return fail('no match found, expected: "!=", "==" or "."');
    pos += 1;
    const value = peek();
    if (value === undefined || (value.kind !== 'string' && value.kind !== 'word')) return fail('no match found, expected a value');
    pos += 1;
    if (!selectors.has(selector)) {
      if (selectors.has(selector.split('.')[0] ?? '')) throw new BexprError(400, `The Consul test server does not implement selector paths: ${selector}`);
      throw new BexprError(500, `${EVALUATOR}: Selector "${selector}" is not valid`);
    }
    const wanted = value.text;
    return op.text === '==' ? (lookup) => lookup(selector) === wanted : (lookup) => lookup(selector) !== wanted;
  };
  const not = (): CompiledFilter => {
    if (keyword('not')) {
      const inner = not();
      return (lookup) => !inner(lookup);
    }
    return term();
  };
  const and = (): CompiledFilter => {
    let left = not();
    while (keyword('and')) {
      const a = left;
      const b = not();
      left = (lookup) => a(lookup) && b(lookup);
    }
    return left;
  };
  const or = (): CompiledFilter => {
    let left = and();
    while (keyword('or')) {
      const a = left;
      const b = and();
      left = (lookup) => a(lookup) || b(lookup);
    }
    return left;
  };

  const filter = or();
  if (pos < tokens.length) fail('no match found, expected "and", "or" or end of input');
  return filter;
}
