// A long-lived Python process of the tests (a Spark session, PyIceberg catalogs), spoken to in
// JSON lines: `{"id", "op", …}` on its stdin, `{"id", "ok", "result" | "error", "trace"}` on its
// stdout, in any order; first an unasked `{"id": 0}` when it is ready. The Python side is
// test/setup/python/jsonl_worker.py. One interpreter per test file: Spark takes tens of seconds
// to start, a request then a fraction of one.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import readline from 'node:readline';
import { pythonEnv, REPO_ROOT, testEnv } from './env.js';

const HAS_SETPRIV = spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status === 0;

interface Answer {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
  trace?: string;
}

export class PythonWorker {
  private nextId = 1;
  private readonly pending = new Map<number, { op: string; resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private stderrTail = '';
  private exited: string | null = null;
  /** Settles when the worker said it is ready (or died first). */
  readonly ready: Promise<void>;

  private constructor(private readonly name: string, private readonly child: ChildProcessWithoutNullStreams) {
    let markReady!: () => void;
    let failReady!: (e: Error) => void;
    this.ready = new Promise((res, rej) => {
      markReady = res;
      failReady = rej;
    });
    this.ready.catch(() => {}); // a worker that dies before anyone waits is reported by call()
    child.stderr.on('data', (c: Buffer) => {
      this.stderrTail = (this.stderrTail + c.toString('utf8')).slice(-30_000);
      if (process.env.IPS_TEST_VERBOSE === '1') process.stderr.write(c);
    });
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      let msg: Answer;
      try {
        msg = JSON.parse(line) as Answer;
      } catch {
        return; // not protocol
      }
      if (msg.id === 0) return markReady();
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new Error(`${this.name} ${p.op} failed: ${msg.error}\n${msg.trace ?? ''}`));
    });
    child.on('close', (code, signal) => {
      this.exited = `${this.name} exited (${signal ?? code})\n--- stderr tail ---\n${this.stderrTail.slice(-8000)}`;
      failReady(new Error(this.exited));
      for (const p of this.pending.values()) p.reject(new Error(this.exited));
      this.pending.clear();
    });
    process.once('disconnect', () => child.kill('SIGKILL'));
  }

  /** Starts `python <args>` (a script and its arguments, or `-c CODE`); killed with the test process where setpriv exists. */
  static start(name: string, args: string[]): PythonWorker {
    const python = testEnv().python;
    const [cmd, argv] = HAS_SETPRIV ? ['setpriv', ['--pdeathsig', 'KILL', '--', python, '-u', ...args]] : [python, ['-u', ...args]];
    return new PythonWorker(name, spawn(cmd, argv, { cwd: REPO_ROOT, env: pythonEnv(), stdio: ['pipe', 'pipe', 'pipe'] }));
  }

  async call<T>(op: string, params: Record<string, unknown> = {}, timeoutMs = 10 * 60_000): Promise<T> {
    await this.ready;
    if (this.exited) throw new Error(this.exited);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.name} ${op} timed out after ${timeoutMs / 1000}s\n--- stderr tail ---\n${this.stderrTail.slice(-8000)}`));
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
      this.child.stdin.write(`${JSON.stringify({ ...params, id, op })}\n`);
    });
  }

  /** Ends its input (the worker finishes its request loop and cleans up); killed if it takes longer than `graceMs`. */
  async close(graceMs = 30_000): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((r) => this.child.once('close', () => r()));
    this.child.stdin.end();
    const t = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await done;
    clearTimeout(t);
  }
}
