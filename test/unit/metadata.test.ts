// Table metadata JSON: lossless 64-bit ids, v1 legacy fields, "no snapshot" markers, error
// reporting, and lineage with an expired parent. Documents are written by hand in the tests.
import { describe, expect, it } from 'vitest';
import { IpsError } from '../../src/errors.js';
import { parseJsonLossless, stringifyJsonLossless } from '../../src/iceberg/json.js';
import { fieldById, lineage, parseTableMetadata, schemaById, specById } from '../../src/iceberg/metadata.js';
import { orderedSnapshots } from '../../src/capture/inspect.js';

function thrown(fn: () => unknown): IpsError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(IpsError);
    return e as IpsError;
  }
  throw new Error('expected an error');
}

// 2^63 - 1 and a Java-style id well above 2^53 whose float64 rounding differs.
const MAX_LONG = '9223372036854775807';
const BIG_ID = '5173553188971266738';

describe('lossless JSON', () => {
  it('parses integers beyond 2^53 as exact bigints', () => {
    const v = parseJsonLossless(`{"a": ${BIG_ID}, "b": ${MAX_LONG}, "c": -9223372036854775808, "d": 1.5, "e": 7}`, 't') as Record<string, unknown>;
    expect(v['a']).toBe(5173553188971266738n);
    expect(v['b']).toBe(9223372036854775807n);
    expect(v['c']).toBe(-9223372036854775808n);
    expect(v['d']).toBe(1.5);
    expect(v['e']).toBe(7n);
    // JSON.parse would have rounded it
    expect(String(JSON.parse(`{"a": ${BIG_ID}}`).a)).not.toBe(BIG_ID);
  });

  it('round-trips a snapshot id > 2^53 exactly, as a JSON number literal', () => {
    const text = `{"snapshot-id":${BIG_ID},"parent":${MAX_LONG}}`;
    const out = stringifyJsonLossless(parseJsonLossless(text, 't'));
    expect(out).toBe(text);
  });

  it('keeps every integer exact on the fast path (no fractional numbers: native JSON.parse after one scan)', () => {
    // 15 digits stay numbers until the end, 16 and more are quoted by the scan: both come back exact.
    const v = parseJsonLossless(`{"s": [999999999999999, -999999999999999, 9007199254740993, -9007199254740993, ${BIG_ID}], "t": "${BIG_ID}", "u": {"x": [0, -0, 12]}}`, 't') as Record<string, unknown>;
    expect(v['s']).toEqual([999999999999999n, -999999999999999n, 9007199254740993n, -9007199254740993n, 5173553188971266738n]);
    expect(v['t']).toBe(BIG_ID); // a string that looks like a number stays a string
    expect(v['u']).toEqual({ x: [0n, 0n, 12n] });
  });

  it('refuses a repeated key and a NUL character, which JSON.parse would accept', () => {
    const dup = thrown(() => parseJsonLossless('{"snapshots": [], "a": {"k": 1, "k": 2}}', 'm.metadata.json'));
    expect(dup.code).toBe('INVALID_JSON');
    expect(dup.message).toMatch(/m\.metadata\.json.*repeated/);
    const nul = thrown(() => parseJsonLossless('{"location": "s3://b/t\\u0000x"}', 'm.metadata.json'));
    expect(nul.code).toBe('INVALID_JSON');
    expect(nul.message).toMatch(/NUL/);
    // A key of the prototype's name is a key like any other.
    expect(Object.getPrototypeOf(parseJsonLossless('{"__proto__": {"polluted": 1}}', 't'))).toBe(Object.prototype);
  });

  it('reports invalid JSON with code INVALID_JSON and the file name', () => {
    const e = thrown(() => parseJsonLossless('{"a": 1,', 's3://b/t/metadata/v9.metadata.json'));
    expect(e.code).toBe('INVALID_JSON');
    expect(e.message).toContain('v9.metadata.json');
  });
});

const schemaV1 = `{"type":"struct","fields":[
  {"id":1,"name":"id","required":true,"type":"long"},
  {"id":2,"name":"ts","required":false,"type":"timestamptz"},
  {"id":3,"name":"data","required":false,"type":"string"}]}`;

function v1Doc(extra: string): string {
  return `{
    "format-version": 1,
    "table-uuid": "6259114b-df40-4263-9375-4bd3102965d2",
    "location": "hdfs://nn:8020/warehouse/t",
    "last-updated-ms": 1729164485534,
    "last-column-id": 3,
    "schema": ${schemaV1},
    "partition-spec": [
      {"name": "ts_day", "transform": "day", "source-id": 2},
      {"name": "id_bucket", "transform": "bucket[16]", "source-id": 1}
    ],
    "properties": {"write.format.default": "parquet"}
    ${extra}
  }`;
}

