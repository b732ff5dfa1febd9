// ips's state behind a real PgBouncer in transaction mode (Debian's 1.18, which does not keep
// prepared statements per client): server connections are shared between ips's pool
// connections, so a named statement meets connections that never prepared it. With named
// statements on (the default), the first such answer turns them off for the process with a
// warning and nothing fails or runs the wrong statement; with IPS_DB_PREPARED_STATEMENTS=off no
// warning at all. The workload is the state's own: migrations, then consumers preparing and
// committing batches concurrently, checked against what was committed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { FileJson } from '../../src/capture/file-json.js';
import { databaseConfigFromEnv, migrate, openDatabase, repositories, type Database } from '../../src/state/index.js';
import { testEnv } from '../setup/env.js';
import { createPgDatabase } from './helpers.js';

function cacheValue(name: string): string {
  const file = path.join(testEnv().cacheDir, 'env', name);
  if (!existsSync(file)) throw new Error(`${file} is missing: run scripts/provision/all.sh ${name} (the test setup does)`);
  return readFileSync(file, 'utf8').trim();
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, log: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`pgbouncer exited (${child.exitCode}): ${existsSync(log) ? readFileSync(log, 'utf8') : ''}`);
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => { c.end(); resolve(true); });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`pgbouncer did not listen on ${port}: ${existsSync(log) ? readFileSync(log, 'utf8') : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** PgBouncer in transaction mode in front of the test server, two server connections per database. */
async function startPgBouncer(dbName: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const server = new URL(testEnv().pgUrl);
  const user = decodeURIComponent(server.username);
  const password = decodeURIComponent(server.password);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ips-pgbouncer-'));
  const port = await freePort();
  const log = path.join(dir, 'pgbouncer.log');
  writeFileSync(path.join(dir, 'users.txt'), `"${user}" "${password}"\n`);
  writeFileSync(path.join(dir, 'pgbouncer.ini'), [
    '[databases]',
    `${dbName} = host=${server.hostname} port=${server.port} dbname=${dbName}`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'auth_type = plain',
    `auth_file = ${path.join(dir, 'users.txt')}`,
    'pool_mode = transaction',
    'default_pool_size = 2',
    'max_client_conn = 100',
    `logfile = ${log}`,
    'ignore_startup_parameters = extra_float_digits,options',
    '',
  ].join('\n'));
  // PgBouncer refuses to run as root: as root, it switches to the user PostgreSQL runs as.
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const runAs = cacheValue('pg_user');
    const id = (flag: string): number => Number(spawnSync('id', [flag, runAs], { encoding: 'utf8' }).stdout.trim());
    for (const f of ['', 'users.txt', 'pgbouncer.ini']) chownSync(path.join(dir, f), id('-u'), id('-g'));
  }
  const child = spawn(cacheValue('pgbouncer'), [...(asRoot ? ['-u', cacheValue('pg_user')] : []), path.join(dir, 'pgbouncer.ini')], { stdio: 'ignore' });
  await waitForPort(port, child, log);
  return {
    url: `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/${dbName}`,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGINT');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function file(p: string): FileJson {
  return {
    file_path: p, content: 'data', file_format: 'PARQUET', record_count: '10', file_size_in_bytes: '1000',
    sequence_number: '1', file_sequence_number: '1', spec_id: 0, partition: {}, lower_bounds: {}, upper_bounds: {},
  };
}

/** Migrations, then `consumers` consumers each preparing and committing `rounds` batches, all at once. */
async function workload(db: Database, consumers: number, rounds: number): Promise<void> {
  await migrate(db);
  const repos = repositories(db);
  await repos.sourceTables.create({ name: 'events', ref: { kind: 'directory', location: '/warehouse/events' } });
  const names = Array.from({ length: consumers }, (_, i) => `c${i}`);
  await Promise.all(names.map(async (consumer) => {
    await repos.consumers.create({ name: consumer });
    const none = { snapshotId: null, sequenceNumber: null, partialSnapshotId: null, partialSequenceNumber: null, processedFiles: [] };
    await repos.watermarks.create({ consumer, sourceTable: 'events', position: none }, { actor: 'test', reason: 'subscribe' });
    for (let r = 1; r <= rounds; r++) {
      const wm = await repos.watermarks.require(consumer, 'events');
      const to = BigInt(r) * 1_000_000_007n + 9_007_199_254_740_993n; // above 2^53: exact or wrong
      const { batch } = await repos.batches.create({
        consumer, instanceId: `run-${r}`, leaseSeconds: 60, limits: {}, maxInFlight: 1,
        tables: [{
          sourceTable: 'events', fromSnapshotId: wm.snapshotId, fromSequenceNumber: wm.sequenceNumber,
          toSnapshotId: to, toSequenceNumber: BigInt(r),
          files: { added: [file(`s3://b/${consumer}/${r}.parquet`)], removed: [] }, ranges: {},
          baseWatermarkVersion: wm.version,
          next: { snapshotId: to, sequenceNumber: BigInt(r), partialSnapshotId: null, partialSequenceNumber: null, processedFiles: [] },
        }],
      });
      await repos.batches.commit(batch.id, `run-${r}`);
    }
  }));
}

