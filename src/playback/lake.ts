import fs from 'node:fs';
import crypto from 'node:crypto';
import pLimit from 'p-limit';
import { IpsError } from '../errors.js';
import type { FileIO } from '../io/file-io.js';
import type { WritableCatalog } from '../catalog/table-catalog.js';
import { readMetadataFile, MetadataCache } from '../catalog/table.js';
import { ManifestReader } from '../capture/manifest-reader.js';
import type { DataFile } from '../iceberg/manifest.js';
import { currentSchema, specById, type TableMetadata } from '../iceberg/metadata.js';
import { createTable, commitTableUpdate, type NewTableSpec } from '../table/table-writer.js';
import { uploadDataFile } from '../table/data-files.js';
import { planScan, type ScanPredicate } from '../table/scan-planner.js';
import { sqlIdent, type PartitionColumn, type ScanStats, type SqlEngine } from '../engine/duckdb.js';
import type { Phase, PhaseClock } from './phase-clock.js';

/**
 * The pipeline's view of its Iceberg tables: load, plan which files to read, read them into
 * the engine, and write a query's result back as a committed snapshot (append or overwrite).
 */
export class Lake {
  readonly reader: ManifestReader;
  private readonly metadataCache = new MetadataCache(64);
  /** The executing run's phase clock (runner.ts sets it per run; null outside runs). */
  clock: PhaseClock | null = null;

  constructor(readonly catalog: WritableCatalog, readonly io: FileIO, readonly engine: SqlEngine) {
    this.reader = new ManifestReader(io);
  }

  async create(identifier: string, spec: Omit<NewTableSpec, 'identifier'>): Promise<void> {
    await createTable(this.catalog, this.io, { identifier, ...spec });
  }

  private timed<T>(phase: Phase, fn: () => Promise<T>): Promise<T> {
    return this.clock ? this.clock.time(phase, fn) : fn();
  }

  /** A statement on the engine (DDL, temp tables). */
  run(sql: string): Promise<void> {
    return this.timed('engine views + queries', () => this.engine.run(sql));
  }

  /** A query's rows (see SqlEngine.all). */
  all<T = Record<string, unknown>>(sql: string): Promise<T[]> {
    return this.timed('engine views + queries', () => this.engine.all<T>(sql));
  }

  load(identifier: string): Promise<TableMetadata> {
    return this.timed('table loads + plans', () => this.loadNow(identifier));
  }

  private async loadNow(identifier: string): Promise<TableMetadata> {
    const loc = await this.catalog.currentMetadataLocation(identifier);
    if (loc === null) throw new IpsError('TABLE_NOT_FOUND', `table ${identifier} does not exist`);
    return readMetadataFile(this.io, loc, this.metadataCache);
  }

  async readMetadata(location: string): Promise<TableMetadata> {
    return readMetadataFile(this.io, location, this.metadataCache);
  }

  /** Live data files of the current snapshot that may hold rows matching every predicate. */
  plan(md: TableMetadata, predicates: ScanPredicate[] = []): Promise<DataFile[]> {
    return this.timed('table loads + plans', async () => {
      if (md.currentSnapshotId === null) return [];
      return (await planScan(this.io, md, predicates, { reader: this.reader })).files;
    });
  }

  /** Defines engine view `view` over these files with the table's current columns. */
  view(view: string, md: TableMetadata, files: DataFile[]): Promise<ScanStats> {
    return this.timed('engine views + queries', () => this.engine.registerFiles(view, files, currentSchema(md).struct.fields));
  }

  /** Engine expressions for the table's partition values (identity and truncate transforms). */
  private partitionColumns(md: TableMetadata): PartitionColumn[] {
    const schema = currentSchema(md);
    return specById(md, md.defaultSpecId).fields.map((pf) => {
      const source = schema.struct.fields.find((f) => f.id === pf.sourceId);
      if (!source) throw new IpsError('INVALID_TABLE', `partition field ${pf.name} has no source column`);
      const col = sqlIdent(source.name);
      if (pf.transform === 'identity') return { name: pf.name, expr: col };
      const t = /^truncate\[(\d+)\]$/.exec(pf.transform);
      if (t && (source.type.kind === 'long' || source.type.kind === 'int')) {
        const w = t[1]!;
        return { name: pf.name, expr: `(${col} - (((${col} % ${w}) + ${w}) % ${w}))` };
      }
      throw new IpsError('UNSUPPORTED', `the demo's writer partitions by identity and truncate only, not ${pf.transform}`);
    });
  }

  /**
   * Writes the query's rows as new files of the table, one per partition, and commits them,
   * replacing `remove` (an overwrite) or adding to the table (an append). Returns rows written.
   */
  async write(identifier: string, selectSql: string, remove: DataFile[], summary: Record<string, string> = {}, base?: TableMetadata): Promise<{ rows: bigint; files: number; metadata: TableMetadata }> {
    // `base`: the metadata the caller planned `remove` on (saves a load; the commit still checks
    // that the table has not moved on since).
    const md = base ?? await this.load(identifier);
    const fieldIds = Object.fromEntries(currentSchema(md).struct.fields.map((f) => [f.name, f.id]));
    const partitionBy = this.partitionColumns(md);
    const written = await this.timed('engine write (COPY)', () => this.engine.writeParquet(selectSql, { fieldIds, partitionBy }));
    // Object stores (and local disks) take many small files faster in parallel.
    const limit = pLimit(8);
    const added: DataFile[] = await this.timed('data files: read back, metrics, store', async () => {
      const files = await Promise.all(written.map((w) => limit(() => {
        const rel = [w.partitionDir, `${crypto.randomUUID()}.parquet`].filter((s) => s !== '').join('/');
        return uploadDataFile(this.io, md, fs.readFileSync(w.localPath), rel);
      })));
      this.engine.discard(written);
      return files;
    });
    if (added.length === 0 && remove.length === 0) return { rows: 0n, files: 0, metadata: md };
    const operation = remove.length === 0 ? 'append' : added.length === 0 ? 'delete' : 'overwrite';
    const res = await this.timed('table commit', () => commitTableUpdate(this.catalog, this.io, identifier, {
      operation, add: added, removePaths: remove.map((f) => f.filePath), summary,
    }, { reader: this.reader, metadataCache: this.metadataCache }));
    return { rows: written.reduce((n, w) => n + w.rows, 0n), files: added.length, metadata: res.metadata };
  }
}

/**
 * The files whose day (the table's identity partition on `field`) is within [lo, hi], picked by
 * partition value from files planned already; null when some file has no such partition value
 * (then plan with a predicate instead).
 */
export function filesOfDayRange(md: TableMetadata, files: DataFile[], lo: number, hi: number, field = 'event_date'): DataFile[] | null {
  const source = currentSchema(md).struct.fields.find((f) => f.name === field);
  const ids = new Set(md.specs.flatMap((s) => s.fields).filter((pf) => pf.transform === 'identity' && pf.sourceId === source?.id).map((pf) => pf.fieldId));
  const out: DataFile[] = [];
  for (const f of files) {
    const id = [...ids].find((i) => f.partition.has(i));
    const v = id === undefined ? undefined : f.partition.get(id);
    if (typeof v !== 'number') return null;
    if (v >= lo && v <= hi) out.push(f);
  }
  return out;
}

/** Key of a file's partition tuple, comparable with keys built from query results. */
export function partitionKey(md: TableMetadata, f: DataFile): string {
  const spec = specById(md, md.defaultSpecId);
  return spec.fields.map((pf) => String(f.partition.get(pf.fieldId) ?? 'null')).join('/');
}