describe('v1 metadata: legacy "schema" and "partition-spec" without field ids', () => {
  it('reads the single schema as schema 0 and assigns partition field ids from 1000', () => {
    const md = parseTableMetadata(v1Doc(', "current-snapshot-id": -1'), 'v1.metadata.json');
    expect(md.formatVersion).toBe(1);
    expect(md.schemas).toHaveLength(1);
    expect(md.currentSchemaId).toBe(0);
    expect(md.schemas[0]!.struct.fields.map((f) => f.name)).toEqual(['id', 'ts', 'data']);
    expect(md.specs).toHaveLength(1);
    expect(md.defaultSpecId).toBe(0);
    const spec = specById(md, 0);
    expect(spec.fields.map((f) => [f.name, f.fieldId, f.sourceId, f.transform])).toEqual([
      ['ts_day', 1000, 2, 'day'],
      ['id_bucket', 1001, 1, 'bucket[16]'],
    ]);
    // v1 has no sequence numbers: last-sequence-number reads as 0
    expect(md.lastSequenceNumber).toBe(0n);
    expect(fieldById(md, 2)?.type).toEqual({ kind: 'timestamptz' });
    expect(schemaById(md, null).schemaId).toBe(0);
  });

  it('reads current-snapshot-id -1 (Java\'s "none") as null and implies no main ref', () => {
    const md = parseTableMetadata(v1Doc(', "current-snapshot-id": -1, "snapshots": []'), 'v1.metadata.json');
    expect(md.currentSnapshotId).toBe(null);
    expect(md.refs['main']).toBeUndefined();
    expect(md.snapshots).toEqual([]);
  });

  it('reads v1 snapshots: no sequence number (0), inline manifests, exact 64-bit ids, implied main ref', () => {
    const md = parseTableMetadata(v1Doc(`, "current-snapshot-id": ${BIG_ID},
      "snapshots": [{"snapshot-id": ${BIG_ID}, "timestamp-ms": 1729164477675,
        "manifests": ["hdfs://nn:8020/warehouse/t/metadata/a-m0.avro"]}]`), 'v1.metadata.json');
    expect(md.currentSnapshotId).toBe(5173553188971266738n);
    const s = md.snapshots[0]!;
    expect(s.snapshotId).toBe(5173553188971266738n);
    expect(s.sequenceNumber).toBe(0n);
    expect(s.manifestList).toBe(null);
    expect(s.v1Manifests).toEqual(['hdfs://nn:8020/warehouse/t/metadata/a-m0.avro']);
    expect(s.parentSnapshotId).toBe(null);
    expect(s.operation).toBe(null);
    expect(md.refs['main']).toEqual({ snapshotId: 5173553188971266738n, type: 'branch' });
  });
});

function v2Doc(fields: Record<string, string>): string {
  const base: Record<string, string> = {
    'format-version': '2',
    'table-uuid': '"9c12d441-03fe-4693-9a96-a0705ddf69c1"',
    location: '"s3://bucket/t"',
    'last-sequence-number': '3',
    'last-updated-ms': '1602638573590',
    'last-column-id': '3',
    'current-schema-id': '0',
    schemas: `[${schemaV1.replace('"type":"struct"', '"type":"struct","schema-id":0')}]`,
    'default-spec-id': '0',
    'partition-specs': '[{"spec-id":0,"fields":[]}]',
    'last-partition-id': '999',
    'default-sort-order-id': '0',
    'sort-orders': '[{"order-id":0,"fields":[]}]',
  };
  const all = { ...base, ...fields };
  return `{${Object.entries(all).filter(([, v]) => v !== '').map(([k, v]) => `"${k}": ${v}`).join(',\n')}}`;
}

const snap = (id: string, parent: string | null, seq: number): string =>
  `{"snapshot-id": ${id}, ${parent === null ? '' : `"parent-snapshot-id": ${parent},`} "sequence-number": ${seq},
    "timestamp-ms": ${1602638573590 + seq}, "manifest-list": "s3://bucket/t/metadata/snap-${id}.avro",
    "summary": {"operation": "append", "added-records": ${seq}}}`;

describe('v2/v3 metadata', () => {
  it('reads snapshots with exact ids, sequence numbers and summaries', () => {
    const md = parseTableMetadata(v2Doc({
      'current-snapshot-id': MAX_LONG,
      snapshots: `[${snap(BIG_ID, null, 1)}, ${snap(MAX_LONG, BIG_ID, 2)}]`,
    }), 'v2.metadata.json');
    expect(md.snapshots.map((s) => s.snapshotId)).toEqual([5173553188971266738n, 9223372036854775807n]);
    expect(md.snapshots[1]!.parentSnapshotId).toBe(5173553188971266738n);
    expect(md.snapshots[1]!.sequenceNumber).toBe(2n);
    expect(md.snapshots[1]!.operation).toBe('append');
    // a numeric summary value from a sloppy writer is kept as a string
    expect(md.snapshots[1]!.summary['added-records']).toBe('2');
    expect(md.lastSequenceNumber).toBe(3n);
  });

  it('reads v3 "current-snapshot-id": null as no current snapshot, and next-row-id', () => {
    const md = parseTableMetadata(v2Doc({ 'format-version': '3', 'current-snapshot-id': 'null', 'next-row-id': '0' }), 'v1.metadata.json');
    expect(md.formatVersion).toBe(3);
    expect(md.currentSnapshotId).toBe(null);
    expect(md.nextRowId).toBe(0n);
  });

  it('reads -1 as no current snapshot in v2 too', () => {
    const md = parseTableMetadata(v2Doc({ 'current-snapshot-id': '-1' }), 'v1.metadata.json');
    expect(md.currentSnapshotId).toBe(null);
  });
});

