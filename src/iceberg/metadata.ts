import { z } from 'zod';
import { IpsError } from '../errors.js';
import { parseJsonLossless } from './json.js';
import { snapshotIndex, walkLineage } from './lineage.js';
import { indexById, int32Schema, parseSchema, type IndexedField, type NestedField, type Schema } from './types.js';
import { partitionFieldJson, partitionSpecJson, toPartitionFields, type PartitionSpec } from './partition-spec.js';

/** Table metadata (spec "Table Metadata"), format versions 1–3, with 64-bit values as bigint. */
export interface Snapshot {
  snapshotId: bigint;
  parentSnapshotId: bigint | null;
  /** v1 snapshots have none: 0 per spec. */
  sequenceNumber: bigint;
  timestampMs: bigint;
  /** Null only for v1 snapshots that list manifests inline (`manifests`). */
  manifestList: string | null;
  v1Manifests: string[] | null;
  /** `summary.operation`; null when a (v1) writer recorded no summary. */
  operation: string | null;
  summary: Record<string, string>;
  schemaId: number | null;
  firstRowId: bigint | null;
  addedRows: bigint | null;
}

export interface SnapshotRef {
  snapshotId: bigint;
  type: 'branch' | 'tag';
}

export interface SortOrder {
  orderId: number;
  fields: unknown[];
}

export interface TableMetadata {
  formatVersion: 1 | 2 | 3;
  tableUuid: string | null;
  location: string;
  lastSequenceNumber: bigint;
  lastUpdatedMs: bigint;
  lastColumnId: number;
  schemas: Schema[];
  currentSchemaId: number;
  specs: PartitionSpec[];
  defaultSpecId: number;
  lastPartitionId: number | null;
  properties: Record<string, string>;
  currentSnapshotId: bigint | null;
  snapshots: Snapshot[];
  refs: Record<string, SnapshotRef>;
  sortOrders: SortOrder[];
  defaultSortOrderId: number | null;
  nextRowId: bigint | null;
  /** The parsed JSON as read (bigints for integers), for writers that must copy fields through. */
  raw: Record<string, unknown>;
}

const long = z.bigint();
const optLong = z.bigint().optional().nullable();
// Summary values are strings per spec; tolerate numbers from sloppy writers and stringify them.
const summaryJson = z.record(z.string(), z.union([z.string(), z.bigint(), z.number(), z.boolean()]).transform(String));

const snapshotJson = z.object({
  'snapshot-id': long,
  'parent-snapshot-id': optLong,
  'sequence-number': optLong,
  'timestamp-ms': long,
  'manifest-list': z.string().optional().nullable(),
  manifests: z.array(z.string()).optional().nullable(),
  summary: summaryJson.optional().nullable(),
  'schema-id': int32Schema.optional().nullable(),
  'first-row-id': optLong,
  'added-rows': optLong,
}).loose();

const metadataJson = z.object({
  'format-version': z.union([z.literal(1n), z.literal(2n), z.literal(3n)], {
    error: (iss) => (iss.input === undefined ? 'format-version is missing: not Iceberg table metadata'
      : typeof iss.input === 'bigint' && iss.input > 3n ? `format-version ${iss.input} is not supported (ips reads 1, 2 or 3)`
      : 'format-version must be 1, 2 or 3'),
  }),
  'table-uuid': z.string().optional(),
  location: z.string(),
  'last-sequence-number': optLong,
  'last-updated-ms': long,
  'last-column-id': int32Schema,
  schema: z.unknown().optional(),
  schemas: z.array(z.unknown()).optional(),
  'current-schema-id': int32Schema.optional(),
  'partition-spec': z.array(partitionFieldJson).optional(),
  'partition-specs': z.array(partitionSpecJson).optional(),
  'default-spec-id': int32Schema.optional(),
  'last-partition-id': int32Schema.optional(),
  properties: z.record(z.string(), z.union([z.string(), z.bigint(), z.number(), z.boolean()]).transform(String)).optional(),
  'current-snapshot-id': optLong,
  // Checked one by one below (fast path first): a metadata file can hold thousands.
  snapshots: z.array(z.unknown()).optional(),
  refs: z.record(z.string(), z.object({ 'snapshot-id': long, type: z.enum(['branch', 'tag']) }).loose()).optional(),
  'sort-orders': z.array(z.object({ 'order-id': int32Schema, fields: z.array(z.unknown()) }).loose()).optional(),
  'default-sort-order-id': int32Schema.optional(),
  'next-row-id': optLong,
}).loose();

const isLong = (v: unknown): v is bigint => typeof v === 'bigint';
const isOptLong = (v: unknown): v is bigint | null | undefined => v === undefined || v === null || typeof v === 'bigint';
const INT32_MIN = -2147483648n;
const INT32_MAX = 2147483647n;

/**
 * A snapshot that is plainly valid, without zod (which costs ≈ 10 µs a snapshot, and metadata
 * files hold thousands); null when anything is off, and `checkedSnapshot` then says what.
 */
