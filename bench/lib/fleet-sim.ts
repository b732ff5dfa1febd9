// The fleet simulation of bench/fleet.ts (and of test/bench/fleet-smoke.test.ts, at a tiny scale):
// real `ips serve` replicas (each its own Node process, bench/lib/ips-server.ts) on one PostgreSQL
// database, N registered tables (hard-linked copies of the PyIceberg-written trigger table,
// bench/lib/trigger-common.ts), C consumers per table each with a webhook subscription
// (limits.max_files 1: one batch, so one trigger, per appended snapshot), and a receiver that
// commits every batch it is sent over the step protocol (POST /v1/batches/{id}/commit), round
// robin over the replicas, as a workflow behind a load balancer would.
//
// A simulated day: every table commits `commitsPerTableDay` times at moments drawn from a diurnal
// curve (rate ∝ 1 − 0.7·cos 2πx over the day x ∈ [0, 1): a trough of 0.3 at midnight, a peak of
// 1.7 at noon), the whole day compressed into `daySeconds` real seconds. Commits are announced by
// polling (every table at `pollSeconds`) and, for a share of the tables, also by
// POST /v1/tables/{name}/events right after the append. ips's own clocks are not compressed: a
// poll interval is real seconds, so the compression is the factor by which the fleet's commit
// rate exceeds a real day's.
import path from 'node:path';
import { readFileSync, readdirSync } from 'node:fs';
import pg from 'pg';
import pLimit from 'p-limit';
import { pool, sleep } from './common.js';
import { State } from '../../src/state/index.js';
import { parseSinkConfig, sinkConfigToJson } from '../../src/sinks/index.js';
import { normalizeLimits } from '../../src/service/step-protocol.js';
import { Ips } from './ips-server.js';
import { pgCpuSeconds, procStat } from './proc-cpu.js';
import { TableCopy, WebhookReceiver, type TriggerEvent, type TriggerTable } from './trigger-common.js';
// Seeded, so a run's schedule can be repeated.
import { mulberry32 as rng } from '../../test/setup/random.js';

export interface FleetShape {
  tables: number;
  consumersPerTable: number;
  /** poll_interval_seconds of every table. */
  pollSeconds: number;
  /** Share of the tables (0…1) whose appends are also announced by POST /v1/tables/{name}/events. */
  eventsShare: number;
  /** Registration requests in flight. */
  registerConcurrency: number;
  /** Commits (step protocol) in flight at the receiver. */
  commitConcurrency: number;
}

/** A moment of the day (0…1) drawn from the diurnal curve 1 − 0.7·cos 2πx (rejection sampling). */
export function diurnalMoment(r: () => number): number {
  for (;;) {
    const x = r();
    if (r() * 1.7 <= 1 - 0.7 * Math.cos(2 * Math.PI * x)) return x;
  }
}

export interface Delivery {
  subscription: string;
  table: string;
  batchId: string;
  toSnapshot: string;
  arrivedAt: number;
}

export interface AppendRecord {
  table: number;
  snapshotId: string;
  at: number;
  announced: 'event' | 'poll';
}

export interface PhaseResult {
  replicas: number;
  /** Real seconds of the window (simulated hours ÷ compression). */
  daySeconds: number;
  appends: AppendRecord[];
  /** Deliveries that arrived in this phase (first arrival of each batch). */
  deliveries: Delivery[];
  /** Window: from the first scheduled moment to the last expected trigger (or the drain timeout). */
  wall: number;
  /** Triggers delivered in the window, in commits' worth (÷ consumers per table); may include an earlier window's backlog. */
  absorbed: number;
  /** Append → trigger arrival, ms, split by how the append was announced. */
  latency: { event: number[]; poll: number[] };
  /** GET round trips of the API probe, ms. */
  apiMs: number[];
  /** Commit (step protocol) round trips, ms. */
  commitMs: number[];
  /** CPU seconds over the window: each replica, and the whole PostgreSQL server (NaN when not local). */
  ipsCpu: number[];
  pgCpu: number;
  /** Peak RSS over the window, bytes: each replica; PostgreSQL's processes' summed PSS (shared buffers counted once). */
  ipsPeakRss: number[];
  pgPeakPss: number;
  /** Expected triggers that had not arrived when the drain ended. */
  missing: number;
  problems: string[];
}

function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Summed PSS of the PostgreSQL server's processes (postmaster and its children), bytes; NaN when unreadable. */
function pgPssBytes(postmaster: number | null): number {
  if (postmaster === null) return NaN;
  let sum = 0;
  const add = (pid: number): void => {
    try {
      const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
      if (m) sum += Number(m[1]) * 1024;
    } catch { /* gone, or not ours to read */ }
  };
  add(postmaster);
  for (const d of readdirSync('/proc')) {
    if (/^\d+$/.test(d) && procStat(Number(d))?.ppid === postmaster) add(Number(d));
  }
  return sum || NaN;
}

