import crypto from 'node:crypto';
import pLimit from 'p-limit';
import { IpsError, isIpsError } from '../errors.js';
import { joinLocation, type FileIO } from '../io/file-io.js';
import { resolveTableDirectory } from '../catalog/hadoop-catalog.js';
import { readMetadataFile } from '../catalog/table.js';
import { jsonRoundTrip, stringifyJsonExact, stringifyJsonExactWithLists } from '../iceberg/json-write.js';
import { tableMetadataFromJson, type TableMetadata } from '../iceberg/metadata.js';
import type { ManifestFile } from '../iceberg/manifest-list.js';
import { EntryStatus, type ManifestEntry } from '../iceberg/manifest.js';
import { ManifestReader } from './manifest-reader.js';
import { withFiles, type IcdcCached, type IcdcWriteCache } from './icdc-cache.js';
import { writeManifest, writeManifestList, type EntryToWrite } from '../iceberg/manifest-writer.js';
import { bindSpec } from '../iceberg/partition-values.js';
import { specById } from '../iceberg/metadata.js';
import type { FileChange } from './snapshot-changes.js';
import { randomId63 } from '../random.js';

/**
 * The ICDC table: a real Iceberg table whose snapshot references exactly one batch's changed
 * files by their original paths (zero copy). Each batch is a new snapshot, so the table's
 * history is the consumer's batch history. Each batch after the first is committed as two
 * snapshots, as Iceberg Java would commit "drop the previous batch, then append this one": a
 * `delete` snapshot whose manifests hold the previous batch's files as DELETED entries, then an
 * `append` snapshot (`overwrite`/`delete` when the batch carries delete files, Java's RowDelta
 * rule) holding the batch's files. An engine's own incremental read between two batch snapshots
 * (Spark `start-snapshot-id`/`end-snapshot-id`, PyIceberg `incremental_append_scan`) then gets
 * exactly the later batch, and its `entries`/`snapshots` tables tell the truth. It copies the source's format version, schemas,
 * partition specs (same field ids), sort orders and name mapping, and sets gc.enabled=false
 * so that no engine can delete source files through it.
 */
export interface IcdcWriteRequest {
  io: FileIO;
  source: TableMetadata;
  /** Directory of the ICDC table, e.g. s3://lake/icdc/consumer__table. */
  location: string;
  files: FileChange[];
  /** Recorded in the snapshot summary for traceability (ips.* keys). */
  summary?: Record<string, string>;
  /** Creates or replaces a snapshot built atop this exact previous metadata (compare-and-set). */
  expectedMetadataLocation?: string | null;
  /**
   * Keep only the snapshots of this many batches (the new one included; a batch's snapshots are
   * its append snapshot and the delete snapshot before it) and as many metadata-log entries: an
   * ICDC table that gets snapshots per batch would otherwise carry its whole history in every
   * metadata file, and every write would parse and rewrite it. Default: keep all.
   */
  retainBatches?: number;
  /** What this process wrote last (src/capture/icdc-cache.ts): spares reading the table back. */
  cache?: IcdcWriteCache;
}

export interface IcdcWriteResult {
  metadataLocation: string;
  previousMetadataLocation: string | null;
  /** The batch's snapshot: it holds exactly the batch's files. */
  snapshotId: bigint;
  /** The snapshot before it that removed the previous batch's files (null for the first batch, or when it held none). */
  deleteSnapshotId: bigint | null;
  version: number;
  dataFiles: number;
  deleteFiles: number;
  records: bigint;
}

export function newSnapshotId(): bigint {
  return randomId63();
}

const MAX_CHECKS_IN_FLIGHT = 32;

/** Batches of up to this many files keep their entries in the write cache (see IcdcCached.live). */
const MAX_CACHED_LIVE = 1000;