function fastSnapshot(v: unknown): Snapshot | null {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
  const o = v as Record<string, unknown>;
  const id = o['snapshot-id'];
  const parent = o['parent-snapshot-id'];
  const seq = o['sequence-number'];
  const ts = o['timestamp-ms'];
  const list = o['manifest-list'];
  const manifests = o['manifests'];
  const rawSummary = o['summary'];
  const schemaId = o['schema-id'];
  const firstRowId = o['first-row-id'];
  const addedRows = o['added-rows'];
  if (!isLong(id) || !isOptLong(parent) || !isOptLong(seq) || !isLong(ts) || !isOptLong(firstRowId) || !isOptLong(addedRows)) return null;
  if (list !== undefined && list !== null && typeof list !== 'string') return null;
  if (manifests !== undefined && manifests !== null && !(Array.isArray(manifests) && manifests.every((x) => typeof x === 'string'))) return null;
  if (schemaId !== undefined && schemaId !== null && !(typeof schemaId === 'bigint' && schemaId >= INT32_MIN && schemaId <= INT32_MAX)) return null;
  let summary: Record<string, string> = {};
  if (rawSummary !== undefined && rawSummary !== null) {
    if (typeof rawSummary !== 'object' || Array.isArray(rawSummary)) return null;
    summary = {};
    for (const [k, x] of Object.entries(rawSummary as Record<string, unknown>)) {
      if (typeof x === 'string') summary[k] = x;
      else if (typeof x === 'bigint' || typeof x === 'number' || typeof x === 'boolean') summary[k] = String(x);
      else return null;
    }
  }
  return {
    snapshotId: id,
    parentSnapshotId: parent ?? null,
    sequenceNumber: seq ?? 0n,
    timestampMs: ts,
    manifestList: (list as string | null | undefined) ?? null,
    v1Manifests: (manifests as string[] | null | undefined) ?? null,
    operation: summary['operation'] ?? null,
    summary,
    schemaId: schemaId === undefined || schemaId === null ? null : Number(schemaId),
    firstRowId: firstRowId ?? null,
    addedRows: addedRows ?? null,
  };
}

/** A snapshot through zod: its message says what is wrong, with the snapshot's index. */
function checkedSnapshot(v: unknown, i: number, where: string): Snapshot {
  const r = snapshotJson.safeParse(v);
  if (!r.success) {
    invalid(where, 'not valid Iceberg table metadata: ' + r.error.issues.map((x) => `${['snapshots', i, ...x.path].join('.')}: ${x.message}`).join('; '));
  }
  const s = r.data;
  const summary = s.summary ?? {};
  return {
    snapshotId: s['snapshot-id'],
    parentSnapshotId: s['parent-snapshot-id'] ?? null,
    sequenceNumber: s['sequence-number'] ?? 0n,
    timestampMs: s['timestamp-ms'],
    manifestList: s['manifest-list'] ?? null,
    v1Manifests: s.manifests ?? null,
    operation: summary['operation'] ?? null,
    summary,
    schemaId: s['schema-id'] ?? null,
    firstRowId: s['first-row-id'] ?? null,
    addedRows: s['added-rows'] ?? null,
  };
}

function invalid(where: string, msg: string): never {
  throw new IpsError('INVALID_METADATA', `${where}: ${msg}`);
}

export function parseTableMetadata(text: string, where: string): TableMetadata {
  return tableMetadataFromJson(parseJsonLossless(text, where), where);
}

