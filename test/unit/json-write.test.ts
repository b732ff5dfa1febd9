// The JSON writer of ICDC metadata (src/iceberg/json-write.ts): printing lists item by item from a
// cache gives the text lossless-json prints for the whole document at once, and jsonRoundTrip
// equals what parsing that text gives. Values: every metadata file of a PyIceberg-written fixture table, and
// hand-written edge cases (64-bit extremes, strings that look like the writer's tags).
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseJsonLossless, stringifyJsonLossless } from '../../src/iceberg/json.js';
import { jsonRoundTrip, stringifyJsonExact, stringifyJsonExactWithLists } from '../../src/iceberg/json-write.js';
import { REPO_ROOT } from '../setup/env.js';

const metaDir = path.join(REPO_ROOT, 'fixtures', 'tables', 'playback', 'metadata');
const metadataFiles = readdirSync(metaDir).filter((f) => f.endsWith('.metadata.json')).sort();

const edge: Record<string, unknown> = {
  max: 9223372036854775807n,
  min: -9223372036854775808n,
  zero: 0n,
  small: 7,
  fraction: 1.5,
  negative: -3,
  flag: true,
  nothing: null,
  left_out: undefined,
  nested: [{ 'snapshot-id': 5173553188971266738n, summary: { operation: 'append' } }, [1n, 2, 'x'], undefined],
  // Strings that look like a tagged bigint, an escaped control character, quotes and unicode.
  tricky: ['\u0001ips-int-0:5', '"9223372036854775807"', 'a\\u0001b', 'tab\tnewline\n', 'ünïcødé ✓', ''],
  'key "quoted"': 'v',
};

describe('stringifyJsonExact', () => {
  it('prints bigints as bare integer literals, exactly', () => {
    expect(stringifyJsonExact([9223372036854775807n, -9223372036854775808n, 'x', 1.5])).toBe('[9223372036854775807,-9223372036854775808,"x",1.5]');
  });
});

describe('jsonRoundTrip', () => {
  it('gives what parsing the printed text gives: edge cases', () => {
    expect(jsonRoundTrip(edge)).toStrictEqual(parseJsonLossless(stringifyJsonLossless(edge), 'edge'));
  });

  it.each(metadataFiles)('gives what parsing the printed text gives: %s with numbers mixed in', (file) => {
    const value = parseJsonLossless(readFileSync(path.join(metaDir, file), 'utf8'), file) as Record<string, unknown>;
    // As the ICDC writer builds it: ids as bigint, 32-bit fields as JS numbers, absent keys undefined.
    const built = { ...value, 'format-version': Number(value['format-version']), 'current-schema-id': 0, absent: undefined };
    expect(jsonRoundTrip(built)).toStrictEqual(parseJsonLossless(stringifyJsonLossless(built), file));
  });

  it('copies: the result shares no object with its input', () => {
    const input = { a: [{ b: 1n }] };
    const out = jsonRoundTrip(input) as { a: { b: bigint }[] };
    expect(out).toStrictEqual(input);
    expect(out.a).not.toBe(input.a);
    expect(out.a[0]).not.toBe(input.a[0]);
  });
});

describe('stringifyJsonExactWithLists', () => {
  it.each(metadataFiles)('prints %s as lossless-json does (indent 2), from the cache the second time', (file) => {
    const value = parseJsonLossless(readFileSync(path.join(metaDir, file), 'utf8'), file) as Record<string, unknown>;
    const printed = new WeakMap<object, string>();
    const expected = stringifyJsonLossless(value, 2);
    expect(stringifyJsonExactWithLists(value, ['snapshots', 'schemas', 'absent'], printed)).toBe(expected);
    const snapshots = value['snapshots'] as object[];
    if (snapshots.length > 0) expect(printed.has(snapshots[0]!)).toBe(true);
    // Again, with every item printed from the cache, and with a list that grew by a new snapshot.
    expect(stringifyJsonExactWithLists(value, ['snapshots', 'schemas'], printed)).toBe(expected);
    const grown = { ...value, snapshots: [...snapshots, { 'snapshot-id': 9223372036854775807n, summary: { operation: 'append', note: '$& $1 $$' } }] };
    expect(stringifyJsonExactWithLists(grown, ['snapshots', 'schemas'], printed)).toBe(stringifyJsonLossless(grown, 2));
  });

  it('prints empty and missing lists as lossless-json does', () => {
    const v = { a: 1n, snapshots: [], schemas: [{ 'schema-id': 0n, fields: [] }] };
    expect(stringifyJsonExactWithLists(v, ['snapshots', 'schemas', 'missing'], new WeakMap())).toBe(stringifyJsonLossless(v, 2));
  });
});

describe('jsonRoundTrip with kept objects', () => {
  it('shares the kept objects and copies the rest, equal to the parse of the printed text', () => {
    const value = parseJsonLossless(readFileSync(path.join(metaDir, metadataFiles.at(-1)!), 'utf8'), 'last') as Record<string, unknown>;
    const snapshots = value['snapshots'] as object[];
    const built = { ...value, 'format-version': 2, snapshots: [...snapshots, { 'snapshot-id': 5n, 'sequence-number': 7 }] };
    const out = jsonRoundTrip(built, new Set(snapshots)) as Record<string, unknown>;
    expect(out).toStrictEqual(parseJsonLossless(stringifyJsonLossless(built), 'built'));
    const outSnapshots = out['snapshots'] as object[];
    snapshots.forEach((s, i) => expect(outSnapshots[i]).toBe(s));
    expect(outSnapshots.at(-1)).toStrictEqual({ 'snapshot-id': 5n, 'sequence-number': 7n });
  });
});
