import { readAvroContainer, type AvroReadOptions } from './avro.js';
import { compiledSchema, type Cursor, type RecordNode } from './avro-decoder.js';
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
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const big = (v: unknown): bigint | null => (v === null || v === undefined ? null : BigInt(v as bigint));

export interface ManifestListReadOptions extends AvroReadOptions {
  /**
   * Decode the partition field summaries (default true). A plan that only needs each manifest's
   * path, snapshot and counts skips them in the bytes: they are most of a list record's cost.
   */
  partitions?: boolean;
}

/** Field id of `partitions` (the field summaries) in a manifest list record. */
const PARTITIONS_ID = 507;

/**
 * Records of the list as generic objects by field name, with `partitions` skipped (left out)
 * when not wanted: the root record's fields are read or skipped one by one.
 */
function listRecordReader(schema: Parameters<typeof compiledSchema>[1], text: string, partitions: boolean): (c: Cursor) => unknown {
  const root = compiledSchema(text, schema);
  if (partitions || root.kind !== 'record') return root.read;
  const fields = (root as RecordNode).fields;
  return (c) => {
    const out: Record<string, unknown> = {};
    for (const f of fields) {
      if (f.fieldId === PARTITIONS_ID) f.type.skip(c);
      else out[f.name] = f.type.read(c);
    }
    return out;
  };
}

export function decodeManifestList(buf: Buffer, where: string, options: ManifestListReadOptions = {}): ManifestList {
  const wantPartitions = options.partitions ?? true;
  const file = readAvroContainer<unknown>(buf, where, (schema, text) => listRecordReader(schema, text, wantPartitions), options);
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
  const manifests = file.records.map((r0, i): ManifestFile => {
    const r = r0 as Record<string, unknown>;
    const path = r[f.path];
    if (typeof path !== 'string' || path === '') throw new IpsError('INVALID_MANIFEST_LIST', `${where}: entry ${i} has an empty manifest_path`);
    const content = f.content ? Number(r[f.content] ?? 0) : 0;
    if (content !== 0 && content !== 1) throw new IpsError('INVALID_MANIFEST_LIST', `${where}: entry ${i} has content ${content} (0 data, 1 deletes)`);
    const rawParts = f.partitions ? ((r[f.partitions] as Record<string, unknown>[] | null | undefined) ?? null) : null;
    const seq = f.seq ? big(r[f.seq]) ?? 0n : 0n;
    return {
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
    };
  });
  return { meta: file.meta, manifests };
}
