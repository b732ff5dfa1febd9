import { parse, stringify, isInteger } from 'lossless-json';
import { IpsError, describeError } from '../errors.js';

/**
 * Iceberg metadata carries 64-bit ids (snapshot ids go up to 2^63-1) that JSON.parse would
 * round. Every integer literal is parsed as a bigint; fractional numbers stay JS numbers.
 * The zod schemas then narrow 32-bit fields back to number explicitly.
 */
export function parseJsonLossless(text: string, what: string): unknown {
  try {
    return parse(text, null, (value: string) => (isInteger(value) ? BigInt(value) : Number(value)));
  } catch (e) {
    // Where, not what: the parser's message quotes the file's characters, and the file may be
    // one an admin should not learn anything about (a local file outside the tables).
    const pos = /\(pos(?:ition)?:? ?(\d+)\)|position (\d+)/i.exec(describeError(e));
    const at = pos ? ` (at character ${pos[1] ?? pos[2]})` : '';
    throw new IpsError('INVALID_JSON', `${what} is not valid JSON${at}`, { cause: e });
  }
}

/** JSON text with bigints written as plain integer literals (not strings, not rounded). */
export function stringifyJsonLossless(value: unknown, indent?: number): string {
  const out = stringify(value, undefined, indent);
  if (out === undefined) throw new IpsError('INTERNAL', 'value cannot be serialised as JSON');
  return out;
}
