// vitest globalSetup: provides PostgreSQL, an S3 server (MinIO), a Python venv with pyiceberg and
// pyspark, the Spark/Iceberg jars and Apache Airflow 3 and 2 venvs to the whole test run.
//
// - If a docker-compose stack (docker-compose.yml) answers on localhost:5432 and localhost:9000
//   with its credentials, it is used (IPS_TEST_COMPOSE_PG_URL / IPS_TEST_COMPOSE_S3_ENDPOINT point
//   the probe elsewhere; the S3 server must accept the test access key). Otherwise the setup runs scripts/provision/all.sh (cached
//   under ${IPS_CACHE_DIR:-$HOME/.cache/ips}; a warm run takes about a second) and starts a
//   throwaway PostgreSQL and MinIO on private loopback ports, removed again at teardown.
// - The servers are started with a parent-death signal (setpriv --pdeathsig), so they die with
//   the vitest process even when it is killed; a run record in $IPS_CACHE_DIR/run lets the next
//   setup clean up whatever was left (temp dirs, a server that survived).
// - Tests read the values with testEnv() from test/setup/env.ts (process.env + vitest inject).
// - Nothing is skipped silently: a missing prerequisite fails the run with what to install.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, chownSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import {
  COMPOSE_ENDPOINTS,
  envToProcessEnv,
  PROVIDE_KEY,
  TEST_CREDENTIALS,
  type IpsTestEnv,
  OutputTail,
} from './shared.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const PROVISION = path.join(REPO_ROOT, 'scripts', 'provision', 'all.sh');
const CACHE_DIR = process.env.IPS_CACHE_DIR || path.join(os.homedir(), '.cache', 'ips');
const RUN_DIR = path.join(CACHE_DIR, 'run');
const IS_CI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';

const INSTALL_HINT =
  'The test suite needs: PostgreSQL server binaries (Debian: apt-get install postgresql), Go >= 1.21 (ideally >= 1.24) to build MinIO ' +
  '(https://go.dev/dl; Debian 12\'s golang-go is too old), Python >= 3.9 with venv (apt-get install python3 python3-venv), ' +
  'Java 17 and Maven (apt-get install openjdk-17-jdk-headless maven), and the network access to PyPI, Maven Central ' +
  'and the Go module proxy on the first run. scripts/provision/all.sh installs what it can when run as root.';

function progress(msg: string): void {
  process.stderr.write(`[ips-test] ${msg}\n`);
}

class SetupError extends Error {
  constructor(message: string) {
    super(
      `\n\nips test environment setup FAILED${IS_CI ? ' (CI)' : ''}:\n${message}\n\n${INSTALL_HINT}\n` +
        (IS_CI ? '' : 'Alternatively start the services with `docker compose up -d` and re-run.\n'),
    );
    this.name = 'SetupError';
  }
}

// ---------------------------------------------------------------------------------------------
// small utilities

