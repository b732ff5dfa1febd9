// Bounded state: the retention pass against a state that has every kind of row it must keep or
// may remove — open, committed, aborted and expired batches, triggers pending, dead and
// delivered, running, finished and cancelled backfills with their chunk batches, the
// watermark audit log, and what trigger conditions remember (signals and which subscription
// consumed them, partition values seen and fired) — on both drivers. Each row is built through the repositories the service
// uses, then aged by moving its timestamps back (the one thing a test cannot wait for). What each
// row must become is written down beside it, from the policy as docs/retention.md states it.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  migrate, repositories, storeTrigger, type Batch, type OutboxEntry, type WatermarkMove, type Database, type Repositories, type RetentionCounts, type RetentionPolicy, type TriggerDetail,
} from '../../src/state/index.js';
import type { FileJson } from '../../src/capture/file-json.js';
import { DRIVERS, freshDatabase, type TestDatabase } from './helpers.js';

const DAY = 86_400_000;
/** The policy the fates below are written for (explicit, so a change of the defaults does not change this test). */
const POLICY: RetentionPolicy = { batchFilesDays: 7, batchDays: 90, outboxDays: 30, watermarkMovesDays: 365, backfillDays: 90 };

/** 'archived': folded into its batch row (src/state/batch-archive.ts): its own rows are gone, the repositories read it back. */
type Fate = 'kept' | 'files-dropped' | 'archived' | 'deleted';

function file(name: string): FileJson {
  return { file_path: `s3://w/t/data/${name}.parquet`, content: 'data', record_count: '10', file_size_in_bytes: '1000' } as unknown as FileJson;
}

