// Commit-to-trigger latency of ips's trigger loops (src/service/triggers.ts), end to end over
// HTTP: a webhook receiver (node:http on 127.0.0.1, in this process) gets each trigger, answers
// 200 and commits the batch (POST /v1/batches/{id}/commit), as a workflow would.
//
// Modes, one after the other on one ips server (its own Node process, PostgreSQL state, default
// IPS_TICK_MS unless --tick-ms):
// - commit: the consumer is 200 snapshots behind (max_files 1: one snapshot per batch); the
//   latency is from the commit's HTTP response to the arrival of the next batch's trigger (the
//   commit wakes the subscription and pokes the fire loop).
// - event: the consumer is at the head; the benchmark appends a snapshot to the source table,
//   then POSTs /v1/tables/{name}/events; the latency is from the append's commit to the arrival
//   of its trigger. The table's poll interval is 86,400 s: only the event makes ips look.
// - poll-N: the same without the event, the table polled every N seconds (poll_interval_seconds);
//   several tables in parallel (one consumer and subscription each), appended to at random
//   moments (a uniform 0…N s pause after each commit), so that appends fall anywhere in the poll
//   cycle.
//
// The source tables are copies (hard links) of one table PyIceberg wrote with 200 appends of one
// Parquet file (bench/py/trigger_table.py); an "append" renames the next PyIceberg-written
// metadata file into the copy's metadata/ directory, then rewrites version-hint.text (see
// TableCopy in bench/lib/trigger-common.ts). Each trigger must name exactly the snapshot appended
// (or, in commit mode, the next one in order), and each commit must be answered 200.
import path from 'node:path';
import { machineSummary, intOption, intOptions, ms, optionalIntOption, pcts, sleep, table, type BenchContext, type Benchmark, type Pcts } from './lib/common.js';
import { Ips } from './lib/ips-server.js';
import { benchCpuSeconds, pgCpuSeconds } from './lib/proc-cpu.js';
import { mb, procMemory } from './lib/proc-mem.js';
import {
  TableCopy, WebhookReceiver, applyMsTimestamps, msTimestampsOption, srcState, startTriggerBench, type TriggerEvent, type TriggerTable,
} from './lib/trigger-common.js';

const OPTIONS: Record<string, string> = {
  modes: 'comma-separated: commit, event, poll-N (poll_interval_seconds N) (default commit,event,poll-1,poll-5)',
  samples: 'samples wanted in the commit and event modes (default 120)',
  'mode-seconds': 'time cap of the commit and event modes, seconds (default 13)',
  'poll-streams': 'tables appended to in parallel in a poll mode (default 12)',
  'poll-seconds': 'time window of a poll-N mode, seconds (default max(15, 5×N))',
  'tick-ms': 'IPS_TICK_MS of the ips servers, the loops\' idle period (default: ips\'s, 1000)',
  'ms-timestamps': 'on: declare next_poll_at / next_check_at TIMESTAMPTZ(3) in the benchmark\'s databases, emulating on builds before 00e9c5d its fix of the µs/ms mismatch that kept every table and subscription due on PostgreSQL (see bench/README.md) (default off)',
  snapshots: 'appends in the generated source table: bounds the samples of one stream (default 200)',
};

type Mode = { kind: 'commit' } | { kind: 'event' } | { kind: 'poll'; interval: number };

const modeName = (m: Mode): string => (m.kind === 'poll' ? `poll-${m.interval}` : m.kind);

function parseModes(s: string): Mode[] {
  return s.split(',').map((x) => x.trim()).filter(Boolean).map((x): Mode => {
    if (x === 'commit' || x === 'event') return { kind: x };
    const m = /^poll-(\d+)$/.exec(x);
    if (m && Number(m[1]) >= 1 && Number(m[1]) <= 86_400) return { kind: 'poll', interval: Number(m[1]) };
    throw new Error(`--modes: unknown mode ${x} (commit, event, poll-N with N seconds)`);
  });
}

interface Sample {
  /** Commit (or append) → trigger arrival, ms. */
  total: number;
  /** Of which: the batch stored (its created_at, PostgreSQL's now() of the storing transaction) → arrival, ms. */
  deliver: number;
}