const tableName = (i: number): string => `t${String(i).padStart(5, '0')}`;
const consumerName = (t: number, c: number): string => `${tableName(t)}-c${c}`;

export class FleetSim {
  readonly replicas: Ips[] = [];
  readonly copies: TableCopy[] = [];
  readonly receiver = new WebhookReceiver();
  /** Every first delivery of a batch, in arrival order. */
  readonly deliveries: Delivery[] = [];
  /** Batch ids delivered more than once (at-least-once delivery: the receiver commits once). */
  redelivered = 0;
  /** Commits answered 200 with already_committed false, by batch id. */
  readonly committed = new Map<string, number>();
  readonly commitErrors: string[] = [];
  private readonly seen = new Set<string>();
  private readonly commitLimit: ReturnType<typeof pLimit>;
  private commitMs: number[] = [];
  private commitRr = 0;
  private pendingCommits = new Set<Promise<void>>();
  /** Snapshot ids appended per table, in order (the expected triggers of each of its consumers). */
  readonly appended: string[][] = [];

  constructor(readonly t: TriggerTable, readonly shape: FleetShape, readonly databaseUrl: string, readonly workDir: string,
    private readonly log: (m: string) => void) {
    this.commitLimit = pLimit(shape.commitConcurrency);
  }

  get consumers(): number {
    return this.shape.tables * this.shape.consumersPerTable;
  }

  isEventTable(i: number): boolean {
    // Spread evenly: table i is an event table when the running count of shares steps up at it.
    return Math.floor((i + 1) * this.shape.eventsShare) > Math.floor(i * this.shape.eventsShare);
  }

  async startReplica(env: Record<string, string> = {}): Promise<Ips> {
    const i = this.replicas.length;
    const ips = await Ips.start(`ips-r${i + 1}`, { databaseUrl: this.databaseUrl, warehouse: path.join(this.workDir, 'warehouse'), env });
    this.replicas.push(ips);
    return ips;
  }

  /**
   * Table copies, the receiver, the tables over HTTP through the first replica, then the
   * consumers (from now) and their subscriptions: over HTTP (`via: 'http'`), or (`via: 'state'`)
   * written through the repositories the API uses, in one transaction per table — what
   * POST /v1/consumers and POST /v1/subscriptions store (watermark at the table's head, the
   * sink as parsed and stored, limits normalized), at a fraction of the cost: 20,000 requests
   * take longer than a benchmark may on a shared 2-core machine.
   */
  async register(via: 'http' | 'state'): Promise<{ seconds: number; requests: number }> {
    await this.receiver.start();
    for (let i = 0; i < this.shape.tables; i++) {
      this.copies.push(new TableCopy(this.t, path.join(this.workDir, 'tables', tableName(i)), 1));
      this.appended.push([]);
    }
    const ips = this.replicas[0]!;
    const t0 = performance.now();
    let requests = 0;
    let done = 0;
    const sink = { type: 'webhook', url: this.receiver.url, secret: 'bench-webhook-secret' };
    const state = via === 'state' ? await State.open({ driver: 'postgres', url: this.databaseUrl, poolMax: this.shape.registerConcurrency + 1, applicationName: 'ips-bench-fleet-register' }) : null;
    const head = this.headPosition();
    try {
      await pool(this.copies.map((c, i) => ({ c, i })), this.shape.registerConcurrency, async ({ c, i }) => {
        const name = tableName(i);
        await ips.api('POST', '/v1/tables', { name, ref: { kind: 'directory', location: c.dir }, poll_interval_seconds: this.shape.pollSeconds });
        requests++;
        for (let k = 0; k < this.shape.consumersPerTable; k++) this.receiver.on(`${consumerName(i, k)}-s`, (ev, at) => this.onTrigger(ev, at, name));
        if (state) {
          await state.withTransaction(async (repos) => {
            for (let k = 0; k < this.shape.consumersPerTable; k++) {
              const consumer = consumerName(i, k);
              await repos.consumers.create({ name: consumer });
              await repos.watermarks.create({ consumer, sourceTable: name, position: head }, { actor: 'bench', reason: 'subscribe' });
              await repos.subscriptions.create({
                name: `${consumer}-s`, consumer, tables: [name], limits: normalizeLimits({ maxFiles: 1 }),
                sink: sinkConfigToJson(parseSinkConfig(sink)) as Record<string, unknown>,
              });
            }
          });
        } else {
          for (let k = 0; k < this.shape.consumersPerTable; k++) {
            const consumer = consumerName(i, k);
            await ips.api('POST', '/v1/consumers', { name: consumer, tables: [{ table: name, from: 'now' }] });
            await ips.api('POST', '/v1/subscriptions', { name: `${consumer}-s`, consumer, tables: [name], limits: { max_files: 1 }, sink });
            requests += 2;
          }
        }
        if (++done % 100 === 0) this.log(`${done}/${this.shape.tables} tables registered with their consumers`);
      });
    } finally {
      await state?.close();
    }
    return { seconds: (performance.now() - t0) / 1000, requests };
  }

