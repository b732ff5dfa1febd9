import crypto from 'node:crypto';
import os from 'node:os';
import { describeError, isIpsError } from '../errors.js';
import { MetadataPointers } from '../catalog/metadata-pointer.js';
import { createSink, isSinkError, sinkConfigFromJson, type Sink } from '../sinks/index.js';
import { storeTrigger, toTableRef, type SourceTable, type State, type Subscription, type TriggerDetail } from '../state/index.js';
import type { IpsService } from './ips-service.js';
import { consumerLag } from './lag.js';
import { backoffMs, Loop } from './loop.js';
import { triggerPayload } from './trigger-payload.js';
import { groupTables, pendingPartitionValues } from './conditions.js';
import { ManifestReader } from '../capture/manifest-reader.js';
import type { FileIO } from '../io/file-io.js';

/**
 * Incremental triggers (DESIGN.md "Triggers"), as three loops every replica runs:
 * - watch: polls due tables' metadata pointers (claimed per table, so replicas divide them) and
 *   wakes the subscriptions of a table whose pointer moved;
 * - fire: checks due subscriptions (claimed likewise); when the condition holds, prepares the
 *   batch and stores its trigger (outbox row) in the same transaction;
 * - deliver: sends due triggers to their sinks, oldest first per subscription, with retries,
 *   exponential backoff and jitter, dead-lettering after max_attempts.
 * A replica that dies leaves claims that expire; the others take the rows over. A trigger sent
 * twice (a replica died between sending and recording it) starts no second run: the dedup key
 * is derived from the batch.
 */
export interface TriggerOptions {
  /** This replica's name in claims (default host:pid:random). */
  owner?: string;
  /** Loop period when idle (default 1000 ms). */
  tickMs?: number;
  /** How long a claim lasts (default 60 s): a dead replica's rows wait this long. */
  claimSeconds?: number;
  /** Allowed sink hosts (exact or *.suffix); undefined allows any. */
  allowedHosts?: string[];
  deliveryTimeoutMs?: number;
  /** Backoff of failed deliveries and polls (default 1 s doubling to 5 min). */
  retryBaseMs?: number;
  retryCapMs?: number;
  /** Re-check of a subscription with nothing to do (default 60 s; a table change wakes it sooner). */
  idleCheckMs?: number;
  log?: (line: string) => void;
  /** Observes outcomes (metrics). */
  onEvent?: (event: 'polled' | 'table_changed' | 'fired' | 'delivered' | 'duplicate' | 'retry' | 'dead', detail?: Record<string, unknown>) => void;
}

/** Partition values one trigger announces at most (a backlog of values fires over several triggers). */
const MAX_VALUES_PER_TRIGGER = 1000;

export function defaultOwner(): string {
  return `${os.hostname()}:${process.pid}:${crypto.randomBytes(3).toString('hex')}`;
}

export class TriggerService {
  readonly owner: string;
  private readonly state: State;
  private readonly pointers = new MetadataPointers();
  private readonly sinks = new Map<string, { version: string; sink: Sink }>();
  /** Manifests never change once written: partition conditions re-read the same ones check after check. */
  private readonly readers = new WeakMap<FileIO, ManifestReader>();
  private readonly loops: Loop[];
  private readonly watchLoop: Loop;
  private readonly fireLoop: Loop;
  private readonly deliverLoop: Loop;
  private readonly o: Required<Omit<TriggerOptions, 'allowedHosts' | 'onEvent' | 'owner'>> & Pick<TriggerOptions, 'allowedHosts' | 'onEvent'>;

