import { IpsError } from '../errors.js';
import { resolveFieldId } from '../capture/ranges.js';
import type { TableMetadata } from '../iceberg/metadata.js';
import type { PrimitiveType } from '../iceberg/types.js';
import { formatDate, formatTimestamp, type Value } from '../iceberg/values.js';

/**
 * The `--where` language of a backfill: comparisons of one column joined by `and`,
 *
 *   event_date >= 2026-10-01 and event_date < 2026-10-15
 *   event_ts >= '2026-10-01T00:00:00Z' and event_ts < '2026-10-02'
 *   day_id > 100 and day_id <= 200
 *
 * with `>=`, `>`, `<=`, `<` and `=`; values bare or quoted ('…' or "…"). The column must be a
 * date, timestamp (with or without zone, micro or nano) or int/long column. The result is a
 * half-open interval [lo, hi) of the column's values in their Iceberg encoding (days, micros or
 * nanos since the epoch, the integer itself), as bigint; a side left open is null.
 */
export interface WhereRange {
  field: string;
  fieldId: number;
  type: PrimitiveType;
  /** Inclusive lower bound, or null. */
  lo: bigint | null;
  /** Exclusive upper bound, or null. */
  hi: bigint | null;
  text: string;
}

const KINDS = new Set(['date', 'timestamp', 'timestamptz', 'timestamp_ns', 'timestamptz_ns', 'int', 'long']);

function bad(message: string): never {
  throw new IpsError('INVALID_WHERE', message);
}

interface Token {
  kind: 'word' | 'op' | 'string';
  text: string;
}

function tokenize(text: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) bad(`--where: the quote at position ${i + 1} is never closed`);
      out.push({ kind: 'string', text: text.slice(i + 1, end) });
      i = end + 1;
      continue;
    }
    const op = /^(>=|<=|>|<|==|=)/.exec(text.slice(i));
    if (op) {
      out.push({ kind: 'op', text: op[1] === '==' ? '=' : op[1]! });
      i += op[1]!.length;
      continue;
    }
    const w = /^[A-Za-z0-9_.:+\-TZ]+/.exec(text.slice(i));
    if (!w) bad(`--where: unexpected "${c}" at position ${i + 1}; write comparisons like \`event_date >= 2026-10-01 and event_date < 2026-10-15\``);
    out.push({ kind: 'word', text: w[0] });
    i += w[0].length;
  }
  return out;
}

const US_PER_DAY = 86_400_000_000n;

/** A value of the column from its text, in the Iceberg encoding (bigint). */
export function parseValue(type: PrimitiveType, text: string, field: string): bigint {
  switch (type.kind) {
    case 'int':
    case 'long':
      if (!/^-?\d{1,19}$/.test(text)) bad(`--where: "${text}" is not an integer (column ${field} is ${type.kind})`);
      return BigInt(text);
    case 'date': {
      const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
      if (!m) bad(`--where: "${text}" is not a date; column ${field} is a date: write YYYY-MM-DD`);
      const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
      if (new Date(ms).toISOString().slice(0, 10) !== text) bad(`--where: "${text}" is not a valid date`);
      return BigInt(ms / 86_400_000);
    }
    case 'timestamp':
    case 'timestamptz':
    case 'timestamp_ns':
    case 'timestamptz_ns': {
      const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?(Z|[+-]00:?00)?$/.exec(text);
      if (!m) bad(`--where: "${text}" is not a timestamp; column ${field} is a ${type.kind}: write YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS[.ffffff]][Z] (UTC)`);
      const days = BigInt(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) / 86_400_000);
      const frac = (m[7] ?? '').padEnd(9, '0');
      const nanosOfDay = ((BigInt(m[4] ?? '0') * 60n + BigInt(m[5] ?? '0')) * 60n + BigInt(m[6] ?? '0')) * 1_000_000_000n + BigInt(frac);
      const nanos = days * US_PER_DAY * 1000n + nanosOfDay;
      if (type.kind === 'timestamp_ns' || type.kind === 'timestamptz_ns') return nanos;
      if (nanos % 1000n !== 0n) bad(`--where: "${text}" has nanoseconds; column ${field} has microsecond precision`);
      return nanos / 1000n;
    }
    default:
      return bad(`--where: column ${field} is a ${type.kind}; backfill ranges take date, timestamp, int or long columns`);
  }
}

/** The value as the API shows it (dates and timestamps in ISO form, integers as decimal strings). */
export function formatValue(type: PrimitiveType, v: bigint): string {
  switch (type.kind) {
    case 'date':
      return formatDate(Number(v));
    case 'timestamp':
      return formatTimestamp(v, 1_000_000n, 6, false);
    case 'timestamptz':
      return formatTimestamp(v, 1_000_000n, 6, true);
    case 'timestamp_ns':
      return formatTimestamp(v, 1_000_000_000n, 9, false);
    case 'timestamptz_ns':
      return formatTimestamp(v, 1_000_000_000n, 9, true);
    default:
      return v.toString();
  }
}

/** The bigint form of a decoded Iceberg value of the column. */
export function asBig(v: Value): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  throw new IpsError('INTERNAL', `not an integer-valued bound: ${String(v)}`);
}

export function parseWhere(md: TableMetadata, text: string): WhereRange {
  const tokens = tokenize(text);
  if (tokens.length === 0) bad('--where is empty; write e.g. `event_date >= 2026-10-01 and event_date < 2026-10-15`');
  let field: string | null = null;
  let lo: bigint | null = null;
  let hi: bigint | null = null;
  let type: PrimitiveType | null = null;
  let fieldId = 0;
  let i = 0;
  for (;;) {
    const f = tokens[i];
    const op = tokens[i + 1];
    const val = tokens[i + 2];
    if (!f || f.kind !== 'word' || !op || op.kind !== 'op' || !val || val.kind === 'op') {
      bad(`--where: expected \`column op value\` at "${tokens.slice(i).map((t) => t.text).join(' ')}"; operators: >=, >, <=, <, =`);
    }
    if (field === null) {
      const r = resolveFieldId(md, f.text);
      if (!KINDS.has(r.type.kind)) bad(`--where: column ${f.text} is a ${r.type.kind}; backfill ranges take date, timestamp, int or long columns`);
      field = f.text;
      type = r.type;
      fieldId = r.id;
    } else if (f.text !== field) {
      bad(`--where compares ${field} and ${f.text}: a backfill range is over one column`);
    }
    const v = parseValue(type!, val.text, field);
    const lower = (x: bigint): void => { lo = lo === null || x > lo ? x : lo; };
    const upper = (x: bigint): void => { hi = hi === null || x < hi ? x : hi; };
    switch (op.text) {
      case '>=': lower(v); break;
      case '>': lower(v + 1n); break;
      case '<': upper(v); break;
      case '<=': upper(v + 1n); break;
      case '=': lower(v); upper(v + 1n); break;
    }
    i += 3;
    if (i >= tokens.length) break;
    const and = tokens[i]!;
    if (and.kind !== 'word' || and.text.toLowerCase() !== 'and') bad(`--where: expected "and" at "${and.text}" (only \`and\` joins comparisons)`);
    i++;
  }
  const range: WhereRange = { field: field!, fieldId, type: type!, lo, hi, text };
  if (lo !== null && hi !== null && lo >= hi) {
    throw new IpsError('EMPTY_RANGE', `--where ${text}: the range is empty (${formatValue(type!, lo)} is not below ${formatValue(type!, hi)}); check the bounds`);
  }
  return range;
}
