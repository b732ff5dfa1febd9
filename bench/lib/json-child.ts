// A long-lived child process spoken to in JSON lines: commands on its stdin, `@@bench <JSON>`
// answers on its stdout, one per command, in order (the first one, unasked, is its hello: `ready`).
// Other stdout lines and its stderr are passed through to ours, prefixed with `[name] `. Used for
// the ips servers of the HTTP and trigger benchmarks (bench/lib/ips-server.ts) and the Python
// planning workers of bench/change-planning.ts (bench/py/plan_worker.py).
import { spawn, type ChildProcess } from 'node:child_process';
import { REPO_ROOT } from './common.js';

const ANSWER = '@@bench ';

export interface JsonChildOptions {
  /** What the child is, in error messages: "<name> server exited with 1", "<name> worker: <error>". */
  what: string;
  /** The child's environment (default: ours). */
  env?: NodeJS.ProcessEnv;
  /**
   * How its stderr is passed through: `chunks` as it arrives, every line start prefixed; `lines`
   * whole lines only, blank ones dropped.
   */
  stderr: 'chunks' | 'lines';
  /**
   * A command not answered in this time kills the child (SIGKILL) and fails; so do the commands
   * after it (answers come in order). For peers that can stall rather than fail: a JVM near its
   * heap limit after an OutOfMemoryError collected for half an hour in one run. Default: no limit.
   */
  requestTimeoutMs?: number;
}

export class JsonChild {
  private readonly child: ChildProcess;
  private readonly waiting: { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }[] = [];
  private readonly what: string;
  private errTail = '';
  private exited = false;
  private readonly requestTimeoutMs: number | undefined;
  readonly ready: Promise<Record<string, unknown>>;

  constructor(readonly name: string, cmd: string, args: string[], opts: JsonChildOptions) {
    this.what = opts.what;
    this.requestTimeoutMs = opts.requestTimeoutMs;
    this.ready = new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
    this.child = spawn(cmd, args, { cwd: REPO_ROOT, ...(opts.env ? { env: opts.env } : {}), stdio: ['pipe', 'pipe', 'pipe'] });
    const prefix = `[${name}] `;
    let out = '';
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      const lines = (out + d).split('\n');
      out = lines.pop()!;
      for (const l of lines) {
        if (l.startsWith(ANSWER)) this.settle(JSON.parse(l.slice(ANSWER.length)) as Record<string, unknown>);
        else if (l.trim()) process.stderr.write(`${prefix}${l}\n`);
      }
    });
    let err = '';
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.errTail = (this.errTail + d).slice(-4000);
      if (opts.stderr === 'chunks') {
        process.stderr.write(d.replace(/^(?=.)/gm, prefix));
        return;
      }
      const lines = (err + d).split('\n');
      err = lines.pop()!;
      for (const l of lines) if (l.trim()) process.stderr.write(`${prefix}${l}\n`);
    });
    this.child.on('error', (e) => this.failAll(e));
    this.child.on('close', (code) => {
      this.exited = true;
      this.failAll(new Error(`${name} ${this.what} exited with ${code}\n${this.errTail}`));
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  private settle(msg: Record<string, unknown>): void {
    const w = this.waiting.shift();
    if (!w) return;
    if (typeof msg['error'] === 'string') w.reject(new Error(`${this.name} ${this.what}: ${msg['error']}`));
    else w.resolve(msg);
  }

  private failAll(e: Error): void {
    for (const w of this.waiting.splice(0)) w.reject(e);
  }

  /** Sends one command; resolves with its answer, rejects with an `{error}` answer or the child's exit. */
  request<T>(cmd: Record<string, unknown>): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`${this.name} ${this.what} has exited\n${this.errTail}`));
    return new Promise<T>((resolve, reject) => {
      const limit = this.requestTimeoutMs;
      const timer = limit === undefined ? null : setTimeout(() => {
        reject(new Error(`${this.name} ${this.what}: no answer in ${Math.round(limit / 1000)} s; killed`));
        this.child.kill('SIGKILL');
      }, limit);
      const done = (): void => {
        if (timer) clearTimeout(timer);
      };
      this.waiting.push({
        resolve: (v) => { done(); (resolve as (v: Record<string, unknown>) => void)(v); },
        reject: (e) => { done(); reject(e); },
      });
      this.child.stdin!.write(JSON.stringify(cmd) + '\n');
    });
  }

  /** `{"op":"quit"}` and the end of stdin; SIGKILL when the child has not exited 30 s later. */
  async close(): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((resolve) => this.child.once('close', () => resolve()));
    this.child.stdin!.end(JSON.stringify({ op: 'quit' }) + '\n');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    await done;
    clearTimeout(timer);
  }
}
