// Text helpers for the HTML report: escaping, number formatting and small tables. Every
// string that comes from results.json goes through `esc` before it reaches the page.

export function esc(s: string | number): string {
  return String(s)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** Decimals for a set of numbers: 4 when they all lie in [-1, 1] (probabilities, 0/1 events), else 2. */
export function decimalsFor(values: readonly (number | null)[]): number {
  return values.every((v) => v === null || Math.abs(v) <= 1) ? 4 : 2;
}

/** A number with fixed decimals, "–" for null, never "-0.00". */
export function num(v: number | null | undefined, decimals: number): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  const s = v.toFixed(decimals);
  return /^-0(\.0*)?$/.test(s) ? s.slice(1) : s;
}

/** A percentage already in 0..100. */
export const pct = (v: number | null | undefined): string => (v === null || v === undefined ? '–' : `${num(v, 1)}%`);

export const shortHash = (sha: string): string => sha.slice(0, 12);

/** A safe file-name part: letters, digits, '-' and '_' only. */
export function slug(s: string): string {
  const out = s.toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '');
  return out === '' ? 'x' : out.slice(0, 60);
}

export interface Cell {
  readonly html: string;
  /** Right-aligned numeric cell. */
  readonly numeric?: boolean;
}

export type CellLike = string | Cell;

const cellHtml = (c: CellLike, tag: 'td' | 'th'): string =>
  typeof c === 'string' ? `<${tag}>${esc(c)}</${tag}>` : `<${tag}${c.numeric ? ' class="num"' : ''}>${c.html}</${tag}>`;

export const numCell = (text: string): Cell => ({ html: esc(text), numeric: true });
export const rawCell = (html: string): Cell => ({ html });

/** An HTML table; header cells and body cells are escaped unless given as Cell. */
export function table(head: readonly CellLike[], rows: readonly (readonly CellLike[])[], cls = ''): string {
  const thead = `<thead><tr>${head.map((h) => cellHtml(h, 'th')).join('')}</tr></thead>`;
  const tbody = `<tbody>\n${rows.map((r) => `<tr>${r.map((c) => cellHtml(c, 'td')).join('')}</tr>`).join('\n')}\n</tbody>`;
  return `<table${cls ? ` class="${esc(cls)}"` : ''}>${thead}${tbody}</table>`;
}
