import { readAvroContainer, type AvroReadOptions } from './avro.js';
import { AvroDecodeError, compiledSchema, readVarNum, truncated, type Cursor, type RecordNode, type TypeNode } from './avro-decoder.js';
import { fieldsById, optionalField, requireField, unwrapRecord } from './avro-fields.js';
import { IpsError } from '../errors.js';

/** One row of a manifest list (spec "Manifest Lists"), resolved by field id. */
export interface ManifestFile {
  path: string;
  length: bigint;
  partitionSpecId: number;
  /** 0 = data, 1 = deletes. */
  content: 0 | 1;
  /** v1 has none: 0. */
  sequenceNumber: bigint;
  minSequenceNumber: bigint;
  /** Null only for v1 snapshots that list manifests inline (no manifest list). */
  addedSnapshotId: bigint | null;
  /** Null means unknown: the spec says to assume non-zero. */
  addedFilesCount: number | null;
  existingFilesCount: number | null;
  deletedFilesCount: number | null;
  addedRowsCount: bigint | null;
  existingRowsCount: bigint | null;
  deletedRowsCount: bigint | null;
  partitions: FieldSummary[] | null;
  keyMetadata: Buffer | null;
  firstRowId: bigint | null;
}

export interface FieldSummary {
  containsNull: boolean;
  containsNan: boolean | null;
  lowerBound: Buffer | null;
  upperBound: Buffer | null;
}

