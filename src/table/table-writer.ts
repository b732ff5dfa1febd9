import crypto from 'node:crypto';
import { IpsError } from '../errors.js';
import { joinLocation, type FileIO } from '../io/file-io.js';
import type { WritableCatalog } from '../catalog/table-catalog.js';
import { readMetadataFile, type LoadedTable, type MetadataCache } from '../catalog/table.js';
import { ManifestReader } from '../capture/manifest-reader.js';
import { newSnapshotId } from '../capture/icdc-table.js';
import { stringifyJsonLossless } from '../iceberg/json.js';
import { EntryStatus, type DataFile } from '../iceberg/manifest.js';
import type { ManifestFile } from '../iceberg/manifest-list.js';
import { writeManifest, writeManifestList, type EntryToWrite } from '../iceberg/manifest-writer.js';
import { parseTableMetadata, snapshotById, specById, type TableMetadata } from '../iceberg/metadata.js';
import type { PartitionSpec } from '../iceberg/partition-spec.js';
import { bindSpec, partitionValueFromAvro } from '../iceberg/partition-values.js';
import { parseTransform, resultType } from '../iceberg/transforms.js';
import { parsePrimitive } from '../iceberg/types.js';
import { compareValues, toJsonValue } from '../iceberg/values.js';

/**
 * ips's Iceberg table writer (format v2): create a table, then commit snapshots that add data
 * files and remove live ones, the way Iceberg Java's MergingSnapshotProducer does. New files go
 * into one new manifest whose entries inherit snapshot id and sequence numbers; the manifests
 * that hold a removed file are rewritten, with the file DELETED and the others EXISTING (both
 * with their sequence numbers and snapshot ids written out), their entries of one spec merged
 * (Java's manifest merging combines small manifests the same way) and clustered by partition
 * into manifests of at most REWRITE_MAX_ENTRIES; every other manifest is carried over as is.
 * Commits are compare-and-set on the catalog.
 */
export interface NewTableSpec {
  identifier: string;
  schema: { fields: { id: number; name: string; type: string; required: boolean }[] };
  partitionFields: { name: string; transform: string; sourceId: number; fieldId: number }[];
  properties?: Record<string, string>;
}

export interface TableUpdate {
  operation: 'append' | 'overwrite' | 'delete';
  add: DataFile[];
  removePaths: string[];
  /** Extra snapshot summary properties (the computed ones and `operation` take precedence). */
  summary?: Record<string, string>;
}

export interface CommitResult {
  metadataLocation: string;
  snapshotId: bigint;
  sequenceNumber: bigint;
  metadata: TableMetadata;
}

function invalid(msg: string): never {
  throw new IpsError('INVALID_ARGUMENT', msg);
}