interface ModeResult {
  mode: Mode;
  streams: number;
  samples: Sample[];
  /** commit mode: from the commit request being sent (not its response). */
  fromRequest: number[];
  /** Commit round trips (request → response) in this mode. */
  commitRtt: number[];
  /** event mode: the POST /events round trips. */
  eventRtt: number[];
  wall: number;
  /** The ips server's peak RSS (VmHWM) from its start to the end of the mode, bytes. */
  serverPeakRss: number;
  serverCpu: number;
  pgCpu: number;
  benchCpu: number;
  triggers: number;
  problems: string[];
  /** Metadata-pointer polls in the measured window (ips_trigger_events_total{event="polled"}). */
  polls: number;
}

/** Triggers of one subscription, in arrival order; next() waits for the next one. */
class Inbox {
  private readonly queue: { ev: TriggerEvent; at: number }[] = [];
  private waiter: ((v: { ev: TriggerEvent; at: number } | null) => void) | null = null;
  count = 0;

  constructor(receiver: WebhookReceiver, readonly subscription: string) {
    receiver.on(subscription, (ev, at) => {
      this.count++;
      const w = this.waiter;
      if (w) {
        this.waiter = null;
        w({ ev, at });
      } else this.queue.push({ ev, at });
    });
  }

  /** The next trigger, or null after `timeoutMs`. */
  next(timeoutMs: number): Promise<{ ev: TriggerEvent; at: number } | null> {
    const q = this.queue.shift();
    if (q) return Promise.resolve(q);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        resolve(null);
      }, timeoutMs);
      this.waiter = (v) => {
        clearTimeout(timer);
        resolve(v);
      };
    });
  }

  /** Triggers that arrived while nobody waited. */
  get unclaimed(): number {
    return this.queue.length;
  }
}

const epoch = (perfNow: number): number => performance.timeOrigin + perfNow;

async function commit(ips: Ips, batchId: string): Promise<{ sent: number; answered: number; problem: string | null }> {
  const sent = performance.now();
  try {
    const r = await ips.api<{ already_committed: boolean }>('POST', `/v1/batches/${batchId}/commit`);
    return { sent, answered: performance.now(), problem: r.already_committed ? `batch ${batchId} was already committed` : null };
  } catch (e) {
    return { sent, answered: performance.now(), problem: `commit ${batchId}: ${String(e)}` };
  }
}

async function describeStall(ips: Ips, sub: string, tableName: string): Promise<string> {
  try {
    const s = await ips.api<Record<string, unknown>>('GET', `/v1/subscriptions/${sub}`);
    const t = await ips.api<Record<string, unknown>>('GET', `/v1/tables/${tableName}`);
    return `subscription: next_check_at ${String(s['next_check_at'])}, last_error ${String(s['last_error'])}, undelivered ${JSON.stringify(s['undelivered']).slice(0, 300)}; ` +
      `table: ${JSON.stringify(t).slice(0, 400)}`;
  } catch (e) {
    return `(could not read the state: ${String(e)})`;
  }
}

interface Stream {
  name: string;
  copy: TableCopy;
  inbox: Inbox;
}

/** Registers a copy of the table with its consumer and subscription. */
async function setupStream(ips: Ips, receiver: WebhookReceiver, t: TriggerTable, dir: string, name: string, opts: {
  visible: number; pollSeconds: number; from: 'start' | 'now'; maxFiles?: number;
}): Promise<Stream> {
  const copy = new TableCopy(t, path.join(dir, name), opts.visible);
  await ips.api('POST', '/v1/tables', { name, ref: { kind: 'directory', location: copy.dir }, poll_interval_seconds: opts.pollSeconds });
  await ips.api('POST', '/v1/consumers', { name: `${name}-c`, tables: [{ table: name, from: opts.from }] });
  const inbox = new Inbox(receiver, `${name}-s`);
  await ips.api('POST', '/v1/subscriptions', {
    name: `${name}-s`, consumer: `${name}-c`, tables: [name],
    ...(opts.maxFiles ? { limits: { max_files: opts.maxFiles } } : {}),
    sink: { type: 'webhook', url: receiver.url, secret: 'bench-webhook-secret' },
  });
  return { name, copy, inbox };
}