/** Zero copy means the source may delete files when its snapshots expire: check before handing out. */
export async function verifyFilesExist(io: FileIO, files: FileChange[]): Promise<void> {
  const limit = pLimit(MAX_CHECKS_IN_FLIGHT);
  const paths = [...new Set(files.map((f) => f.entry.dataFile.filePath))]; // deletion vectors share Puffin files
  const missing = (await Promise.all(paths.map((p) => limit(async () => ((await io.exists(p)) ? null : p))))).filter((p): p is string => p !== null);
  if (missing.length > 0) {
    throw new IpsError('FILES_MISSING',
      `${missing.length} changed file(s) no longer exist in the source (expired snapshots or orphan-file removal), e.g. ${missing.slice(0, 3).join(', ')}; raise the source's snapshot retention above the consumer's lag, then reset or backfill the consumer`,
      { details: { missing } });
  }
}

async function currentIcdc(io: FileIO, location: string): Promise<{ md: TableMetadata; metadataLocation: string; version: number } | null> {
  try {
    const metadataLocation = await resolveTableDirectory(io, location);
    const md = await readMetadataFile(io, metadataLocation);
    const m = /\/v(\d+)\.metadata\.json$/.exec(metadataLocation);
    if (!m) throw new IpsError('INVALID_ICDC_TABLE', `${location} holds a table not written by ips (${metadataLocation})`);
    return { md, metadataLocation, version: Number(m[1]) };
  } catch (e) {
    if (isIpsError(e) && e.code === 'TABLE_NOT_FOUND') return null;
    throw e;
  }
}

function rawList(md: TableMetadata, key: string): Record<string, unknown>[] {
  const v = md.raw[key];
  return Array.isArray(v) ? (v as Record<string, unknown>[]) : [];
}

/** Union by id of two JSON lists, later entries winning (source schemas only grow). */
function unionById(a: Record<string, unknown>[], b: Record<string, unknown>[], key: string): Record<string, unknown>[] {
  const m = new Map<string, Record<string, unknown>>();
  for (const x of [...a, ...b]) m.set(String(x[key]), x);
  return [...m.values()];
}

/**
 * Printed JSON of the snapshots and schemas of ICDC metadata, by object: the next write of a
 * table repeats its kept snapshots (and the source's schemas) as the same objects.
 */
const PRINTED = new WeakMap<object, string>();

/** Marks the snapshot that removes the previous batch's files (the batch's own snapshot follows it). */
const CLEAR_ROLE = 'clear-previous-batch';

/** The live entries (ADDED or EXISTING) of a snapshot of an ICDC table: the previous batch's files. */
async function liveEntries(io: FileIO, md: TableMetadata, snapshotId: bigint): Promise<{ entry: ManifestEntry; specId: number }[]> {
  const snapshot = md.snapshots.find((s) => s.snapshotId === snapshotId);
  if (!snapshot) throw new IpsError('INVALID_ICDC_TABLE', `the ICDC table's current snapshot ${snapshotId} is not in its metadata`);
  const reader = new ManifestReader(io);
  const out: { entry: ManifestEntry; specId: number }[] = [];
  for (const mf of (await reader.manifestList(snapshot)).manifests) {
    for (const entry of (await reader.manifest(mf)).entries) {
      if (entry.status !== EntryStatus.DELETED) out.push({ entry, specId: mf.partitionSpecId });
    }
  }
  return out;
}

interface ManifestGroup { specId: number; content: 0 | 1; entries: EntryToWrite[] }

