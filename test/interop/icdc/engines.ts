// Client of test/interop/icdc/icdc_engines.py: one long-lived Python process per test file
// (one Spark session, PyIceberg catalogs) answering JSON requests line by line.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { pythonEnv, REPO_ROOT, testEnv } from '../../setup/env.js';

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

const HAS_SETPRIV = spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status === 0;

export class EngineServer {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; op: string }>();
  private stderrTail = '';
  private exited: string | null = null;
  private ready!: Promise<void>;

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {}

  static start(opts: { storage: 'local' | 's3'; warehouse: string; icdcWarehouse: string; namespace: string; v0Database?: string }): EngineServer {
    const env = testEnv();
    const script = path.join(REPO_ROOT, 'test', 'interop', 'icdc', 'icdc_engines.py');
    const argv = [script, '--storage', opts.storage, '--warehouse', opts.warehouse, '--icdc-warehouse', opts.icdcWarehouse, '--namespace', opts.namespace, ...(opts.v0Database ? ['--v0-database', opts.v0Database] : [])];
    const [cmd, args] = HAS_SETPRIV ? ['setpriv', ['--pdeathsig', 'KILL', '--', env.python, ...argv]] : [env.python, argv];
    const child = spawn(cmd, args, { cwd: REPO_ROOT, env: pythonEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    const s = new EngineServer(child);
    const echo = process.env.IPS_TEST_VERBOSE === '1';
    child.stderr.on('data', (c: Buffer) => {
      s.stderrTail = (s.stderrTail + c.toString('utf8')).slice(-30_000);
      if (echo) process.stderr.write(c);
    });
    let markReady: () => void;
    let failReady: (e: Error) => void;
    s.ready = new Promise((res, rej) => {
      markReady = res;
      failReady = rej;
    });
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      let msg: { id: number; ok: boolean; result?: unknown; error?: string; trace?: string };
      try {
        msg = JSON.parse(line);
      } catch {
        return; // not protocol
      }
      if (msg.id === 0) return markReady();
      const p = s.pending.get(msg.id);
      if (!p) return;
      s.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new Error(`engine op ${p.op} failed: ${msg.error}\n${msg.trace ?? ''}`));
    });
    child.on('close', (code, signal) => {
      s.exited = `icdc_engines.py exited (${signal ?? code})\n--- stderr tail ---\n${s.stderrTail.slice(-8000)}`;
      failReady(new Error(s.exited));
      for (const p of s.pending.values()) p.reject(new Error(s.exited));
      s.pending.clear();
    });
    process.once('disconnect', () => child.kill('SIGKILL'));
    return s;
  }

  async call<T>(op: string, params: Record<string, unknown> = {}, timeoutMs = 10 * 60_000): Promise<T> {
    await this.ready;
    if (this.exited) throw new Error(this.exited);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`engine op ${op} timed out after ${timeoutMs / 1000}s\n--- stderr tail ---\n${this.stderrTail.slice(-8000)}`));
      }, timeoutMs);
      this.pending.set(id, {
        op,
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.stdin.write(JSON.stringify({ id, op, ...params }) + '\n');
    });
  }

  async close(): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((r) => this.child.once('close', () => r()));
    try {
      await Promise.race([this.call('exit', {}, 60_000), done]);
    } catch {
      /* already gone */
    }
    const t = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    await done;
    clearTimeout(t);
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
  addedLiveRows(engine: Engine, table: string, from: string, to: string): Promise<{ rows: Row[]; files: string[] }> {
    return this.call('added_live_rows', { engine, table, from, to });
  }
  rangeFiles(engine: Engine, table: string, from: string, to: string): Promise<RangeSnapshotFiles[]> {
    return this.call('range_files', { engine, table, from, to });
  }
  tableMeta(engine: Engine, table: string): Promise<TableMeta> {
    return this.call('table_meta', { engine, table });
  }
  /** Reads an ICDC table with each reader; `tsFromUs` filters `ts >= …` in the engine (pruning by partition summaries and bounds). */
  readIcdc(ident: string, metadataLocation: string, opts: { snapshotId?: string; readers?: IcdcReader[]; sparkCatalog?: string; tsFromUs?: number } = {}): Promise<IcdcReads> {
    return this.call('read_icdc', {
      ident, metadata_location: metadataLocation, snapshot_id: opts.snapshotId, readers: opts.readers, spark_catalog: opts.sparkCatalog, ts_from_us: opts.tsFromUs,
    });
  }
}
