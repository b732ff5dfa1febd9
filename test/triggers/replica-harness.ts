// Helpers of test/triggers/replicas.test.ts: `ips serve` replicas as real processes, the owner of
// a TCP connection (which replica is sending a trigger right now), and a Maestro-like orchestrator
// that "runs the workflow" of every new start request by committing its batch through a replica.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import http, { type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { REPO_ROOT } from '../setup/env.js';
import { maestroReceiver, type MaestroReceiver, type Recorded } from '../sinks/receivers.js';

const BIN = path.join(REPO_ROOT, 'bin', 'ips.js');
const HAS_SETPRIV = spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status === 0;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
export const randomInt = (lo: number, hi: number): number => lo + Math.floor(Math.random() * (hi - lo + 1));

// ---------------------------------------------------------------------------------------------
// Replicas

export interface Replica {
  slot: number;
  /** How many times this slot was started before (0 for the first process). */
  generation: number;
  proc: ChildProcess;
  pid: number;
  url: string;
  alive: boolean;
  /** Resolves with the signal (or exit code) when the process is gone. */
  exited: Promise<NodeJS.Signals | number | null>;
  stderr(): string;
}

/**
 * Starts `ips serve --port 0 --json` and resolves once it printed its URL. With setpriv the
 * process also dies if this test worker dies (parent-death signal), so none outlives the run.
 */
export async function startReplica(slot: number, generation: number, env: NodeJS.ProcessEnv, cwd: string): Promise<Replica> {
  const argv = [BIN, 'serve', '--port', '0', '--json'];
  const [cmd, args] = HAS_SETPRIV ? ['setpriv', ['--pdeathsig', 'KILL', '--', process.execPath, ...argv]] : [process.execPath, argv];
  const proc = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-20_000);
  });
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => proc.once('exit', (code, signal) => resolve(signal ?? code)));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`replica ${slot} did not start within 30 s: ${err}`)), 30_000);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      try {
        const u = (JSON.parse(out) as { url: string }).url;
        clearTimeout(timer);
        resolve(u);
      } catch { /* the JSON line is not complete yet */ }
    });
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`replica ${slot} exited with ${signal ?? code} before listening: ${err}`));
    });
  });
  const r: Replica = { slot, generation, proc, pid: proc.pid!, url, alive: true, exited, stderr: () => err };
  void exited.then(() => { r.alive = false; });
  return r;
}

// ---------------------------------------------------------------------------------------------
// Which process owns a TCP connection (Linux /proc): the replica that sent a request.

function socketInodes(localPort: number, remotePort: number): Set<string> {
  const inodes = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const lp = parseInt(f[1]!.split(':')[1]!, 16);
      const rp = parseInt(f[2]!.split(':')[1]!, 16);
      if (lp === localPort && rp === remotePort && f[9] !== '0') inodes.add(f[9]!);
    }
  }
  return inodes;
}