export interface ManifestList {
  /** Avro header metadata (`snapshot-id`, `parent-snapshot-id`, `sequence-number`, `format-version`, …). */
  meta: Map<string, string>;
  manifests: ManifestFile[];
  /** Records left out by `addedBy` (ManifestListReadOptions), not decoded. */
  filtered?: number;
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const big = (v: unknown): bigint | null => (v === null || v === undefined ? null : BigInt(v as bigint));

export interface ManifestListReadOptions extends AvroReadOptions {
  /**
   * Decode the partition field summaries (default true). A plan that only needs each manifest's
   * path, snapshot and counts skips them in the bytes: they are most of a list record's cost.
   */
  partitions?: boolean;
  /**
   * Keep only the manifests this snapshot added (`added_snapshot_id`): the others are walked
   * over in the bytes, never decoded. Change planning reads one snapshot's own manifests out of
   * a list that names every live manifest of the table (a 1,900-snapshot range reads ~2 million
   * list records to keep 1,900), so the comparison is made on the encoded long itself.
   */
  addedBy?: bigint;
}

/** Field ids of `added_snapshot_id` and `partitions` (the field summaries) in a manifest list record. */
const ADDED_SNAPSHOT_ID = 503;
const PARTITIONS_ID = 507;

/** A record left out by `addedBy`. */
const FILTERED = Symbol('filtered');

/**
 * Whether the Avro long at the cursor, whose zigzag encoding is `lo`/`hi` (unsigned 32-bit halves),
 * equals the one wanted; consumes it. Exact for every 64-bit value without a BigInt: the varint is
 * taken apart into the same two halves, whatever its length (a padded encoding compares equal).
 */
export function longMatches(c: Cursor, lo: number, hi: number): boolean {
  const buf = c.buf;
  let pos = c.pos;
  let l = 0;
  let h = 0;
  for (let shift = 0; ; shift += 7) {
    if (pos >= c.end) throw truncated();
    if (shift >= 70) throw new AvroDecodeError('varint longer than 10 bytes');
    const b = buf[pos++]!;
    const v = b & 0x7f;
    if (shift < 28) l |= v << shift;
    else if (shift === 28) {
      l |= (v & 0x0f) << 28;
      h |= v >>> 4;
    } else if (shift < 63) h |= v << (shift - 32);
    else h |= (v & 1) << 31; // bits past the 64th are not part of a long
    if (b < 0x80) break;
  }
  c.pos = pos;
  return (l >>> 0) === lo && (h >>> 0) === hi;
}

/** The zigzag encoding of a 64-bit long as unsigned 32-bit halves (for longMatches). */
export function zigzagHalves(v: bigint): { lo: number; hi: number } {
  const z = BigInt.asUintN(64, (v << 1n) ^ (v >> 63n));
  return { lo: Number(z & 0xffffffffn), hi: Number(z >> 32n) };
}

/**
 * Records of the list as generic objects by field name, with `partitions` skipped (left out)
 * when not wanted: the root record's fields are read or skipped one by one. With `addedBy`, a
 * record whose added_snapshot_id differs is walked over and comes back as FILTERED; one that may
 * match (the id equal, or null, which the decoding below then judges) is read from its start.
 */
function listRecordReader(schema: Parameters<typeof compiledSchema>[1], text: string, partitions: boolean, addedBy: bigint | undefined): (c: Cursor) => unknown {
  const root = compiledSchema(text, schema);
  if (root.kind !== 'record') return root.read;
  const fields = (root as RecordNode).fields;
  const read = partitions ? root.read : (c: Cursor): unknown => {
    const out: Record<string, unknown> = {};
    for (const f of fields) {
      if (f.fieldId === PARTITIONS_ID) f.type.skip(c);
      else out[f.name] = f.type.read(c);
    }
    return out;
  };
  const at = fields.findIndex((f) => f.fieldId === ADDED_SNAPSHOT_ID);
  if (addedBy === undefined || at < 0) return read;
  const idType: TypeNode = fields[at]!.type;
  // A long, or a union of null and a long (the null branch is kept for the decoding to judge).
  const branches = idType.kind === 'union' ? idType.branches : null;
  if (branches ? !branches.every((b) => b.kind === 'null' || b.kind === 'long') : idType.kind !== 'long') return read;
  const { lo, hi } = zigzagHalves(addedBy);
  const before = fields.slice(0, at).map((f) => f.type.skip);
  const after = fields.slice(at + 1).map((f) => f.type.skip);
  return (c) => {
    const start = c.pos;
    for (const skip of before) skip(c);
    let keep: boolean;
    if (branches) {
      const i = readVarNum(c);
      const b = branches[i];
      if (b === undefined || i < 0) throw new AvroDecodeError(`union index ${i} out of range`);
      keep = b.kind === 'null' || longMatches(c, lo, hi);
    } else {
      keep = longMatches(c, lo, hi);
    }
    if (keep) {
      c.pos = start;
      return read(c);
    }
    for (const skip of after) skip(c);
    return FILTERED;
  };
}

export function decodeManifestList(buf: Buffer, where: string, options: ManifestListReadOptions = {}): ManifestList {
  const wantPartitions = options.partitions ?? true;
  const file = readAvroContainer<unknown>(buf, where, (schema, text) => listRecordReader(schema, text, wantPartitions, options.addedBy), options);
  const rec = unwrapRecord(file.schema, where);
  if (!rec) throw new IpsError('INVALID_MANIFEST_LIST', `${where}: root schema is not a record`);
  const ids = fieldsById(rec);
  const f = {
    path: requireField(ids, 500, 'manifest_path', where),
    length: requireField(ids, 501, 'manifest_length', where),
    specId: requireField(ids, 502, 'partition_spec_id', where),
    snapshot: requireField(ids, 503, 'added_snapshot_id', where),
    content: optionalField(ids, 517),
    seq: optionalField(ids, 515),
    minSeq: optionalField(ids, 516),
    addedFiles: optionalField(ids, 504),
    existingFiles: optionalField(ids, 505),
    deletedFiles: optionalField(ids, 506),
    addedRows: optionalField(ids, 512),
    existingRows: optionalField(ids, 513),
    deletedRows: optionalField(ids, 514),
    partitions: optionalField(ids, 507),
    keyMetadata: optionalField(ids, 519),
    firstRowId: optionalField(ids, 520),
  };
  // Field summaries are records inside a list; resolve their names by id too.
  let sf: { containsNull: string; containsNan: string | null; lower: string | null; upper: string | null } | null = null;
  if (f.partitions) {
    const listType = ids.get(507)!.type;
    const arr = (Array.isArray(listType) ? listType.find((b) => typeof b === 'object' && b !== null && !Array.isArray(b)) : listType) as { items?: unknown } | undefined;
    const summary = unwrapRecord(arr?.items as never, where);
    if (summary) {
      const sids = fieldsById(summary);
      sf = {
        containsNull: requireField(sids, 509, 'contains_null', where),
        containsNan: optionalField(sids, 518),
        lower: optionalField(sids, 510),
        upper: optionalField(sids, 511),
      };
    }
  }
  let filtered = 0;
  const manifests: ManifestFile[] = [];
  file.records.forEach((r0, i) => {
    if (r0 === FILTERED) {
      filtered++;
      return;
    }
    const r = r0 as Record<string, unknown>;
    const path = r[f.path];
    if (typeof path !== 'string' || path === '') throw new IpsError('INVALID_MANIFEST_LIST', `${where}: entry ${i} has an empty manifest_path`);
    const content = f.content ? Number(r[f.content] ?? 0) : 0;
    if (content !== 0 && content !== 1) throw new IpsError('INVALID_MANIFEST_LIST', `${where}: entry ${i} has content ${content} (0 data, 1 deletes)`);
    const rawParts = f.partitions ? ((r[f.partitions] as Record<string, unknown>[] | null | undefined) ?? null) : null;
    const seq = f.seq ? big(r[f.seq]) ?? 0n : 0n;
    manifests.push({
      path,
      length: BigInt(r[f.length] as bigint),
      partitionSpecId: Number(r[f.specId]),
      content,
      sequenceNumber: seq,
      minSequenceNumber: f.minSeq ? big(r[f.minSeq]) ?? seq : seq,
      addedSnapshotId: BigInt(r[f.snapshot] as bigint),
      addedFilesCount: f.addedFiles ? num(r[f.addedFiles]) : null,
      existingFilesCount: f.existingFiles ? num(r[f.existingFiles]) : null,
      deletedFilesCount: f.deletedFiles ? num(r[f.deletedFiles]) : null,
      addedRowsCount: f.addedRows ? big(r[f.addedRows]) : null,
      existingRowsCount: f.existingRows ? big(r[f.existingRows]) : null,
      deletedRowsCount: f.deletedRows ? big(r[f.deletedRows]) : null,
      partitions: rawParts && sf
        ? rawParts.map((p) => ({
            containsNull: Boolean(p[sf!.containsNull]),
            containsNan: sf!.containsNan ? ((p[sf!.containsNan] as boolean | null) ?? null) : null,
            lowerBound: sf!.lower ? ((p[sf!.lower] as Buffer | null) ?? null) : null,
            upperBound: sf!.upper ? ((p[sf!.upper] as Buffer | null) ?? null) : null,
          }))
        : null,
      keyMetadata: f.keyMetadata ? ((r[f.keyMetadata] as Buffer | null) ?? null) : null,
      firstRowId: f.firstRowId ? big(r[f.firstRowId]) : null,
    });
  });
  return { meta: file.meta, manifests, ...(options.addedBy !== undefined ? { filtered } : {}) };
}