  /** The copies' head when registered (metadata version 1): snapshot id and sequence number, from the PyIceberg-written metadata. */
  private headPosition(): { snapshotId: bigint; sequenceNumber: bigint; partialSnapshotId: null; partialSequenceNumber: null; processedFiles: string[] } {
    const f = this.t.metadata_files[1]!;
    const md = JSON.parse(readFileSync(path.join(this.t.table_path, 'metadata', f.file), 'utf8')) as { snapshots: { 'snapshot-id': number | string; 'sequence-number': number }[] };
    const raw = readFileSync(path.join(this.t.table_path, 'metadata', f.file), 'utf8');
    // The id as written (a JSON number beyond 2^53 loses digits through JSON.parse): taken from the text.
    const id = /"current-snapshot-id"\s*:\s*(-?\d+)/.exec(raw)?.[1];
    if (!id || id !== f.snapshot_id) throw new Error(`metadata version 1: current snapshot ${id}, expected ${f.snapshot_id}`);
    const seq = md.snapshots.length === 1 ? md.snapshots[0]!['sequence-number'] : NaN;
    if (!Number.isInteger(seq)) throw new Error('metadata version 1 should hold exactly one snapshot');
    return { snapshotId: BigInt(id), sequenceNumber: BigInt(seq), partialSnapshotId: null, partialSequenceNumber: null, processedFiles: [] };
  }

  private onTrigger(ev: TriggerEvent, arrivedAt: number, table: string): void {
    const id = ev.data.batch_id;
    if (this.seen.has(id)) {
      this.redelivered++;
      return;
    }
    this.seen.add(id);
    this.deliveries.push({ subscription: ev.data.subscription, table, batchId: id, toSnapshot: ev.data.tables[0]?.to_snapshot_id ?? '', arrivedAt });
    const p = this.commitLimit(async () => {
      const ips = this.replicas[this.commitRr++ % this.replicas.length]!;
      const t0 = performance.now();
      try {
        const r = await ips.api<{ already_committed: boolean }>('POST', `/v1/batches/${id}/commit`);
        this.commitMs.push(performance.now() - t0);
        if (!r.already_committed) this.committed.set(id, (this.committed.get(id) ?? 0) + 1);
      } catch (e) {
        this.commitErrors.push(`commit ${id}: ${String(e).slice(0, 300)}`);
      }
    });
    this.pendingCommits.add(p);
    void p.finally(() => this.pendingCommits.delete(p));
  }

  /** Waits for the commits the receiver has started. */
  async settleCommits(): Promise<void> {
    while (this.pendingCommits.size) await Promise.all([...this.pendingCommits]);
  }

