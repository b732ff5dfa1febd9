import { parse, stringify, isInteger } from 'lossless-json';
import { IpsError, describeError } from '../errors.js';

/**
 * Iceberg metadata carries 64-bit ids (snapshot ids go up to 2^63-1) that JSON.parse would
 * round. Every integer literal is parsed as a bigint; fractional numbers stay JS numbers.
 * The zod schemas then narrow 32-bit fields back to number explicitly. Duplicate keys (JSON.parse
 * would keep the last one silently) and NUL characters in strings are refused.
 *
 * Fast path (metadata files of a few MB with thousands of snapshots are read on every poll): one
 * scan of the text finds integer literals too long to be exact in a double and turns them into
 * marked strings, counts the keys, and looks for NULs and fractional numbers; then the native
 * JSON.parse; then one walk turns numbers and marked strings into bigints and counts the keys it
 * got (fewer than the scan saw = a key was repeated). Text with a fractional or exponent number
 * literal, or whose keys do not add up, goes through lossless-json, which says exactly what is
 * wrong where.
 */
export function parseJsonLossless(text: string, what: string): unknown {
  let fast: unknown;
  try {
    fast = parseFast(text, what);
  } catch (e) {
    if (e instanceof IpsError) throw e;
    fast = SLOW; // invalid JSON: lossless-json reports where
  }
  if (fast !== SLOW) return fast;
  try {
    return parse(text, null, (value: string) => (isInteger(value) ? BigInt(value) : Number(value)));
  } catch (e) {
    // Where, not what: the parser's message quotes the file's characters, and the file may be
    // one an admin should not learn anything about (a local file outside the tables).
    const pos = /\(pos(?:ition)?:? ?(\d+)\)|position (\d+)/i.exec(describeError(e));
    const at = pos ? ` (at character ${pos[1] ?? pos[2]})` : '';
    throw new IpsError('INVALID_JSON', `${what} is not valid JSON${at}${/duplicate key/i.test(describeError(e)) ? ': a key is repeated' : ''}`, { cause: e });
  }
}

const SLOW = Symbol('slow');
/**
 * Marks a long integer literal turned into a string by the scan: the escape for NUL, which is
 * refused in the file's own strings, so a marked string cannot be one of them.
 */
const MARK = '\\u0000';
/** Integer literals of up to 15 digits are exact as doubles (< 2^53 needs 16 digits at the least). */
const MAX_EXACT_DIGITS = 15;

function nulError(what: string): IpsError {
  return new IpsError('INVALID_JSON', `${what} holds a NUL character (\\u0000) in a string: refused`);
}

function parseFast(text: string, what: string): unknown {
  const n = text.length;
  let keys = 0;
  let parts: string[] | null = null;
  let last = 0;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      // Skip the string; escapes are checked for \u0000 only (JSON.parse checks the rest).
      let j = i + 1;
      for (;;) {
        if (j >= n) return SLOW;
        const d = text.charCodeAt(j);
        if (d === 0x22) break;
        if (d === 0x5c /* \ */) {
          if (text.charCodeAt(j + 1) === 0x75 /* u */ && text.startsWith('0000', j + 2)) throw nulError(what);
          j += 2;
        } else {
          if (d === 0) throw nulError(what);
          j++;
        }
      }
      i = j;
    } else if (c === 0x3a /* : */) {
      keys++;
    } else if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      let j = c === 0x2d ? i + 1 : i;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d < 0x30 || d > 0x39) break;
        j++;
      }
      const d = text.charCodeAt(j);
      if (d === 0x2e /* . */ || d === 0x65 /* e */ || d === 0x45 /* E */) return SLOW;
      const digits = j - (c === 0x2d ? i + 1 : i);
      if (digits > MAX_EXACT_DIGITS) {
        parts ??= [];
        parts.push(text.slice(last, i), '"', MARK, text.slice(i, j), '"');
        last = j;
      }
      i = j - 1;
    }
  }
  const src = parts ? (parts.push(text.slice(last)), parts.join('')) : text;
  const value = JSON.parse(src) as unknown;
  const counter = { keys: 0 };
  const out = toLossless(value, counter, 0);
  if (counter.keys !== keys) return SLOW; // a repeated key: lossless-json names it
  return out;
}

/** Bound on nesting for the walk (JSON.parse has its own): deeper than any Iceberg metadata. */
const MAX_DEPTH = 1000;

function toLossless(v: unknown, counter: { keys: number }, depth: number): unknown {
  if (typeof v === 'number') return BigInt(v);
  if (typeof v === 'string') return v.length > 0 && v.charCodeAt(0) === 0 ? BigInt(v.slice(1)) : v;
  if (v === null || typeof v !== 'object') return v;
  if (depth > MAX_DEPTH) throw new IpsError('INVALID_JSON', `JSON text is nested deeper than ${MAX_DEPTH} levels`);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const x = v[i] as unknown;
      if (typeof x === 'object' || typeof x === 'number' || typeof x === 'string') v[i] = toLossless(x, counter, depth + 1);
    }
    return v;
  }
  const o = v as Record<string, unknown>;
  const ks = Object.keys(o);
  counter.keys += ks.length;
  for (let i = 0; i < ks.length; i++) {
    const k = ks[i]!;
    const x = o[k];
    if (typeof x === 'object' || typeof x === 'number' || typeof x === 'string') o[k] = toLossless(x, counter, depth + 1);
  }
  return o;
}

/** JSON text with bigints written as plain integer literals (not strings, not rounded). */
export function stringifyJsonLossless(value: unknown, indent?: number): string {
  const out = stringify(value, undefined, indent);
  if (out === undefined) throw new IpsError('INTERNAL', 'value cannot be serialised as JSON');
  return out;
}