/** Runs a mode; CPU and wall time count from the mode's call of start() (after its setup) to its end. */
async function measure(ips: Ips, postmaster: number | null,
  fn: (start: () => Promise<void>) => Promise<Omit<ModeResult, 'wall' | 'serverPeakRss' | 'serverCpu' | 'pgCpu' | 'benchCpu' | 'polls'>>): Promise<ModeResult> {
  let c0 = { server: NaN, pg: NaN, bench: NaN, t: NaN, polls: NaN };
  const start = async (): Promise<void> => {
    const polls = (await ips.triggerCounters()).get('polled') ?? 0;
    c0 = { server: ips.proc.cpuSeconds(), pg: pgCpuSeconds(postmaster), bench: benchCpuSeconds(), t: performance.now(), polls };
  };
  const r = await fn(start);
  if (Number.isNaN(c0.t)) throw new Error(`${modeName(r.mode)}: the measurement never started`);
  const end = { server: ips.proc.cpuSeconds(), pg: pgCpuSeconds(postmaster), bench: benchCpuSeconds(), t: performance.now() };
  const polls = ((await ips.triggerCounters()).get('polled') ?? 0) - c0.polls;
  return {
    ...r,
    wall: (end.t - c0.t) / 1000,
    serverPeakRss: procMemory(ips.proc.pid)?.hwm ?? NaN,
    serverCpu: end.server - c0.server,
    pgCpu: end.pg - c0.pg,
    benchCpu: end.bench - c0.bench,
    polls,
  };
}

async function runCommitMode(ctx: BenchContext, ips: Ips, receiver: WebhookReceiver, t: TriggerTable, dir: string, samplesWanted: number, capSeconds: number,
  start: () => Promise<void>) {
  const s = await setupStream(ips, receiver, t, dir, 'commit-src', { visible: t.snapshots, pollSeconds: 86_400, from: 'start', maxFiles: 1 });
  const sub = `${s.name}-s`;
  const problems: string[] = [];
  const samples: Sample[] = [];
  const fromRequest: number[] = [];
  const commitRtt: number[] = [];
  const want = Math.min(samplesWanted, t.snapshots - 1);
  // The first trigger comes from creating the subscription: not a sample; the measurement starts when it is here.
  let cur = await s.inbox.next(30_000);
  await start();
  const deadline = performance.now() + capSeconds * 1000;
  let expect = 1;
  let triggers = 0;
  while (cur) {
    triggers++;
    const snap = cur.ev.data.tables[0]?.to_snapshot_id;
    if (snap !== t.metadata_files[expect]!.snapshot_id) problems.push(`trigger ${triggers} names snapshot ${snap}, expected ${t.metadata_files[expect]!.snapshot_id} (version ${expect})`);
    const last = samples.length >= want || performance.now() > deadline;
    // Before the last commit: no further trigger (no batch left open at the end).
    if (last) await ips.api('POST', `/v1/subscriptions/${sub}/disable`);
    const c = await commit(ips, cur.ev.data.batch_id);
    commitRtt.push(c.answered - c.sent);
    if (c.problem) problems.push(c.problem);
    if (last) break;
    expect++;
    const nxt = await s.inbox.next(30_000);
    if (!nxt) {
      problems.push(`no trigger within 30 s after commit ${triggers}: ${await describeStall(ips, sub, s.name)}`);
      break;
    }
    samples.push({ total: nxt.at - c.answered, deliver: epoch(nxt.at) - Date.parse(nxt.ev.time) });
    fromRequest.push(nxt.at - c.sent);
    cur = nxt;
  }
  if (!cur) problems.push(`no first trigger within 30 s: ${await describeStall(ips, sub, s.name)}`);
  await sleep(300);
  if (s.inbox.unclaimed) problems.push(`${s.inbox.unclaimed} trigger(s) nobody waited for (after the last commit, or redelivered)`);
  ctx.log(`commit: ${samples.length} samples`);
  return { mode: { kind: 'commit' } as Mode, streams: 1, samples, fromRequest, commitRtt, eventRtt: [], triggers, problems };
}

