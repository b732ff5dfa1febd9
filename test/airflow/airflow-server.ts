// A real Apache Airflow on loopback for the tests, AIRFLOW_HOME in a temp dir, on SQLite.
//
// Airflow 3 (major 3): the venv that scripts/provision/airflow.sh installs (its `airflow` command
// is recorded in $IPS_CACHE_DIR/env/airflow), the LocalExecutor, and the three processes a
// deployment runs: the API server (REST API v2, /auth/token, the execution API the tasks talk
// to), the scheduler and the DAG processor. The simple auth manager gets fixed users and
// passwords, and the JWT secret is fixed, so tokens stay valid across restarts unless a test
// restarts with another secret.
//
// Airflow 2 (major 2): scripts/provision/airflow2.sh's venv (env/airflow2), the
// SequentialExecutor (the one Airflow 2 allows on SQLite), the webserver (REST API v1 with the
// basic_auth backend, FAB users made with `airflow users create`) and the scheduler (which
// parses the DAGs itself).
//
// Each process leads its own process group (the scheduler forks executors and task supervisors):
// stop() ends the groups. With setpriv, each also dies with the test worker (parent-death signal).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { OutputTail } from '../setup/shared.js';

const HAS_SETPRIV = spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status === 0;

export interface AirflowUser {
  username: string;
  /** A simple-auth-manager role (Airflow 3), or the FAB role of that name (Airflow 2). */
  role: 'viewer' | 'user' | 'op' | 'admin';
  password: string;
}

export interface AirflowOptions {
  major: 2 | 3;
  /** $IPS_CACHE_DIR: where provisioning recorded the airflow command. */
  cacheDir: string;
  /** AIRFLOW_HOME (a fresh temp dir). */
  home: string;
  /** DAG files copied into the DAGs folder. */
  dagFiles: string[];
  users: AirflowUser[];
  /** The user the test itself reads and clears runs with. */
  admin: string;
  /** Environment of the processes (the tasks inherit the scheduler's); setProcessEnv() replaces it before start(). */
  env: NodeJS.ProcessEnv;
  jwtSecret: string;
}

interface Proc {
  name: string;
  child: ChildProcess;
  tail: OutputTail;
  exited: Promise<void>;
}