/** The pid among `pids` holding the client end (local port `clientPort`) of a connection to `serverPort`. */
export function connectionOwner(clientPort: number, serverPort: number, pids: number[]): number | null {
  const inodes = socketInodes(clientPort, serverPort);
  if (inodes.size === 0) return null;
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m && inodes.has(m[1]!)) return pid;
      } catch { /* closed meanwhile */ }
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Maestro's request id, written from Maestro's IdHelper (UUID.nameUUIDFromBytes of the UTF-8
// bytes: MD5, version 3, IETF variant), to tie each trigger's dedup key to the run it started.

export function nameUuidFromBytes(key: string): string {
  const b = crypto.createHash('md5').update(key, 'utf8').digest();
  b[6] = (b[6]! & 0x0f) | 0x30;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// ---------------------------------------------------------------------------------------------
// The orchestrator

export interface Run {
  requestId: string;
  workflow: string;
  batchId: string;
  consumer: string;
  subscription: string;
  /** Set once a replica answered the commit (200). */
  committed: boolean;
  /** The answers: already_committed per successful commit call (one, unless a cut commit had gone through). */
  commitAnswers: boolean[];
  commitAttempts: number;
}

export interface KillRecord {
  mode: 'delivery' | 'commit' | 'random';
  slot: number;
  pid: number;
  atMs: number;
  /** delivery: the request id whose start the replica was waiting for; commit: the batch whose commit was cut. */
  detail: string;
  /** commit: the commit request failed because the replica died under it. */
  cut?: boolean;
}

export interface OrchestratorOptions {
  workflows: string[];
  adminToken: string;
  /** The replicas alive now (the orchestrator commits through a random one). */
  live(): Replica[];
  /** Kills a replica (SIGKILL) and resolves with the record when it is gone; the test restarts it. */
  kill(r: Replica, record: Omit<KillRecord, 'slot' | 'pid' | 'atMs'>): Promise<KillRecord>;
}

/**
 * A Maestro-like service: the start endpoint is test/sinks/receivers.ts's maestroReceiver (it
 * checks the request shape and answers CREATED for a new request_id, DUPLICATED for a known
 * one); on CREATED the workflow "runs": after a short random delay it commits the batch named
 * in run_params through a random live replica, retrying on another one when the connection
 * fails. It can be armed to kill the replica whose start request it is answering (before the
 * answer leaves), or the replica a commit is sent to (while the commit is in flight).
 */
export class Orchestrator {
  readonly maestro: MaestroReceiver;
  readonly runs = new Map<string, Run>();
  /** batch id → request ids whose run carried it (more than one would be a second run of a batch). */
  readonly runsByBatch = new Map<string, string[]>();
  /** request id → DUPLICATED answers. */
  readonly duplicates = new Map<string, number>();
  readonly problems: string[] = [];
  startRequests = 0;
  private active = 0;
  private armedDelivery: (() => void) | null = null;
  private armedCommit: (() => void) | null = null;
  private server: http.Server | null = null;
  port = 0;
  url = '';
  private stopped = false;

  constructor(private readonly o: OrchestratorOptions) {
    this.maestro = maestroReceiver({ workflows: o.workflows });
  }

  async listen(): Promise<void> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const rec: Recorded = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) };
        this.onStart(rec, req.socket.remotePort ?? 0, res).catch((e: unknown) => {
          this.problems.push(`receiver: ${String(e)}`);
          if (!res.headersSent) res.writeHead(500).end();
        });
      });
    });
    this.server.keepAliveTimeout = 1000;
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    this.url = `http://127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    this.stopped = true;
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** Runs whose commit has not been answered yet. */
  get inProgress(): number {
    return this.active;
  }

  /** The next start request's sender is killed before it gets the answer; resolves when that happened. */
  armDeliveryKill(): Promise<void> {
    return new Promise((resolve) => { this.armedDelivery = resolve; });
  }

  disarmDeliveryKill(): void {
    this.armedDelivery = null;
  }

  /** The next commit's replica is killed right after the request left; resolves when that happened. */
  armCommitKill(): Promise<void> {
    return new Promise((resolve) => { this.armedCommit = resolve; });
  }

  disarmCommitKill(): void {
    this.armedCommit = null;
  }

  private async onStart(rec: Recorded, clientPort: number, res: ServerResponse): Promise<void> {
    this.startRequests++;
    // The shape checks and the CREATED/DUPLICATED bookkeeping are maestroReceiver's; the answer
    // is held here so that it can leave after the sender was killed.
    let status = 0;
    let text = '';
    const capture = {
      headersSent: false,
      writeHead(s: number) { status = s; this.headersSent = true; return this; },
      end(t?: string) { text = t ?? ''; return this; },
    };
    await this.maestro.handler(rec, capture as unknown as ServerResponse);
    let answer: { status?: string } = {};
    try {
      answer = JSON.parse(text) as { status?: string };
    } catch { /* not JSON */ }
    const body = JSON.parse(rec.body.toString('utf8')) as { request_id: string; run_params: Record<string, { value: unknown }> };
    if (status !== 200) {
      this.problems.push(`start request answered ${status}: ${text}`);
    } else if (answer.status === 'CREATED') {
      const p = body.run_params;
      const run: Run = {
        requestId: body.request_id,
        workflow: decodeURIComponent(/workflows\/([^/]+)\//.exec(rec.url)![1]!),
        batchId: String(p['batch_id']?.value),
        consumer: String(p['consumer']?.value),
        subscription: String(p['subscription']?.value),
        committed: false,
        commitAnswers: [],
        commitAttempts: 0,
      };
      this.runs.set(run.requestId, run);
      const same = this.runsByBatch.get(run.batchId) ?? [];
      same.push(run.requestId);
      this.runsByBatch.set(run.batchId, same);
      this.active++;
      void this.execute(run).finally(() => { this.active--; });
    } else if (answer.status === 'DUPLICATED') {
      this.duplicates.set(body.request_id, (this.duplicates.get(body.request_id) ?? 0) + 1);
    } else {
      this.problems.push(`unexpected start answer ${text}`);
    }

    const armed = this.armedDelivery;
    if (armed) {
      const live = this.o.live();
      const pid = connectionOwner(clientPort, this.port, live.map((r) => r.pid));
      const sender = live.find((r) => r.pid === pid);
      if (sender) {
        this.armedDelivery = null;
        // The instance exists now (a run may already be scheduled); the replica that asked never hears so.
        await this.o.kill(sender, { mode: 'delivery', detail: body.request_id });
        armed();
      }
    } else {
      // A little latency, like a real orchestrator: deliveries overlap kills more often.
      await sleep(randomInt(0, 15));
    }
    if (!res.destroyed) {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(text);
    }
  }

  /** The workflow: a little work, then commit the batch through a live replica until one answers. */
  private async execute(run: Run): Promise<void> {
    await sleep(randomInt(5, 60));
    const deadline = Date.now() + 120_000;
    while (!this.stopped && Date.now() < deadline) {
      const live = this.o.live().filter((r) => r.alive);
      if (live.length === 0) {
        await sleep(50);
        continue;
      }
      const target = live[randomInt(0, live.length - 1)]!;
      run.commitAttempts++;
      const armed = this.armedCommit;
      if (armed) this.armedCommit = null;
      const call = fetch(`${target.url}/v1/batches/${run.batchId}/commit`, {
        method: 'POST', headers: { authorization: `Bearer ${this.o.adminToken}` }, signal: AbortSignal.timeout(20_000),
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as { already_committed?: boolean; code?: string; detail?: string } }));
      let killed: Promise<KillRecord> | null = null;
      let cut = false;
      if (armed) {
        // The request is on its way: kill the replica under it (a commit takes a database round trip or more).
        killed = (async () => {
          await sleep(randomInt(0, 3));
          return this.o.kill(target, { mode: 'commit', detail: run.batchId, cut: false });
        })();
      }
      let outcome: { status: number; body: { already_committed?: boolean; code?: string; detail?: string } } | null = null;
      try {
        outcome = await call;
      } catch {
        cut = true;
      }
      if (killed) {
        (await killed).cut = cut;
        armed!();
      }
      if (outcome === null) {
        await sleep(50);
        continue;
      }
      if (outcome.status === 200) {
        run.committed = true;
        run.commitAnswers.push(outcome.body.already_committed === true);
        return;
      }
      if (outcome.status >= 500) {
        await sleep(100);
        continue;
      }
      this.problems.push(`commit of batch ${run.batchId} answered ${outcome.status}: ${JSON.stringify(outcome.body)}`);
      return;
    }
    if (!this.stopped) this.problems.push(`batch ${run.batchId} was never committed`);
  }
}
