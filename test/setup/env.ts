// Test-side access to the environment prepared by test/setup/global-setup.ts.
//
//   import { testEnv, runPython } from '../setup/env.js';
//   const { pgUrl, s3Endpoint, s3Bucket } = testEnv();
//   const out = await runPython('test/interop/engines/spark_write.py', ['--table', 'db.t']);
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inject } from 'vitest';
import { ENV_NAMES, envToProcessEnv, PROVIDE_KEY, type IpsTestEnv } from './shared.js';

export type { IpsTestEnv } from './shared.js';
export { TEST_CREDENTIALS } from './shared.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

let cached: IpsTestEnv | undefined;

const HAS_SETPRIV = spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status === 0;

function fromInject(): IpsTestEnv | undefined {
  try {
    return inject(PROVIDE_KEY);
  } catch {
    return undefined; // not inside a vitest worker
  }
}

function required(name: string): string {
  const v = process.env[name];
  if (v === undefined || v === '') {
    throw new Error(
      `test environment variable ${name} is not set. The vitest global setup (test/setup/global-setup.ts) sets it: ` +
        `run the tests with \`npx vitest\` / \`npm test\`, or export ${name} yourself.`,
    );
  }
  return v;
}

/**
 * The test environment: connection details of PostgreSQL and the S3 server, the venv python and
 * the Spark jars. Throws an error naming the missing variable when run outside the global setup.
 */
export function testEnv(): IpsTestEnv {
  if (cached) return cached;
  const provided = fromInject();
  if (provided) {
    // Keep process.env in step, so that child processes (python, spark) see the same values.
    for (const [k, v] of Object.entries(envToProcessEnv(provided))) process.env[k] ??= v;
    return (cached = provided);
  }
  const services = required(ENV_NAMES.services);
  cached = {
    pgUrl: required(ENV_NAMES.pgUrl),
    s3Endpoint: required(ENV_NAMES.s3Endpoint),
    s3Region: required(ENV_NAMES.s3Region),
    s3AccessKey: required(ENV_NAMES.s3AccessKey),
    s3SecretKey: required(ENV_NAMES.s3SecretKey),
    s3Bucket: required(ENV_NAMES.s3Bucket),
    python: required(ENV_NAMES.python),
    sparkJars: required(ENV_NAMES.sparkJars).split(',').filter(Boolean),
    javaHome: required(ENV_NAMES.javaHome),
    cacheDir: required(ENV_NAMES.cacheDir),
    services: services === 'compose' ? 'compose' : 'local',
  };
  return cached;
}

export interface RunPythonOptions {
  /** Working directory (default: the repo root). */
  cwd?: string;
  /** Extra environment variables, on top of process.env and the test environment. */
  env?: Record<string, string | undefined>;
  /** Text written to the script's stdin. */
  input?: string;
  /** Kill the script after this long (default 10 minutes). */
  timeoutMs?: number;
  /** Also copy the script's stderr to this process's stderr as it runs (or set IPS_TEST_VERBOSE=1). */
  echoStderr?: boolean;
}

export class PythonError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'PythonError';
  }
}

/** The environment a Python engine script runs with: venv, Java, Spark on loopback, test vars. */
export function pythonEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const e = testEnv();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...envToProcessEnv(e),
    JAVA_HOME: e.javaHome,
    PATH: `${path.dirname(e.python)}${path.delimiter}${path.join(e.javaHome, 'bin')}${path.delimiter}${process.env.PATH ?? ''}`,
    VIRTUAL_ENV: path.dirname(path.dirname(e.python)),
    PYSPARK_PYTHON: e.python,
    PYSPARK_DRIVER_PYTHON: e.python,
    SPARK_LOCAL_IP: '127.0.0.1',
    SPARK_LOCAL_HOSTNAME: 'localhost',
    PYTHONUNBUFFERED: '1',
    PYTHONDONTWRITEBYTECODE: '1',
    // test/setup/python holds ips_test_env.py (spark_session(), s3 properties) for engine scripts.
    PYTHONPATH: [path.join(REPO_ROOT, 'test', 'setup', 'python'), process.env.PYTHONPATH].filter(Boolean).join(path.delimiter),
  };
  delete env.PYTHONHOME;
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/**
 * Run a Python script file (path absolute or relative to the repo root) with the venv python.
 * Resolves to its stdout; rejects with a PythonError carrying the exit code and stderr.
 */
export function runPython(script: string, args: readonly string[] = [], opts: RunPythonOptions = {}): Promise<string> {
  const scriptPath = path.isAbsolute(script) ? script : path.join(REPO_ROOT, script);
  return runPythonArgv([scriptPath, ...args], path.relative(REPO_ROOT, scriptPath), opts);
}

/** Like runPython, for a snippet of code (`python -c CODE args...`). */
export function runPythonCode(code: string, args: readonly string[] = [], opts: RunPythonOptions = {}): Promise<string> {
  return runPythonArgv(['-c', code, ...args], 'python -c <code>', opts);
}

function runPythonArgv(argv: string[], label: string, opts: RunPythonOptions): Promise<string> {
  const e = testEnv();
  const timeoutMs = opts.timeoutMs ?? 600_000;
  const echo = opts.echoStderr ?? (process.env.IPS_TEST_VERBOSE === '1');
  return new Promise((resolve, reject) => {
    // setpriv --pdeathsig: the script (and so pyspark's JVM, which exits when its python driver
    // goes) dies with this worker even when the worker is killed.
    const [cmd, cmdArgs] = HAS_SETPRIV
      ? ['setpriv', ['--pdeathsig', 'KILL', '--', e.python, ...argv]]
      : [e.python, argv];
    const child = spawn(cmd, cmdArgs, {
      cwd: opts.cwd ?? REPO_ROOT,
      env: pythonEnv(opts.env),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    // A vitest worker whose main process went away: take the script down with it.
    const onDisconnect = (): void => void child.kill('SIGKILL');
    process.once('disconnect', onDisconnect);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => {
      err.push(c);
      if (echo) process.stderr.write(c);
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      process.off('disconnect', onDisconnect);
      reject(new PythonError(`could not start ${e.python}: ${error.message}`, null, '', ''));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      process.off('disconnect', onDisconnect);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0) {
        resolve(stdout);
        return;
      }
      const why = timedOut ? `timed out after ${timeoutMs / 1000}s` : signal ? `was killed by ${signal}` : `exited with code ${code}`;
      const shownErr = stderr.length > 20_000 ? `...${stderr.slice(-20_000)}` : stderr;
      const shownOut = stdout.length > 4_000 ? `...${stdout.slice(-4_000)}` : stdout;
      reject(
        new PythonError(
          `${label} ${why}\n--- stderr ---\n${shownErr}${shownOut ? `\n--- stdout ---\n${shownOut}` : ''}`,
          code,
          stdout,
          stderr,
        ),
      );
    });
    child.stdin.on('error', () => {}); // script may exit without reading stdin
    child.stdin.end(opts.input ?? '');
  });
}