/** Writes one snapshot's manifests (grouped by spec and content) and its manifest list. */
async function writeSnapshotFiles(io: FileIO, source: TableMetadata, metaDir: string, schemaJson: string, groups: Map<string, ManifestGroup>, snap: {
  snapshotId: bigint; parentSnapshotId: bigint | null; seq: bigint; firstRowId: bigint | null;
}): Promise<{ listPath: string; assignedRows: bigint; files: Map<string, Buffer> }> {
  const fv = source.formatVersion;
  const commitUuid = crypto.randomUUID();
  const manifests: ManifestFile[] = [];
  const files = new Map<string, Buffer>();
  let i = 0;
  for (const g of groups.values()) {
    const spec = specById(source, g.specId);
    const written = writeManifest({
      formatVersion: fv,
      schemaJson,
      schemaId: source.currentSchemaId,
      specId: g.specId,
      specFieldsJson: JSON.stringify(spec.fields.map((pf) => ({ name: pf.name, transform: pf.transform, 'source-id': pf.sourceId, 'field-id': pf.fieldId }))),
      spec: bindSpec(source, spec),
      content: g.content,
      snapshotId: snap.snapshotId,
      entries: g.entries,
    }, snap.seq);
    const path = joinLocation(metaDir, `${commitUuid}-m${i++}.avro`);
    files.set(path, written.bytes);
    manifests.push({ ...written.row, path, length: BigInt(written.bytes.length) });
  }
  const list = writeManifestList({ formatVersion: fv, snapshotId: snap.snapshotId, parentSnapshotId: snap.parentSnapshotId, sequenceNumber: snap.seq, firstRowId: snap.firstRowId, manifests });
  const listPath = joinLocation(metaDir, `snap-${snap.snapshotId}-1-${commitUuid}.avro`);
  files.set(listPath, list.bytes);
  // The manifests and the list are independent objects (only the metadata file names them): written at once.
  await Promise.all([...files].map(([p, bytes]) => io.write(p, bytes, { ifAbsent: true, unpublished: true })));
  return { listPath, assignedRows: list.assignedRows, files };
}

function groupKey(specId: number, content: number): string {
  return `${specId}/${content === 0 ? 0 : 1}`;
}

/**
 * The batch's files at the paths an engine can open. When ips reads the source through a
 * location mapping (`--map-location`, or a table directory that moved since its metadata was
 * written), its metadata names files where they no longer are; the ICDC table names them where
 * ips found them. Position delete files and deletion vectors name their data files by path
 * inside the delete file, which ips cannot rewrite: such a batch is refused, not handed out with
 * deletes that would silently apply to nothing.
 */
export function mappedFiles(io: FileIO, files: FileChange[]): FileChange[] {
  if (!io.resolve) return files;
  const resolve = io.resolve.bind(io);
  const moved = files.filter((f) => resolve(f.entry.dataFile.filePath) !== f.entry.dataFile.filePath);
  if (moved.length === 0) return files;
  const positional = files.filter((f) => f.entry.dataFile.content === 1);
  if (positional.length > 0) {
    throw new IpsError('MAPPED_POSITION_DELETES',
      `the batch holds ${positional.length} position delete file(s) or deletion vector(s) of a table read through a location mapping (e.g. ${moved[0]!.entry.dataFile.filePath} is read at ${resolve(moved[0]!.entry.dataFile.filePath)}); ` +
      'they name their data files by the original paths, so an ICDC table at the mapped paths would not apply them: read the table where its metadata says its files are (or rewrite its metadata for the new place)',
      { details: { file: positional[0]!.entry.dataFile.filePath } });
  }
  return files.map((f) => {
    const to = resolve(f.entry.dataFile.filePath);
    return to === f.entry.dataFile.filePath ? f : { ...f, entry: { ...f.entry, dataFile: { ...f.entry.dataFile, filePath: to } } };
  });
}

/** The cached state of an ICDC table, when its metadata file is still there (one existence check). */
async function cachedIcdc(io: FileIO, location: string, cache: IcdcWriteCache | undefined): Promise<IcdcCached | undefined> {
  const hit = cache?.get(location);
  if (!hit) return undefined;
  if (await io.exists(hit.metadataLocation)) return hit;
  cache!.delete(location);
  return undefined;
}

export async function writeIcdcSnapshot(req: IcdcWriteRequest): Promise<IcdcWriteResult> {
  const location = req.location.replace(/\/+$/, '');
  try {
    return await writeIcdcSnapshotOnce(req, location);
  } catch (e) {
    // Whatever failed (most often CONFLICT: another writer moved the table on), the next write reads the table.
    req.cache?.delete(location);
    throw e;
  }
}

