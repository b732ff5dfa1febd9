import crypto from 'node:crypto';
import { stringify } from 'lossless-json';
import { IpsError } from '../errors.js';

/**
 * Writing Iceberg JSON (metadata files) with 64-bit integers exact, on the hot path of every
 * prepare (an ICDC table's metadata file is written per batch).
 *
 * `stringifyJsonExact` prints bigints as bare integer literals (lossless-json; a native
 * JSON.stringify with a replacer that tags bigints measured no faster).
 *
 * `jsonRoundTrip` gives the value a lossless parse of that text would give (integers as bigint,
 * keys with undefined dropped, undefined in arrays as null) without printing and parsing it.
 *
 * `stringifyJsonExactWithLists` prints an object (indent 2) whose top-level arrays named in
 * `lists` are printed item by item through `printed`, a cache by object identity: an ICDC
 * table's metadata repeats the snapshots and schemas of the previous write, printed once.
 */
const NONCE = crypto.randomBytes(9).toString('hex');

export function stringifyJsonExact(value: unknown, indent?: number): string {
  const out = stringify(value, undefined, indent);
  if (out === undefined) throw new IpsError('INTERNAL', 'value cannot be serialised as JSON');
  return out;
}

/** Bound on nesting (as the parser's): deeper than any Iceberg metadata. */
const MAX_DEPTH = 1000;

/**
 * A deep copy of `value` as `parseJsonLossless(stringifyJsonExact(value))` would return it:
 * integral numbers become bigint, other finite numbers stay numbers (non-finite ones null),
 * keys whose value is undefined (or a function) are left out, and such array items become null.
 */
export function jsonRoundTrip(value: unknown, keep?: ReadonlySet<object>, depth = 0): unknown {
  // An object in `keep` is already what a parse gives (it came from one, or from this function):
  // it is shared, not copied.
  if (keep !== undefined && typeof value === 'object' && value !== null && keep.has(value)) return value;
  switch (typeof value) {
    case 'bigint':
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      if (!Number.isFinite(value)) return null;
      return Number.isInteger(value) ? BigInt(value) : value;
    case 'object': {
      if (value === null) return null;
      if (depth > MAX_DEPTH) throw new IpsError('INTERNAL', `value nested deeper than ${MAX_DEPTH} levels`);
      if (Array.isArray(value)) {
        const out = new Array<unknown>(value.length);
        for (let i = 0; i < value.length; i++) {
          const x = jsonRoundTrip(value[i], keep, depth + 1);
          out[i] = x === undefined ? null : x;
        }
        return out;
      }
      if (typeof (value as { toJSON?: unknown }).toJSON === 'function') {
        throw new IpsError('INTERNAL', 'jsonRoundTrip takes plain JSON values (an object with toJSON was given)');
      }
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(value)) {
        const x = jsonRoundTrip((value as Record<string, unknown>)[k], keep, depth + 1);
        if (x !== undefined) out[k] = x;
      }
      return out;
    }
    default:
      return undefined; // undefined, functions, symbols: JSON leaves them out
  }
}

/** A placeholder string value: the random nonce keeps it apart from any string of a table's metadata. */
const PLACEHOLDER = `ips-list-${NONCE}`;

export function stringifyJsonExactWithLists(value: Record<string, unknown>, lists: readonly string[], printed: WeakMap<object, string>): string {
  const shell: Record<string, unknown> = { ...value };
  const texts = new Map<string, string>();
  for (const key of lists) {
    const list = value[key];
    if (!Array.isArray(list) || list.length === 0) continue;
    const items = list.map((item: unknown) => {
      if (typeof item !== 'object' || item === null) return stringifyJsonExact(item, 2);
      let t = printed.get(item);
      if (t === undefined) {
        // As JSON.stringify(…, 2) prints an item of a top-level array: four spaces deep.
        t = stringifyJsonExact(item, 2).replaceAll('\n', '\n    ');
        printed.set(item, t);
      }
      return t;
    });
    const mark = `${PLACEHOLDER}-${key}`;
    shell[key] = mark;
    texts.set(JSON.stringify(mark), `[\n    ${items.join(',\n    ')}\n  ]`);
  }
  let out = stringifyJsonExact(shell, 2);
  // A function as the replacement: the texts may hold `$` patterns.
  for (const [mark, text] of texts) out = out.replace(mark, () => text);
  return out;
}
