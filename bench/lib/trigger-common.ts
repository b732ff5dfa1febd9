// Shared pieces of the trigger benchmarks (bench/trigger-latency.ts, bench/watch-cpu.ts): a webhook
// receiver on 127.0.0.1, copies of the PyIceberg-written trigger table (bench/py/trigger_table.py)
// whose snapshots can be "appended" one at a time, and the setup both start with. PostgreSQL, the
// ips servers and CPU time from /proc are in bench/lib/postgres.ts, ips-server.ts and proc-cpu.ts.
import { spawnSync } from 'node:child_process';
import { copyFileSync, linkSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { REPO_ROOT, lastJsonLine, runCommand, type BenchContext } from './common.js';
import { startPostgres, type Postgres } from './postgres.js';

// ---- the webhook receiver ----

export interface TriggerEvent {
  id: string;
  time: string;
  data: {
    subscription: string;
    consumer: string;
    batch_id: string;
    seq: string;
    dedup_key: string;
    tables: { table: string; from_snapshot_id: string | null; to_snapshot_id: string; file_count: number }[];
  };
}

/** node:http on 127.0.0.1: answers 200 at once, then hands the event to the subscription's handler. */
export class WebhookReceiver {
  private server: http.Server | null = null;
  private readonly handlers = new Map<string, (ev: TriggerEvent, arrivedAt: number) => void>();
  /** Events of no registered handler, or that failed to parse. */
  unexpected = 0;
  received = 0;
  url = '';

  async start(): Promise<void> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('end', () => {
        const arrivedAt = performance.now();
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        this.received++;
        try {
          const ev = JSON.parse(Buffer.concat(chunks).toString('utf8')) as TriggerEvent;
          const h = this.handlers.get(ev.data.subscription);
          if (h) h(ev, arrivedAt);
          else this.unexpected++;
        } catch {
          this.unexpected++;
        }
      });
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  }

  on(subscription: string, handler: (ev: TriggerEvent, arrivedAt: number) => void): void {
    this.handlers.set(subscription, handler);
  }

  off(subscription: string): void {
    this.handlers.delete(subscription);
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = null;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

// ---- the PyIceberg-written table and its copies ----

export interface TriggerTable {
  table_dir: string;
  table_path: string;
  snapshots: number;
  rows_per_file: number;
  metadata_files: { version: number; file: string; snapshot_id: string | null; snapshots: number; bytes: number }[];
  pyiceberg: string;
  generation_seconds: number;
  cached: boolean;
}

export async function triggerTable(ctx: BenchContext, snapshots: number): Promise<TriggerTable> {
  const args = [path.join(REPO_ROOT, 'bench', 'py', 'trigger_table.py'), '--snapshots', String(snapshots)];
  const t = lastJsonLine<TriggerTable>(await runCommand(ctx.python, args, { prefix: '[generate] ' }));
  ctx.log(`source table ${t.table_path}: ${t.snapshots} PyIceberg appends of 1 file${t.cached ? ' (cached)' : ` (generated in ${t.generation_seconds}s)`}`);
  return t;
}

function linkOrCopy(src: string, dst: string): void {
  try {
    linkSync(src, dst);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    copyFileSync(src, dst);
  }
}

function linkTree(src: string, dst: string, skip: (rel: string) => boolean, rel = ''): number {
  mkdirSync(dst, { recursive: true });
  let n = 0;
  for (const e of readdirSync(src, { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (skip(r)) continue;
    if (e.isDirectory()) n += linkTree(path.join(src, e.name), path.join(dst, e.name), skip, r);
    else if (e.isFile()) {
      linkOrCopy(path.join(src, e.name), path.join(dst, e.name));
      n++;
    }
  }
  return n;
}

/**
 * A copy of the trigger table (hard links, or copies across filesystems) in the Hadoop directory
 * layout: data files, manifests and manifest lists all present (written before their commit, as a
 * writer does), metadata files 0…`visible` in metadata/, and `version-hint.text` naming the
 * current one. The later metadata files wait in `<dir>.staged/` (hard links too). append() commits
 * the next one: it renames the PyIceberg-written NNNNN-<uuid>.metadata.json into metadata/ (one
 * atomic rename(2) of a complete file: from then on the highest version present is the table's
 * current metadata), then rewrites version-hint.text through a temporary file and rename(2), the
 * order of Iceberg's HadoopTableOperations (metadata file, then hint).
 */
export class TableCopy {
  version: number;
  readonly files: number;
  /** Where the metadata files not yet committed wait (next to the table directory, same filesystem). */
  private readonly staged: string;

  constructor(private readonly t: TriggerTable, readonly dir: string, visible: number) {
    if (visible < 0 || visible > t.snapshots) throw new Error(`visible version ${visible} outside 0…${t.snapshots}`);
    const metaNames = new Set(t.metadata_files.map((f) => f.file));
    this.files = linkTree(t.table_path, dir, (rel) => rel.startsWith('metadata/') && metaNames.has(rel.slice('metadata/'.length)));
    this.staged = `${dir}.staged`;
    mkdirSync(this.staged, { recursive: true });
    for (const f of t.metadata_files) {
      const src = path.join(t.table_path, 'metadata', f.file);
      linkOrCopy(src, path.join(f.version <= visible ? path.join(dir, 'metadata') : this.staged, f.file));
      this.files++;
    }
    this.version = visible;
    this.writeHint();
  }

  get remaining(): number {
    return this.t.snapshots - this.version;
  }

  /** The snapshot the current metadata makes current. */
  get snapshotId(): string | null {
    return this.t.metadata_files[this.version]!.snapshot_id;
  }

  private writeHint(): void {
    const hint = path.join(this.dir, 'metadata', 'version-hint.text');
    writeFileSync(hint + '.tmp', String(this.version));
    renameSync(hint + '.tmp', hint);
  }

  /** Commits the next snapshot; returns its id and performance.now() right after the commit (the rename). */
  append(): { snapshotId: string; committedAt: number } {
    const next = this.t.metadata_files[this.version + 1];
    if (!next) throw new Error(`${this.dir}: no staged snapshot left`);
    renameSync(path.join(this.staged, next.file), path.join(this.dir, 'metadata', next.file));
    const committedAt = performance.now();
    this.version = next.version;
    this.writeHint();
    return { snapshotId: next.snapshot_id!, committedAt };
  }
}

/** A scratch directory next to the cached tables (same filesystem: hard links work), removed by the returned function. */
export function workDir(t: TriggerTable, name: string): { dir: string; remove: () => Promise<void> } {
  const dir = path.join(path.dirname(t.table_dir), `${name}-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return { dir, remove: async () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * What both trigger benchmarks start with: the trigger table of `snapshots` appends (cached after
 * the first run) and PostgreSQL, at the same time; then a work directory `<name>` next to the
 * table, and a webhook receiver. Each pushes its cleanup onto `cleanups` as soon as it exists.
 */
export async function startTriggerBench(
  ctx: BenchContext, snapshots: number, name: string, cleanups: (() => Promise<void>)[],
): Promise<{ t: TriggerTable; pgs: Postgres; work: { dir: string; remove: () => Promise<void> }; receiver: WebhookReceiver }> {
  const [tr, pr] = await Promise.allSettled([triggerTable(ctx, snapshots), startPostgres(ctx)]);
  if (pr.status === 'fulfilled') cleanups.push(() => pr.value.close());
  if (tr.status === 'rejected') throw tr.reason;
  if (pr.status === 'rejected') throw pr.reason;
  const t = tr.value;
  const pgs = pr.value;
  const work = workDir(t, name);
  cleanups.push(work.remove);
  const receiver = new WebhookReceiver();
  await receiver.start();
  cleanups.push(() => receiver.close());
  return { t, pgs, work, receiver };
}

/**
 * `--ms-timestamps on`: emulates, on builds before 00e9c5d, that commit's fix of a precision
 * mismatch. There, on PostgreSQL, now() has microseconds while node-pg's Date has milliseconds, so
 * the claimed `next_poll_at` / `next_check_at` a loop passes back to TableWatchRepo.recordPoll /
 * SubscriptionsRepo.release compares *smaller* than the stored value ("woken during the
 * poll/check") and the row stays due: every table is polled, and every subscription checked, on
 * every loop pass whatever its interval. Declaring the two columns TIMESTAMPTZ(3) (values rounded
 * to the millisecond, which the Date then holds exactly) makes the comparison behave as intended.
 * Applied to the benchmark's own database after ips migrated it, before anything is registered.
 */
export async function applyMsTimestamps(databaseUrl: string): Promise<void> {
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    await c.query('ALTER TABLE table_watch ALTER COLUMN next_poll_at TYPE TIMESTAMPTZ(3)');
    await c.query('ALTER TABLE subscriptions ALTER COLUMN next_check_at TYPE TIMESTAMPTZ(3)');
  } finally {
    await c.end();
  }
}

export function msTimestampsOption(ctx: BenchContext): boolean {
  const v = ctx.options.get('ms-timestamps') ?? 'off';
  if (v !== 'on' && v !== 'off') throw new Error(`--ms-timestamps must be on or off, got ${v}`);
  return v === 'on';
}

/** The ips source measured: HEAD and any uncommitted change under src/ (the working tree is shared). */
export function srcState(): string {
  const git = (args: string[]): string => spawnSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8' }).stdout?.trimEnd() ?? '';
  const head = git(['rev-parse', '--short', 'HEAD']) || '?';
  const dirty = git(['status', '--porcelain', '--', 'src']).split('\n').filter(Boolean).map((l) => l.slice(3));
  return `ips source: ${head}${dirty.length ? ` + uncommitted changes in ${dirty.join(', ')}` : ' (clean src/)'}`;
}
