// A private PostgreSQL with durable settings (fsync=on, synchronous_commit=on, full_page_writes=on:
// the server defaults) for http-step, beside the test harness's fast one (fsync=off,
// synchronous_commit=off). The harness passes its settings on the postgres command line, which
// outranks ALTER SYSTEM / ALTER DATABASE for fsync, so a second server is the honest way to get
// both in one run. Same binaries and account as the harness (recorded by scripts/provision).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { TEST_CREDENTIALS } from '../../test/setup/shared.js';
import type { BenchContext } from './common.js';

const CACHE_DIR = process.env['IPS_CACHE_DIR'] || path.join(os.homedir(), '.cache', 'ips');

function cacheValue(name: string): string {
  const file = path.join(CACHE_DIR, 'env', name);
  if (!existsSync(file)) throw new Error(`provisioning did not record ${file} (run the test setup once)`);
  return readFileSync(file, 'utf8').trim();
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface DurablePostgres {
  /** A database of the benchmark's own on it. */
  url: string;
  info: string;
  /** The postmaster (its CPU is read from /proc). */
  postmaster: number;
  close(): Promise<void>;
}

export async function startDurablePostgres(ctx: BenchContext, dbName: string): Promise<DurablePostgres> {
  const bindir = cacheValue('pg_bindir');
  const runAs = process.getuid?.() === 0 ? cacheValue('pg_user') : undefined;
  const base = mkdtempSync(path.join(os.tmpdir(), 'ips-bench-pg-durable-'));
  const data = path.join(base, 'data');
  const pwfile = path.join(base, 'pwfile');
  writeFileSync(pwfile, TEST_CREDENTIALS.pgPassword + '\n', { mode: 0o600 });
  const wrap = (argv: string[]): string[] => (runAs ? ['runuser', '-u', runAs, '--', ...argv] : argv);
  if (runAs) {
    const id = (f: string): number => Number(spawnSync('id', [f, runAs], { encoding: 'utf8' }).stdout.trim());
    chownSync(base, id('-u'), id('-g'));
    chownSync(pwfile, id('-u'), id('-g'));
  }
  let child: ChildProcess | null = null;
  const close = async (): Promise<void> => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGINT'); // fast shutdown
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    rmSync(base, { recursive: true, force: true });
  };
  try {
    const [initCmd, ...initArgs] = wrap([path.join(bindir, 'initdb'), '-D', data, '-U', TEST_CREDENTIALS.pgUser, `--pwfile=${pwfile}`,
      '-A', 'scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-instructions']);
    const init = spawnSync(initCmd!, initArgs, { encoding: 'utf8' });
    if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}${init.stdout}`);
    const port = await freePort();
    const [cmd, ...args] = wrap([path.join(bindir, 'postgres'), '-D', data, '-p', String(port), '-h', '127.0.0.1', '-k', base,
      '-c', 'fsync=on', '-c', 'synchronous_commit=on', '-c', 'full_page_writes=on', '-c', 'max_connections=200', '-c', 'log_min_messages=warning']);
    child = spawn(cmd!, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
    const adminUrl = `postgres://${TEST_CREDENTIALS.pgUser}:${TEST_CREDENTIALS.pgPassword}@127.0.0.1:${port}/postgres`;
    const deadline = Date.now() + 60_000;
    let admin: pg.Client | null = null;
    while (!admin) {
      if (child.exitCode !== null) throw new Error(`PostgreSQL (durable) exited: ${stderr}`);
      if (Date.now() > deadline) throw new Error(`PostgreSQL (durable) did not start within 60 s: ${stderr}`);
      const c = new pg.Client({ connectionString: adminUrl });
      try {
        await c.connect();
        admin = c;
      } catch {
        await c.end().catch(() => {});
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    try {
      await admin.query(`CREATE DATABASE ${dbName}`);
      const show = async (s: string): Promise<string> => String((await admin!.query<Record<string, string>>(`SHOW ${s}`)).rows[0]?.[s]);
      const version = await show('server_version');
      const settings = `fsync=${await show('fsync')}, synchronous_commit=${await show('synchronous_commit')}, full_page_writes=${await show('full_page_writes')}, shared_buffers=${await show('shared_buffers')}`;
      const backend = Number((await admin.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid);
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${backend}/status`, 'utf8'))?.[1]);
      ctx.log(`durable PostgreSQL ${version} on 127.0.0.1:${port} (${settings}), data in ${os.tmpdir()}`);
      return {
        url: `postgres://${TEST_CREDENTIALS.pgUser}:${TEST_CREDENTIALS.pgPassword}@127.0.0.1:${port}/${dbName}`,
        info: `PostgreSQL ${version} at 127.0.0.1:${port} (a private server started by the benchmark; ${settings}; data on ${os.tmpdir()}), database ${dbName}`,
        postmaster: ppid,
        close,
      };
    } finally {
      await admin.end().catch(() => {});
    }
  } catch (e) {
    await close();
    throw e;
  }
}