describe('invalid metadata: code INVALID_METADATA and a message that names the problem', () => {
  const where = 's3://bucket/t/metadata/v7.metadata.json';

  it('a missing required field names the field and the file', () => {
    const e = thrown(() => parseTableMetadata(v2Doc({ location: '' }), where));
    expect(e.code).toBe('INVALID_METADATA');
    expect(e.message).toContain(where);
    expect(e.message).toContain('location');
  });

  it('a wrong type names the field', () => {
    const e = thrown(() => parseTableMetadata(v2Doc({ 'last-updated-ms': '"yesterday"' }), where));
    expect(e.code).toBe('INVALID_METADATA');
    expect(e.message).toContain('last-updated-ms');
  });

  it('an unsupported format version says which versions are supported', () => {
    const e = thrown(() => parseTableMetadata(v2Doc({ 'format-version': '4' }), where));
    expect(e.code).toBe('INVALID_METADATA');
    expect(e.message).toContain('format-version');
    expect(e.message).toMatch(/1, 2 or 3/);
  });

  it('a 32-bit field out of range is rejected, not wrapped', () => {
    const e = thrown(() => parseTableMetadata(v2Doc({ 'last-column-id': '4294967296' }), where));
    expect(e.code).toBe('INVALID_METADATA');
    expect(e.message).toContain('last-column-id');
    expect(e.message).toContain('32-bit');
  });

  it('a current snapshot id that is not among the snapshots', () => {
    const e = thrown(() => parseTableMetadata(v2Doc({ 'current-snapshot-id': '42', snapshots: `[${snap(BIG_ID, null, 1)}]` }), where));
    expect(e.code).toBe('INVALID_METADATA');
    expect(e.message).toContain('42');
  });

  it('no schema at all', () => {
    const e = thrown(() => parseTableMetadata(v2Doc({ schemas: '', 'current-schema-id': '' }), where));
    expect(e.code).toBe('INVALID_METADATA');
    expect(e.message).toMatch(/schema/);
  });

  it('a malformed field inside a schema names its path', () => {
    const bad = '[{"type":"struct","schema-id":0,"fields":[{"id":1,"name":"x","type":"int"}]}]';
    const e = thrown(() => parseTableMetadata(v2Doc({ schemas: bad }), where));
    expect(e.code).toBe('INVALID_METADATA');
    expect(e.message).toContain('required');
  });

  it('a snapshot without manifest list or manifests', () => {
    const s = `{"snapshot-id": 5, "sequence-number": 1, "timestamp-ms": 1, "summary": {"operation": "append"}}`;
    const e = thrown(() => parseTableMetadata(v2Doc({ snapshots: `[${s}]` }), where));
    expect(e.code).toBe('INVALID_METADATA');
    expect(e.message).toContain('manifest');
  });
});

describe('lineage', () => {
  // 11 <- 12 <- 13 on main; 11's parent 10 was expired; 99 is a rolled-back sibling of 13.
  const md = parseTableMetadata(v2Doc({
    'current-snapshot-id': '13',
    snapshots: `[${snap('11', '10', 1)}, ${snap('12', '11', 2)}, ${snap('99', '12', 3)}, ${snap('13', '12', 4)}]`,
    'last-sequence-number': '4',
  }), 'v.metadata.json');

  it('walks parents newest first and reports where an expired parent truncates history', () => {
    const { chain, truncatedAt } = lineage(md, 13n);
    expect(chain.map((s) => s.snapshotId)).toEqual([13n, 12n, 11n]);
    expect(truncatedAt).toBe(10n);
  });

  it('a complete lineage reports no truncation', () => {
    const full = parseTableMetadata(v2Doc({ 'current-snapshot-id': '2', snapshots: `[${snap('1', null, 1)}, ${snap('2', '1', 2)}]` }), 'v');
    expect(lineage(full, 2n)).toEqual({ chain: [full.snapshots[1], full.snapshots[0]], truncatedAt: null });
  });

  it('orders main oldest first, then snapshots off main, and passes the truncation on', () => {
    const o = orderedSnapshots(md);
    expect(o.ordered.map((s) => s.snapshotId)).toEqual([11n, 12n, 13n, 99n]);
    expect(o.onMain.has(99n)).toBe(false);
    expect(o.onMain.has(11n)).toBe(true);
    expect(o.truncatedAt).toBe(10n);
  });

  it('an unknown head gives an empty chain', () => {
    expect(lineage(md, 12345n).chain).toEqual([]);
  });
});
