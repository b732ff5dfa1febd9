// A real Iceberg REST catalog server for the tests: Apache Iceberg's own REST fixture,
// org.apache.iceberg.rest.RESTCatalogServer (test-fixtures of org.apache.iceberg:iceberg-open-api,
// the code behind the apache/iceberg-rest-fixture image), run as a child JVM.
//
//   const lib = await provisionRestCatalog();          // scripts/provision/rest-catalog.sh
//   const server = await startRestServer({ lib, catalogName, jdbc: jdbcFromPgUrl(pgUrl), warehouse });
//   ... server.url ...
//   await server.stop();
//
// The server reads its catalog properties from CATALOG_* environment variables (RCKUtils:
// CATALOG_IO__IMPL -> io-impl, CATALOG_S3_ENDPOINT -> s3.endpoint) and its port from the
// `rest.port` property; it builds a JdbcCatalog named by `catalog.name`. startRestServer turns a
// property map into those variables. The JVM is started with a parent-death signal (setpriv
// --pdeathsig), and killed on process exit, so it never outlives the test process.
//
// Note: RESTCatalogServer binds Jetty to all interfaces (new Server(port)); it has no setting for
// the host. The port is a free loopback port, and the server only lives as long as the test.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import path from 'node:path';
import { REPO_ROOT, testEnv } from '../setup/env.js';
import { OutputTail } from '../setup/shared.js';

const MAIN_CLASS = 'org.apache.iceberg.rest.RESTCatalogServer';
const HAS_SETPRIV = spawnSync('setpriv', ['--help'], { stdio: 'ignore' }).status === 0;

function verbose(): boolean {
  return process.env.IPS_TEST_VERBOSE === '1';
}

/**
 * Run scripts/provision/rest-catalog.sh (idempotent; the first run downloads ~70 MB of jars with
 * Maven) and return the directory holding the server's classpath.
 */
export function provisionRestCatalog(): Promise<string> {
  const env = testEnv();
  const script = path.join(REPO_ROOT, 'scripts', 'provision', 'rest-catalog.sh');
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [script], {
      cwd: REPO_ROOT,
      env: { ...process.env, IPS_CACHE_DIR: env.cacheDir, JAVA_HOME: env.javaHome },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err = new OutputTail();
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => {
      err.push(c);
      if (verbose()) process.stderr.write(c);
    });
    child.on('error', (e) => reject(new Error(`could not run ${script}: ${e.message}`)));
    child.on('close', (code) => {
      const lines = Buffer.concat(out).toString('utf8').trim().split('\n');
      const lib = lines[lines.length - 1]?.trim();
      if (code === 0 && lib) resolve(lib);
      else reject(new Error(`${path.relative(REPO_ROOT, script)} exited with ${code}:\n${err}`));
    });
  });
}

export interface JdbcConnection {
  /** jdbc:postgresql://host:port/db */
  url: string;
  user: string;
  password: string;
}

/** postgres://user:pass@host:port/db -> the JDBC URL plus credentials the JdbcCatalog wants. */
export function jdbcFromPgUrl(pgUrl: string): JdbcConnection {
  const u = new URL(pgUrl);
  return {
    url: `jdbc:postgresql://${u.hostname}:${u.port || '5432'}${u.pathname}`,
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
  };
}