function validateNewTable(spec: NewTableSpec): void {
  const ids = new Set<number>();
  const names = new Set<string>();
  if (spec.schema.fields.length === 0) invalid(`table ${spec.identifier}: the schema has no fields`);
  for (const f of spec.schema.fields) {
    if (!Number.isInteger(f.id) || f.id <= 0) invalid(`table ${spec.identifier}: field "${f.name}" has id ${f.id}; field ids are positive integers`);
    if (ids.has(f.id)) invalid(`table ${spec.identifier}: field id ${f.id} is used twice`);
    if (names.has(f.name)) invalid(`table ${spec.identifier}: field name "${f.name}" is used twice`);
    ids.add(f.id);
    names.add(f.name);
    if (parsePrimitive(f.type).kind === 'other') invalid(`table ${spec.identifier}: field "${f.name}" has type "${f.type}"; use a primitive Iceberg type (int, long, date, string, …)`);
  }
  const pIds = new Set<number>();
  const pNames = new Set<string>();
  for (const pf of spec.partitionFields) {
    const src = spec.schema.fields.find((f) => f.id === pf.sourceId);
    if (!src) invalid(`table ${spec.identifier}: partition field "${pf.name}" has source id ${pf.sourceId}, which is not a schema field`);
    if (!Number.isInteger(pf.fieldId) || pf.fieldId < 1000) invalid(`table ${spec.identifier}: partition field "${pf.name}" has field id ${pf.fieldId}; partition field ids start at 1000`);
    if (pIds.has(pf.fieldId) || pNames.has(pf.name)) invalid(`table ${spec.identifier}: partition field "${pf.name}" (id ${pf.fieldId}) is defined twice`);
    pIds.add(pf.fieldId);
    pNames.add(pf.name);
    const t = parseTransform(pf.transform);
    if (t.kind === 'unknown') invalid(`table ${spec.identifier}: partition field "${pf.name}" has unknown transform "${pf.transform}"`);
    const srcType = parsePrimitive(src.type);
    const ok = t.kind === 'identity' || t.kind === 'void'
      || (t.kind === 'bucket' && !['boolean', 'float', 'double'].includes(srcType.kind))
      || (t.kind === 'truncate' && ['int', 'long', 'decimal', 'string', 'binary'].includes(srcType.kind))
      || ((t.kind === 'year' || t.kind === 'month' || t.kind === 'day') && ['date', 'timestamp', 'timestamptz', 'timestamp_ns', 'timestamptz_ns'].includes(srcType.kind))
      || (t.kind === 'hour' && ['timestamp', 'timestamptz', 'timestamp_ns', 'timestamptz_ns'].includes(srcType.kind));
    if (!ok) invalid(`table ${spec.identifier}: transform ${pf.transform} does not apply to field "${src.name}" of type ${src.type}`);
    resultType(t, srcType);
    if (names.has(pf.name) && !(t.kind === 'identity' && src.name === pf.name)) {
      invalid(`table ${spec.identifier}: partition field "${pf.name}" has the name of a schema field; only an identity partition of that same field may`);
    }
  }
}

/** Creates a v2 table with no snapshot; fails if the identifier already names a table. */
export async function createTable(cat: WritableCatalog, io: FileIO, spec: NewTableSpec): Promise<LoadedTable> {
  validateNewTable(spec);
  const existing = await cat.currentMetadataLocation(spec.identifier);
  if (existing !== null) throw new IpsError('TABLE_EXISTS', `table ${spec.identifier} already exists (${existing})`);
  const now = BigInt(Date.now());
  const metadata = {
    'format-version': 2,
    'table-uuid': crypto.randomUUID(),
    location: cat.tableLocation(spec.identifier).replace(/\/+$/, ''),
    'last-sequence-number': 0n,
    'last-updated-ms': now,
    'last-column-id': Math.max(...spec.schema.fields.map((f) => f.id)),
    'current-schema-id': 0,
    schemas: [{
      type: 'struct',
      'schema-id': 0,
      fields: spec.schema.fields.map((f) => ({ id: f.id, name: f.name, required: f.required, type: f.type })),
    }],
    'default-spec-id': 0,
    'partition-specs': [{
      'spec-id': 0,
      fields: spec.partitionFields.map((pf) => ({ name: pf.name, transform: pf.transform, 'source-id': pf.sourceId, 'field-id': pf.fieldId })),
    }],
    // Unpartitioned: 999, as Java's PartitionSpec.unpartitioned().lastAssignedFieldId().
    'last-partition-id': Math.max(999, ...spec.partitionFields.map((pf) => pf.fieldId)),
    'default-sort-order-id': 0,
    'sort-orders': [{ 'order-id': 0, fields: [] }],
    properties: { ...spec.properties },
    'current-snapshot-id': -1n, // Java's "no current snapshot" in v1/v2
    refs: {},
    snapshots: [],
    statistics: [],
    'partition-statistics': [],
    'snapshot-log': [],
    'metadata-log': [],
  };
  const text = stringifyJsonLossless(metadata, 2);
  const md = parseTableMetadata(text, `metadata of new table ${spec.identifier}`);
  const metadataLocation = await cat.commit(spec.identifier, text, null);
  void io;
  return { name: spec.identifier, metadataLocation, metadata: md };
}

