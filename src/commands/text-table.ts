/**
 * Aligned plain-text tables for the commands' output. Cells are made safe for a terminal: route
 * names, tags and addresses come from Consul and files, and a control character (an escape
 * sequence) is shown as `\xNN`, never sent to the terminal.
 */

// eslint-disable-next-line no-control-regex -- control characters are exactly what must not reach a terminal
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

/** `text` with control characters written as `\xNN`. */
export function printable(text: string): string {
  return text.replace(CONTROL, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Each line of `text` made printable; the line breaks kept. */
export function printableLines(text: string): string {
  return text.split('\n').map(printable).join('\n');
}

export interface Column {
  readonly title: string;
  /** Numbers and shares read better aligned right. */
  readonly align?: 'left' | 'right';
}

/**
 * Rows under their column titles, each column as wide as its widest cell, two spaces apart;
 * trailing spaces trimmed. `indent` is put before every line.
 */
export function renderTable(columns: readonly Column[], rows: readonly (readonly string[])[], indent = ''): string {
  const cells = rows.map((row) => columns.map((_, at) => printable(row[at] ?? '')));
  const widths = columns.map((column, at) => Math.max(column.title.length, ...cells.map((row) => width(row[at]!))));
  const line = (row: readonly string[]): string => indent + row
    .map((cell, at) => (columns[at]!.align === 'right' ? pad(cell, widths[at]!, true) : pad(cell, widths[at]!, false)))
    .join('  ')
    .trimEnd();
  return [line(columns.map((c) => c.title)), ...cells.map(line)].join('\n');
}

/** Display width, counting each code point once (no East Asian width tables: names are mostly ASCII). */
function width(text: string): number {
  let n = 0;
  for (const _ of text) n += 1;
  return n;
}

function pad(text: string, to: number, right: boolean): string {
  const fill = ' '.repeat(Math.max(0, to - width(text)));
  return right ? fill + text : text + fill;
}

/** `0.4523` → `45.2%`. */
export function percent(share: number): string {
  const value = Math.round(share * 1000) / 10;
  return `${value}%`;
}