  /**
   * A window of a simulated day (`hours` from `fromHour`) with the replicas running now, `compression`
   * times faster than real time: every table's commits of the day drawn from the diurnal curve,
   * those in the window appended on schedule; the API probe at `probePerSecond`; then a drain
   * until every expected trigger arrived (or `drainSeconds` passed). Triggers still owed from an
   * earlier window count in this one when they arrive.
   */
  async runWindow(o: { fromHour: number; hours: number; compression: number; commitsPerTableDay: number; seed: number; probePerSecond: number; drainSeconds: number; postmaster: number | null }): Promise<PhaseResult> {
    const r = rng(o.seed);
    const schedule: { at: number; table: number }[] = [];
    const windowMs = (o.hours * 3_600_000) / o.compression;
    for (let i = 0; i < this.copies.length; i++) {
      for (let k = 0; k < o.commitsPerTableDay; k++) {
        const hour = diurnalMoment(r) * 24;
        if (hour >= o.fromHour && hour < o.fromHour + o.hours) schedule.push({ at: ((hour - o.fromHour) * 3_600_000) / o.compression, table: i });
      }
    }
    schedule.sort((a, b) => a.at - b.at);
    for (let i = 0; i < this.copies.length; i++) {
      const n = schedule.filter((x) => x.table === i).length;
      if (n > this.copies[i]!.remaining) throw new Error(`${tableName(i)}: ${n} commits scheduled, ${this.copies[i]!.remaining} snapshots left in the trigger table (use a larger --snapshots)`);
    }
    const daySeconds = windowMs / 1000;
    const firstDelivery = this.deliveries.length;
    const expected0 = this.appended.reduce((a, x) => a + x.length, 0) * this.shape.consumersPerTable;
    const appends: AppendRecord[] = [];
    const apiMs: number[] = [];
    this.commitMs = [];
    const problems: string[] = [];
    const eventLimit = pLimit(16);
    const events: Promise<void>[] = [];
    const cpu0 = this.replicas.map((x) => x.proc.cpuSeconds());
    const pg0 = pgCpuSeconds(o.postmaster);
    const peakRss = this.replicas.map(() => 0);
    let peakPss = 0;
    const t0 = performance.now();
    let running = true;
    // Memory every second; the API probe at its rate (GETs a user or console makes: a consumer's
    // batches, a subscription, a table), over the replicas in turn.
    const sampler = (async () => {
      while (running) {
        this.replicas.forEach((x, i) => { peakRss[i] = Math.max(peakRss[i]!, rssBytes(x.proc.pid) || 0); });
        peakPss = Math.max(peakPss, pgPssBytes(o.postmaster) || 0);
        await sleep(1000);
      }
    })();
    const probe = (async () => {
      let k = 0;
      const pr = rng(o.seed ^ 0x5bd1e995);
      while (running && o.probePerSecond > 0) {
        const ti = Math.floor(pr() * this.copies.length);
        const c = consumerName(ti, Math.floor(pr() * this.shape.consumersPerTable));
        const paths = [`/v1/consumers/${c}/batches?limit=10`, `/v1/subscriptions/${c}-s`, `/v1/tables/${tableName(ti)}`];
        const ips = this.replicas[k % this.replicas.length]!;
        const q0 = performance.now();
        try {
          await ips.api('GET', paths[k % paths.length]!);
          apiMs.push(performance.now() - q0);
        } catch (e) {
          problems.push(`API probe: ${String(e).slice(0, 200)}`);
        }
        k++;
        await sleep(Math.max(0, 1000 / o.probePerSecond - (performance.now() - q0)));
      }
    })();
    for (const s of schedule) {
      const wait = t0 + s.at - performance.now();
      if (wait > 0) await sleep(wait);
      const copy = this.copies[s.table]!;
      const { snapshotId, committedAt } = copy.append();
      const announced = this.isEventTable(s.table) ? 'event' : 'poll';
      appends.push({ table: s.table, snapshotId, at: committedAt, announced });
      this.appended[s.table]!.push(snapshotId);
      if (announced === 'event') {
        const ips = this.replicas[appends.length % this.replicas.length]!;
        events.push(eventLimit(async () => {
          try {
            await ips.api('POST', `/v1/tables/${tableName(s.table)}/events`, {});
          } catch (e) {
            problems.push(`event ${tableName(s.table)}: ${String(e).slice(0, 200)}`);
          }
        }));
      }
    }
    await Promise.all(events);
    // Drain: every consumer of every appended snapshot has its trigger (and its commit answered).
    const expected = this.appended.reduce((a, x) => a + x.length, 0) * this.shape.consumersPerTable;
    const deadline = performance.now() + o.drainSeconds * 1000;
    while (this.deliveries.length - firstDelivery + expected0 < expected && performance.now() < deadline) await sleep(200);
    let end = performance.now();
    if (this.deliveries.length > firstDelivery) end = Math.min(end, Math.max(this.deliveries[this.deliveries.length - 1]!.arrivedAt, t0 + windowMs));
    await this.settleCommits();
    running = false;
    await Promise.all([sampler, probe]);
    const ipsCpu = this.replicas.map((x, i) => x.proc.cpuSeconds() - cpu0[i]!);
    const pgCpu = pgCpuSeconds(o.postmaster) - pg0;

    const deliveries = this.deliveries.slice(firstDelivery);
    const appendAt = new Map(appends.map((a) => [`${tableName(a.table)}/${a.snapshotId}`, a]));
    const latency = { event: [] as number[], poll: [] as number[] };
    for (const d of deliveries) {
      const a = appendAt.get(`${d.table}/${d.toSnapshot}`);
      if (!a) continue; // a trigger of an earlier phase's append, delivered late
      latency[a.announced].push(d.arrivedAt - a.at);
    }
    // Commits absorbed: triggers delivered in the window, in commits' worth (one trigger per consumer of the table).
    const absorbed = deliveries.length / this.shape.consumersPerTable;
    return {
      replicas: this.replicas.length, daySeconds, appends, deliveries, wall: (end - t0) / 1000, absorbed, latency, apiMs,
      commitMs: this.commitMs, ipsCpu, pgCpu, ipsPeakRss: peakRss, pgPeakPss: peakPss,
      missing: Math.max(0, expected - expected0 - deliveries.length), problems,
    };
  }