export function airflowCommand(cacheDir: string, major: 2 | 3): string {
  const piece = major === 3 ? 'airflow' : 'airflow2';
  const file = path.join(cacheDir, 'env', piece);
  if (!existsSync(file)) throw new Error(`${file} is missing: scripts/provision/${piece}.sh records the airflow command there (the global setup runs it)`);
  const bin = readFileSync(file, 'utf8').trim();
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run scripts/provision/${piece}.sh`);
  return bin;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Thrown by a waitUntil check that knows the state waited for will not come; other errors are retried. */
export class Hopeless extends Error {}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Airflow {
  readonly url: string;
  private readonly bin: string;
  private procs: Proc[] = [];
  private jwtSecret: string;
  private adminJwt: string | null = null;

  private constructor(private readonly o: AirflowOptions, private readonly port: number) {
    this.url = `http://127.0.0.1:${port}`;
    this.bin = airflowCommand(o.cacheDir, o.major);
    this.jwtSecret = o.jwtSecret;
  }

  /** Creates AIRFLOW_HOME with the DAGs and users and migrates the SQLite database; starts nothing. */
  static async create(o: AirflowOptions): Promise<Airflow> {
    const af = new Airflow(o, await freePort());
    const dags = path.join(o.home, 'dags');
    mkdirSync(dags, { recursive: true });
    for (const f of o.dagFiles) writeFileSync(path.join(dags, path.basename(f)), readFileSync(f));
    writeFileSync(path.join(o.home, 'passwords.json'), JSON.stringify(Object.fromEntries(o.users.map((u) => [u.username, u.password]))));
    await af.runOnce(['db', 'migrate'], 180_000);
    if (o.major === 2) {
      await af.runOnce(['sync-perm'], 120_000); // creates the FAB roles
      for (const u of o.users) {
        const role = u.role === 'op' ? 'Op' : u.role[0]!.toUpperCase() + u.role.slice(1);
        await af.runOnce(['users', 'create', '--username', u.username, '--password', u.password, '--role', role, '--firstname', u.username, '--lastname', 'test', '--email', `${u.username}@example.com`], 120_000);
      }
    }
    return af;
  }

  /** The environment the next start() gives the processes, and through the scheduler the tasks. */
  setProcessEnv(env: NodeJS.ProcessEnv): void {
    this.o.env = env;
  }

  env(): NodeJS.ProcessEnv {
    const home = this.o.home;
    const common = {
      ...this.o.env,
      AIRFLOW_HOME: home,
      AIRFLOW__CORE__DAGS_FOLDER: path.join(home, 'dags'),
      AIRFLOW__CORE__LOAD_EXAMPLES: 'False',
      AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION: 'False',
      AIRFLOW__DATABASE__SQL_ALCHEMY_CONN: `sqlite:///${path.join(home, 'airflow.db')}`,
      // A failing task retries after 1 s instead of 5 min (the example DAG sets retries, not the delay).
      AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY: '1',
      AIRFLOW__LOGGING__LOGGING_LEVEL: 'INFO',
      PYTHONUNBUFFERED: '1',
    };
    if (this.o.major === 2) {
      return {
        ...common,
        // The SequentialExecutor runs `airflow tasks run` by name: the venv's bin goes last, so
        // the PATH the tasks get (python3, ips, step.sh) comes first.
        PATH: `${this.o.env.PATH ?? ''}${path.delimiter}${path.dirname(this.bin)}`,
        AIRFLOW__CORE__EXECUTOR: 'SequentialExecutor',
        AIRFLOW__API__AUTH_BACKENDS: 'airflow.api.auth.backend.basic_auth',
        AIRFLOW__WEBSERVER__WEB_SERVER_HOST: '127.0.0.1',
        AIRFLOW__WEBSERVER__WEB_SERVER_PORT: String(this.port),
        AIRFLOW__WEBSERVER__WORKERS: '1',
        AIRFLOW__WEBSERVER__SECRET_KEY: 'airflow2-webserver-secret-key-for-tests',
        AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL: '5',
      };
    }
    return {
      ...common,
      AIRFLOW__CORE__EXECUTOR: 'LocalExecutor',
      AIRFLOW__CORE__PARALLELISM: '2',
      AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS: this.o.users.map((u) => `${u.username}:${u.role}`).join(','),
      AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE: path.join(home, 'passwords.json'),
      AIRFLOW__API_AUTH__JWT_SECRET: this.jwtSecret,
      AIRFLOW__API__HOST: '127.0.0.1',
      AIRFLOW__API__PORT: String(this.port),
      AIRFLOW__API__WORKERS: '1',
      AIRFLOW__CORE__EXECUTION_API_SERVER_URL: `${this.url}/execution/`,
      // The DAGs folder is listed every few seconds, not every 5 minutes.
      AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL: '5',
    };
  }

  private runOnce(args: string[], timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const tail = new OutputTail(8000);
      const child = spawn(this.bin, args, { env: this.env(), stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.on('data', (c: Buffer) => tail.push(c));
      child.stderr.on('data', (c: Buffer) => tail.push(c));
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        if (code === 0) resolve();
        else reject(new Error(`airflow ${args.join(' ')} exited with ${code}:\n${tail}`));
      });
    });
  }

  private spawnProc(name: string, args: string[]): Proc {
    const argv = HAS_SETPRIV ? ['setpriv', '--pdeathsig', 'TERM', '--', this.bin, ...args] : [this.bin, ...args];
    const child = spawn(argv[0]!, argv.slice(1), { env: this.env(), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const tail = new OutputTail(12_000);
    child.stdout!.on('data', (c: Buffer) => tail.push(c));
    child.stderr!.on('data', (c: Buffer) => tail.push(c));
    const exited = new Promise<void>((resolve) => {
      child.on('error', (e) => {
        tail.push(`spawn failed: ${e.message}\n`);
        resolve();
      });
      child.on('exit', () => resolve());
    });
    return { name, child, tail, exited };
  }

  /** Starts the API server (webserver), the scheduler and (Airflow 3) the DAG processor; waits until they are healthy. */
  async start(): Promise<void> {
    this.procs = this.o.major === 3
      ? [this.spawnProc('api-server', ['api-server']), this.spawnProc('scheduler', ['scheduler']), this.spawnProc('dag-processor', ['dag-processor'])]
      : [this.spawnProc('webserver', ['webserver']), this.spawnProc('scheduler', ['scheduler'])];
    await this.waitUntil(`Airflow ${this.o.major} healthy (${this.procs.map((p) => p.name).join(', ')})`, async () => {
      const r = await fetch(`${this.url}${this.o.major === 3 ? '/api/v2/monitor/health' : '/health'}`, { signal: AbortSignal.timeout(2000) });
      if (!r.ok) return undefined;
      const h = (await r.json()) as Record<string, { status: string | null }>;
      return h.metadatabase?.status === 'healthy' && h.scheduler?.status === 'healthy' && (this.o.major === 2 || h.dag_processor?.status === 'healthy') ? true : undefined;
    }, 180_000);
  }

  /** Ends all three processes (their process groups). */
  async stop(): Promise<void> {
    await Promise.all(this.procs.map(async (p) => {
      if (p.child.exitCode !== null || p.child.signalCode !== null || p.child.pid === undefined) return;
      try {
        process.kill(-p.child.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
      await Promise.race([p.exited, sleep(15_000)]);
      try {
        process.kill(-p.child.pid, 'SIGKILL'); // leftovers of the group (task supervisors), or a stop that hung
      } catch {
        /* gone */
      }
      await Promise.race([p.exited, sleep(3000)]);
    }));
    this.procs = [];
  }

  /** Stops Airflow and starts it again with another `[api_auth] jwt_secret`: tokens issued before no longer verify. */
  async restartWithJwtSecret(secret: string): Promise<void> {
    await this.stop();
    this.jwtSecret = secret;
    this.adminJwt = null;
    await this.start();
  }

  /** What the processes printed last (for failure messages). */
  output(): string {
    return this.procs.map((p) => `--- airflow ${p.name} (exit ${p.child.exitCode ?? p.child.signalCode ?? 'running'}):\n${p.tail}`).join('\n');
  }

  /** POST /auth/token for a user. */
  async token(username: string): Promise<{ status: number; token?: string }> {
    const u = this.o.users.find((x) => x.username === username);
    if (!u) throw new Error(`no Airflow user ${username}`);
    const r = await fetch(`${this.url}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password: u.password }) });
    const body = (await r.json().catch(() => ({}))) as { access_token?: string };
    return { status: r.status, ...(body.access_token ? { token: body.access_token } : {}) };
  }

  /** A REST API call as the admin user: v2 with a JWT from /auth/token (renewed once on 401/403), or v1 with basic auth. */
  async api<T = Record<string, any>>(method: string, p: string, body?: unknown): Promise<{ status: number; json: T }> {
    const send = async (authorization: string): Promise<Response> =>
      fetch(`${this.url}/api/${this.o.major === 3 ? 'v2' : 'v1'}${p}`, {
        method,
        headers: { authorization, accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    let r: Response;
    if (this.o.major === 2) {
      const u = this.o.users.find((x) => x.username === this.o.admin)!;
      r = await send(`Basic ${Buffer.from(`${u.username}:${u.password}`).toString('base64')}`);
    } else {
      for (let attempt = 0; ; attempt++) {
        if (this.adminJwt === null) {
          const t = await this.token(this.o.admin);
          if (!t.token) throw new Error(`Airflow /auth/token answered ${t.status} for ${this.o.admin}`);
          this.adminJwt = t.token;
        }
        r = await send(`Bearer ${this.adminJwt}`);
        if ((r.status !== 401 && r.status !== 403) || attempt > 0) break;
        this.adminJwt = null;
      }
    }
    return { status: r.status, json: (await r.json().catch(() => ({}))) as T };
  }

  /** Polls `check` until it returns a value; fails with the processes' output when one of them died. */
  async waitUntil<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      const dead = this.procs.find((p) => p.child.exitCode !== null || p.child.signalCode !== null);
      if (dead) throw new Error(`airflow ${dead.name} exited while waiting for ${what}:\n${this.output()}`);
      try {
        const v = await check();
        if (v !== undefined) return v;
      } catch (e) {
        if (e instanceof Hopeless) throw new Error(`${e.message}\n(while waiting for ${what})`);
        last = String(e);
      }
      if (Date.now() > deadline) throw new Error(`gave up after ${timeoutMs / 1000} s waiting for ${what}${last ? ` (last error: ${last})` : ''}:\n${this.output()}`);
      await sleep(500);
    }
  }
}