/** From JSON already parsed losslessly (integers as bigint), e.g. a REST catalog response. */
export function tableMetadataFromJson(json: unknown, where: string): TableMetadata {
  const r = metadataJson.safeParse(json);
  if (!r.success) {
    invalid(where, 'not valid Iceberg table metadata: ' + r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; '));
  }
  const m = r.data;
  const formatVersion = Number(m['format-version']) as 1 | 2 | 3;

  let schemas: Schema[];
  let currentSchemaId: number;
  if (m.schemas && m.schemas.length > 0) {
    schemas = m.schemas.map((s, i) => parseSchema(s, `${where}: schemas[${i}]`));
    currentSchemaId = m['current-schema-id'] ?? invalid(where, 'schemas present but current-schema-id missing');
  } else if (m.schema !== undefined) {
    const s = parseSchema(m.schema, `${where}: schema`);
    schemas = [s];
    currentSchemaId = s.schemaId;
  } else {
    return invalid(where, 'no schema: neither "schemas" nor "schema" is present');
  }
  if (!schemas.some((s) => s.schemaId === currentSchemaId)) {
    invalid(where, `current-schema-id ${currentSchemaId} is not among the schemas`);
  }

  let specs: PartitionSpec[];
  let defaultSpecId: number;
  if (m['partition-specs'] && m['partition-specs'].length > 0) {
    specs = m['partition-specs'].map((s) => ({ specId: s['spec-id'], fields: toPartitionFields(s.fields) }));
    defaultSpecId = m['default-spec-id'] ?? specs[specs.length - 1]!.specId;
  } else if (m['partition-spec']) {
    specs = [{ specId: 0, fields: toPartitionFields(m['partition-spec']) }];
    defaultSpecId = 0;
  } else {
    specs = [{ specId: 0, fields: [] }];
    defaultSpecId = 0;
  }

  const rawSnapshots = m.snapshots ?? [];
  const snapshots: Snapshot[] = new Array<Snapshot>(rawSnapshots.length);
  for (let i = 0; i < rawSnapshots.length; i++) snapshots[i] = fastSnapshot(rawSnapshots[i]) ?? checkedSnapshot(rawSnapshots[i], i, where);
  for (const s of snapshots) {
    if (s.manifestList === null && s.v1Manifests === null) {
      invalid(where, `snapshot ${s.snapshotId} has neither manifest-list nor manifests`);
    }
  }

  // Java writes -1 for "no current snapshot" in v1/v2 metadata.
  const cur = m['current-snapshot-id'];
  const currentSnapshotId = cur === undefined || cur === null || cur === -1n ? null : cur;
  if (currentSnapshotId !== null && !snapshots.some((s) => s.snapshotId === currentSnapshotId)) {
    invalid(where, `current-snapshot-id ${currentSnapshotId} is not among the snapshots`);
  }

  const refs: Record<string, SnapshotRef> = {};
  for (const [name, ref] of Object.entries(m.refs ?? {})) refs[name] = { snapshotId: ref['snapshot-id'], type: ref.type };
  // Older metadata has no refs: main is implied by the current snapshot.
  if (refs['main'] === undefined && currentSnapshotId !== null) refs['main'] = { snapshotId: currentSnapshotId, type: 'branch' };

  return {
    formatVersion,
    tableUuid: m['table-uuid'] ?? null,
    location: m.location,
    lastSequenceNumber: m['last-sequence-number'] ?? 0n,
    lastUpdatedMs: m['last-updated-ms'],
    lastColumnId: m['last-column-id'],
    schemas,
    currentSchemaId,
    specs,
    defaultSpecId,
    lastPartitionId: m['last-partition-id'] ?? null,
    properties: m.properties ?? {},
    currentSnapshotId,
    snapshots,
    refs,
    sortOrders: (m['sort-orders'] ?? []).map((o) => ({ orderId: o['order-id'], fields: o.fields })),
    defaultSortOrderId: m['default-sort-order-id'] ?? null,
    nextRowId: m['next-row-id'] ?? null,
    raw: json as Record<string, unknown>,
  };
}

export function currentSchema(md: TableMetadata): Schema {
  return md.schemas.find((s) => s.schemaId === md.currentSchemaId)!;
}

export function schemaById(md: TableMetadata, id: number | null): Schema {
  if (id === null) return currentSchema(md);
  return md.schemas.find((s) => s.schemaId === id) ?? currentSchema(md);
}

export function specById(md: TableMetadata, specId: number): PartitionSpec {
  const spec = md.specs.find((s) => s.specId === specId);
  if (!spec) throw new IpsError('INVALID_METADATA', `partition spec ${specId} is referenced but not defined in table metadata`);
  return spec;
}

export function snapshotById(md: TableMetadata, id: bigint): Snapshot | undefined {
  return md.snapshots.find((s) => s.snapshotId === id);
}

/**
 * Ancestors of `head` (inclusive), newest first, following `parent-snapshot-id`. Stops where
 * the parent is missing (expired) and reports that, because a silent stop looks like a full
 * history.
 */
export function lineage(md: TableMetadata, head: bigint): { chain: Snapshot[]; truncatedAt: bigint | null } {
  const chain: Snapshot[] = [];
  for (const step of walkLineage(snapshotIndex(md.snapshots), head)) {
    chain.push(step.snapshot);
    if (step.parentId !== null && !step.parent) return { chain, truncatedAt: step.parentId };
  }
  return { chain, truncatedAt: null };
}

/**
 * The type of field `id`: from the current schema, else from the newest older schema that has
 * it (dropped columns keep their ids, and old files still carry their bounds).
 */
export function fieldById(md: TableMetadata, id: number): NestedField | undefined {
  const cur = indexCache(currentSchema(md)).get(id);
  if (cur) return cur.field;
  for (const s of [...md.schemas].reverse()) {
    const f = indexCache(s).get(id);
    if (f) return f.field;
  }
  return RESERVED_FIELDS.get(id);
}

/**
 * Reserved metadata columns (spec "Reserved Field IDs") that carry bounds in manifests: row
 * lineage columns in v3 data files, and the `file_path`/`pos` columns of position delete files.
 */
const RESERVED_FIELDS = new Map<number, NestedField>([
  [2147483546, { id: 2147483546, name: 'file_path', required: true, type: { kind: 'string' } }],
  [2147483545, { id: 2147483545, name: 'pos', required: true, type: { kind: 'long' } }],
  [2147483540, { id: 2147483540, name: '_row_id', required: false, type: { kind: 'long' } }],
  [2147483539, { id: 2147483539, name: '_last_updated_sequence_number', required: false, type: { kind: 'long' } }],
]);

const indexes = new WeakMap<Schema, Map<number, IndexedField>>();
function indexCache(s: Schema): Map<number, IndexedField> {
  let ix = indexes.get(s);
  if (!ix) {
    ix = indexById(s.struct);
    indexes.set(s, ix);
  }
  return ix;
}