function rawList(md: TableMetadata, key: string): Record<string, unknown>[] {
  const v = md.raw[key];
  return Array.isArray(v) ? (v as Record<string, unknown>[]) : [];
}

function specFieldsJson(spec: PartitionSpec): string {
  return JSON.stringify(spec.fields.map((pf) => ({ name: pf.name, transform: pf.transform, 'source-id': pf.sourceId, 'field-id': pf.fieldId })));
}

/** Key of a file's partition (spec id + tuple), for changed-partition-count. */
function partitionKey(md: TableMetadata, specId: number, df: DataFile): string {
  const bound = bindSpec(md, specById(md, specId));
  return JSON.stringify([specId, ...bound.map((pf) => toJsonValue(pf.resultType, partitionValueFromAvro(pf.resultType, df.partition.get(pf.field.fieldId))))]);
}

const sumOf = (files: DataFile[], pick: (f: DataFile) => bigint): bigint => files.reduce((n, f) => n + pick(f), 0n);

/**
 * Entries of one rewritten manifest, at most. Merged into one manifest, the rewritten entries
 * of a copy-on-write table grow to every live file it has, and each commit that removes a file
 * rewrites them all (the demo's daily MERGE: 6 files replaced, 360 entries rewritten). Sorted by
 * partition and cut into manifests of this size, a commit rewrites the few that hold the
 * partitions it changes, and a scan skips the others by their partition summaries.
 */
export const REWRITE_MAX_ENTRIES = 64;

/** `entries` (of one spec) sorted by partition tuple and cut into balanced runs of at most REWRITE_MAX_ENTRIES. */
function clusterByPartition(md: TableMetadata, specId: number, entries: EntryToWrite[]): EntryToWrite[][] {
  if (entries.length <= REWRITE_MAX_ENTRIES) return [entries];
  const bound = bindSpec(md, specById(md, specId));
  const keyed = entries.map((e) => ({
    e, values: bound.map((pf) => partitionValueFromAvro(pf.resultType, e.dataFile.partition.get(pf.field.fieldId))),
  }));
  const compare = (a: (typeof keyed)[number], b: (typeof keyed)[number]): number => {
    for (let i = 0; i < bound.length; i++) {
      const x = a.values[i] ?? null;
      const y = b.values[i] ?? null;
      if (x === null || y === null) {
        if (x !== y) return x === null ? -1 : 1; // nulls first
        continue;
      }
      const type = bound[i]!.resultType;
      const c = type.kind === 'other' ? 0 : compareValues(type, x, y);
      if (c !== 0) return c;
    }
    return a.e.dataFile.filePath < b.e.dataFile.filePath ? -1 : a.e.dataFile.filePath > b.e.dataFile.filePath ? 1 : 0;
  };
  keyed.sort(compare);
  const runs = Math.ceil(keyed.length / REWRITE_MAX_ENTRIES);
  const size = Math.ceil(keyed.length / runs);
  const out: EntryToWrite[][] = [];
  for (let i = 0; i < keyed.length; i += size) out.push(keyed.slice(i, i + size).map((k) => k.e));
  return out;
}

/**
 * Java SnapshotSummary: added/deleted counters only when non-zero, changed-partition-count,
 * and totals carried from the parent's summary (a first snapshot starts at 0; a parent without
 * a total means the total is unknown and is left out).
 */
