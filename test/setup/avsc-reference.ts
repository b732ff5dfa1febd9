// A second implementation of Avro container and manifest reading, for tests that check the
// compiled decoder (src/iceberg/avro-decoder.ts, manifest.ts) against it: framing with avsc's own
// header type, blocks inflated with zlib.inflateRawSync (not src/iceberg/inflate.ts), records
// decoded by avsc (longs as bigint), and manifest entries mapped by field id the way ips did before
// the compiled decoder (generic records → ManifestEntry). Deflate and null codecs only.
import zlib from 'node:zlib';
import { avroType } from '../../src/iceberg/avro.js';
import { fieldsById, optionalField, readIntKeyedMap, requireField, unwrapRecord } from '../../src/iceberg/avro-fields.js';
import type { DataFile, ManifestEntry } from '../../src/iceberg/manifest.js';
import type { ManifestFile } from '../../src/iceberg/manifest-list.js';
import { PackedBounds, PackedCounts } from '../../src/iceberg/packed-stats.js';
import avro from 'avsc';

const HEADER = avro.Type.forSchema({
  type: 'record', name: 'org.apache.avro.file.Header',
  fields: [
    { name: 'magic', type: { type: 'fixed', name: 'Magic', size: 4 } },
    { name: 'meta', type: { type: 'map', values: 'bytes' } },
    { name: 'sync', type: { type: 'fixed', name: 'Sync', size: 16 } },
  ],
});
const LONG = avro.Type.forSchema('long');

export interface AvscFile {
  meta: Map<string, string>;
  schema: Record<string, unknown>;
  records: Record<string, unknown>[];
}

export function readWithAvsc(buf: Buffer): AvscFile {
  const { value: h, offset } = HEADER.decode(buf, 0) as { value: { meta: Record<string, Buffer>; sync: Buffer }; offset: number };
  const meta = new Map(Object.entries(h.meta).map(([k, v]) => [k, v.toString('utf8')]));
  const codec = meta.get('avro.codec') ?? 'null';
  if (codec !== 'null' && codec !== 'deflate') throw new Error(`reference reader: codec ${codec} not supported`);
  const schemaText = meta.get('avro.schema')!;
  const type = avroType(schemaText);
  const records: Record<string, unknown>[] = [];
  let pos = offset;
  while (pos < buf.length) {
    const count = LONG.decode(buf, pos);
    const size = LONG.decode(buf, count.offset);
    const start = size.offset;
    const end = start + (size.value as number);
    if (!buf.subarray(end, end + 16).equals(h.sync)) throw new Error('reference reader: sync marker mismatch');
    const raw = buf.subarray(start, end);
    const block = codec === 'deflate' ? zlib.inflateRawSync(raw) : raw;
    let p = 0;
    for (let i = 0; i < (count.value as number); i++) {
      const r = type.decode(block, p);
      if (r.offset < 0) throw new Error('reference reader: truncated record');
      records.push(r.value as Record<string, unknown>);
      p = r.offset;
    }
    if (p !== block.length) throw new Error('reference reader: bytes left over in a block');
    pos = end + 16;
  }
  return { meta, schema: JSON.parse(schemaText) as Record<string, unknown>, records };
}

/** A generic value as plain data to compare: bigint → "123n", Buffer → "hex:…", records/maps → sorted plain objects. */
export function plain(v: unknown): unknown {
  if (typeof v === 'bigint') return `${v}n`;
  if (Buffer.isBuffer(v)) return `hex:${v.toString('hex')}`;
  // Maps, and the read-only stats views of decoded manifests (packed-stats.ts), by their entries.
  if (v instanceof Map || v instanceof PackedCounts || v instanceof PackedBounds) return plain(Object.fromEntries([...v].map(([k, x]) => [String(k), x as unknown])));
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return Object.fromEntries(Object.keys(o).sort().map((k) => [k, plain(o[k])]));
  }
  return v;
}

// ---- manifest entries, mapped by field id from avsc's records (ips's mapping before the compiled decoder) ----

const big = (v: unknown): bigint | null => (v === null || v === undefined ? null : BigInt(v as bigint));
const opt = <T>(d: Record<string, unknown>, name: string | null): T | null => (name === null ? null : ((d[name] as T | undefined) ?? null));

function mapField(ids: Map<number, { name: string; type: unknown }>, id: number): { field: string; key: string; value: string } | null {
  const f = ids.get(id);
  if (!f) return null;
  const branch = Array.isArray(f.type) ? (f.type as unknown[]).find((b) => typeof b === 'object' && b !== null) : f.type;
  const pair = unwrapRecord((branch as { items?: never } | undefined)?.items, 'ref');
  return { field: f.name, key: pair?.fields[0]?.name ?? 'key', value: pair?.fields[1]?.name ?? 'value' };
}