  constructor(private readonly service: IpsService, options: TriggerOptions = {}) {
    this.state = service.state;
    this.owner = options.owner ?? defaultOwner();
    this.o = {
      tickMs: options.tickMs ?? 1000,
      claimSeconds: options.claimSeconds ?? 60,
      allowedHosts: options.allowedHosts,
      deliveryTimeoutMs: options.deliveryTimeoutMs ?? 10_000,
      retryBaseMs: options.retryBaseMs ?? 1000,
      retryCapMs: options.retryCapMs ?? 300_000,
      idleCheckMs: options.idleCheckMs ?? 60_000,
      log: options.log ?? (() => {}),
      onEvent: options.onEvent,
    };
    this.watchLoop = new Loop('watch', this.o.tickMs, () => this.watchTick(), this.o.log);
    this.fireLoop = new Loop('fire', this.o.tickMs, () => this.fireTick(), this.o.log);
    this.deliverLoop = new Loop('deliver', this.o.tickMs, () => this.deliverTick(), this.o.log);
    this.loops = [this.watchLoop, this.fireLoop, this.deliverLoop];
  }

  async start(): Promise<void> {
    // Tables registered before watching existed (or by an older replica) get watched too.
    await this.state.db.query(
      'INSERT INTO table_watch (source_table) SELECT name FROM source_tables ON CONFLICT (source_table) DO NOTHING');
    for (const l of this.loops) l.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.loops.map((l) => l.stop()));
    await this.pointers.close();
  }

  /** Something changed here (an event, a commit): look now rather than at the next tick. */
  poke(what: 'watch' | 'fire' | 'deliver'): void {
    ({ watch: this.watchLoop, fire: this.fireLoop, deliver: this.deliverLoop })[what].poke();
  }

  // -- watch ------------------------------------------------------------------------------

  private async watchTick(): Promise<boolean> {
    const due = await this.state.repos.watch.claimDue(this.owner, 25, this.o.claimSeconds);
    let changed = false;
    await Promise.all(due.map(async (w) => {
      const interval = w.pollIntervalSeconds * 1000;
      const jittered = interval * (0.9 + Math.random() * 0.2);
      try {
        const table = await this.state.repos.sourceTables.require(w.sourceTable);
        const location = await this.pointers.current(this.service.ioFor(table), toTableRef(table));
        const r = await this.state.repos.watch.recordPoll(w.sourceTable, this.owner, { metadataLocation: location, headSnapshotId: null }, jittered, w.nextPollAt);
        this.o.onEvent?.('polled', { table: w.sourceTable });
        if (r.changed || w.metadataLocation === null) {
          this.o.onEvent?.('table_changed', { table: w.sourceTable });
          if ((await this.state.repos.subscriptions.wake({ tables: [w.sourceTable] })) > 0) changed = true;
        }
      } catch (e) {
        const delay = Math.max(interval, backoffMs(w.errorCount + 1, this.o.retryBaseMs, this.o.retryCapMs));
        await this.state.repos.watch.recordError(w.sourceTable, this.owner, describeError(e), delay).catch(() => {});
      }
    }));
    if (changed) this.fireLoop.poke();
    return due.length === 25;
  }

  // -- fire -------------------------------------------------------------------------------

  private async fireTick(): Promise<boolean> {
    // Backfill chunks of consumers with a subscription go out through its sink (outbox, in order).
    let fired = await this.service.backfills.dispatch().catch((e: unknown) => {
      this.o.log(`backfills: ${isIpsError(e) ? `${e.code}: ${e.message}` : describeError(e)}`);
      return false;
    });
    const due = await this.state.repos.subscriptions.claimDue(this.owner, 10, this.o.claimSeconds);
    for (const s of due) {
      try {
        const r = await this.check(s);
        if (r.fired) fired = true;
        await this.state.repos.subscriptions.release(s.name, this.owner, { nextInMs: r.nextInMs, claimedNextCheckAt: s.nextCheckAt, pending: r.pending, error: null });
      } catch (e) {
        const msg = isIpsError(e) ? `${e.code}: ${e.message}` : describeError(e);
        this.o.log(`subscription ${s.name}: ${msg}`);
        await this.state.repos.subscriptions.release(s.name, this.owner, {
          nextInMs: backoffMs(3, this.o.retryBaseMs, this.o.retryCapMs) + this.o.retryBaseMs, claimedNextCheckAt: s.nextCheckAt, pending: true, error: msg,
        }).catch(() => {});
      }
    }
    if (fired) this.deliverLoop.poke();
    return due.length === 10;
  }

  /** Whether the subscription fires now; if not, when to look again. */
  private async check(s: Subscription): Promise<{ fired: boolean; pending: boolean; nextInMs: number }> {
    const repos = this.state.repos;
    const idle = { fired: false, pending: false, nextInMs: this.o.idleCheckMs };
    // In flight: a committed or aborted batch wakes the subscription again.
    const open = (await repos.batches.list({ consumer: s.consumer, state: 'open', files: false })).filter((b) => b.backfill === null && b.tables.some((t) => s.tables.includes(t.sourceTable)));
    if (open.length >= s.maxInFlight) return { ...idle, pending: s.pendingSince !== null };

    let files = 0n;
    let bytes = 0n;
    let records = 0n;
    const behind = new Set<string>();
    // The consumer's watermarks with their tables, in one statement; the prepare below reuses the
    // tables (its watermarks it reads again, fresh, for the batch's base).
    const subscribed = new Map((await repos.watermarks.listByConsumerWithSources(s.consumer)).map((x) => [x.watermark.sourceTable, x]));
    const sources: SourceTable[] = [];
    for (const name of s.tables) {
      // Not subscribed (any more): the reads that say what is missing.
      const { source: table, watermark: wm } = subscribed.get(name)
        ?? { source: await repos.sourceTables.require(name), watermark: await repos.watermarks.require(s.consumer, name) };
      sources.push(table);
      const lag = consumerLag((await this.service.load(table)).metadata, wm, table.branch);
      if (!lag.ok) throw Object.assign(new Error(`${name}: ${lag.code}: ${lag.message}`), { code: lag.code });
      if (lag.lag.snapshots > 0) behind.add(name);
      files += lag.lag.files;
      bytes += lag.lag.bytes;
      records += lag.lag.records;
    }
    if (behind.size === 0) {
      // No changes: a partition value that became ready (its data went out in an earlier batch,
      // then it went quiet), or signals when the subscription says so, fire without a batch.
      if (s.condition.partition) {
        const r = await this.firePartitionsWithoutChanges(s, idle);
        if (r) return r;
      }
      if (s.condition.fireOnSignals && s.condition.signals?.length) return this.fireOnSignals(s, idle);
      return idle;
    }

    const now = Date.now();
    const c = s.condition;
    const overdue = c.maxDelaySeconds !== undefined && s.pendingSince !== null && now - s.pendingSince.getTime() >= c.maxDelaySeconds * 1000;
    /** How long until max_delay fires anyway (from when changes were first held back). */
    const untilOverdue = (): number | null => c.maxDelaySeconds === undefined ? null
      : s.pendingSince ? s.pendingSince.getTime() + c.maxDelaySeconds * 1000 - now : c.maxDelaySeconds * 1000;
    const hold = (...candidates: (number | null)[]): { fired: false; pending: true; nextInMs: number } => {
      const ws = candidates.filter((x): x is number => x !== null);
      return { fired: false, pending: true, nextInMs: Math.max(50, Math.min(this.o.idleCheckMs, ...ws)) };
    };
    const detail: TriggerDetail = {};

    if (c.partition) {
      // Partition-complete: fire per value of the time field once every table of the group has data for it (or it went quiet).
      const r = await this.partitionReadiness(s, behind, now);
      if (r.fire.length > 0) detail.partition = { field: c.partition.field, values: r.fire };
      else if (!r.late && !overdue) return hold(r.nextInMs, untilOverdue());
    } else if (c.all) {
      // An all-of group: every table of it must have changes (tables outside it come along).
      const missing = c.all.filter((t) => !behind.has(t));
      if (missing.length > 0 && !overdue) return hold(untilOverdue());
    }

    const waits: number[] = [];
    if (c.intervalSeconds && s.lastFiredAt) {
      const next = s.lastFiredAt.getTime() + c.intervalSeconds * 1000;
      if (next > now) waits.push(next - now);
    }
    const thresholds = c.minFiles !== undefined || c.minBytes !== undefined || c.minRecords !== undefined;
    const enough = !thresholds
      || (c.minFiles !== undefined && files >= BigInt(c.minFiles))
      || (c.minBytes !== undefined && bytes >= c.minBytes)
      || (c.minRecords !== undefined && records >= c.minRecords);
    if (!enough && !overdue) waits.push(untilOverdue() ?? this.o.idleCheckMs);
    if (waits.length > 0) return { fired: false, pending: true, nextInMs: Math.max(50, Math.min(...waits)) };

    if (c.signals && c.signals.length > 0) {
      // Required signals gate the firing (max_delay does not override them); a new signal wakes the subscription.
      const matched = await repos.signals.unconsumedMatches(s.name, c.signals);
      if (matched === null) return hold(null);
      detail.signals = matched.map((m) => m.id);
    }

    const seq = s.fireSeq + 1n;
    // The instance id names this subscription, not just its name: one deleted and created again
    // restarts at seq 1, and must not be handed its predecessor's (committed) first batch.
    const r = await this.service.steps.prepare({
      consumer: s.consumer, tables: s.tables, instanceId: `sub:${s.name}:${s.createdAt.getTime()}:${seq}`, limits: s.limits,
      trigger: { subscription: s.name, seq, ...(detail.partition || detail.signals ? { detail } : {}) },
      maxInFlight: s.maxInFlight, sources,
    });
    if (r.kind === 'no-changes') return idle;
    if (r.created) this.o.onEvent?.('fired', { subscription: s.name, batch_id: r.batch.id.toString() });
    return { fired: true, pending: false, nextInMs: this.o.idleCheckMs };
  }

  /**
   * A partition-complete subscription with no changes pending: values whose data already went out
   * (with another value's batch) fire once ready, in a trigger without a batch; null when none is.
   */
  private async firePartitionsWithoutChanges(s: Subscription, idle: { fired: boolean; pending: boolean; nextInMs: number }): Promise<{ fired: boolean; pending: boolean; nextInMs: number } | null> {
    const c = s.condition;
    const r = await this.partitionReadiness(s, new Set(), Date.now());
    if (r.fire.length === 0) return r.nextInMs === null ? null : { ...idle, nextInMs: Math.max(50, Math.min(idle.nextInMs, r.nextInMs)) };
    if (c.intervalSeconds && s.lastFiredAt) {
      const wait = s.lastFiredAt.getTime() + c.intervalSeconds * 1000 - Date.now();
      if (wait > 0) return { fired: false, pending: false, nextInMs: Math.max(50, wait) };
    }
    const detail: TriggerDetail = { partition: { field: c.partition!.field, values: r.fire } };
    if (c.signals && c.signals.length > 0) {
      const matched = await this.state.repos.signals.unconsumedMatches(s.name, c.signals);
      if (matched === null) return idle;
      detail.signals = matched.map((m) => m.id);
    }
    await this.state.db.withTransaction((tx) => storeTrigger(tx, { subscription: s.name, seq: s.fireSeq + 1n, detail }, null));
    this.o.onEvent?.('fired', { subscription: s.name, batch_id: null });
    return { fired: true, pending: false, nextInMs: this.o.idleCheckMs };
  }

  /**
   * Fires a trigger without a batch when the required signals are there (fire_on_signals and no
   * table changes): it consumes them, in the transaction that stores the trigger. `--every`
   * still spaces firings.
   */
  private async fireOnSignals(s: Subscription, idle: { fired: boolean; pending: boolean; nextInMs: number }): Promise<{ fired: boolean; pending: boolean; nextInMs: number }> {
    const c = s.condition;
    if (c.intervalSeconds && s.lastFiredAt) {
      const wait = s.lastFiredAt.getTime() + c.intervalSeconds * 1000 - Date.now();
      if (wait > 0) return { fired: false, pending: false, nextInMs: Math.max(50, wait) };
    }
    const matched = await this.state.repos.signals.unconsumedMatches(s.name, c.signals!);
    if (matched === null) return idle;
    const seq = s.fireSeq + 1n;
    await this.state.db.withTransaction((tx) => storeTrigger(tx, { subscription: s.name, seq, detail: { signals: matched.map((m) => m.id) } }, null));
    this.o.onEvent?.('fired', { subscription: s.name, batch_id: null });
    return { fired: true, pending: false, nextInMs: this.o.idleCheckMs };
  }

  /**
   * Records the values of the partition field that the group's pending changes hold (arrivals),
   * then says which unfired values are ready: complete (every table of the group has data for
   * it) or quiet (no commit wrote it for quiet_seconds); `late`: pending changes hold a value
   * that fired before (late data, fired as a normal change); `nextInMs`: the next quiet deadline.
   */
  private async partitionReadiness(s: Subscription, behind: Set<string>, now: number): Promise<{
    fire: { value: string; reason: 'complete' | 'quiet' }[]; late: boolean; nextInMs: number | null;
  }> {
    const repos = this.state.repos;
    const c = s.condition;
    const field = c.partition!.field;
    const group = groupTables(s.tables, c);
    const policy = (await repos.consumers.require(s.consumer)).policy;
    const pending = new Set<string>();
    for (const name of group) {
      if (!behind.has(name)) continue;
      const table = await repos.sourceTables.require(name);
      const wm = await repos.watermarks.require(s.consumer, name);
      const md = (await this.service.load(table)).metadata;
      const io = this.service.ioFor(table);
      let reader = this.readers.get(io);
      if (!reader) this.readers.set(io, (reader = new ManifestReader(io, 16 * 1024 * 1024)));
      const values = await pendingPartitionValues(reader, md, table, wm, policy, field);
      await repos.partitions.recordArrivals(s.name, name, values);
      for (const v of values.keys()) pending.add(v);
    }
    const late = (await repos.partitions.firedValues(s.name, [...pending])).size > 0;
    const byValue = new Map<string, { tables: Set<string>; last: number }>();
    for (const a of await repos.partitions.unfiredArrivals(s.name)) {
      let e = byValue.get(a.value);
      if (!e) byValue.set(a.value, (e = { tables: new Set(), last: 0 }));
      e.tables.add(a.sourceTable);
      e.last = Math.max(e.last, a.lastCommitAt.getTime());
    }
    const fire: { value: string; reason: 'complete' | 'quiet' }[] = [];
    let nextInMs: number | null = null;
    const quietMs = c.partition!.quietSeconds !== undefined ? c.partition!.quietSeconds * 1000 : null;
    for (const [value, e] of [...byValue].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (fire.length >= MAX_VALUES_PER_TRIGGER) break;
      if (group.every((t) => e.tables.has(t))) fire.push({ value, reason: 'complete' });
      else if (quietMs !== null && now - e.last >= quietMs) fire.push({ value, reason: 'quiet' });
      else if (quietMs !== null) nextInMs = Math.min(nextInMs ?? Infinity, e.last + quietMs - now);
    }
    return { fire, late, nextInMs };
  }

  // -- deliver ----------------------------------------------------------------------------

  private sinkFor(s: Subscription): Sink {
    // Keyed by the stored config itself: a sink (and its HTTP auth, e.g. Airflow 3's JWT) lives as long as its config.
    const version = crypto.createHash('sha256').update(JSON.stringify(s.sink)).digest('hex');
    const cached = this.sinks.get(s.name);
    if (cached && cached.version === version) return cached.sink;
    const sink = createSink(sinkConfigFromJson(s.sink, { allowedHosts: this.o.allowedHosts }), {
      allowedHosts: this.o.allowedHosts, timeoutMs: this.o.deliveryTimeoutMs,
    });
    this.sinks.set(s.name, { version, sink });
    return sink;
  }

  /**
   * A failed attempt whose trigger is gone: its subscription was deleted while the attempt ran
   * (deleting keeps a batch whose trigger is being delivered, as its run may start). The attempt
   * failed, so no run has the batch: aborted as the deletion would have, rather than holding the
   * consumer's next prepare until its lease runs out. A claim lost to another replica (the
   * subscription still there) is left to that replica.
   */
  private async abortOrphan(subscription: string, batchId: bigint): Promise<void> {
    await this.state.withTransaction(async (repos) => {
      if (await repos.subscriptions.get(subscription)) return;
      const batch = await repos.batches.get(batchId, { files: false });
      if (batch?.state !== 'open') return;
      await repos.batches.close(batchId, 'aborted', `subscription "${subscription}" was deleted before its trigger was delivered`);
    }).catch((e: unknown) => this.o.log(`batch ${batchId} of deleted subscription ${subscription} stays open until its lease runs out: ${describeError(e)}`));
  }

  private async deliverTick(): Promise<boolean> {
    const due = await this.state.repos.outbox.claimDue(this.owner, 10, this.o.claimSeconds);
    // Several subscriptions' triggers go out in parallel; each subscription's in order (claimDue gives one per subscription).
    await Promise.all(due.map(async (entry) => {
      const repos = this.state.repos;
      let maxAttempts = 8;
      try {
        const s = await repos.subscriptions.require(entry.subscription);
        maxAttempts = s.maxAttempts;
        // A trigger fired by signals alone has no batch.
        // The payload names the batch's tables, ICDC tables and ranges, never its file lists (the bulk of its rows).
        const batch = entry.batchId === null ? null : await repos.batches.require(entry.batchId, { files: false });
        const signals = await repos.signals.load(entry.detail.signals ?? []);
        const result = await this.sinkFor(s).deliver(triggerPayload(entry, batch, signals, s.consumer), { attempt: entry.attempts + 1 });
        if (await repos.outbox.markDelivered(entry.id, this.owner, { outcome: result.outcome, runId: result.runId ?? null })) {
          // The run starts now: its lease counts from here, not from when the batch waited for the sink.
          if (batch) await repos.batches.restartLease(batch.id).catch(() => {});
          this.o.onEvent?.(result.outcome === 'duplicate' ? 'duplicate' : 'delivered', { subscription: s.name, batch_id: batch?.id.toString() ?? null });
        }
      } catch (e) {
        const retryable = isSinkError(e) ? e.retryable : !isIpsError(e) || e.code !== 'INVALID_SINK';
        const wait = Math.max(isSinkError(e) ? e.retryAfterMs ?? 0 : 0, backoffMs(entry.attempts + 1, this.o.retryBaseMs, this.o.retryCapMs));
        // A trigger this attempt kills must not say it will be retried: it waits for a person.
        const dies = !retryable || entry.attempts + 1 >= maxAttempts;
        const error = dies
          ? `${describeError(e).replace(/ \(will retry[^)]*\)|;? will retry/g, '')} [dead after ${entry.attempts + 1} attempt(s): retry it with \`ips subscriptions retry ${entry.id}\` once the sink is fixed]`
          : describeError(e);
        const state = await repos.outbox.markFailed(entry.id, this.owner, { error, retryable, maxAttempts, retryInMs: wait });
        if (state === null && entry.batchId !== null) await this.abortOrphan(entry.subscription, entry.batchId);
        this.o.onEvent?.(state === 'dead' ? 'dead' : 'retry', { subscription: entry.subscription, error: describeError(e) });
        if (state === 'dead') {
          this.o.log(`trigger ${entry.id} of ${entry.subscription} is dead after ${entry.attempts + 1} attempt(s), until retried by hand: ${describeError(e).replace(/ \(will retry\)$/, '')}`);
        }
      }
    }));
    return due.length === 10;
  }
}
