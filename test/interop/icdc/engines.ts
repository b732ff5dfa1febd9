// Client of test/interop/icdc/icdc_engines.py: one long-lived Python process per test file
// (one Spark session, PyIceberg catalogs) answering JSON requests line by line.
import { PythonWorker } from '../../setup/python-worker.js';

export type Engine = 'spark' | 'pyiceberg';
/** [id, ts (µs since epoch, UTC), name, qty, batch] */
export type Row = [number, number, string | null, number | null, number];

export interface EngineSnapshot {
  snapshot_id: string;
  parent_id: string | null;
  operation: string | null;
  sequence_number: string;
  summary: Record<string, string>;
}
export interface SnapshotInfo {
  current: string | null;
  /** The current snapshot's ancestors, oldest first. */
  lineage: string[];
  snapshots: EngineSnapshot[];
  metadata_location: string;
}
export interface EngineEntry {
  status: number;
  snapshot_id: string | null;
  sequence_number: string | null;
  file_sequence_number: string | null;
  content: number;
  file_path: string;
  file_size_in_bytes: string;
  record_count: string;
  /** With `dv` (rangeFiles / readIcdc): the v3 DV fields; several DVs can share one Puffin path. */
  file_format?: string;
  referenced_data_file?: string | null;
  content_offset?: string | null;
  content_size_in_bytes?: string | null;
}
export interface RangeSnapshotFiles {
  snapshot_id: string;
  operation: string;
  sequence_number: string;
  added: EngineEntry[];
  removed: EngineEntry[];
}
export interface TableMeta {
  format_version: number;
  properties: Record<string, string>;
  schemas: Record<string, unknown>;
  current_schema_id: number;
  specs: Record<string, unknown>;
  default_spec_id: number;
  sort_orders: Record<string, unknown>;
  metadata_location: string;
}
export interface IcdcView extends TableMeta {
  rows: Row[];
  current_snapshot_id: string | null;
  snapshots: { snapshot_id: string; parent_id: string | null; sequence_number: string; operation: string | null }[];
  /** Entries of the snapshot read (absent for Spark path loads, which have no metadata tables by name). */
  entries?: EngineEntry[];
  /** Row counts of the engine's metadata tables (or the error text when one fails to load). */
  metadata_tables?: Record<string, number | string>;
  /** Partitioned by ts_day: [day, record_count, file_count] from the engine's partitions table. */
  partitions?: [string, number, number][];
  /** Spark on S3: how the metadata file was loaded, and why a path load was not possible. */
  method?: 'path' | 'register_table';
  path_error?: string;
}
export type IcdcReader = 'py_catalog' | 'py_static' | 'py_static_dir' | 'spark_catalog' | 'spark_path';
export type IcdcReads = Partial<Record<IcdcReader, IcdcView | { error: string }>>;

export class EngineServer {
  private constructor(private readonly worker: PythonWorker) {}

  static start(opts: { storage: 'local' | 's3'; warehouse: string; icdcWarehouse: string; namespace: string; v0Database?: string }): EngineServer {
    return new EngineServer(PythonWorker.start('icdc_engines.py', [
      'test/interop/icdc/icdc_engines.py', '--storage', opts.storage, '--warehouse', opts.warehouse, '--icdc-warehouse', opts.icdcWarehouse,
      '--namespace', opts.namespace, ...(opts.v0Database ? ['--v0-database', opts.v0Database] : []),
    ]));
  }

  call<T>(op: string, params: Record<string, unknown> = {}, timeoutMs = 10 * 60_000): Promise<T> {
    return this.worker.call<T>(op, params, timeoutMs);
  }

  close(): Promise<void> {
    return this.worker.close();
  }

  // ---- typed wrappers

  create(engine: Engine, table: string, partition: 'day' | null, props: Record<string, string> = {}): Promise<{ location: string }> {
    return this.call('create', { engine, table, partition, props });
  }
  async append(engine: Engine, table: string, rows: Row[]): Promise<string> {
    return (await this.call<{ snapshot_id: string }>('append', { engine, table, rows })).snapshot_id;
  }
  async sparkSql(table: string | null, sql: string[], rows?: Row[]): Promise<{ result: (string | null)[][]; snapshot_id?: string }> {
    return this.call('spark_sql', { table, sql, ...(rows ? { rows } : {}) });
  }
  snapshots(engine: Engine, table: string): Promise<SnapshotInfo> {
    return this.call('snapshots', { engine, table });
  }
  rowsAt(engine: Engine, table: string, snapshotId?: string): Promise<Row[]> {
    return this.call('rows_at', { engine, table, snapshot_id: snapshotId });
  }
  incremental(engine: Engine, table: string, from: string, to: string): Promise<Row[]> {
    return this.call('incremental', { engine, table, from, to });
  }
  exceptAll(engine: Engine, table: string, a: string, b: string): Promise<Row[]> {
    return this.call('except_all', { engine, table, a, b });
  }
  /** `dv`: the engine's entries are read with the v3 DV fields (PyIceberg: from the manifests, as its inspect.entries fails on DVs). */
  addedLiveRows(engine: Engine, table: string, from: string, to: string, opts: { dv?: boolean } = {}): Promise<{ rows: Row[]; files: string[] }> {
    return this.call('added_live_rows', { engine, table, from, to, ...(opts.dv ? { dv: true } : {}) });
  }
  /** `dv`: entries carry file_format, referenced_data_file, content_offset, content_size_in_bytes. */
  rangeFiles(engine: Engine, table: string, from: string, to: string, opts: { dv?: boolean } = {}): Promise<RangeSnapshotFiles[]> {
    return this.call('range_files', { engine, table, from, to, ...(opts.dv ? { dv: true } : {}) });
  }
  tableMeta(engine: Engine, table: string): Promise<TableMeta> {
    return this.call('table_meta', { engine, table });
  }
  /** Reads an ICDC table with each reader; `tsFromUs` filters `ts >= …` in the engine (pruning by partition summaries and bounds). */
  readIcdc(ident: string, metadataLocation: string, opts: { snapshotId?: string; readers?: IcdcReader[]; sparkCatalog?: string; tsFromUs?: number; dv?: boolean } = {}): Promise<IcdcReads> {
    return this.call('read_icdc', {
      ident, metadata_location: metadataLocation, snapshot_id: opts.snapshotId, readers: opts.readers, spark_catalog: opts.sparkCatalog, ts_from_us: opts.tsFromUs,
      ...(opts.dv ? { dv: true } : {}),
    });
  }
}