function snapshotSummary(parent: Record<string, string> | null, added: DataFile[], removed: DataFile[], changedPartitions: number): Record<string, string> {
  const s: Record<string, string> = {};
  const setIf = (k: string, v: bigint): void => {
    if (v > 0n) s[k] = v.toString();
  };
  setIf('added-data-files', BigInt(added.length));
  setIf('deleted-data-files', BigInt(removed.length));
  setIf('added-records', sumOf(added, (f) => f.recordCount));
  setIf('deleted-records', sumOf(removed, (f) => f.recordCount));
  setIf('added-files-size', sumOf(added, (f) => f.fileSizeInBytes));
  setIf('removed-files-size', sumOf(removed, (f) => f.fileSizeInBytes));
  s['changed-partition-count'] = String(changedPartitions);
  const prev = parent ?? {
    'total-records': '0', 'total-files-size': '0', 'total-data-files': '0',
    'total-delete-files': '0', 'total-position-deletes': '0', 'total-equality-deletes': '0',
  };
  const total = (key: string, addKey: string, delKey: string): void => {
    const p = prev[key];
    if (p === undefined || !/^\d+$/.test(p)) return;
    const v = BigInt(p) + BigInt(s[addKey] ?? '0') - BigInt(s[delKey] ?? '0');
    if (v >= 0n) s[key] = v.toString();
  };
  total('total-records', 'added-records', 'deleted-records');
  total('total-files-size', 'added-files-size', 'removed-files-size');
  total('total-data-files', 'added-data-files', 'deleted-data-files');
  total('total-delete-files', 'added-delete-files', 'removed-delete-files');
  total('total-position-deletes', 'added-position-deletes', 'removed-position-deletes');
  total('total-equality-deletes', 'added-equality-deletes', 'removed-equality-deletes');
  return s;
}

/**
 * Commits one snapshot to `identifier`: `add` become ADDED entries of a new manifest, the live
 * files named by `removePaths` become DELETED. The operation must fit the change: an append
 * removes nothing, a delete adds nothing. Removing a path that is not a live data file is an
 * error. A concurrent commit in between is a CONFLICT (nothing is retried here).
 */