describe.each(DRIVERS)('retention (%s)', (driver) => {
  let t: TestDatabase;
  let db: Database;
  let r: Repositories;
  /** Batch id → what the pass must do to it, and why. */
  const batchFate = new Map<bigint, { fate: Fate; why: string }>();
  const outboxFate = new Map<bigint, { fate: Fate; why: string }>();
  const chunkFate = new Map<string, { fate: Fate; why: string }>();
  const backfillFate = new Map<string, Fate>();
  /** Signal id → fate; its consumption rows ("signal id/subscription") → fate. */
  const signalFate = new Map<bigint, { fate: Fate; why: string }>();
  const consumptionFate = new Map<string, { fate: Fate; why: string }>();
  /** "subscription/value" of a fired value → fate; "subscription/value/table" of an arrival → fate. */
  const firingFate = new Map<string, { fate: Fate; why: string }>();
  const arrivalFate = new Map<string, { fate: Fate; why: string }>();
  let made = 0;
  const archivedBefore = new Map<bigint, { batch: Batch; moves: WatermarkMove[]; consumerMoves: WatermarkMove[] }>();
  let triggersBefore: OutboxEntry[] = [];
  let recentMovesBefore: WatermarkMove[] = [];

  async function age(table: string, column: string, where: string, params: unknown[], daysAgo: number): Promise<void> {
    const res = await db.query(`UPDATE ${table} SET ${column} = now() - $${params.length + 1}::INT8 * INTERVAL '1 day' WHERE ${where}`,
      [...(params as string[]), daysAgo]);
    expect(res.rowCount, `${table}.${column} where ${where}`).toBeGreaterThan(0);
  }

  /** A batch of `consumer` on table t1, committed (moving the watermark), aborted or expired, `closedDaysAgo`. */
  async function batch(consumer: string, state: 'open' | 'committed' | 'aborted' | 'expired', createdDaysAgo: number, closedDaysAgo: number | null,
    opts: { trigger?: { subscription: string; seq: bigint; detail?: TriggerDetail }; backfill?: { name: string; chunk: number } } = {}): Promise<bigint> {
    const wm = await r.watermarks.require(consumer, 't1');
    const n = made++;
    const { batch: b } = await r.batches.create({
      consumer, instanceId: `run-${n}`, leaseSeconds: 600,
      ...(opts.trigger ? { trigger: opts.trigger } : {}),
      ...(opts.backfill ? { backfill: opts.backfill } : {}),
      tables: [{
        sourceTable: 't1', fromSnapshotId: wm.snapshotId, fromSequenceNumber: wm.sequenceNumber,
        toSnapshotId: BigInt(n + 1), toSequenceNumber: BigInt(n + 1),
        files: { added: [file(`a${n}`), file(`b${n}`)], removed: [file(`c${n}`)] }, baseWatermarkVersion: wm.version,
        next: { snapshotId: BigInt(n + 1), sequenceNumber: BigInt(n + 1), partialSnapshotId: null, partialSequenceNumber: null, processedFiles: [] },
      }],
    });
    if (opts.backfill) {
      await db.withTransaction(async (tx) => {
        expect(await repositories(tx).backfills.startChunk(tx, opts.backfill!.name, opts.backfill!.chunk, b.id, `run-${n}`)).toBe(true);
      });
    }
    if (state === 'committed') await r.batches.commit(b.id, 'test');
    else if (state !== 'open') await r.batches.close(b.id, state, 'test');
    await age('batches', 'created_at', 'id = $1', [b.id.toString()], createdDaysAgo);
    if (closedDaysAgo !== null) await age('batches', 'closed_at', 'id = $1', [b.id.toString()], closedDaysAgo);
    return b.id;
  }

  async function backfill(name: string, chunks: number, createdDaysAgo: number): Promise<void> {
    await r.backfills.create({
      name, consumer: 'c1', sourceTable: 't1', kind: 'where', spec: { where: 'x' }, pinnedSnapshotId: null, pinnedSequenceNumber: null,
      concurrency: 1, maxAttempts: 3, order: 'oldest-first', createdBy: 'test',
      chunks: Array.from({ length: chunks }, (_, i) => ({ range: { i }, files: { added: [{ file_path: file(`${name}-${i}`).file_path }], removed: [] }, byteCount: 1n, recordCount: 1n, fromSnapshotId: null, toSnapshotId: null })),
    });
    await age('backfills', 'created_at', 'name = $1', [name], createdDaysAgo);
  }

  beforeAll(async () => {
    t = await freshDatabase(driver, 'retention');
    db = t.db;
    await migrate(db);
    r = repositories(db);
    await r.sourceTables.create({ name: 't1', ref: { kind: 'directory', location: '/w/t1' } });
    for (const c of ['c1', 'c2', 'c3', 'c4', 'c5']) {
      await r.consumers.create({ name: c });
      await r.watermarks.create({ consumer: c, sourceTable: 't1' }, { actor: 'test', reason: 'subscribe' });
    }
    const keep = (why: string) => ({ fate: 'kept' as const, why });
    const drop = (why: string) => ({ fate: 'files-dropped' as const, why });
    const del = (why: string) => ({ fate: 'deleted' as const, why });
    const arch = (why: string) => ({ fate: 'archived' as const, why });

    // c1: its own history, oldest first.
    batchFate.set(await batch('c1', 'committed', 200, 200), del('committed 200 days ago (> batch_days 90), not the newest'));
    batchFate.set(await batch('c1', 'aborted', 200, 200), del('aborted 200 days ago'));
    batchFate.set(await batch('c1', 'committed', 100, 100),
      drop('closed 100 days ago (> batch_days) but created after the running backfill bf-live started (120 days ago): its report may read the row, not the files'));
    batchFate.set(await batch('c1', 'committed', 60, 60), arch('committed 60 days ago: older than batch_files_days 7, younger than batch_days 90'));
    batchFate.set(await batch('c1', 'expired', 10, 10), arch('expired 10 days ago'));
    batchFate.set(await batch('c1', 'aborted', 3, 3), keep('aborted 3 days ago: younger than batch_files_days'));
    batchFate.set(await batch('c1', 'committed', 1, 1), keep('the newest committed batch of c1'));
    batchFate.set(await batch('c1', 'open', 200, null), keep('open, however old'));

    // c2: triggered batches.
    await r.subscriptions.create({ name: 's2', consumer: 'c2', tables: ['t1'], sink: { type: 'webhook', url: 'http://127.0.0.1:9/x' } });
    // One at a time, as a subscription fires them: made open, the trigger delivered (or dead), then closed.
    const entryOf = async (batchId: bigint) => (await r.outbox.list({ subscription: 's2' })).find((e) => e.batchId === batchId)!.id;
    const deliver = async (batchId: bigint, outcome: 'dead' | 'delivered') => {
      const entry = await entryOf(batchId);
      // As the delivery loop does: claim, then record the outcome under the claim.
      await db.query("UPDATE outbox SET claimed_by = 'w', claim_expires_at = now() + INTERVAL '1 minute' WHERE id = $1", [entry.toString()]);
      if (outcome === 'dead') expect(await r.outbox.markFailed(entry, 'w', { error: 'refused', retryable: false, maxAttempts: 1, retryInMs: 0 })).toBe('dead');
      else expect(await r.outbox.markDelivered(entry, 'w', { outcome: 'started', runId: `run-${batchId}` })).toBe(true);
      return entry;
    };
    const deadBatch = await batch('c2', 'open', 200, null, { trigger: { subscription: 's2', seq: 1n } });
    // A trigger is dead only while its batch is open (closing a batch cancels its trigger).
    const deadEntry = await deliver(deadBatch, 'dead');
    const deliveredOld = await batch('c2', 'open', 200, null, { trigger: { subscription: 's2', seq: 2n } });
    const oldEntry = await deliver(deliveredOld, 'delivered');
    await r.batches.commit(deliveredOld, 'test');
    await age('batches', 'closed_at', 'id = $1', [deliveredOld.toString()], 200);
    await age('outbox', 'delivered_at', 'batch_id = $1', [deliveredOld.toString()], 200);
    const deliveredMid = await batch('c2', 'open', 40, null, { trigger: { subscription: 's2', seq: 3n } });
    const midEntry = await deliver(deliveredMid, 'delivered');
    await r.batches.commit(deliveredMid, 'test');
    await age('batches', 'closed_at', 'id = $1', [deliveredMid.toString()], 40);
    await age('outbox', 'delivered_at', 'batch_id = $1', [deliveredMid.toString()], 40);
    const deliveredRecent = await batch('c2', 'open', 20, null, { trigger: { subscription: 's2', seq: 5n } });
    const recentEntry = await deliver(deliveredRecent, 'delivered');
    await r.batches.commit(deliveredRecent, 'test');
    await age('batches', 'closed_at', 'id = $1', [deliveredRecent.toString()], 20);
    await age('outbox', 'delivered_at', 'batch_id = $1', [deliveredRecent.toString()], 20);
    batchFate.set(await batch('c2', 'committed', 5, 5), keep('the newest committed batch of c2'));
    const pending = await batch('c2', 'open', 200, null, { trigger: { subscription: 's2', seq: 4n } });
    const pendingEntry = await entryOf(pending);
    batchFate.set(deadBatch, keep('open, 200 days old, its trigger dead (a retry by hand needs both)'));
    batchFate.set(deliveredOld, del('committed 200 days ago; its trigger was delivered'));
    batchFate.set(deliveredMid, arch('committed 40 days ago; its trigger (delivered 40 days ago, > outbox_days) is not folded in: the pass deletes it'));
    batchFate.set(deliveredRecent, arch('committed 20 days ago, its trigger delivered 20 days ago (< outbox_days): both folded into the batch row'));
    batchFate.set(pending, keep('open, its trigger still pending'));
    batchFate.set(await batch('c4', 'committed', 150, 150), keep('the only (so newest) committed batch of c4, even at 150 days'));
    const byBatch = new Map([[deadBatch, deadEntry], [deliveredOld, oldEntry], [deliveredMid, midEntry], [pending, pendingEntry]]);
    outboxFate.set(byBatch.get(deadBatch)!, keep('dead'));
    outboxFate.set(byBatch.get(deliveredOld)!, del('delivered 200 days ago'));
    outboxFate.set(byBatch.get(deliveredMid)!, del('delivered 40 days ago (> outbox_days 30)'));
    outboxFate.set(byBatch.get(pending)!, keep('pending'));
    outboxFate.set(recentEntry, arch('delivered 20 days ago, its batch archived'));

    // Backfills of c1: one running (created 120 days ago), one finished 100 days ago, one cancelled 20 days ago.
    await backfill('bf-live', 2, 120);
    batchFate.set(await batch('c1', 'committed', 110, 110, { backfill: { name: 'bf-live', chunk: 0 } }), keep('a chunk of a running backfill'));
    chunkFate.set('bf-live/0', keep('running backfill'));
    chunkFate.set('bf-live/1', keep('running backfill'));
    backfillFate.set('bf-live', 'kept');

    await backfill('bf-old', 1, 130);
    batchFate.set(await batch('c1', 'committed', 125, 125, { backfill: { name: 'bf-old', chunk: 0 } }),
      del('a chunk of a backfill finished 100 days ago (> backfill_days 90), created before bf-live'));
    await age('backfills', 'finished_at', 'name = $1', ['bf-old'], 100);
    chunkFate.set('bf-old/0', del('its backfill is deleted'));
    backfillFate.set('bf-old', 'deleted');

    await backfill('bf-cancelled', 2, 25);
    batchFate.set(await batch('c1', 'committed', 24, 24, { backfill: { name: 'bf-cancelled', chunk: 0 } }),
      keep('a chunk of a backfill finished 20 days ago (< backfill_days)'));
    await r.backfills.cancelPending('bf-cancelled');
    await r.backfills.setState('bf-cancelled', 'cancelled', 'test');
    await age('backfills', 'finished_at', 'name = $1', ['bf-cancelled'], 20);
    chunkFate.set('bf-cancelled/0', drop('committed chunk of a backfill finished 20 days ago'));
    chunkFate.set('bf-cancelled/1', keep('a cancelled chunk: retry needs its files'));
    backfillFate.set('bf-cancelled', 'kept');

    // The audit log: c3 moved once, 400 days ago (its newest move); c1's subscribe move is 400
    // days old, its later moves 100 days (after bf-live started); c2's moves too (no backfill).
    await age('watermark_moves', 'moved_at', "consumer IN ('c1', 'c2', 'c4')", [], 100);
    await age('watermark_moves', 'moved_at', 'consumer = $1', ['c3'], 400);
    await age('watermark_moves', 'moved_at', "consumer = $1 AND reason = 'subscribe'", ['c1'], 400);

    // Trigger conditions (consumer c5): sp waits for partition values, ss for `ready` with
    // date=d1, sw for any `ready`.
    const sink = { type: 'webhook', url: 'http://127.0.0.1:9/x' };
    await r.subscriptions.create({ name: 'sp', consumer: 'c5', tables: ['t1'], sink, condition: { partition: { field: 'day' } } });
    await r.subscriptions.create({ name: 'ss', consumer: 'c5', tables: ['t1'], sink, condition: { signals: [{ name: 'ready', params: { date: 'd1' } }] } });
    await r.subscriptions.create({ name: 'sw', consumer: 'c5', tables: ['t1'], sink, condition: { signals: [{ name: 'ready', params: {} }] } });
    const seqs = new Map<string, bigint>();
    const nextSeq = (sub: string) => { const n = (seqs.get(sub) ?? 0n) + 1n; seqs.set(sub, n); return n; };
    /** As the delivery loop ends a trigger: claimed, then delivered or dead; delivered `daysAgo`. */
    const end = async (entry: bigint, outcome: 'dead' | 'delivered', daysAgo: number) => {
      await db.query("UPDATE outbox SET claimed_by = 'w', claim_expires_at = now() + INTERVAL '1 minute' WHERE id = $1", [entry.toString()]);
      if (outcome === 'dead') expect(await r.outbox.markFailed(entry, 'w', { error: 'refused', retryable: false, maxAttempts: 1, retryInMs: 0 })).toBe('dead');
      else expect(await r.outbox.markDelivered(entry, 'w', { outcome: 'started', runId: `run-${entry}` })).toBe(true);
      await age('outbox', 'created_at', 'id = $1', [entry.toString()], daysAgo);
      if (outcome === 'delivered') await age('outbox', 'delivered_at', 'id = $1', [entry.toString()], daysAgo);
    };
    /** A trigger without a batch (as fire_on_signals and late partition values fire), as the firing stores it. */
    const fire = (sub: string, detail: TriggerDetail) => db.withTransaction((tx) => storeTrigger(tx, { subscription: sub, seq: nextSeq(sub), detail }, null));

    // Partition values of sp. Arrivals are recorded as the watch loop does, then aged with the firing.
    const arrive = async (value: string, tables: string[], daysAgo: number) => {
      for (const tb of tables) await r.partitions.recordArrivals('sp', tb, new Map([[value, new Date(Date.now() - daysAgo * DAY)]]));
      await age('partition_arrivals', 'first_seen_at', 'subscription = $1 AND value = $2', ['sp', value], daysAgo);
    };
    const fireValue = async (value: string, outcome: 'dead' | 'delivered', daysAgo: number) => {
      const entry = await fire('sp', { partition: { field: 'day', values: [{ value, reason: 'complete' }] } });
      await end(entry, outcome, daysAgo);
      await age('partition_firings', 'fired_at', 'subscription = $1 AND value = $2', ['sp', value], daysAgo);
      return entry;
    };
    const partitionCase = async (value: string, tables: string[], firing: { outcome: 'dead' | 'delivered'; daysAgo: number } | null,
      fate: Fate, why: string, triggerFate?: Fate) => {
      await arrive(value, tables, firing?.daysAgo ?? 300);
      for (const tb of tables) arrivalFate.set(`sp/${value}/${tb}`, { fate, why });
      if (firing === null) return;
      const entry = await fireValue(value, firing.outcome, firing.daysAgo);
      firingFate.set(`sp/${value}`, { fate, why });
      outboxFate.set(entry, { fate: triggerFate ?? fate, why: `the trigger of ${value}: ${why}` });
    };
    await partitionCase('2026-01-01', ['t1', 't2'], { outcome: 'delivered', daysAgo: 200 }, 'deleted', 'fired 200 days ago (> batch_days 90), delivered');
    await partitionCase('2026-01-02', ['t1'], { outcome: 'delivered', daysAgo: 40 }, 'kept',
      'fired 40 days ago (< batch_days): its trigger, delivered 40 days ago (> outbox_days), stays with it, or deleting it would unfire the value');
    await partitionCase('2026-01-03', ['t1'], { outcome: 'dead', daysAgo: 200 }, 'kept', 'fired 200 days ago by a dead trigger');
    await partitionCase('2026-01-04', ['t1'], null, 'kept', 'seen 300 days ago, never fired');
    // A value fired with a batch: the old batch (not c5's newest) goes, with its trigger and the value.
    const oldC5 = await batch('c5', 'open', 200, null, { trigger: { subscription: 'sp', seq: nextSeq('sp'), detail: { partition: { field: 'day', values: [{ value: '2026-01-05', reason: 'quiet' }] } } } });
    await arrive('2026-01-05', ['t1'], 200);
    const oldC5Entry = (await r.outbox.list({ subscription: 'sp' })).find((e) => e.batchId === oldC5)!.id;
    await end(oldC5Entry, 'delivered', 200);
    await r.batches.commit(oldC5, 'test');
    await age('batches', 'closed_at', 'id = $1', [oldC5.toString()], 200);
    await age('partition_firings', 'fired_at', 'subscription = $1 AND value = $2', ['sp', '2026-01-05'], 200);
    batchFate.set(oldC5, del('committed 200 days ago, its trigger delivered and its value fired 200 days ago'));
    outboxFate.set(oldC5Entry, del('delivered 200 days ago, its value fired 200 days ago'));
    firingFate.set('sp/2026-01-05', del('fired 200 days ago with a batch'));
    arrivalFate.set('sp/2026-01-05/t1', del('its value fired 200 days ago'));
    batchFate.set(await batch('c5', 'committed', 1, 1), keep('the newest committed batch of c5'));

    // Signals: sent (as POST /v1/signals does), consumed by a subscription's firing, aged.
    const signal = async (name: string, params: Record<string, string>, daysAgo: number, fate: Fate, why: string) => {
      const sg = await r.signals.record({ name, params, sender: 'admin:configured' });
      await age('signals', 'created_at', 'id = $1', [sg.id.toString()], daysAgo);
      signalFate.set(sg.id, { fate, why });
      return sg.id;
    };
    const consume = async (id: bigint, sub: string, outcome: 'dead' | 'delivered', daysAgo: number, triggerFate: Fate, why: string) => {
      const entry = await fire(sub, { signals: [id] });
      await end(entry, outcome, daysAgo);
      await age('signal_consumptions', 'consumed_at', 'signal_id = $1 AND subscription = $2', [id.toString(), sub], daysAgo);
      consumptionFate.set(`${id}/${sub}`, { fate: signalFate.get(id)!.fate, why: `consumed by ${sub}: ${signalFate.get(id)!.why}` });
      outboxFate.set(entry, { fate: triggerFate, why });
    };
    const s1 = await signal('ready', { date: 'd1' }, 50, 'deleted', 'consumed by both subscriptions requiring it (ss, sw), 40 days ago (> outbox_days)');
    await consume(s1, 'ss', 'delivered', 40, 'deleted', 'delivered 40 days ago, its signal goes');
    await consume(s1, 'sw', 'delivered', 40, 'deleted', 'delivered 40 days ago, its signal goes');
    const s2 = await signal('ready', { date: 'd1' }, 50, 'kept', 'consumed by ss 40 days ago, but sw requires it too and has not consumed it (50 days < batch_days)');
    await consume(s2, 'ss', 'delivered', 40, 'kept', 'delivered 40 days ago, but its consumption of a kept signal stays: without it ss would fire on the signal again');
    const s3 = await signal('ready', { date: 'd2' }, 50, 'deleted', 'consumed by sw 40 days ago; ss requires date=d1, so nothing else waits for it');
    await consume(s3, 'sw', 'delivered', 40, 'deleted', 'delivered 40 days ago, its signal goes');
    await signal('ready', { date: 'd1' }, 120, 'deleted', 'never consumed, 120 days old (> batch_days): the bound on waiting');
    await signal('ready', {}, 60, 'kept', 'never consumed, sw waits for it, 60 days old (< batch_days)');
    await signal('other', {}, 60, 'kept', 'nobody requires it, 60 days old (< batch_days)');
    const s8 = await signal('ready', { date: 'd1' }, 120, 'kept', 'consumed by a dead trigger of ss (a retry sends it), however old');
    await consume(s8, 'ss', 'dead', 100, 'kept', 'dead');
    const s9 = await signal('ready', { date: 'd1' }, 120, 'kept', 'consumed by ss 10 days ago (< outbox_days): its trigger is still listed with it');
    await consume(s9, 'ss', 'delivered', 10, 'kept', 'delivered 10 days ago');
  });

  afterAll(async () => {
    await t?.cleanup();
  });

  async function snapshot() {
    const batches = await db.query<{ id: bigint; files: { added: unknown[] } | null; files_pruned_at: Date | null; archived: boolean }>(
      'SELECT b.id, t.files, t.files_pruned_at, b.archive IS NOT NULL AS archived FROM batches b LEFT JOIN batch_tables t ON t.batch_id = b.id');
    const outbox = await db.query<{ id: bigint }>('SELECT id FROM outbox');
    const chunks = await db.query<{ backfill: string; idx: number; files: { added: unknown[] }; files_pruned_at: Date | null }>(
      'SELECT backfill, idx, files, files_pruned_at FROM backfill_chunks');
    const backfills = await db.query<{ name: string }>('SELECT name FROM backfills');
    const moves = await db.query<{ consumer: string; moved_at: Date }>('SELECT consumer, moved_at FROM watermark_moves');
    const signals = await db.query<{ id: bigint }>('SELECT id FROM signals');
    const consumptions = await db.query<{ k: string }>("SELECT signal_id::TEXT || '/' || subscription AS k FROM signal_consumptions");
    const firings = await db.query<{ k: string }>("SELECT subscription || '/' || value AS k FROM partition_firings");
    const arrivals = await db.query<{ k: string }>("SELECT subscription || '/' || value || '/' || source_table AS k FROM partition_arrivals");
    return {
      batches: batches.rows, outbox: outbox.rows, chunks: chunks.rows, backfills: backfills.rows, moves: moves.rows,
      signals: new Set(signals.rows.map((x) => x.id)), consumptions: new Set(consumptions.rows.map((x) => x.k)),
      firings: new Set(firings.rows.map((x) => x.k)), arrivals: new Set(arrivals.rows.map((x) => x.k)),
    };
  }

  function fateOf(row: { files: { added: unknown[] } | null; files_pruned_at: Date | null; archived?: boolean } | undefined): Fate {
    if (row === undefined) return 'deleted';
    if (row.archived) {
      expect(row.files).toBeNull(); // its table rows are gone
      return 'archived';
    }
    if (row.files === null) throw new Error('a batch without table rows that is not archived');
    if (row.files_pruned_at !== null) {
      expect(row.files.added).toEqual([]);
      return 'files-dropped';
    }
    expect(row.files.added.length).toBeGreaterThan(0);
    return 'kept';
  }

  test('a dry run counts exactly what the pass then does, and changes nothing', async () => {
    const before = await snapshot();
    const dry = await r.retention.run(POLICY, { dryRun: true });
    expect(await snapshot()).toEqual(before);
    const expectBatches = [...batchFate.values()];
    // Counted independently from the table of fates above.
    const want: Partial<RetentionCounts> = {
      batchesArchived: expectBatches.filter((f) => f.fate === 'archived').length,
      batchFileListsPruned: expectBatches.filter((f) => f.fate === 'files-dropped').length
        // the batches deleted in the same pass have their file list dropped first
        + expectBatches.filter((f) => f.fate === 'deleted').length,
      chunkFileListsPruned: [...chunkFate.values()].filter((f) => f.fate === 'files-dropped').length + 1 /* bf-old's chunk, before its backfill goes */,
      backfillsDeleted: 1,
      batchesDeleted: expectBatches.filter((f) => f.fate === 'deleted').length,
      outboxDeleted: [...outboxFate.values()].filter((f) => f.fate === 'deleted').length,
      watermarkMovesDeleted: 1, // c1's subscribe move: 400 days old and not c1's newest
      partitionArrivalsDeleted: [...arrivalFate.values()].filter((f) => f.fate === 'deleted').length,
      partitionFiringsDeleted: [...firingFate.values()].filter((f) => f.fate === 'deleted').length,
      signalsDeleted: [...signalFate.values()].filter((f) => f.fate === 'deleted').length,
      signalConsumptionsDeleted: [...consumptionFate.values()].filter((f) => f.fate === 'deleted').length,
    };
    // Every kind of row has something to remove and something to keep: each rule is exercised both ways.
    for (const fates of [arrivalFate, firingFate, signalFate, consumptionFate, outboxFate]) {
      expect(new Set([...fates.values()].map((f) => f.fate))).toEqual(new Set(fates === outboxFate ? ['kept', 'deleted', 'archived'] : ['kept', 'deleted']));
    }
    // What the repositories say of the batches to be archived, read before the pass (compared after it).
    for (const [id, { fate }] of batchFate) {
      if (fate !== 'archived') continue;
      const b = (await r.batches.get(id))!;
      archivedBefore.set(id, { batch: b, moves: await r.watermarks.moves({ batchId: id }), consumerMoves: await r.watermarks.moves({ consumer: b.consumer }) });
    }
    triggersBefore = await r.outbox.list({ subscription: 's2' });
    recentMovesBefore = await r.watermarks.recentMoves('c2', 't1', 3);
    expect(dry).toEqual(want);
    const done = await r.retention.run(POLICY, { sliceSize: 2 });
    expect(done).toEqual(dry);
  });

  test('every row ends as the policy says, and nothing else was touched', async () => {
    const s = await snapshot();
    const rowsById = new Map(s.batches.map((b) => [b.id, b]));
    for (const [id, { fate, why }] of batchFate) expect(fateOf(rowsById.get(id)), `batch: ${why}`).toBe(fate);
    expect(s.batches.length).toBe([...batchFate.values()].filter((f) => f.fate !== 'deleted').length);
    const outboxIds = new Set(s.outbox.map((o) => o.id));
    const listed = new Set((await r.outbox.list()).map((e) => e.id));
    for (const [id, { fate, why }] of outboxFate) {
      expect(outboxIds.has(id) ? 'kept' : listed.has(id) ? 'archived' : 'deleted', `trigger: ${why}`).toBe(fate);
    }
    const chunks = new Map(s.chunks.map((c) => [`${c.backfill}/${c.idx}`, c]));
    for (const [key, { fate, why }] of chunkFate) expect(fateOf(chunks.get(key)), `chunk ${key}: ${why}`).toBe(fate);
    expect(new Set(s.backfills.map((b) => b.name))).toEqual(new Set([...backfillFate].filter(([, f]) => f === 'kept').map(([n]) => n)));
    expect(outboxIds.size).toBe([...outboxFate.values()].filter((f) => f.fate === 'kept').length);
    expect(listed.size).toBe([...outboxFate.values()].filter((f) => f.fate === 'kept' || f.fate === 'archived').length);
    for (const [id, { fate, why }] of signalFate) expect(s.signals.has(id) ? 'kept' : 'deleted', `signal: ${why}`).toBe(fate);
    expect(s.signals.size).toBe([...signalFate.values()].filter((f) => f.fate === 'kept').length);
    for (const [k, { fate, why }] of consumptionFate) expect(s.consumptions.has(k) ? 'kept' : 'deleted', `consumption ${k}: ${why}`).toBe(fate);
    expect(s.consumptions.size).toBe([...consumptionFate.values()].filter((f) => f.fate === 'kept').length);
    for (const [k, { fate, why }] of firingFate) expect(s.firings.has(k) ? 'kept' : 'deleted', `fired value ${k}: ${why}`).toBe(fate);
    expect(s.firings.size).toBe([...firingFate.values()].filter((f) => f.fate === 'kept').length);
    for (const [k, { fate, why }] of arrivalFate) expect(s.arrivals.has(k) ? 'kept' : 'deleted', `arrival ${k}: ${why}`).toBe(fate);
    expect(s.arrivals.size).toBe([...arrivalFate.values()].filter((f) => f.fate === 'kept').length);
    // The audit log: nothing older than 365 days is left but c3's only (newest) move.
    expect(s.moves.filter((m) => m.consumer === 'c3')).toHaveLength(1);
    const old = s.moves.filter((m) => m.moved_at.getTime() < Date.now() - 365 * DAY);
    expect(old.map((m) => m.consumer)).toEqual(['c3']);
  });

  test('the batch repository says a dropped file list was dropped, and listings leave file lists unread', async () => {
    const dropped = [...batchFate].find(([, f]) => f.fate === 'files-dropped')![0];
    const b = (await r.batches.get(dropped))!;
    expect(b.tables[0]!.filesPrunedAt).toBeInstanceOf(Date);
    expect(b.tables[0]!.fileCount).toBe(3); // the counts stay
    const listed = await r.batches.list({ consumer: 'c1', files: false });
    expect(listed.length).toBeGreaterThan(0);
    for (const x of listed) expect(x.tables.every((tt) => !tt.filesLoaded && tt.files.added.length === 0)).toBe(true);
    const full = await r.batches.list({ consumer: 'c1', state: 'open' });
    expect(full[0]!.tables[0]!.files.added.length).toBe(2);
  });

  test("a chunk's planned files are read one chunk at a time: a kept list as stored (a whole description too, as plans stored before), a dropped one refused", async () => {
    expect(await r.backfills.chunkFiles('bf-cancelled', 1)).toEqual({ added: [{ file_path: file('bf-cancelled-1').file_path }], removed: [] });
    const err = await r.backfills.chunkFiles('bf-cancelled', 0).then(() => null, (e: unknown) => e as { code: string; message: string });
    expect(err?.code).toBe('BACKFILL_STATE');
    expect(err?.message).toMatch(/pruned by retention.*create a new backfill/);
    expect(await r.backfills.chunkFiles('bf-cancelled', 9)).toBeUndefined();
    // A plan stored before chunks kept references held each file's whole description: its path and DV offset are what is read.
    const whole = { ...file('bf-live-1'), content_offset: '4' };
    await db.query(`UPDATE backfill_chunks SET files = $1::JSONB WHERE backfill = 'bf-live' AND idx = 1`, [JSON.stringify({ added: [whole], removed: [file('bf-live-x')] })]);
    expect(await r.backfills.chunkFiles('bf-live', 1)).toEqual({ added: [{ file_path: whole.file_path, content_offset: '4' }], removed: [{ file_path: file('bf-live-x').file_path }] });
    // Chunk listings leave the lists unread.
    expect(Object.keys((await r.backfills.chunks('bf-live'))[1]!)).not.toContain('files');
    expect(await r.backfills.chunkCount('bf-live')).toBe(2);
  });

  test('an archived batch reads back as it did before: its tables (less the file list), its trigger, its watermark moves', async () => {
    expect(archivedBefore.size).toBe(4);
    for (const [id, before] of archivedBefore) {
      const after = (await r.batches.get(id))!;
      expect(after.tables).toHaveLength(1);
      const strip = (b: Batch) => ({ ...b, tables: b.tables.map((tt) => ({ ...tt, files: null, filesPrunedAt: null, next: { ...tt.next, processedFiles: [] } })) });
      expect(strip(after)).toEqual(strip(before.batch));
      expect(after.tables[0]!.filesPrunedAt).toBeInstanceOf(Date);
      expect(after.tables[0]!.files).toEqual({ added: [], removed: [] });
      expect(after.tables[0]!.fileCount).toBe(3); // the counts stay
      expect(await r.watermarks.moves({ batchId: id })).toEqual(before.moves);
      // In the consumer's audit log, in order, beside the moves that are still rows.
      const log = await r.watermarks.moves({ consumer: after.consumer });
      for (const m of before.moves) expect(log).toContainEqual(m);
      const logIds = log.map((m) => m.id);
      expect(logIds).toEqual(before.consumerMoves.map((m) => m.id).filter((x) => logIds.includes(x)));
      // A listing by consumer finds it too, with its counts and range.
      expect((await r.batches.list({ consumer: after.consumer, files: false })).map((b) => b.id)).toContain(id);
    }
    // The subscription's trigger history: the archived trigger is listed as it was, in its place.
    const after = await r.outbox.list({ subscription: 's2' });
    const gone = new Set([...outboxFate].filter(([, f]) => f.fate === 'deleted').map(([x]) => x));
    expect(after).toEqual(triggersBefore.filter((e) => !gone.has(e.id)));
    expect(after.some((e) => outboxFate.get(e.id)?.fate === 'archived' && e.state === 'delivered' && e.runId !== null)).toBe(true);
    expect(await r.outbox.list({ subscription: 's2', newestFirst: true, limit: 2 })).toEqual(after.slice().reverse().slice(0, 2));
    expect(await r.watermarks.recentMoves('c2', 't1', 3)).toEqual(recentMovesBefore);
  });

  test('after the pass no kept partition value fires again and no subscription finds a signal it consumed unconsumed', async () => {
    // What the firing reads: sp's unfired values are only the one never fired.
    expect([...new Set((await r.partitions.unfiredArrivals('sp')).map((a) => a.value))]).toEqual(['2026-01-04']);
    // ss consumed every kept signal matching date=d1 (s2, s8, s9): nothing left to fire on.
    expect(await r.signals.unconsumedMatches('ss', [{ name: 'ready', params: { date: 'd1' } }])).toBeNull();
    // sw still finds the signals it never consumed, s2 among them.
    const waiting = await r.signals.unconsumedMatches('sw', [{ name: 'ready', params: {} }]);
    expect(waiting).not.toBeNull();
    expect([...signalFate].filter(([, f]) => f.fate === 'kept').map(([id]) => id)).toContain(waiting![0]!.id);
  });

  test('a second pass finds nothing left to do', async () => {
    expect(Object.values(await r.retention.run(POLICY)).every((n) => n === 0)).toBe(true);
  });

  test('watermark moves since a running backfill started are kept; once it is long finished, each watermark keeps only its newest', async () => {
    const movesOf = async (c: string) => Number((await db.query<{ n: bigint | number }>('SELECT count(*) AS n FROM watermark_moves WHERE consumer = $1', [c])).rows[0]!.n);
    const before = { c1: await movesOf('c1'), c2: await movesOf('c2'), c4: await movesOf('c4') };
    expect(before.c1).toBeGreaterThan(1);
    expect(before.c2).toBeGreaterThan(1);
    const policy = { ...POLICY, watermarkMovesDays: 50 };
    // The moves are 100 days old, but bf-live (running, started 120 days ago) may read any of them.
    expect((await r.retention.run(policy)).watermarkMovesDeleted).toBe(0);
    expect({ c1: await movesOf('c1'), c2: await movesOf('c2'), c4: await movesOf('c4') }).toEqual(before);
    // bf-live is cancelled and that was 95 days ago: nothing holds the moves any more.
    await r.backfills.setState('bf-live', 'cancelled', 'test');
    await age('backfills', 'finished_at', 'name = $1', ['bf-live'], 95);
    const done = await r.retention.run(policy);
    expect({ c1: await movesOf('c1'), c2: await movesOf('c2'), c4: await movesOf('c4') }).toEqual({ c1: 1, c2: 1, c4: 1 });
    expect(done.watermarkMovesDeleted).toBe(before.c1 - 1 + before.c2 - 1 + before.c4 - 1);
    expect(done.backfillsDeleted).toBe(1);
  });

  test('when triggers outlive batches (outbox_days > batch_days), a batch waits for the signal its trigger consumed', async () => {
    await r.consumers.create({ name: 'c6' });
    await r.watermarks.create({ consumer: 'c6', sourceTable: 't1' }, { actor: 'test', reason: 'subscribe' });
    await r.subscriptions.create({ name: 's6', consumer: 'c6', tables: ['t1'], sink: { type: 'webhook', url: 'http://127.0.0.1:9/x' },
      condition: { signals: [{ name: 'go6', params: {} }] } });
    const sg = await r.signals.record({ name: 'go6', params: {}, sender: 'admin:configured' });
    await age('signals', 'created_at', 'id = $1', [sg.id.toString()], 101);
    const old = await batch('c6', 'open', 100, null, { trigger: { subscription: 's6', seq: 1n, detail: { signals: [sg.id] } } });
    const entry = (await r.outbox.list({ subscription: 's6' }))[0]!.id;
    await db.query("UPDATE outbox SET claimed_by = 'w', claim_expires_at = now() + INTERVAL '1 minute' WHERE id = $1", [entry.toString()]);
    expect(await r.outbox.markDelivered(entry, 'w', { outcome: 'started', runId: 'r6' })).toBe(true);
    await r.batches.commit(old, 'test');
    await age('batches', 'closed_at', 'id = $1', [old.toString()], 100);
    await age('outbox', 'delivered_at', 'id = $1', [entry.toString()], 100);
    await age('signal_consumptions', 'consumed_at', 'signal_id = $1', [sg.id.toString()], 100);
    await batch('c6', 'committed', 1, 1); // c6's newest: the old batch is not protected as such
    const present = async () => ({
      batch: (await r.batches.get(old)) !== undefined,
      trigger: (await r.outbox.get(entry)) !== undefined,
      signal: (await r.signals.load([sg.id])).length === 1,
      consumption: Number((await db.query<{ n: bigint }>('SELECT count(*) AS n FROM signal_consumptions WHERE signal_id = $1', [sg.id.toString()])).rows[0]!.n),
    });
    // Consumed 100 days ago, within outbox_days 120: the signal stays, so its consumption, so the
    // trigger, so the batch (closed 100 days ago, past batch_days 90), whose deletion would cascade to them.
    const policy = { ...POLICY, outboxDays: 120 };
    const dry = await r.retention.run(policy, { dryRun: true });
    const done = await r.retention.run(policy);
    expect(done).toEqual(dry);
    expect(await present()).toEqual({ batch: true, trigger: true, signal: true, consumption: 1 });
    // 130 days after: the signal (consumed by s6, the only subscription requiring it) goes, and then the trigger and the batch.
    await age('signal_consumptions', 'consumed_at', 'signal_id = $1', [sg.id.toString()], 130);
    await age('outbox', 'delivered_at', 'id = $1', [entry.toString()], 130);
    const dry2 = await r.retention.run(policy, { dryRun: true });
    expect(dry2).toMatchObject({ signalsDeleted: 1, signalConsumptionsDeleted: 1, outboxDeleted: 1, batchesDeleted: 1 });
    expect(await r.retention.run(policy)).toEqual(dry2);
    expect(await present()).toEqual({ batch: false, trigger: false, signal: false, consumption: 0 });
  });

  test('one replica holds the job at a time, and not again before the interval', async () => {
    expect(await r.retention.claim('job-x', 'a', 3600, 60)).toBe(true);
    expect(await r.retention.claim('job-x', 'b', 3600, 60)).toBe(false);
    await r.retention.finish('job-x', 'a', { ok: true });
    // Released, but the last run started less than an interval ago.
    expect(await r.retention.claim('job-x', 'b', 3600, 60)).toBe(false);
    expect(await r.retention.claim('job-x', 'b', 0, 60)).toBe(true);
    expect((await r.retention.status('job-x'))?.claimedBy).toBe('b');
    expect(await r.retention.extend('job-x', 'a', 60)).toBe(false);
    expect(await r.retention.extend('job-x', 'b', 60)).toBe(true);
  });
});