/** What the workload must have left: every consumer's watermark at its last batch, every batch committed once. */
async function check(db: Database, consumers: number, rounds: number): Promise<void> {
  const rows = await db.query<{ consumer: string; snapshot_id: bigint; version: bigint; committed: bigint; moves: bigint }>(`
    SELECT w.consumer, w.snapshot_id, w.version,
           (SELECT count(*) FROM batches b WHERE b.consumer = w.consumer AND b.state = 'committed') AS committed,
           (SELECT count(*) FROM watermark_moves m WHERE m.consumer = w.consumer AND m.reason = 'commit') AS moves
      FROM watermarks w WHERE w.source_table = $1 ORDER BY w.consumer`, ['events']);
  expect(rows.rows).toHaveLength(consumers);
  for (const r of rows.rows) {
    expect(r.snapshot_id).toBe(BigInt(rounds) * 1_000_000_007n + 9_007_199_254_740_993n);
    expect(r.committed).toBe(BigInt(rounds));
    expect(r.moves).toBe(BigInt(rounds));
    expect(r.version).toBe(BigInt(1 + rounds));
  }
}

describe('state behind PgBouncer in transaction mode (Debian 1.18: no prepared statements per client)', () => {
  const warnings: string[] = [];
  const onWarning = (w: Error & { code?: string }): void => {
    if (w.code === 'IPS_PREPARED_STATEMENTS_OFF') warnings.push(w.message);
  };
  beforeAll(() => {
    process.on('warning', onWarning);
  });
  afterAll(() => {
    process.off('warning', onWarning);
  });

  test.each(['on', 'off'] as const)('IPS_DB_PREPARED_STATEMENTS=%s: migrations and concurrent batches are all right', async (prepared) => {
    const created = await createPgDatabase(`bouncer_${prepared}`);
    const bouncer = await startPgBouncer(created.name);
    warnings.length = 0;
    try {
      const config = databaseConfigFromEnv({ DATABASE_URL: bouncer.url, IPS_DB_PREPARED_STATEMENTS: prepared, IPS_DB_POOL_MAX: '6' });
      const db = await openDatabase(config);
      try {
        await workload(db, 8, 5);
        await check(db, 8, 5);
      } finally {
        await db.close();
      }
      await new Promise((r) => setImmediate(r));
      if (prepared === 'on') {
        // Six pool connections over two server connections: a name met a connection without it.
        expect(warnings).toHaveLength(1);
        expect(warnings[0]).toMatch(/connection pooler in transaction mode/);
      } else {
        expect(warnings).toEqual([]);
      }
    } finally {
      await bouncer.stop();
      await created.drop();
    }
  });
});