async function runAppendMode(ctx: BenchContext, ips: Ips, receiver: WebhookReceiver, t: TriggerTable, dir: string, mode: Mode, o: {
  streams: number; seconds: number; samplesWanted: number;
}, start: () => Promise<void>) {
  const interval = mode.kind === 'poll' ? mode.interval : 86_400;
  const streams: Stream[] = [];
  for (let i = 0; i < o.streams; i++) {
    streams.push(await setupStream(ips, receiver, t, dir, `${modeName(mode)}-src${i}`, { visible: 1, pollSeconds: interval, from: 'now' }));
  }
  // Let the first polls (registration) and the subscriptions' first checks pass.
  await sleep(1000);
  for (const s of streams) {
    const early = s.inbox.unclaimed;
    if (early) throw new Error(`${s.name}: ${early} trigger(s) before any append`);
  }
  const problems: string[] = [];
  const samples: Sample[] = [];
  const commitRtt: number[] = [];
  const eventRtt: number[] = [];
  let triggers = 0;
  await start();
  const deadline = performance.now() + o.seconds * 1000;
  const timeoutMs = (mode.kind === 'poll' ? 3 * mode.interval * 1000 : 0) + 30_000;
  const gap = (): number => (mode.kind === 'poll' ? Math.random() * mode.interval * 1000 : 10 + Math.random() * 90);
  await Promise.all(streams.map(async (s) => {
    const sub = `${s.name}-s`;
    while (performance.now() < deadline && samples.length < o.samplesWanted && s.copy.remaining > 0) {
      await sleep(gap());
      if (performance.now() >= deadline) break;
      const { snapshotId, committedAt } = s.copy.append();
      if (mode.kind === 'event') {
        const e0 = performance.now();
        await ips.api('POST', `/v1/tables/${s.name}/events`, {});
        eventRtt.push(performance.now() - e0);
      }
      const got = await s.inbox.next(timeoutMs);
      if (!got) {
        problems.push(`${s.name}: no trigger within ${timeoutMs / 1000} s of appending ${snapshotId}: ${await describeStall(ips, sub, s.name)}`);
        return;
      }
      triggers++;
      const tt = got.ev.data.tables[0];
      if (tt?.to_snapshot_id !== snapshotId) problems.push(`${s.name}: trigger names snapshot ${tt?.to_snapshot_id}, appended ${snapshotId}`);
      samples.push({ total: got.at - committedAt, deliver: epoch(got.at) - Date.parse(got.ev.time) });
      const c = await commit(ips, got.ev.data.batch_id);
      commitRtt.push(c.answered - c.sent);
      if (c.problem) problems.push(`${s.name}: ${c.problem}`);
    }
  }));
  for (const s of streams) await ips.api('POST', `/v1/subscriptions/${s.name}-s/disable`);
  await sleep(300);
  for (const s of streams) {
    if (s.inbox.unclaimed) problems.push(`${s.name}: ${s.inbox.unclaimed} trigger(s) nobody waited for (late after a timeout, or redelivered)`);
  }
  ctx.log(`${modeName(mode)}: ${samples.length} samples from ${streams.length} table(s)`);
  return { mode, streams: streams.length, samples, fromRequest: [], commitRtt, eventRtt, triggers, problems };
}

/** Polls per table per minute the configuration asks for: one per interval (plus half a tick until the loop sees it due), one per event. */
function expectedPolls(r: ModeResult, tickMs: number | null): number {
  if (r.mode.kind === 'poll') return 60 / (r.mode.interval + (tickMs ?? 1000) / 2000);
  if (r.mode.kind === 'event') return (60 * r.samples.length) / r.streams / r.wall;
  return 0;
}

function describeMode(m: Mode, tickMs: number | null): string {
  const tick = tickMs ?? 1000;
  switch (m.kind) {
    case 'commit':
      return 'consumer commit → next trigger, changes already waiting (the commit wakes the subscription and pokes the fire loop)';
    case 'event':
      return 'append → trigger with POST /v1/tables/{name}/events right after the append (table poll interval 86,400 s)';
    case 'poll':
      return `append → trigger by polling alone, poll_interval_seconds ${m.interval}, loop tick ${tick} ms (expect ≈ N/2 + tick/2 on average: ${ms((m.interval * 1000) / 2 + tick / 2)} ms)`;
  }
}