function readCacheValue(name: string): string {
  const file = path.join(CACHE_DIR, 'env', name);
  if (!existsSync(file)) {
    throw new SetupError(`provisioning did not record ${file}; run scripts/provision/all.sh by hand to see why`);
  }
  return readFileSync(file, 'utf8').trim();
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** A sleep that does not keep the process alive (vitest exits when the loop is empty). */
function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function cmdlineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

const HAS_SETPRIV = spawnSync('setpriv', ['--help'], { stdio: 'ignore' }).status === 0;

// ---------------------------------------------------------------------------------------------
// run records: what this setup started, so that a later setup can clean up after a killed run

interface RunRecord {
  ownerPid: number;
  servers: { pid: number; marker: string; signal: NodeJS.Signals }[];
  dirs: string[];
}

function recordPath(): string {
  return path.join(RUN_DIR, `${process.pid}.json`);
}

function writeRecord(rec: RunRecord): void {
  mkdirSync(RUN_DIR, { recursive: true });
  writeFileSync(recordPath(), JSON.stringify(rec));
}

function cleanupStaleRuns(): void {
  if (!existsSync(RUN_DIR)) return;
  for (const f of readdirSync(RUN_DIR)) {
    if (!f.endsWith('.json')) continue;
    const file = path.join(RUN_DIR, f);
    let rec: RunRecord;
    try {
      rec = JSON.parse(readFileSync(file, 'utf8')) as RunRecord;
    } catch {
      rmSync(file, { force: true });
      continue;
    }
    if (rec.ownerPid === process.pid || isAlive(rec.ownerPid)) continue;
    for (const s of rec.servers) {
      // Only kill a pid whose command line still names our temp dir (pids get reused).
      if (isAlive(s.pid) && cmdlineOf(s.pid).includes(s.marker)) {
        progress(`killing server ${s.pid} left over by dead test run ${rec.ownerPid}`);
        try {
          process.kill(s.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    for (const d of rec.dirs) rmSync(d, { recursive: true, force: true });
    rmSync(file, { force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// provisioning

async function provision(pieces: string[]): Promise<void> {
  if (!existsSync(PROVISION)) throw new SetupError(`missing ${PROVISION}`);
  const t0 = Date.now();
  const tail = new OutputTail();
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn('bash', [PROVISION, ...pieces], {
      cwd: REPO_ROOT,
      env: { ...process.env, IPS_CACHE_DIR: CACHE_DIR },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const forward = (chunk: Buffer): void => {
      tail.push(chunk);
      process.stderr.write(chunk);
    };
    child.stdout.on('data', forward);
    child.stderr.on('data', forward);
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0) {
    throw new SetupError(
      `scripts/provision/all.sh ${pieces.join(' ')} exited with ${code}. Its last output:\n${tail.toString()}`,
    );
  }
  progress(`provisioning checked in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
}

// ---------------------------------------------------------------------------------------------
// probing a docker-compose stack

async function probePostgres(url: string, timeoutMs: number): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

async function probeMinio(endpoint: string, timeoutMs: number): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/minio/health/live`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return false;
  } catch {
    return false;
  }
  // The right server, now the right credentials: any answer but 403 for our bucket will do.
  const s3 = s3Client(endpoint);
  try {
    await s3.send(new HeadBucketCommand({ Bucket: TEST_CREDENTIALS.s3Bucket }), {
      abortSignal: AbortSignal.timeout(timeoutMs),
    });
    return true;
  } catch (e) {
    const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    return status === 404;
  } finally {
    s3.destroy();
  }
}

function s3Client(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: TEST_CREDENTIALS.s3Region,
    forcePathStyle: true,
    credentials: { accessKeyId: TEST_CREDENTIALS.s3AccessKey, secretAccessKey: TEST_CREDENTIALS.s3SecretKey },
  });
}

async function ensureBucket(endpoint: string): Promise<void> {
  const s3 = s3Client(endpoint);
  try {
    await s3.send(new CreateBucketCommand({ Bucket: TEST_CREDENTIALS.s3Bucket }));
  } catch (e) {
    const name = (e as Error).name;
    if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') {
      throw new SetupError(`could not create bucket ${TEST_CREDENTIALS.s3Bucket} at ${endpoint}: ${String(e)}`);
    }
  } finally {
    s3.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// local servers

interface Server {
  name: string;
  child: ChildProcess;
  tail: OutputTail;
  /** Signal for a quick, clean stop. */
  stopSignal: NodeJS.Signals;
  exited: Promise<void>;
}

/**
 * Start a server process that dies with this process: setpriv sets PR_SET_PDEATHSIG (and, for
 * PostgreSQL under root, drops to its account first: the death signal survives that).
 */
function startServer(
  name: string,
  argv: string[],
  opts: { env?: NodeJS.ProcessEnv; runAs?: string; deathSignal: NodeJS.Signals; stopSignal: NodeJS.Signals },
): Server {
  let cmd: string[];
  const bin = argv[0]!;
  if (HAS_SETPRIV) {
    const pre = ['setpriv'];
    if (opts.runAs) pre.push(`--reuid=${opts.runAs}`, `--regid=${opts.runAs}`, '--init-groups');
    pre.push('--pdeathsig', opts.deathSignal.replace(/^SIG/, ''), '--');
    cmd = [...pre, ...argv];
  } else if (opts.runAs) {
    cmd = ['runuser', '-u', opts.runAs, '--', ...argv];
  } else {
    cmd = argv;
  }
  const child = spawn(cmd[0]!, cmd.slice(1), {
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tail = new OutputTail(8000);
  child.stdout!.on('data', (c: Buffer) => tail.push(c));
  child.stderr!.on('data', (c: Buffer) => tail.push(c));
  const exited = new Promise<void>((resolve) => {
    child.on('error', (e) => {
      tail.push(`spawn ${bin} failed: ${e.message}\n`);
      resolve();
    });
    child.on('exit', () => resolve());
  });
  return { name, child, tail, stopSignal: opts.stopSignal, exited };
}

async function waitReady(server: Server, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void server.exited.then(() => (exited = true));
  while (Date.now() < deadline) {
    if (exited) {
      throw new SetupError(`${server.name} exited during startup (code ${server.child.exitCode}). Output:\n${server.tail}`);
    }
    if (await check()) return;
    await sleep(150);
  }
  throw new SetupError(`${server.name} did not become ready within ${timeoutMs / 1000}s. Output:\n${server.tail}`);
}

async function stopServer(server: Server): Promise<void> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  server.child.kill(server.stopSignal);
  const killed = await Promise.race([server.exited.then(() => true), sleep(10_000).then(() => false)]);
  if (!killed) {
    server.child.kill('SIGKILL');
    await Promise.race([server.exited, sleep(3000)]);
  }
}

function run(cmd: string, args: string[], what: string, opts: { runAs?: string } = {}): void {
  const full = opts.runAs ? ['runuser', '-u', opts.runAs, '--', cmd, ...args] : [cmd, ...args];
  const r = spawnSync(full[0]!, full.slice(1), { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new SetupError(`${what} failed (${full.join(' ')}):\n${r.error?.message ?? ''}${r.stdout}${r.stderr}`);
  }
}

async function startPostgres(rec: RunRecord): Promise<{ server: Server; url: string }> {
  const bindir = readCacheValue('pg_bindir');
  const isRoot = process.getuid?.() === 0;
  const runAs = isRoot ? readCacheValue('pg_user') : undefined;
  const base = mkdtempSync(path.join(os.tmpdir(), 'ips-pg-'));
  rec.dirs.push(base);
  writeRecord(rec);
  const data = path.join(base, 'data');
  const pwfile = path.join(base, 'pwfile');
  writeFileSync(pwfile, TEST_CREDENTIALS.pgPassword + '\n', { mode: 0o600 });
  if (runAs) {
    const uid = Number(spawnSync('id', ['-u', runAs], { encoding: 'utf8' }).stdout.trim());
    const gid = Number(spawnSync('id', ['-g', runAs], { encoding: 'utf8' }).stdout.trim());
    if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new SetupError(`no user ${runAs} to run PostgreSQL as`);
    chownSync(base, uid, gid);
    chownSync(pwfile, uid, gid);
    // The postgres account must be able to reach the temp dir.
    const tmpMode = statSync(os.tmpdir()).mode;
    if ((tmpMode & 0o001) === 0) throw new SetupError(`${os.tmpdir()} is not searchable by ${runAs}; set TMPDIR`);
  }
  run(
    path.join(bindir, 'initdb'),
    ['-D', data, '-U', TEST_CREDENTIALS.pgUser, `--pwfile=${pwfile}`, '-A', 'scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'],
    'initdb',
    { runAs },
  );
  const port = await freePort();
  const server = startServer(
    'PostgreSQL',
    [
      path.join(bindir, 'postgres'),
      '-D', data,
      '-p', String(port),
      '-h', '127.0.0.1',
      '-k', base,
      '-c', 'fsync=off',
      '-c', 'synchronous_commit=off',
      '-c', 'full_page_writes=off',
      '-c', 'max_connections=200',
      '-c', 'log_min_messages=warning',
    ],
    // Immediate shutdown: the data dir is thrown away, no need for a checkpoint.
    { runAs, deathSignal: 'SIGQUIT', stopSignal: 'SIGQUIT' },
  );
  rec.servers.push({ pid: server.child.pid ?? -1, marker: base, signal: 'SIGQUIT' });
  writeRecord(rec);
  const adminUrl = `postgres://${TEST_CREDENTIALS.pgUser}:${TEST_CREDENTIALS.pgPassword}@127.0.0.1:${port}/postgres`;
  await waitReady(server, () => probePostgres(adminUrl, 1000), 60_000);
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${TEST_CREDENTIALS.pgDatabase}`);
  } finally {
    await admin.end();
  }
  const url = `postgres://${TEST_CREDENTIALS.pgUser}:${TEST_CREDENTIALS.pgPassword}@127.0.0.1:${port}/${TEST_CREDENTIALS.pgDatabase}`;
  return { server, url };
}

async function startMinio(rec: RunRecord): Promise<{ server: Server; endpoint: string }> {
  const bin = readCacheValue('minio');
  if (!existsSync(bin)) throw new SetupError(`MinIO binary ${bin} is missing; run scripts/provision/minio.sh`);
  const base = mkdtempSync(path.join(os.tmpdir(), 'ips-minio-'));
  rec.dirs.push(base);
  writeRecord(rec);
  const [port, consolePort] = [await freePort(), await freePort()];
  const server = startServer(
    'MinIO',
    [
      bin, 'server',
      '--quiet',
      '--address', `127.0.0.1:${port}`,
      '--console-address', `127.0.0.1:${consolePort}`,
      '--certs-dir', path.join(base, 'certs'),
      path.join(base, 'data'),
    ],
    {
      env: {
        ...process.env,
        HOME: base,
        MINIO_ROOT_USER: TEST_CREDENTIALS.s3AccessKey,
        MINIO_ROOT_PASSWORD: TEST_CREDENTIALS.s3SecretKey,
        MINIO_REGION: TEST_CREDENTIALS.s3Region,
        MINIO_BROWSER: 'off',
        MINIO_UPDATE: 'off',
        MINIO_CI_CD: 'on',
      },
      // MinIO's graceful stop takes seconds; its data dir is thrown away anyway.
      deathSignal: 'SIGKILL',
      stopSignal: 'SIGKILL',
    },
  );
  rec.servers.push({ pid: server.child.pid ?? -1, marker: base, signal: 'SIGKILL' });
  writeRecord(rec);
  const endpoint = `http://127.0.0.1:${port}`;
  await waitReady(
    server,
    async () => {
      try {
        const res = await fetch(`${endpoint}/minio/health/live`, { signal: AbortSignal.timeout(1000) });
        return res.ok;
      } catch {
        return false;
      }
    },
    60_000,
  );
  return { server, endpoint };
}

// ---------------------------------------------------------------------------------------------

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const t0 = Date.now();
  cleanupStaleRuns();

  // Where to look for an already running stack: docker-compose.yml's ports unless overridden.
  const composePg = process.env.IPS_TEST_COMPOSE_PG_URL || COMPOSE_ENDPOINTS.pgUrl;
  const composeS3 = process.env.IPS_TEST_COMPOSE_S3_ENDPOINT || COMPOSE_ENDPOINTS.s3Endpoint;
  progress(`probing for a docker-compose stack (${new URL(composePg).host}, ${new URL(composeS3).host})...`);
  const [pgUp, minioUp] = await Promise.all([probePostgres(composePg, 1500), probeMinio(composeS3, 1500)]);
  const useCompose = pgUp && minioUp;
  if (useCompose) {
    progress('using the docker-compose stack');
  } else {
    progress(
      `no docker-compose stack (postgres ${pgUp ? 'up' : 'down'}, minio ${minioUp ? 'up' : 'down'}): starting private servers`,
    );
  }

  // node22: a Node 22 runtime for test/node22/; airflow, airflow2: Apache Airflow 3 and 2 in venvs
  // of their own, for test/airflow/ (which reads env/airflow and env/airflow2 itself); chromium:
  // Debian's Chromium for the console's browser tests, test/ui/ (which reads env/chromium);
  // pgbouncer: Debian's PgBouncer for test/state/pgbouncer.test.ts (which reads env/pgbouncer);
  // clang-wasm: Debian's clang and lld for test/unit/inflate.test.ts (which reads env/clang).
  const extras = ['node22', 'airflow', 'airflow2', 'chromium', 'pgbouncer', 'clang-wasm'];
  await provision(useCompose ? ['python', 'jars', ...extras] : ['postgres', 'minio', 'python', 'jars', ...extras]);

  const rec: RunRecord = { ownerPid: process.pid, servers: [], dirs: [] };
  const servers: Server[] = [];
  const teardown = async (): Promise<void> => {
    const t1 = Date.now();
    await Promise.all(servers.map((s) => stopServer(s)));
    for (const d of rec.dirs) rmSync(d, { recursive: true, force: true });
    rmSync(recordPath(), { force: true });
    if (servers.length) progress(`stopped test servers in ${((Date.now() - t1) / 1000).toFixed(1)}s`);
  };

  let env: IpsTestEnv;
  try {
    let pgUrl = composePg;
    let s3Endpoint = composeS3;
    if (!useCompose) {
      writeRecord(rec);
      const [p, m] = await Promise.allSettled([startPostgres(rec), startMinio(rec)]);
      if (p.status === 'fulfilled') servers.push(p.value.server);
      if (m.status === 'fulfilled') servers.push(m.value.server);
      if (p.status === 'rejected') throw p.reason;
      if (m.status === 'rejected') throw m.reason;
      pgUrl = p.value.url;
      s3Endpoint = m.value.endpoint;
    }
    await ensureBucket(s3Endpoint);

    const venvPython = path.join(CACHE_DIR, 'venv', 'bin', 'python');
    if (!existsSync(venvPython)) throw new SetupError(`venv python ${venvPython} is missing; run scripts/provision/python.sh`);
    const sparkJars = readCacheValue('spark_jars').split(',').filter(Boolean);
    for (const j of sparkJars) if (!existsSync(j)) throw new SetupError(`jar ${j} is missing; run scripts/provision/jars.sh`);
    const javaHome = process.env.JAVA_HOME && existsSync(path.join(process.env.JAVA_HOME, 'bin', 'java'))
      ? process.env.JAVA_HOME
      : readCacheValue('java_home');

    env = {
      pgUrl,
      s3Endpoint,
      s3Region: TEST_CREDENTIALS.s3Region,
      s3AccessKey: TEST_CREDENTIALS.s3AccessKey,
      s3SecretKey: TEST_CREDENTIALS.s3SecretKey,
      s3Bucket: TEST_CREDENTIALS.s3Bucket,
      python: venvPython,
      sparkJars,
      javaHome,
      cacheDir: CACHE_DIR,
      services: useCompose ? 'compose' : 'local',
    };
  } catch (e) {
    await teardown();
    throw e;
  }

  // Workers are forked after global setup and inherit process.env; `provide` is the documented
  // channel, testEnv() reads either.
  Object.assign(process.env, envToProcessEnv(env));
  project.provide(PROVIDE_KEY, env);

  progress(
    `ready in ${((Date.now() - t0) / 1000).toFixed(1)}s: postgres ${env.pgUrl.replace(/:[^:@/]*@/, ':***@')}, s3 ${env.s3Endpoint} bucket ${env.s3Bucket}`,
  );
  return teardown;
}