  /**
   * Checks the accounting against what the simulation appended (not against ips), after the
   * receiver's commits settled: the snapshots each consumer was sent are, in order and once each,
   * the first of those appended to its table (all of them when `missing` is 0); every delivered
   * batch was committed exactly once; every watermark stands at the snapshot of its consumer's
   * last delivered batch (the table's head when nothing is owed). Returns the problems found.
   */
  async verify(): Promise<{ problems: string[]; missing: number }> {
    await this.settleCommits();
    const problems: string[] = [];
    const bySub = new Map<string, string[]>();
    for (const d of this.deliveries) {
      const l = bySub.get(d.subscription) ?? [];
      l.push(d.toSnapshot);
      bySub.set(d.subscription, l);
    }
    let missing = 0;
    const expectWatermark = new Map<string, string | null>();
    for (let i = 0; i < this.copies.length; i++) {
      for (let k = 0; k < this.shape.consumersPerTable; k++) {
        const sub = `${consumerName(i, k)}-s`;
        const got = bySub.get(sub) ?? [];
        const want = this.appended[i]!;
        if (got.join(',') !== want.slice(0, got.length).join(',')) problems.push(`${sub}: triggers named [${got.join(', ')}], appended [${want.join(', ')}]`);
        missing += Math.max(0, want.length - got.length);
        expectWatermark.set(consumerName(i, k), got.length ? got[got.length - 1]! : this.t.metadata_files[1]!.snapshot_id);
      }
    }
    for (const d of this.deliveries) {
      const n = this.committed.get(d.batchId) ?? 0;
      if (n !== 1) problems.push(`batch ${d.batchId} (${d.subscription}) committed ${n} times`);
    }
    problems.push(...this.commitErrors);
    if (this.receiver.unexpected) problems.push(`${this.receiver.unexpected} webhook deliveries of no known subscription`);
    const c = new pg.Client({ connectionString: this.databaseUrl });
    await c.connect();
    try {
      const w = await c.query<{ consumer: string; snapshot_id: string | null }>('SELECT consumer, snapshot_id::TEXT AS snapshot_id FROM watermarks');
      if (w.rows.length !== this.consumers) problems.push(`${w.rows.length} watermarks, ${this.consumers} consumers`);
      for (const row of w.rows) {
        const want = expectWatermark.get(row.consumer);
        if (row.snapshot_id !== want) problems.push(`${row.consumer}: watermark at ${row.snapshot_id}, its last delivered batch ends at ${want}`);
      }
    } finally {
      await c.end();
    }
    return { problems, missing };
  }

  /**
   * Ends firing after the measurement, in the database (10,000 requests cheaper than the API):
   * every subscription disabled, and the triggers not yet claimed for delivery cancelled (their
   * batches stay open: the watermark stays at the last delivered batch). Then waits, at most
   * `maxSeconds`, until no delivery arrived for 5 s (the ones under way finish) and the
   * receiver's commits settled.
   */
  async stopFiring(maxSeconds = 90): Promise<void> {
    const c = new pg.Client({ connectionString: this.databaseUrl });
    await c.connect();
    try {
      await c.query('UPDATE subscriptions SET enabled = false');
      await c.query("UPDATE outbox SET state = 'cancelled' WHERE state = 'pending' AND (claimed_by IS NULL OR claim_expires_at < now())");
    } finally {
      await c.end();
    }
    const deadline = performance.now() + maxSeconds * 1000;
    let n = -1;
    while (n !== this.deliveries.length && performance.now() < deadline) {
      n = this.deliveries.length;
      await sleep(5000);
      await this.settleCommits();
    }
  }

  /** pg_total_relation_size of every table of the database, bytes. */
  async stateBytes(): Promise<number> {
    const c = new pg.Client({ connectionString: this.databaseUrl });
    await c.connect();
    try {
      const r = await c.query<{ b: string }>(`SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0) AS b FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'`);
      return Number(r.rows[0]!.b);
    } finally {
      await c.end();
    }
  }

  async close(): Promise<void> {
    await this.settleCommits().catch(() => {});
    for (const r of this.replicas.reverse()) await r.close().catch(() => {});
    await this.receiver.close();
  }
}