async function writeIcdcSnapshotOnce(req: IcdcWriteRequest, location: string): Promise<IcdcWriteResult> {
  const { io, source } = req;
  req = { ...req, files: mappedFiles(io, req.files) };
  const metaDir = joinLocation(location, 'metadata');
  const cached = await cachedIcdc(io, location, req.cache);
  const prev = cached ?? await currentIcdc(io, location);
  if (req.expectedMetadataLocation !== undefined && (prev?.metadataLocation ?? null) !== req.expectedMetadataLocation) {
    throw new IpsError('CONFLICT', `ICDC table ${location} moved on (now ${prev?.metadataLocation ?? 'absent'}, expected ${req.expectedMetadataLocation ?? 'absent'}); retry`);
  }
  const fv = source.formatVersion;
  const prevSnapshotId = prev?.md.currentSnapshotId ?? null;
  const previous = cached?.live ?? (prev && prevSnapshotId !== null ? await liveEntries(cached ? withFiles(io, cached.files) : io, prev.md, prevSnapshotId) : []);
  const deleteSnapshotId = previous.length > 0 ? newSnapshotId() : null;
  const snapshotId = newSnapshotId();
  const prevSeq = prev?.md.lastSequenceNumber ?? 0n;
  const deleteSeq = fv === 1 || deleteSnapshotId === null ? prevSeq : prevSeq + 1n;
  const hasDeletes = req.files.some((f) => f.entry.dataFile.content !== 0);
  // With delete files, keep the source's data sequence numbers so deletes apply exactly as there.
  // In v3 keep them always, and the file sequence numbers too: a row's `_last_updated_sequence_number`
  // is inherited from its file's data sequence number (the spec; Iceberg Java up to 1.10 takes
  // the file sequence number), so an ICDC table read with either rule gives the source's value.
  const explicitSeqs = fv >= 2 && (hasDeletes || fv >= 3);
  const explicitFileSeqs = fv >= 3;
  const maxOf = (m: bigint, v: bigint | null): bigint => (v !== null && v > m ? v : m);
  const explicitMax = req.files.reduce((m, f) => maxOf(explicitSeqs ? maxOf(m, f.entry.sequenceNumber) : m, explicitFileSeqs ? f.entry.fileSequenceNumber : null), 0n);
  const seq = fv === 1 ? 0n : (deleteSeq + 1n > explicitMax ? deleteSeq + 1n : explicitMax);

  const currentSchemaRaw = rawList(source, 'schemas').find((s) => Number(s['schema-id']) === source.currentSchemaId) ?? source.raw['schema'];
  const schemaJson = stringifyJsonExact(currentSchemaRaw);
  const nextRowId = fv >= 3 ? prev?.md.nextRowId ?? source.nextRowId ?? 0n : null;
  // Snapshot times never go back (a clock that did, or two batches in one millisecond), and the
  // batch's own snapshot comes strictly after the delete that precedes it: engines list history
  // by commit time, and a tie would order the two by their random ids.
  const prevUpdated = prev ? BigInt(prev.md.lastUpdatedMs) : 0n;
  const now = BigInt(Date.now()) > prevUpdated ? BigInt(Date.now()) : prevUpdated + 1n;
  const sum = (fs: { entry: { dataFile: { recordCount: bigint; fileSizeInBytes: bigint } } }[], pick: (df: { recordCount: bigint; fileSizeInBytes: bigint }) => bigint) =>
    fs.reduce((n, f) => n + pick(f.entry.dataFile), 0n).toString();

  // 1. The previous batch's files leave, as DELETED entries that keep their sequence numbers.
  let deleteSnapshot: Record<string, unknown> | null = null;
  let deleteWritten: Promise<{ listPath: string }> | null = null;
  if (deleteSnapshotId !== null) {
    const groups = new Map<string, ManifestGroup>();
    for (const { entry, specId } of previous) {
      const key = groupKey(specId, entry.dataFile.content);
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { specId, content: entry.dataFile.content === 0 ? 0 : 1, entries: [] }));
      g.entries.push({
        dataFile: entry.dataFile, status: EntryStatus.DELETED, snapshotId: deleteSnapshotId,
        sequenceNumber: fv >= 2 ? entry.sequenceNumber : null, fileSequenceNumber: fv >= 2 ? entry.fileSequenceNumber : null,
      });
    }
    const written = writeSnapshotFiles(io, source, metaDir, schemaJson, groups, { snapshotId: deleteSnapshotId, parentSnapshotId: prevSnapshotId, seq: deleteSeq, firstRowId: nextRowId });
    // Written while the batch's own snapshot files are (see below); awaited before the metadata names it.
    deleteWritten = written;
    const gone = previous.filter((p) => p.entry.dataFile.content === 0);
    const goneDeletes = previous.filter((p) => p.entry.dataFile.content !== 0);
    deleteSnapshot = {
      'snapshot-id': deleteSnapshotId,
      'parent-snapshot-id': prevSnapshotId,
      ...(fv >= 2 ? { 'sequence-number': deleteSeq } : {}),
      'timestamp-ms': now,
      'manifest-list': null, // set below, once its files are written
      // Java's summary keys for a commit that removes files (SnapshotSummary).
      summary: {
        operation: 'delete',
        'deleted-data-files': String(gone.length),
        'deleted-records': sum(gone, (d) => d.recordCount),
        'removed-files-size': sum(previous, (d) => d.fileSizeInBytes),
        'removed-delete-files': String(goneDeletes.length),
        'removed-position-delete-files': String(goneDeletes.filter((f) => f.entry.dataFile.content === 1).length),
        'removed-equality-delete-files': String(goneDeletes.filter((f) => f.entry.dataFile.content === 2).length),
        'total-data-files': '0',
        'total-delete-files': '0',
        'total-records': '0',
        'total-files-size': '0',
        'total-position-deletes': '0',
        'total-equality-deletes': '0',
        'ips.role': CLEAR_ROLE,
        ...(req.summary?.['ips.consumer'] !== undefined ? { 'ips.consumer': req.summary['ips.consumer'] } : {}),
      },
      'schema-id': source.currentSchemaId,
      ...(fv >= 3 ? { 'first-row-id': nextRowId, 'added-rows': 0n } : {}),
    };
  }

  // 2. The batch's files arrive.
  const groups = new Map<string, ManifestGroup>();
  for (const f of req.files) {
    const key = groupKey(f.manifest.partitionSpecId, f.entry.dataFile.content);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { specId: f.manifest.partitionSpecId, content: f.entry.dataFile.content === 0 ? 0 : 1, entries: [] }));
    g.entries.push({
      dataFile: f.entry.dataFile,
      sequenceNumber: explicitSeqs ? f.entry.sequenceNumber : null,
      ...(explicitFileSeqs ? { fileSequenceNumber: f.entry.fileSequenceNumber } : {}),
    });
  }
  // An empty batch (e.g. a range holding only a compaction) still gets one empty data manifest:
  // PyIceberg (0.12) fails on a snapshot whose manifest list is empty in table.inspect.files()
  // ("ArrowInvalid: Must pass at least one table"), which a consumer may call to list its batch.
  if (groups.size === 0) groups.set(groupKey(source.defaultSpecId, 0), { specId: source.defaultSpecId, content: 0, entries: [] });
  const parentOfBatch = deleteSnapshotId ?? prevSnapshotId;
  const [list, deleteList] = await Promise.all([
    writeSnapshotFiles(io, source, metaDir, schemaJson, groups, { snapshotId, parentSnapshotId: parentOfBatch, seq, firstRowId: nextRowId }),
    deleteWritten,
  ]);
  if (deleteSnapshot && deleteList) deleteSnapshot['manifest-list'] = deleteList.listPath;

  const dataFiles = req.files.filter((f) => f.entry.dataFile.content === 0);
  const deleteFiles = req.files.filter((f) => f.entry.dataFile.content !== 0);
  const records = dataFiles.reduce((n, f) => n + f.entry.dataFile.recordCount, 0n);
  // The operation Iceberg Java writes: FastAppend for data files alone; RowDelta with delete
  // files (`overwrite` with data files too, `delete` with delete files only).
  const operation = deleteFiles.length === 0 ? 'append' : dataFiles.length > 0 ? 'overwrite' : 'delete';
  const summary: Record<string, string> = {
    operation,
    'added-data-files': String(dataFiles.length),
    'added-records': records.toString(),
    'added-files-size': sum(dataFiles, (d) => d.fileSizeInBytes),
    'added-delete-files': String(deleteFiles.length),
    'added-position-delete-files': String(deleteFiles.filter((f) => f.entry.dataFile.content === 1).length),
    'added-equality-delete-files': String(deleteFiles.filter((f) => f.entry.dataFile.content === 2).length),
    'total-data-files': String(dataFiles.length),
    'total-delete-files': String(deleteFiles.length),
    'total-records': records.toString(),
    'total-files-size': sum(req.files, (d) => d.fileSizeInBytes),
    'total-position-deletes': sum(deleteFiles.filter((f) => f.entry.dataFile.content === 1), (d) => d.recordCount),
    'total-equality-deletes': sum(deleteFiles.filter((f) => f.entry.dataFile.content === 2), (d) => d.recordCount),
    ...req.summary,
  };
  const batchAt = deleteSnapshot ? now + 1n : now;
  const snapshot: Record<string, unknown> = {
    'snapshot-id': snapshotId,
    ...(parentOfBatch !== null ? { 'parent-snapshot-id': parentOfBatch } : {}),
    ...(fv >= 2 ? { 'sequence-number': seq } : {}),
    'timestamp-ms': batchAt,
    'manifest-list': list.listPath,
    summary,
    'schema-id': source.currentSchemaId,
    ...(fv >= 3 ? { 'first-row-id': nextRowId, 'added-rows': list.assignedRows } : {}),
  };

  const properties: Record<string, string> = { 'gc.enabled': 'false', 'ips.icdc': 'true' };
  const nameMapping = source.properties['schema.name-mapping.default'];
  if (nameMapping !== undefined) properties['schema.name-mapping.default'] = nameMapping;
  if (source.tableUuid) properties['ips.source-table-uuid'] = source.tableUuid;
  properties['ips.source-location'] = source.location;

  const prevRaw = prev?.md;
  const version = (prev?.version ?? 0) + 1;
  // Older batches' snapshots drop out of the metadata (their files are the source's and stay;
  // the oldest kept snapshot's parent is then an expired one, as after any expiry).
  const retain = Math.max(1, req.retainBatches ?? Number.MAX_SAFE_INTEGER);
  const prevSnapshots = prevRaw ? rawList(prevRaw, 'snapshots') : [];
  const isClear = (x: Record<string, unknown>): boolean => (x['summary'] as Record<string, unknown> | undefined)?.['ips.role'] === CLEAR_ROLE;
  let cut = prevSnapshots.length;
  for (let batches = 0; cut > 0 && batches < retain - 1;) {
    cut--;
    if (!isClear(prevSnapshots[cut]!)) batches++;
    if (batches === retain - 1 && cut > 0 && isClear(prevSnapshots[cut - 1]!)) cut--; // the kept batch's own clear snapshot
  }
  const keptSnapshots = prevSnapshots.slice(cut);
  const keptIds = new Set(keptSnapshots.map((x) => String(x['snapshot-id'])));
  const newSnapshots = [...(deleteSnapshot ? [deleteSnapshot] : []), snapshot];
  const metadata: Record<string, unknown> = {
    'format-version': fv,
    'table-uuid': prevRaw?.tableUuid ?? crypto.randomUUID(),
    location,
    ...(fv >= 2 ? { 'last-sequence-number': seq } : {}),
    'last-updated-ms': batchAt,
    'last-column-id': Math.max(source.lastColumnId, prevRaw?.lastColumnId ?? 0),
    schemas: unionById(prevRaw ? rawList(prevRaw, 'schemas') : [], rawList(source, 'schemas').length ? rawList(source, 'schemas') : [source.raw['schema'] as Record<string, unknown>], 'schema-id'),
    'current-schema-id': source.currentSchemaId,
    'partition-specs': unionById(prevRaw ? rawList(prevRaw, 'partition-specs') : [], source.specs.map((s) => ({ 'spec-id': s.specId, fields: s.fields.map((f) => ({ name: f.name, transform: f.transform, 'source-id': f.sourceId, 'field-id': f.fieldId })) })), 'spec-id'),
    'default-spec-id': source.defaultSpecId,
    'last-partition-id': Math.max(source.lastPartitionId ?? 999, ...source.specs.flatMap((s) => s.fields.map((f) => f.fieldId)), 999),
    properties,
    'current-snapshot-id': snapshotId,
    refs: { main: { 'snapshot-id': snapshotId, type: 'branch' } },
    snapshots: [...keptSnapshots, ...newSnapshots],
    'snapshot-log': [
      ...(prevRaw ? rawList(prevRaw, 'snapshot-log') : []).filter((e) => keptIds.has(String(e['snapshot-id']))),
      ...newSnapshots.map((s) => ({ 'timestamp-ms': s['timestamp-ms'], 'snapshot-id': s['snapshot-id'] })),
    ],
    'metadata-log': [...(prevRaw ? rawList(prevRaw, 'metadata-log') : []), ...(prev ? [{ 'timestamp-ms': prev.md.lastUpdatedMs, 'metadata-file': prev.metadataLocation }] : [])].slice(-retain),
    'sort-orders': rawList(source, 'sort-orders').length ? rawList(source, 'sort-orders') : [{ 'order-id': 0, fields: [] }],
    'default-sort-order-id': source.defaultSortOrderId ?? 0,
    statistics: [],
    'partition-statistics': [],
  };
  if (fv === 1) {
    // v1 readers look at the single-schema and single-spec fields.
    metadata['schema'] = currentSchemaRaw;
    metadata['partition-spec'] = (metadata['partition-specs'] as { 'spec-id': number; fields: unknown[] }[]).find((s) => s['spec-id'] === source.defaultSpecId)?.fields ?? [];
  }
  if (fv >= 3) metadata['next-row-id'] = (nextRowId ?? 0n) + list.assignedRows;
  // The kept snapshots and the schemas are objects of the previous metadata or of the source's
  // (as parsed): printed once (PRINTED), shared by the copy below rather than copied again.
  const text = stringifyJsonExactWithLists(metadata, ['snapshots', 'schemas'], PRINTED);
  const keep = new Set<object>([...keptSnapshots, ...(metadata['schemas'] as object[])]);
  // Never publish metadata ips itself cannot read: validated as a reader would get it from the
  // text (jsonRoundTrip: the parse of that text, without printing and parsing it again).
  const copy = jsonRoundTrip(metadata, keep) as Record<string, unknown>;
  const copied = copy['snapshots'] as object[];
  for (let i = 0; i < newSnapshots.length; i++) {
    const t = PRINTED.get(newSnapshots[i]!);
    if (t !== undefined) PRINTED.set(copied[copied.length - newSnapshots.length + i]!, t);
  }
  const written = tableMetadataFromJson(copy, 'ICDC metadata being written');
  const metadataLocation = joinLocation(metaDir, `v${version}.metadata.json`);
  try {
    await io.write(metadataLocation, Buffer.from(text, 'utf8'), { ifAbsent: true });
  } catch (e) {
    if (isIpsError(e) && e.code === 'ALREADY_EXISTS') throw new IpsError('CONFLICT', `another writer committed version ${version} of ${location} first; retry`, { cause: e });
    throw e;
  }
  // No trailing newline: PyIceberg's StaticTable checks the hint with str.isnumeric().
  await io.write(joinLocation(metaDir, 'version-hint.text'), Buffer.from(String(version), 'utf8'));
  // The batch's entries as a reader of its manifests gets them (inheritance applied: no explicit
  // sequence numbers means the snapshot's; snapshot id the snapshot's), so that the next write
  // need not decode them back. Not in v3, where a reader also assigns row ids, nor for big batches.
  const live = fv <= 2 && req.files.length <= MAX_CACHED_LIVE ? req.files.map((f) => ({
    specId: f.manifest.partitionSpecId,
    entry: {
      status: EntryStatus.ADDED, snapshotId, dataFile: f.entry.dataFile,
      sequenceNumber: explicitSeqs ? f.entry.sequenceNumber ?? seq : seq,
      fileSequenceNumber: seq,
    } satisfies ManifestEntry,
  })) : undefined;
  req.cache?.set(location, { md: written, metadataLocation, version, files: list.files, ...(live ? { live } : {}) }, text.length);
  return {
    metadataLocation, previousMetadataLocation: prev?.metadataLocation ?? null, snapshotId, deleteSnapshotId, version,
    dataFiles: dataFiles.length, deleteFiles: deleteFiles.length, records,
  };
}
