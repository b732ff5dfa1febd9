import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import { IpsError } from '../../errors.js';
import {
  newDatabaseStats, OID, normalizeParams, parseInt8, parseJsonValue, retryTransaction,
  type Database, type DatabaseConfig, type DatabaseStats, type Queryable, type QueryResult, type SqlParam, type TransactionOptions,
} from '../database.js';

import { PglitePreparedStatements } from './pglite-statements.js';
import { isStalePreparedStatement } from './statement-names.js';

type PgliteConfig = Extract<DatabaseConfig, { driver: 'pglite' }>;

/** Same mapping as the pg driver (PGlite's own int8 parser returns a number when it fits). */
const parsers = {
  [OID.INT8]: parseInt8,
  [OID.JSON]: parseJsonValue,
  [OID.JSONB]: parseJsonValue,
  [OID.NUMERIC]: (v: string) => v,
};

interface Runner {
  query<R>(sql: string, params?: unknown[]): Promise<{ rows: R[]; affectedRows?: number }>;
  exec(sql: string): Promise<unknown>;
}

async function run<R>(runner: Runner, sql: string, values: (string | number | boolean | null)[]): Promise<QueryResult<R>> {
  const res = await runner.query<R>(sql, values);
  return { rows: res.rows, rowCount: Math.max(res.affectedRows ?? 0, res.rows.length) };
}

class PgliteTransaction implements Queryable {
  readonly driver = 'pglite' as const;
  readonly inTransaction = true;
  constructor(private readonly tx: Transaction, private readonly pg: PGlite, private readonly prepared: PglitePreparedStatements, private readonly stats: DatabaseStats) {}

  async query<R>(sql: string, params?: readonly SqlParam[]): Promise<QueryResult<R>> {
    countStatement(this.stats);
    const values = normalizeParams(params);
    if (values.length > 0) {
      // The transaction holds PGlite's transaction lock; a statement takes the query lock, as tx.query() does.
      const out = await this.pg._runExclusiveQuery(() => this.prepared.run<R>(sql, values));
      if (out !== undefined) return out;
    }
    return run<R>(this.tx, sql, values);
  }

  async exec(sql: string): Promise<void> {
    countStatement(this.stats);
    await this.tx.exec(sql);
  }

  withTransaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return fn(this);
  }
}

/** A statement is a call into the WebAssembly backend: one wait each. */
function countStatement(stats: DatabaseStats): void {
  stats.statements++;
  stats.roundTrips++;
}

class PgliteDatabase implements Database {
  readonly driver = 'pglite' as const;
  readonly inTransaction = false;
  readonly stats = newDatabaseStats();
  private readonly prepared: PglitePreparedStatements;
  constructor(private readonly pg: PGlite, readonly description: string, private readonly releaseLock: () => void) {
    this.prepared = new PglitePreparedStatements(pg);
  }

  async query<R>(sql: string, params?: readonly SqlParam[]): Promise<QueryResult<R>> {
    countStatement(this.stats);
    const values = normalizeParams(params);
    if (values.length > 0) {
      let out: QueryResult<R> | undefined;
      try {
        out = await this.runPrepared<R>(sql, values);
      } catch (e) {
        // Outside a transaction a statement that went stale (a migration) simply runs again.
        if (!isStalePreparedStatement(e)) throw e;
        out = await this.runPrepared<R>(sql, values);
      }
      if (out !== undefined) return out;
    }
    return run<R>(this.pg, sql, values);
  }

  /** Under the locks PGlite's query() takes, and its file-system sync after a statement outside a transaction. */
  private async runPrepared<R>(sql: string, values: (string | number | boolean | null)[]): Promise<QueryResult<R> | undefined> {
    const out = await this.pg._runExclusiveTransaction(() => this.pg._runExclusiveQuery(() => this.prepared.run<R>(sql, values)));
    if (out !== undefined) await this.pg.syncToFs();
    return out;
  }

  async exec(sql: string): Promise<void> {
    countStatement(this.stats);
    await this.pg.exec(sql);
  }