export const triggerLatency: Benchmark = {
  name: 'trigger-latency',
  description: 'commit→trigger and append→trigger latency (p50/p90/p99/max) of the trigger loops over HTTP: after a consumer commit, with the event endpoint, and with polling (1 s, 5 s); needs PostgreSQL',
  byDefault: true,
  options: OPTIONS,
  async run(ctx: BenchContext) {
    const modes = parseModes(ctx.options.get('modes') ?? 'commit,event,poll-1,poll-5');
    const { samples: samplesWanted, 'mode-seconds': modeSeconds, 'poll-streams': pollStreams } =
      intOptions(ctx, { samples: 120, 'mode-seconds': 13, 'poll-streams': 12 });
    const pollSecondsOpt = ctx.options.get('poll-seconds');
    const tickMs = optionalIntOption(ctx, 'tick-ms');
    const snapshots = intOption(ctx, 'snapshots', 200);
    const msTimestamps = msTimestampsOption(ctx);
    if (snapshots < 2) throw new Error('--snapshots must be at least 2');

    const t0 = performance.now();
    const src0 = srcState();
    const cleanups: (() => Promise<void>)[] = [];
    try {
      // The table (cached after the first run) and PostgreSQL, at the same time; a work directory; the receiver.
      const { t, pgs, work, receiver } = await startTriggerBench(ctx, snapshots, 'trigger-latency-work', cleanups);

      // One ips server and database per mode: a mode's tables do not load the next one.
      const results: ModeResult[] = [];
      const pids: number[] = [];
      for (const m of modes) {
        const dbName = `ips_bench_trigger_latency_${modeName(m).replace(/-/g, '_')}_${process.pid}`;
        const dbUrl = await pgs.createDatabase(dbName);
        const ips = await Ips.start(`ips-${modeName(m)}`, {
          databaseUrl: dbUrl, warehouse: path.join(work.dir, `warehouse-${modeName(m)}`), env: tickMs !== null ? { IPS_TICK_MS: String(tickMs) } : {},
        });
        pids.push(ips.proc.pid);
        try {
          if (msTimestamps) await applyMsTimestamps(dbUrl);
          ctx.log(`── mode ${modeName(m)}: ${describeMode(m, tickMs)}; ips server pid ${ips.proc.pid} at ${ips.url} (${ips.database})`);
          const r = await measure(ips, pgs.postmaster, (start) => m.kind === 'commit'
            ? runCommitMode(ctx, ips, receiver, t, work.dir, samplesWanted, modeSeconds, start)
            : runAppendMode(ctx, ips, receiver, t, work.dir, m, {
              streams: m.kind === 'poll' ? pollStreams : 1,
              seconds: m.kind === 'poll' ? (pollSecondsOpt !== undefined ? intOption(ctx, 'poll-seconds', 20) : Math.max(15, 5 * m.interval)) : modeSeconds,
              samplesWanted: m.kind === 'poll' ? Number.MAX_SAFE_INTEGER : samplesWanted,
            }, start));
          results.push(r);
        } finally {
          await ips.close();
        }
      }
      await sleep(300);
      const stray = receiver.unexpected;

      // ---- report ----
      console.log(`\n== trigger-latency: commit → trigger and append → trigger over HTTP (webhook sink → node:http receiver that commits each batch)`);
      console.log(`   ${machineSummary()}`);
      const src1 = srcState();
      console.log(`   ${src0}${src1 !== src0 ? `; CHANGED during the run, now: ${src1}` : ''}`);
      console.log(`   ${pgs.info}, a database per mode`);
      console.log(`   ips: one server per mode (startServer, PostgreSQL state, token auth, log silent), each in its own Node process (pids ${pids.join(', ')}); IPS_TICK_MS ${tickMs ?? '1000 (default)'};`);
      console.log('   the receiver, the appends and the commits run in the benchmark process; everything on 127.0.0.1');
      if (msTimestamps) {
        console.log('   --ms-timestamps on: next_poll_at / next_check_at declared TIMESTAMPTZ(3) in the benchmark\'s databases, emulating on builds before 00e9c5d its fix (see bench/README.md)');
      }
      console.log(`   source tables: hard-linked copies of ${t.table_path}: ${t.snapshots} PyIceberg ${t.pyiceberg} appends of 1 Parquet file (day-partitioned v2);`);
      console.log('   an append = rename(2) of the next PyIceberg-written NNNNN-<uuid>.metadata.json into the copy\'s metadata/ (then version-hint.text rewritten)');
      console.log('   latency = trigger arrival at the receiver (request body complete) − the commit\'s HTTP response (commit mode) or the append\'s rename (other modes);');
      console.log('   "stored→arrival" = arrival − the batch\'s created_at (PostgreSQL now() of the transaction storing batch + trigger): the delivery part\n');
      for (const r of results) console.log(`   ${modeName(r.mode).padEnd(8)} ${describeMode(r.mode, tickMs)}`);
      console.log('');
      const rows: (string | number)[][] = [];
      for (const r of results) {
        const p: Pcts = pcts(r.samples.map((s) => s.total));
        const d: Pcts = pcts(r.samples.map((s) => s.deliver));
        rows.push([
          modeName(r.mode), r.streams, p.n, ms(p.p50), ms(p.p90), ms(p.p99), ms(p.max), ms(p.mean), ms(d.p50), ms(d.p99),
          r.wall.toFixed(1), mb(r.serverPeakRss), r.serverCpu.toFixed(2), `${((100 * r.serverCpu) / r.wall).toFixed(0)}%`,
          Number.isFinite(r.pgCpu) ? r.pgCpu.toFixed(2) : '—', r.benchCpu.toFixed(2),
          r.triggers ? ms((1000 * r.serverCpu) / r.triggers) : '—',
          ((60 * r.polls) / r.streams / r.wall).toFixed(1), expectedPolls(r, tickMs).toFixed(1),
        ]);
      }
      console.log(table(
        ['mode', 'tables', 'samples', 'p50 ms', 'p90', 'p99', 'max', 'mean', 'stored→arrival p50', 'p99', 'wall s', 'ips peak RSS', 'ips CPU s', 'of a core', 'PG CPU s', 'bench CPU s', 'ips CPU ms/trigger', 'polls/table/min', 'expected'],
        rows,
      ).replace(/^/gm, '   '));
      for (const r of results) {
        const extra: string[] = [];
        if (r.fromRequest.length) { const p = pcts(r.fromRequest); extra.push(`from the commit request sent: p50 ${ms(p.p50)} p99 ${ms(p.p99)} ms`); }
        if (r.commitRtt.length) { const p = pcts(r.commitRtt); extra.push(`commit round trip p50 ${ms(p.p50)} p99 ${ms(p.p99)} ms`); }
        if (r.eventRtt.length) { const p = pcts(r.eventRtt); extra.push(`POST /events round trip p50 ${ms(p.p50)} p99 ${ms(p.p99)} ms`); }
        if (extra.length) console.log(`   ${modeName(r.mode)}: ${extra.join('; ')}`);
      }
      const overPolled = results.filter((r) => r.polls / r.streams / r.wall * 60 > 1.5 * expectedPolls(r, tickMs) + 1);
      for (const r of overPolled) {
        console.log(`   WARNING ${modeName(r.mode)}: each table was polled ${((60 * r.polls) / r.streams / r.wall).toFixed(1)} times a minute, where its poll interval allows ~${expectedPolls(r, tickMs).toFixed(1)}: ` +
          'next_poll_at does not advance as it should (before 00e9c5d: see bench/README.md, "--ms-timestamps"); the latency is that of polling at every loop tick');
      }
      console.log(`   polls/table/min: metadata-pointer polls (ips_trigger_events_total{event="polled"}) per table per minute in the window; expected: 60 / (poll interval + tick/2), or one per event`);
      console.log(`   CPU: process CPU time (utime+stime from /proc) over each mode's measured wall time (after its setup: tables, consumers, subscriptions, first poll or first trigger); PostgreSQL = postmaster + all its processes`);
      console.log(`   ips peak RSS: the server process's VmHWM (/proc/PID/status) from its start to the end of its mode (it runs the sources through tsx, ~80 MB more than the compiled \`ips serve\` of idle-memory)`);
      for (const r of results) {
        const p = pcts(r.samples.map((x) => x.total));
        const what = r.mode.kind === 'commit' ? 'a consumer\'s commit (changes waiting) → the next trigger at a webhook'
          : r.mode.kind === 'event' ? 'an append announced with POST /v1/tables/{name}/events → its trigger at a webhook'
            : `an append found by polling alone (poll interval ${r.mode.interval} s) → its trigger at a webhook`;
        ctx.result({
          measure: `latency of ${what} (PostgreSQL state)`,
          ips: `p50 ${ms(p.p50)} ms, p99 ${ms(p.p99)} ms (${p.n} samples; ${r.wall.toFixed(0)} s, ips ${r.triggers ? ms((1000 * r.serverCpu) / r.triggers) : '—'} ms CPU per trigger, ips peak RSS ${mb(r.serverPeakRss)})`,
          command: `${ctx.command.replace(/ --modes \S+/, '')} --modes ${modeName(r.mode)}`,
        });
      }
      const problems = results.flatMap((r) => r.problems.map((p) => `${modeName(r.mode)}: ${p}`));
      if (stray) problems.push(`${stray} trigger(s) of no running stream (or unparsable) reached the receiver`);
      console.log(`\n   checks: every trigger named the snapshot appended (commit mode: the next snapshot in order), every commit answered 200 (already_committed false): ` +
        `${problems.length ? `${problems.length} PROBLEM(S)` : 'ok'}; ${receiver.received} triggers received in all; total ${((performance.now() - t0) / 1000).toFixed(0)} s`);
      for (const p of problems.slice(0, 20)) console.log(`   PROBLEM ${p}`);
      console.log('');
      if (problems.length) throw new Error(`trigger-latency: ${problems.length} problem(s), see above`);
    } finally {
      for (const c of cleanups.reverse()) await c().catch((e: unknown) => ctx.log(`cleanup failed: ${String(e)}`));
    }
  },
};