export async function commitTableUpdate(
  cat: WritableCatalog, io: FileIO, identifier: string, update: TableUpdate,
  opts?: { reader?: ManifestReader; /** Parsed metadata files: the current one is read from it, the new one put in it. */ metadataCache?: MetadataCache },
): Promise<CommitResult> {
  if (update.operation === 'append' && update.removePaths.length > 0) invalid(`an append to ${identifier} cannot remove files (${update.removePaths.length} given); use overwrite`);
  if (update.operation === 'delete' && update.add.length > 0) invalid(`a delete from ${identifier} cannot add files (${update.add.length} given); use overwrite`);
  const addPaths = new Set<string>();
  for (const f of update.add) {
    if (f.content !== 0) invalid(`${f.filePath} is a delete file; only data files can be added`);
    if (addPaths.has(f.filePath)) invalid(`${f.filePath} is added twice`);
    addPaths.add(f.filePath);
  }
  const remove = new Set<string>();
  for (const p of update.removePaths) {
    if (remove.has(p)) invalid(`${p} is removed twice`);
    if (addPaths.has(p)) invalid(`${p} is both added and removed`);
    remove.add(p);
  }

  const expected = await cat.currentMetadataLocation(identifier);
  if (expected === null) throw new IpsError('TABLE_NOT_FOUND', `table ${identifier} does not exist; create it first`);
  const md = await readMetadataFile(io, expected, opts?.metadataCache);
  if (md.formatVersion !== 2) {
    throw new IpsError('UNSUPPORTED_FORMAT_VERSION', `table ${identifier} is format v${md.formatVersion}; ips writes v2 tables only`);
  }
  const reader = opts?.reader ?? new ManifestReader(io);
  const parent = md.currentSnapshotId === null ? null : snapshotById(md, md.currentSnapshotId)!;
  const seq = md.lastSequenceNumber + 1n;
  let snapshotId = newSnapshotId();
  while (snapshotById(md, snapshotId)) snapshotId = newSnapshotId();

  const schemaRaw = rawList(md, 'schemas').find((s) => Number(s['schema-id']) === md.currentSchemaId) ?? md.raw['schema'];
  const schemaJson = stringifyJsonLossless(schemaRaw);
  const metaDir = joinLocation(md.location.replace(/\/+$/, ''), 'metadata');
  const commitUuid = crypto.randomUUID();
  let manifestCount = 0;
  const writeOne = async (specId: number, entries: EntryToWrite[]): Promise<ManifestFile> => {
    const spec = specById(md, specId);
    const written = writeManifest({
      formatVersion: 2, schemaJson, schemaId: md.currentSchemaId, specId, specFieldsJson: specFieldsJson(spec),
      spec: bindSpec(md, spec), content: 0, snapshotId, entries,
    }, seq);
    const path = joinLocation(metaDir, `${commitUuid}-m${manifestCount++}.avro`);
    await io.write(path, written.bytes, { ifAbsent: true });
    return { ...written.row, path, length: BigInt(written.bytes.length) };
  };

  // Added files: one new manifest in the default spec, first in the list (as Java orders them).
  const defaultSpec = specById(md, md.defaultSpecId);
  for (const f of update.add) {
    const want = defaultSpec.fields.map((pf) => pf.fieldId).sort((a, b) => a - b);
    const have = [...f.partition.keys()].sort((a, b) => a - b);
    if (want.length !== have.length || want.some((x, i) => x !== have[i])) {
      invalid(`${f.filePath} has partition fields [${have.join(', ')}] but the table's default spec has [${want.join(', ')}]; build the data file from this table's metadata`);
    }
  }
  const manifests: ManifestFile[] = [];
  if (update.add.length > 0) manifests.push(await writeOne(md.defaultSpecId, update.add.map((dataFile) => ({ dataFile, sequenceNumber: null }))));

  // Existing manifests: rewrite those holding a removed file, carry the others. The rewritten
  // entries of one spec go into a single manifest (what Java's manifest merging makes of them): a
  // copy-on-write MERGE that touches many old partitions would otherwise write, and every later
  // scan read, one small manifest per partition it touched.
  const removed: { df: DataFile; specId: number }[] = [];
  const rewritten = new Map<number, EntryToWrite[]>();
  const parentManifests = parent ? (await reader.manifestList(parent)).manifests : [];
  for (const mf of parentManifests) {
    if (mf.content !== 0) {
      manifests.push(mf);
      continue;
    }
    // Only DELETED entries of an older snapshot: nothing live to carry (Java drops these too).
    if (mf.addedFilesCount === 0 && mf.existingFilesCount === 0) continue;
    if (remove.size === 0) {
      manifests.push(mf);
      continue;
    }
    const m = await reader.manifest(mf);
    const live = m.entries.filter((e) => e.status !== EntryStatus.DELETED);
    for (const e of live) {
      if (addPaths.has(e.dataFile.filePath)) invalid(`${e.dataFile.filePath} is already a live file of ${identifier}; it cannot be added again`);
    }
    if (!live.some((e) => remove.has(e.dataFile.filePath))) {
      manifests.push(mf);
      continue;
    }
    const entries: EntryToWrite[] = live.map((e) => {
      if (e.sequenceNumber === null || e.fileSequenceNumber === null) {
        throw new IpsError('INVALID_MANIFEST', `${mf.path}: live entry ${e.dataFile.filePath} has no sequence number; the table's manifests are invalid`);
      }
      const gone = remove.has(e.dataFile.filePath);
      if (gone) removed.push({ df: e.dataFile, specId: mf.partitionSpecId });
      return gone
        ? { dataFile: e.dataFile, status: EntryStatus.DELETED, snapshotId, sequenceNumber: e.sequenceNumber, fileSequenceNumber: e.fileSequenceNumber }
        : { dataFile: e.dataFile, status: EntryStatus.EXISTING, snapshotId: e.snapshotId, sequenceNumber: e.sequenceNumber, fileSequenceNumber: e.fileSequenceNumber };
    });
    const bySpec = rewritten.get(mf.partitionSpecId);
    if (bySpec) bySpec.push(...entries);
    else rewritten.set(mf.partitionSpecId, entries);
  }
  for (const [specId, entries] of rewritten) {
    for (const run of clusterByPartition(md, specId, entries)) manifests.push(await writeOne(specId, run));
  }
  const found = new Set(removed.map((r) => r.df.filePath));
  const missing = [...remove].filter((p) => !found.has(p));
  if (missing.length > 0) {
    throw new IpsError('FILE_NOT_LIVE',
      `cannot remove ${missing.length} file(s) that are not live data files of ${identifier} at snapshot ${parent?.snapshotId ?? '(none)'}, e.g. ${missing.slice(0, 3).join(', ')}; plan the removal from the table's current metadata`,
      { details: { missing } });
  }

  const list = writeManifestList({ formatVersion: 2, snapshotId, parentSnapshotId: parent?.snapshotId ?? null, sequenceNumber: seq, firstRowId: null, manifests });
  const listPath = joinLocation(metaDir, `snap-${snapshotId}-1-${commitUuid}.avro`);
  await io.write(listPath, list.bytes, { ifAbsent: true });

  const partitions = new Set<string>([
    ...update.add.map((f) => partitionKey(md, md.defaultSpecId, f)),
    ...removed.map((r) => partitionKey(md, r.specId, r.df)),
  ]);
  const summary: Record<string, string> = {
    operation: update.operation,
    ...Object.fromEntries(Object.entries(update.summary ?? {}).filter(([k]) => k !== 'operation')),
    ...snapshotSummary(parent?.summary ?? null, update.add, removed.map((r) => r.df), partitions.size),
  };

  const lastSnapshotTs = md.snapshots.reduce((m, s) => (s.timestampMs > m ? s.timestampMs : m), 0n);
  let now = BigInt(Date.now());
  if (now < md.lastUpdatedMs) now = md.lastUpdatedMs;
  if (now < lastSnapshotTs) now = lastSnapshotTs;
  const snapshot: Record<string, unknown> = {
    'snapshot-id': snapshotId,
    ...(parent ? { 'parent-snapshot-id': parent.snapshotId } : {}),
    'sequence-number': seq,
    'timestamp-ms': now,
    'manifest-list': listPath,
    summary,
    'schema-id': md.currentSchemaId,
  };
  const maxPrevious = Number(md.properties['write.metadata.previous-versions-max'] ?? '100');
  const metadataLog = [...rawList(md, 'metadata-log'), { 'timestamp-ms': md.lastUpdatedMs, 'metadata-file': expected }];
  const refs = { ...((md.raw['refs'] as Record<string, Record<string, unknown>> | undefined) ?? {}) };
  refs['main'] = { ...refs['main'], 'snapshot-id': snapshotId, type: 'branch' };
  const next: Record<string, unknown> = {
    ...md.raw,
    'last-sequence-number': seq,
    'last-updated-ms': now,
    'current-snapshot-id': snapshotId,
    refs,
    snapshots: [...rawList(md, 'snapshots'), snapshot],
    'snapshot-log': [...rawList(md, 'snapshot-log'), { 'timestamp-ms': now, 'snapshot-id': snapshotId }],
    'metadata-log': metadataLog.slice(Math.max(0, metadataLog.length - Math.max(1, maxPrevious))),
  };
  const text = stringifyJsonLossless(next, 2);
  const metadata = parseTableMetadata(text, `metadata being committed to ${identifier}`); // never publish what ips cannot read
  const metadataLocation = await cat.commit(identifier, text, expected);
  opts?.metadataCache?.set(metadataLocation, metadata);
  return { metadataLocation, snapshotId, sequenceNumber: seq, metadata };
}