  withTransaction<T>(fn: (tx: Queryable) => Promise<T>, options?: TransactionOptions): Promise<T> {
    // PGlite is one connection: its transaction() holds a mutex, so transactions run one at a
    // time and other queries wait for them.
    return retryTransaction(() => {
      // PGlite's transaction() sends BEGIN, and COMMIT or ROLLBACK: two statements of its own.
      this.stats.transactions++;
      countStatement(this.stats);
      countStatement(this.stats);
      return this.pg.transaction((tx) => fn(new PgliteTransaction(tx, this.pg, this.prepared, this.stats)));
    }, options);
  }

  async close(): Promise<void> {
    try {
      await this.pg.close();
    } finally {
      this.releaseLock();
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * PGlite is a single-process database: two processes (or two instances in one process) on one
 * data directory would corrupt it. A pid file beside the directory keeps the second one out
 * with a clear message; a pid file whose process is gone is taken over.
 */
function lockDataDir(dataDir: string): () => void {
  const lockFile = `${path.resolve(dataDir)}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lockFile, 'wx');
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        rmSync(lockFile, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let pid = NaN;
      try {
        pid = Number.parseInt(readFileSync(lockFile, 'utf8').trim(), 10);
      } catch {
        // vanished meanwhile: try again
      }
      if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) {
        throw new IpsError('DATABASE_LOCKED',
          `the embedded database in ${dataDir} is in use by process ${pid}${pid === process.pid ? ' (this one)' : ''}; ` +
          'the embedded database serves one process: stop the other one, or use a PostgreSQL server (DATABASE_URL) to run several');
      }
      rmSync(lockFile, { force: true });
    }
  }
  throw new IpsError('DATABASE_LOCKED', `cannot lock the embedded database in ${dataDir} (${lockFile} keeps coming back)`);
}

/**
 * PostgreSQL settings of the embedded database, on top of PGlite's own start parameters. PGlite's
 * defaults are a server's: 128 MB of shared buffers and shared memory sized for 100 connections
 * plus replication and autovacuum slots, most of it touched at start (an idle `ips serve` held
 * ~390 MB on a reopened directory). ips's state is small and PGlite runs one backend, so:
 * 16 MB of buffers (pages still come from the OS page cache through node's fs on a miss),
 * shared memory for a handful of backends, no replication. Durability is untouched: these size
 * memory only. Measured by `npm run bench -- --only idle-memory`.
 */
export const PGLITE_SETTINGS: readonly string[] = [
  'shared_buffers=16MB',
  'max_connections=4',
  'autovacuum_worker_slots=1',
  'max_wal_senders=0',
  'max_replication_slots=0',
  'maintenance_work_mem=16MB',
];

function startParams(): string[] {
  return [...PGlite.defaultStartParams, ...PGLITE_SETTINGS.flatMap((s) => ['-c', s])];
}

/** How long the first start's initdb may take before it counts as hung (it takes 5–20 s on a small, busy machine). */
const INITDB_TIMEOUT_MS = 180_000;

/** Where an initdb into an existing (empty) data directory stages the cluster: inside it, on its file system. */
const IN_PLACE_STAGING = '.ips-initdb';

/**
 * Whether a data directory needs initdb: missing, empty, or left by a first start that died while
 * moving a cluster in (it holds IN_PLACE_STAGING and no PG_VERSION; everything in it is ours,
 * since it was empty when that start began, and is cleared). A directory with anything else in
 * it is left to PGlite, as before.
 */
function needsInitdb(dir: string): boolean {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw e;
  }
  if (entries.length === 0) return true;
  if (!entries.includes(IN_PLACE_STAGING) || entries.includes('PG_VERSION')) return false;
  for (const e of entries) rmSync(path.join(dir, e), { recursive: true, force: true });
  return true;
}

/**
 * initdb of a new cluster in `dir`, in a child process; with `dumpTo`, also a tarball of it there
 * (PGlite's dumpDataDir). In-process, PGlite runs initdb in a second WebAssembly instance and
 * copies its heap and a tarball of the new cluster; V8 kept that memory (~500 MB) for the life of
 * the process. A child gives it all back when it exits.
 */
async function initdbInChild(dir: string, dumpTo: string | null, what: string): Promise<void> {
  // Plain JavaScript run by node itself, so it works the same under tsx and from dist/.
  const script = `const { PGlite } = await import(process.argv[1]);
const pg = new PGlite({ dataDir: process.argv[2], startParams: JSON.parse(process.argv[3]) });
await pg.waitReady;
if (process.argv[4]) {
  const tar = await pg.dumpDataDir('none');
  (await import('node:fs')).writeFileSync(process.argv[4], Buffer.from(await tar.arrayBuffer()));
}
await pg.close();`;
  // --liftoff-only: V8's baseline WebAssembly compiler only. initdb runs once and exits, so the
  // optimizing tier's work is thrown away: measured on 2 busy cores, 17 s and 655 MB peak instead of 27–33 s and 760 MB.
  const args = ['--liftoff-only', '--input-type=module', '-e', script, import.meta.resolve('@electric-sql/pglite'), dir, JSON.stringify(startParams()), dumpTo ?? ''];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let errTail = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (errTail = (errTail + d).slice(-2000)));
  const timer = setTimeout(() => child.kill('SIGKILL'), INITDB_TIMEOUT_MS);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', resolve);
    });
    if (code !== 0 || !existsSync(path.join(dir, 'PG_VERSION')) || (dumpTo !== null && !existsSync(dumpTo))) {
      throw new IpsError('DATABASE_UNAVAILABLE',
        `creating the embedded database ${what} failed (initdb exited with ${code ?? 'a signal'}): ${errTail.trim().slice(-500) || 'no output'}`);
    }
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The first start of a data directory, so that it is never seen half-made. A missing directory:
 * initdb into a sibling, renamed into place once complete (a crash leaves only the sibling,
 * removed next time). An existing empty one (a volume's mount point, which cannot be replaced and
 * may be another file system than its parent): initdb into IN_PLACE_STAGING inside it, whose
 * entries are then moved up, PG_VERSION last, before the staging directory goes (see needsInitdb
 * for a crash in between).
 */
async function initDataDir(dataDir: string): Promise<void> {
  const target = path.resolve(dataDir);
  if (!existsSync(target)) {
    const staging = `${target}.initdb`;
    rmSync(staging, { recursive: true, force: true });
    try {
      await initdbInChild(staging, null, `in ${dataDir}`);
      renameSync(staging, target);
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
    return;
  }
  const staging = path.join(target, IN_PLACE_STAGING);
  try {
    await initdbInChild(staging, null, `in ${dataDir}`);
    const entries = readdirSync(staging).filter((e) => e !== 'PG_VERSION');
    for (const e of [...entries, 'PG_VERSION']) renameSync(path.join(staging, e), path.join(target, e));
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** An in-memory database's starting cluster: made by initdb in a child, as a tarball for PGlite's loadDataDir. */
async function newClusterTarball(): Promise<Blob> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ips-pglite-initdb-'));
  try {
    const tar = path.join(dir, 'cluster.tar');
    await initdbInChild(path.join(dir, 'db'), tar, 'in memory');
    return new Blob([readFileSync(tar)]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function openPglite(config: PgliteConfig): Promise<Database> {
  let releaseLock = (): void => {};
  if (config.dataDir !== null) {
    mkdirSync(path.dirname(path.resolve(config.dataDir)), { recursive: true });
    releaseLock = lockDataDir(config.dataDir);
  }
  try {
    if (config.dataDir !== null && !config.loadDataDir && needsInitdb(config.dataDir)) await initDataDir(config.dataDir);
    const loadDataDir = config.loadDataDir ?? (config.dataDir === null ? await newClusterTarball() : undefined);
    const pg = new PGlite({
      ...(config.dataDir !== null ? { dataDir: config.dataDir } : {}),
      ...(loadDataDir ? { loadDataDir } : {}),
      startParams: startParams(),
      parsers,
    });
    await pg.waitReady;
    const description = config.dataDir === null ? 'embedded PGlite (in memory)' : `embedded PGlite in ${config.dataDir}`;
    return new PgliteDatabase(pg, description, releaseLock);
  } catch (e) {
    releaseLock();
    throw e;
  }
}