export function freeLoopbackPort(): Promise<number> {
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

/** Catalog property -> the CATALOG_* variable RCKUtils maps back to it ('-' <- '__', '.' <- '_'). */
export function catalogEnvName(property: string): string {
  if (!/^[a-z0-9.-]+$/.test(property)) {
    throw new Error(`catalog property ${property} cannot be passed as a CATALOG_* variable (lower case, digits, '.' and '-' only)`);
  }
  return 'CATALOG_' + property.replace(/-/g, '__').replace(/\./g, '_').toUpperCase();
}

export interface RestServerOptions {
  /** Directory of the server's jars (provisionRestCatalog()). */
  lib: string;
  /** Name of the backend JdbcCatalog: its rows in iceberg_tables carry it. Make it unique per test. */
  catalogName: string;
  jdbc: JdbcConnection;
  /** Warehouse root: file:///… (HadoopFileIO) or s3://… (with io-impl S3FileIO). */
  warehouse: string;
  /** More catalog properties (io-impl, s3.endpoint, …). */
  properties?: Record<string, string>;
  /** Jars appended to the classpath (e.g. iceberg-aws-bundle for S3FileIO). */
  extraClasspath?: string[];
  startTimeoutMs?: number;
}

export interface RestServer {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  readonly catalogName: string;
  readonly pid: number | undefined;
  /** The server's log so far (tail). */
  output(): string;
  stop(): Promise<void>;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function answersConfig(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/v1/config`, { signal: AbortSignal.timeout(2000) });
    await res.text();
    return res.ok;
  } catch {
    return false;
  }
}

/**
 * Start RESTCatalogServer on a free loopback port and wait until GET /v1/config answers.
 * Retries with another port if the chosen one was taken in the meantime.
 */
export async function startRestServer(opts: RestServerOptions): Promise<RestServer> {
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(opts, await freeLoopbackPort());
    } catch (e) {
      lastError = e as Error;
      if (!/Address already in use|BindException/.test(lastError.message)) throw lastError;
    }
  }
  throw lastError!;
}

async function startOnce(opts: RestServerOptions, port: number): Promise<RestServer> {
  const env = testEnv();
  const props: Record<string, string> = {
    'catalog.name': opts.catalogName,
    'catalog-impl': 'org.apache.iceberg.jdbc.JdbcCatalog',
    uri: opts.jdbc.url,
    'jdbc.user': opts.jdbc.user,
    'jdbc.password': opts.jdbc.password,
    warehouse: opts.warehouse,
    'rest.port': String(port),
    ...opts.properties,
  };
  const childEnv: NodeJS.ProcessEnv = { ...process.env, JAVA_HOME: env.javaHome };
  // Only our properties: an inherited CATALOG_* variable would silently change the catalog.
  for (const k of Object.keys(childEnv)) if (k.startsWith('CATALOG_')) delete childEnv[k];
  for (const [k, v] of Object.entries(props)) childEnv[catalogEnvName(k)] = v;

  const classpath = [path.join(opts.lib, '*'), ...(opts.extraClasspath ?? [])].join(path.delimiter);
  const java = path.join(env.javaHome, 'bin', 'java');
  const jvm = [
    // A test server answers a few dozen requests: C1 only and a small heap start it in ~2 s.
    '-XX:TieredStopAtLevel=1',
    '-XX:+UseSerialGC',
    '-Xmx512m',
    '-Djava.net.preferIPv4Stack=true',
    '-Dorg.slf4j.simpleLogger.defaultLogLevel=info',
    '-Dorg.slf4j.simpleLogger.showDateTime=true',
    '-cp', classpath,
    MAIN_CLASS,
  ];
  const argv = HAS_SETPRIV ? ['setpriv', '--pdeathsig', 'KILL', '--', java, ...jvm] : [java, ...jvm];
  const child: ChildProcess = spawn(argv[0]!, argv.slice(1), { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const tail = new OutputTail();
  const onData = (c: Buffer): void => {
    tail.push(c);
    if (verbose()) process.stderr.write(c);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  let exited = false;
  const exitedP = new Promise<void>((resolve) => {
    child.on('error', (e) => {
      tail.push(`spawn ${argv[0]} failed: ${e.message}\n`);
      exited = true;
      resolve();
    });
    child.on('exit', () => {
      exited = true;
      resolve();
    });
  });
  // Backstop for a test process that ends without afterAll (setpriv covers a killed one).
  const killOnExit = (): void => {
    if (!exited) child.kill('SIGKILL');
  };
  process.on('exit', killOnExit);

  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    process.off('exit', killOnExit);
    if (exited) return;
    child.kill('SIGTERM');
    if (!(await Promise.race([exitedP.then(() => true), sleep(5000).then(() => false)]))) {
      child.kill('SIGKILL');
      await Promise.race([exitedP, sleep(3000)]);
    }
  };

  const timeoutMs = opts.startTimeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited) {
      process.off('exit', killOnExit);
      throw new Error(`${MAIN_CLASS} exited during startup (code ${child.exitCode}, signal ${child.signalCode}). Output:\n${tail}`);
    }
    if (await answersConfig(url)) break;
    if (/BindException|Address already in use/.test(tail.toString())) {
      await stop();
      throw new Error(`${MAIN_CLASS} could not bind port ${port}. Output:\n${tail}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${MAIN_CLASS} did not answer GET ${url}/v1/config within ${timeoutMs / 1000}s. Output:\n${tail}`);
    }
    await sleep(100);
  }
  return { url, port, catalogName: opts.catalogName, pid: child.pid, output: () => tail.toString(), stop };
}