function readMap<V>(d: Record<string, unknown>, m: { field: string; key: string; value: string } | null): Map<number, V> | null {
  if (m === null) return null;
  const raw = d[m.field];
  if (raw === null || raw === undefined) return null;
  if (!Array.isArray(raw)) return readIntKeyedMap<V>(raw);
  const out = new Map<number, V>();
  for (const kv of raw as Record<string, unknown>[]) out.set(kv[m.key] as number, kv[m.value] as V);
  return out;
}

export function referenceManifestEntries(buf: Buffer, manifest: ManifestFile): ManifestEntry[] {
  const file = readWithAvsc(buf);
  const rec = unwrapRecord(file.schema as never, 'ref')!;
  const ids = fieldsById(rec);
  const d = fieldsById(unwrapRecord(ids.get(2)!.type, 'ref')!);
  const partRec = unwrapRecord(d.get(102)?.type, 'ref');
  const specText = file.meta.get('partition-spec');
  const specFields = specText ? (JSON.parse(specText) as { fields?: { 'field-id': number }[] } | { 'field-id': number }[]) : null;
  const specIds = specFields ? (Array.isArray(specFields) ? specFields : specFields.fields ?? []).map((f) => Number(f['field-id'])) : [];
  const partition = (partRec?.fields ?? []).map((f, i) => [f.name, f['field-id'] === undefined ? specIds[i] ?? 1000 + i : Number(f['field-id'])] as const);
  const isV1Seq = manifest.sequenceNumber === 0n;
  let nextRowId = manifest.content === 0 ? manifest.firstRowId : null;
  const n = (id: number): string | null => optionalField(d, id);
  return file.records.map((r): ManifestEntry => {
    const df = r[requireField(ids, 2, 'data_file', 'ref')] as Record<string, unknown>;
    const status = Number(r[requireField(ids, 0, 'status', 'ref')]) as 0 | 1 | 2;
    const partRaw = (n(102) ? (df[n(102)!] as Record<string, unknown> | null) : null) ?? {};
    const sortOrderId = opt<number>(df, n(140));
    const dataFile: DataFile = {
      content: (n(134) ? Number(df[n(134)!] ?? 0) : 0) as 0 | 1 | 2,
      filePath: df[n(100)!] as string,
      fileFormat: String(df[n(101)!]).toLowerCase(),
      partition: new Map(partition.map(([name, id]) => [id, partRaw[name] ?? null])),
      recordCount: BigInt(df[n(103)!] as bigint),
      fileSizeInBytes: BigInt(df[n(104)!] as bigint),
      columnSizes: readMap(df, mapField(d, 108)),
      valueCounts: readMap(df, mapField(d, 109)),
      nullValueCounts: readMap(df, mapField(d, 110)),
      nanValueCounts: readMap(df, mapField(d, 137)),
      lowerBounds: readMap(df, mapField(d, 125)),
      upperBounds: readMap(df, mapField(d, 128)),
      keyMetadata: opt<Buffer>(df, n(131)),
      splitOffsets: opt<bigint[]>(df, n(132)),
      equalityIds: opt<number[]>(df, n(135))?.map(Number) ?? null,
      sortOrderId: sortOrderId === null ? null : Number(sortOrderId),
      firstRowId: big(opt(df, n(142))),
      referencedDataFile: opt<string>(df, n(143)),
      contentOffset: big(opt(df, n(144))),
      contentSizeInBytes: big(opt(df, n(145))),
    };
    const inherits = status === 1 || isV1Seq;
    const seq = optionalField(ids, 3) ? big(r[optionalField(ids, 3)!]) : null;
    const fileSeq = optionalField(ids, 4) ? big(r[optionalField(ids, 4)!]) : null;
    if (nextRowId !== null && status !== 2 && dataFile.firstRowId === null) {
      dataFile.firstRowId = nextRowId;
      nextRowId += dataFile.recordCount;
    }
    return {
      status,
      snapshotId: (optionalField(ids, 1) ? big(r[optionalField(ids, 1)!]) : null) ?? manifest.addedSnapshotId!,
      sequenceNumber: seq ?? (inherits ? manifest.sequenceNumber : null),
      fileSequenceNumber: fileSeq ?? (inherits ? manifest.sequenceNumber : null),
      dataFile,
    };
  });
}
