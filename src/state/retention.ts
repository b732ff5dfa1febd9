import { z } from 'zod';
import { int8Array, parseRow } from './common.js';
import { jsonParam, type Queryable, type SqlParam } from './database.js';
import { ARCHIVE_MOVE_SELECT, ARCHIVE_TABLE_SELECT, ARCHIVE_TRIGGER_SELECT, decodeArchive, encodeArchive } from './batch-archive.js';
import { textArray } from './table-watch.js';

/**
 * Bounded state: what the service may forget, and when. Everything here is a pure function of
 * the policy and a clock (`now`), so a test can run it a simulated week ahead.
 *
 * What is never touched, whatever the policy:
 * - an open batch, a batch whose trigger is pending or dead (a dead trigger can be retried by
 *   hand, and its batch must still be there), the newest committed batch of each consumer;
 * - the batches and file lists of a backfill that is running, paused or failed, or finished less
 *   than `backfillDays` ago;
 * - any batch and any watermark move since the oldest such backfill was created: the backfill's
 *   propagation report reads downstream consumers' batch outputs and watermark moves;
 * - the newest move of every watermark (the audit trail always says how each watermark got where
 *   it is), the watermarks themselves, consumers, subscriptions, tables, tokens;
 * - a partition value not fired yet (its arrivals), a fired value younger than `batchDays`, a
 *   signal a subscription still waits for (younger than `batchDays`), and whatever a pending or
 *   dead trigger announces (its fired values, its consumed signals);
 * - a trigger, or a batch, whose fired values or consumed signals stay: deleting the trigger would
 *   cascade to those rows, and a value whose firing is gone fires again, a signal whose consumption
 *   is gone releases the subscription again.
 */
export interface RetentionPolicy {
  /**
   * File lists of closed batches, and of the committed chunks of finished backfills, are dropped
   * after this many days (a cancelled backfill's other chunks keep theirs: `retry` needs them).
   */
  batchFilesDays: number;
  /**
   * Closed batches (their summaries, ranges and ICDC references) are deleted after this many days;
   * so are the partition values fired this long ago (with their arrivals), and signals this old
   * that a subscription still waits for (a subscription waiting that long for a signal is broken).
   */
  batchDays: number;
  /**
   * Delivered and cancelled triggers are deleted after this many days; so are signals consumed by
   * every subscription that requires them, this long after their last consumption.
   */
  outboxDays: number;
  /** Watermark moves (the audit log) are deleted after this many days, but never a watermark's newest. */
  watermarkMovesDays: number;
  /** Committed and cancelled backfills are deleted (with their chunks) after this many days. */
  backfillDays: number;
}

/**
 * A committed batch's file list is what its run read; a day covers "what did the last runs get",
 * and after that the batch keeps its counts, range, partitions and ICDC snapshot, and `ips
 * changes --from --to` recomputes any range the table's history still holds. File lists are the
 * bulk of the state (bench/state-growth.ts), so this default bounds it.
 */
export const DEFAULT_RETENTION: RetentionPolicy = {
  batchFilesDays: 1,
  batchDays: 90,
  outboxDays: 30,
  watermarkMovesDays: 365,
  backfillDays: 90,
};

/** What one pass did (or, on a dry run, would do), per kind of row. */
export interface RetentionCounts {
  /**
   * Closed batches whose table summaries, trigger and watermark moves were folded into the batch's
   * own row (src/state/batch-archive.ts) once their file lists could go: read back the same.
   */
  batchesArchived: number;
  batchFileListsPruned: number;
  chunkFileListsPruned: number;
  batchesDeleted: number;
  outboxDeleted: number;
  watermarkMovesDeleted: number;
  backfillsDeleted: number;
  /** Partition values seen in a table's changes (partition_arrivals), of values whose firing goes. */
  partitionArrivalsDeleted: number;
  /** Partition values fired (partition_firings). */
  partitionFiringsDeleted: number;
  signalsDeleted: number;
  /** Which subscription consumed a signal (signal_consumptions): they go with their signal. */
  signalConsumptionsDeleted: number;
}

export const NO_COUNTS: RetentionCounts = {
  batchesArchived: 0, batchFileListsPruned: 0, chunkFileListsPruned: 0, batchesDeleted: 0, outboxDeleted: 0, watermarkMovesDeleted: 0, backfillsDeleted: 0,
  partitionArrivalsDeleted: 0, partitionFiringsDeleted: 0, signalsDeleted: 0, signalConsumptionsDeleted: 0,
};

const DAY_MS = 86_400_000;
const EMPTY_FILES = '{"added":[],"removed":[]}';

function cutoff(now: Date, days: number): Date {
  return new Date(now.getTime() - days * DAY_MS);
}

/**
 * A backfill still needs its history when it is not finished, or finished after `since`.
 * `$since` is the parameter holding that instant.
 */
const liveBackfill = (alias: string, since: string) =>
  `(${alias}.state IN ('running', 'paused', 'failed') OR ${alias}.finished_at IS NULL OR ${alias}.finished_at >= ${since})`;

/**
 * A closed batch that nothing protects (see RetentionPolicy).
 * The caller adds the age condition.
 */
const unprotectedBatch = `
  b.state IN ('committed', 'aborted', 'expired')
  AND b.closed_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.batch_id = b.id AND o.state IN ('pending', 'dead'))
  AND NOT (b.state = 'committed' AND b.backfill IS NULL AND NOT EXISTS (
    SELECT 1 FROM batches n WHERE n.consumer = b.consumer AND n.state = 'committed' AND n.backfill IS NULL
      AND (n.closed_at > b.closed_at OR (n.closed_at = b.closed_at AND n.id > b.id))))
  AND NOT EXISTS (SELECT 1 FROM backfills f WHERE f.name = b.backfill AND ${liveBackfill('f', ':backfillCutoff')})`;

/** Nothing created since the oldest live backfill started may go: its propagation report reads it. */
const beforeLiveBackfills = (column: string) =>
  `NOT EXISTS (SELECT 1 FROM backfills f WHERE ${liveBackfill('f', ':backfillCutoff')} AND f.created_at <= ${column})`;

/**
 * A later move of the same watermark exists: the newest move of each watermark is always kept.
 * The watermark's version says so too when that later move is folded into an archived batch.
 */
const newerMoveExists = `(EXISTS (SELECT 1 FROM watermarks w WHERE w.consumer = m.consumer AND w.source_table = m.source_table AND w.version > m.to_version)
  OR EXISTS (SELECT 1 FROM watermark_moves n WHERE n.consumer = m.consumer AND n.source_table = m.source_table
  AND (n.moved_at > m.moved_at OR (n.moved_at = m.moved_at AND n.to_version > m.to_version))))`;

/**
 * A delivered or cancelled trigger older than the cutoff: by its delivery, or by its creation when
 * it was cancelled undelivered (markDelivered always sets delivered_at). Two sargable branches, one
 * per partial index of 0012 (outbox_delivered_at, outbox_undelivered_by_created).
 */
const outboxAgedAt = (o: string, at: string) => `((${o}.state IN ('delivered', 'cancelled') AND ${o}.delivered_at < ${at})
  OR (${o}.state = 'cancelled' AND ${o}.delivered_at IS NULL AND ${o}.created_at < ${at}))`;
const outboxAged = outboxAgedAt('o', ':cutoff');

/**
 * A closed batch (alias b) whose table summaries, trigger and moves retention folds into its row
 * (src/state/batch-archive.ts), `:cutoff` being the file lists' cutoff: one whose file list may go,
 * not a backfill's (its chunks point at it; a live backfill's propagation report reads the others
 * through the repositories, which read archives), and none of whose rows another rule of this pass
 * would count: younger than batch_days, its trigger (if any) delivered or cancelled and announcing
 * nothing (fired values and consumed signals point at it). A trigger older than outbox_days and a
 * move older than watermark_moves_days are not folded: they stay rows, for the rules below to
 * count and delete. So a dry run counts what the pass then does, and one pass leaves nothing for
 * the next.
 */
const archivable = `b.archive IS NULL AND b.backfill IS NULL AND b.closed_at < :cutoff AND b.closed_at >= :batchCutoff
  AND ${unprotectedBatch}
  AND NOT EXISTS (SELECT 1 FROM outbox ao WHERE ao.batch_id = b.id AND (ao.state NOT IN ('delivered', 'cancelled')
    OR EXISTS (SELECT 1 FROM partition_firings apf WHERE apf.outbox_id = ao.id) OR EXISTS (SELECT 1 FROM signal_consumptions asc_ WHERE asc_.outbox_id = ao.id)))`;

/** A pending trigger is still to be sent and a dead one may be retried by hand: what it announces stays. */
const liveTrigger = (outboxId: string) => `EXISTS (SELECT 1 FROM outbox lt WHERE lt.id = ${outboxId} AND lt.state IN ('pending', 'dead'))`;

/**
 * A fired partition value that may go (alias `pf`): fired more than batch_days ago by a trigger
 * that is not pending or dead. Its arrivals go with it; data arriving later for the value is then
 * a new value (a year-old day does not come back in practice).
 */
const firingGoes = `(pf.fired_at < :batchCutoff AND NOT ${liveTrigger('pf.outbox_id')})`;

/**
 * Some subscription requires this signal (its name, and at least the required params, as
 * SignalsRepo.unconsumedMatches matches) and has not consumed it: it may still fire on it.
 */
const signalAwaited = (s: string) => `EXISTS (SELECT 1 FROM subscriptions sub, jsonb_array_elements(sub.condition -> 'signals') AS req(r)
  WHERE sub.condition -> 'signals' @> jsonb_build_array(jsonb_build_object('name', ${s}.name))
    AND req.r ->> 'name' = ${s}.name AND ${s}.params @> COALESCE(req.r -> 'params', '{}'::JSONB)
    AND NOT EXISTS (SELECT 1 FROM signal_consumptions wc WHERE wc.signal_id = ${s}.id AND wc.subscription = sub.name))`;

/**
 * A signal that may go, with its consumption rows (they cascade): not consumed by a pending or dead
 * trigger nor consumed in the last outbox_days (its trigger is still listed with it), and either
 * consumed by every subscription that requires it, more than outbox_days ago, or older than
 * batch_days whoever waits for it (the bound: a subscription waiting that long is broken). Never
 * consumption rows alone: the subscription would find the signal unconsumed and fire again.
 */
const signalGoes = (s: string) => `(NOT EXISTS (SELECT 1 FROM signal_consumptions sc WHERE sc.signal_id = ${s}.id
      AND (sc.consumed_at >= :outboxCutoff OR ${liveTrigger('sc.outbox_id')}))
  AND (${s}.created_at < :batchCutoff
    OR (${s}.created_at < :outboxCutoff AND EXISTS (SELECT 1 FROM signal_consumptions sc WHERE sc.signal_id = ${s}.id)
      AND NOT ${signalAwaited(s)})))`;

/**
 * Nothing a trigger announced stays (alias given): every value it fired and every signal it
 * consumed goes (or went earlier in this pass). Deleting a trigger cascades to its
 * partition_firings and signal_consumptions rows, so a trigger (and a batch, whose deletion
 * cascades to its trigger) waits for them. Written against the rules' own conditions, not against
 * what is left, so that a dry run counts what the pass does.
 */
const announcementsGo = (o: string) => `NOT EXISTS (SELECT 1 FROM partition_firings pf WHERE pf.outbox_id = ${o}.id AND NOT ${firingGoes})
  AND NOT EXISTS (SELECT 1 FROM signal_consumptions ac JOIN signals s ON s.id = ac.signal_id WHERE ac.outbox_id = ${o}.id AND NOT ${signalGoes('s')})`;

/** A batch (alias b) the policy deletes, `:cutoff` being batch_days' cutoff. */
const batchGoes = `b.closed_at < :cutoff AND ${unprotectedBatch} AND ${beforeLiveBackfills('b.created_at')}
  AND NOT EXISTS (SELECT 1 FROM outbox bo WHERE bo.batch_id = b.id AND NOT (${announcementsGo('bo')}))`;

/** One kind of row the policy removes or shrinks: how to count it and how to act on a slice of it. */
interface Rule {
  key: keyof RetentionCounts;
  /**
   * Rows that go with the rule's own (by cascade), counted with them: `count` and `apply` then
   * return one row of columns `n` (the rule's rows) and `m` (these).
   */
  also?: keyof RetentionCounts;
  /**
   * Named parameters: :cutoff the rule's own cutoff, :backfillCutoff, :batchCutoff and
   * :outboxCutoff the policy's, :limit the slice size.
   */
  cutoff: (p: RetentionPolicy, now: Date) => Date;
  count: string;
  /** Acts on at most `:limit` rows; returns how many it did (its row count, or `n` and `m` with `also`). */
  apply: string;
  /** Instead of `apply`: acts on at most `limit` rows in the caller's transaction, returns how many. */
  act?: (tx: Queryable, values: Record<string, SqlParam>, limit: number) => Promise<number>;
}

const archiveCandidate = z.object({ id: z.bigint(), consumer: z.string(), created_at: z.date(), db_now: z.date() });

/** Folds a slice of archivable batches (see `archivable`) into their rows: one transaction. */
async function archiveBatches(tx: Queryable, values: Record<string, SqlParam>, limit: number): Promise<number> {
  const q = bind(`SELECT b.id, b.consumer, b.created_at, now() AS db_now FROM batches b WHERE ${archivable} ORDER BY b.id LIMIT :limit FOR UPDATE`, { ...values, limit });
  const picked = (await tx.query(q.text, q.params)).rows.map((r) => parseRow(archiveCandidate, r, 'batches'));
  if (picked.length === 0) return 0;
  const ids = int8Array(picked.map((b) => b.id));
  const tables = await tx.query(`SELECT batch_id, ${ARCHIVE_TABLE_SELECT} FROM batch_tables WHERE batch_id = ANY($1::INT8[]) ORDER BY batch_id, source_table`, [ids]);
  const triggers = await tx.query(`SELECT o.batch_id, ${ARCHIVE_TRIGGER_SELECT.replace(/(^|, )/g, '$1o.')} FROM outbox o
    WHERE o.batch_id = ANY($1::INT8[]) AND NOT ${outboxAgedAt('o', '$2::TIMESTAMPTZ')}`, [ids, values['outboxCutoff']!]);
  const moves = await tx.query(`SELECT batch_id, ${ARCHIVE_MOVE_SELECT} FROM watermark_moves WHERE batch_id = ANY($1::INT8[]) AND moved_at >= $2
    ORDER BY moved_at, to_version`, [ids, values['movesCutoff']!]);
  const group = (rows: Record<string, unknown>[]) => {
    const by = new Map<string, Record<string, unknown>[]>();
    for (const r of rows) {
      const k = String(r['batch_id']);
      let list = by.get(k);
      if (!list) by.set(k, (list = []));
      list.push(r);
    }
    return by;
  };
  const tablesBy = group(tables.rows);
  const triggersBy = group(triggers.rows);
  const movesBy = group(moves.rows);
  const archives = picked.map((b) => encodeArchive({ id: b.id, consumer: b.consumer, createdAt: b.created_at }, {
    // The file list goes now if an earlier pass had not dropped it.
    tables: (tablesBy.get(String(b.id)) ?? []).map((t) => ({ ...t, files_pruned_at: t['files_pruned_at'] ?? b.db_now })),
    trigger: triggersBy.get(String(b.id))?.[0] ?? null,
    moves: movesBy.get(String(b.id)) ?? [],
  }).toString('base64'));
  await tx.query(`UPDATE batches SET archive = decode(v.a, 'base64') FROM unnest($1::INT8[], $2::TEXT[]) AS v(id, a) WHERE batches.id = v.id`,
    [ids, textArray(archives)]);
  await tx.query('DELETE FROM batch_tables WHERE batch_id = ANY($1::INT8[])', [ids]);
  await tx.query('DELETE FROM outbox WHERE id = ANY($1::INT8[])', [int8Array(triggers.rows.map((t) => t['id'] as bigint))]);
  await tx.query('DELETE FROM watermark_moves WHERE id = ANY($1::INT8[])', [int8Array(moves.rows.map((m) => m['id'] as bigint))]);
  return picked.length;
}

const archivedBatch = z.object({ id: z.bigint(), consumer: z.string(), created_at: z.date(), archive: z.string() });

/**
 * Deletes a slice of the archived batches the policy deletes (`batchGoes`). Their watermark moves
 * that the policy keeps (younger than watermark_moves_days, or a watermark's newest) go back to
 * watermark_moves first.
 */
async function deleteArchivedBatches(tx: Queryable, values: Record<string, SqlParam>, limit: number): Promise<number> {
  const q = bind(`SELECT b.id, b.consumer, b.created_at, encode(b.archive, 'base64') AS archive FROM batches b
    WHERE b.archive IS NOT NULL AND ${batchGoes} ORDER BY b.id LIMIT :limit FOR UPDATE`, { ...values, limit });
  const picked = (await tx.query(q.text, q.params)).rows.map((r) => parseRow(archivedBatch, r, 'batches'));
  if (picked.length === 0) return 0;
  const movesCutoff = values['movesCutoff'] as Date;
  for (const b of picked) {
    const { moves } = decodeArchive({ id: b.id, consumer: b.consumer, createdAt: b.created_at }, Buffer.from(b.archive, 'base64'));
    for (const m of moves) {
      if ((m['moved_at'] as Date) < movesCutoff) {
        const newer = await tx.query(
          `SELECT 1 FROM watermarks w WHERE w.consumer = $1 AND w.source_table = $2 AND w.version > $3
           UNION ALL SELECT 1 FROM watermark_moves n WHERE n.consumer = $1 AND n.source_table = $2 AND n.to_version > $3 LIMIT 1`,
          [b.consumer, m['source_table'] as string, m['to_version'] as bigint]);
        if (newer.rows.length > 0) continue; // aged, and not its watermark's newest: the policy lets it go
      }
      await tx.query(
        `INSERT INTO watermark_moves (id, consumer, source_table, batch_id, actor, reason, from_version, to_version,
           from_snapshot_id, from_sequence_number, to_snapshot_id, to_sequence_number, from_position, to_position, moved_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::JSONB, $14::JSONB, $15)`,
        [m['id'], b.consumer, m['source_table'], b.id, m['actor'], m['reason'], m['from_version'], m['to_version'],
          m['from_snapshot_id'], m['from_sequence_number'], m['to_snapshot_id'], m['to_sequence_number'],
          m['from_position'] === null ? null : jsonParam(m['from_position']), m['to_position'] === null ? null : jsonParam(m['to_position']),
          m['moved_at']] as SqlParam[]);
    }
  }
  await tx.query('DELETE FROM batches WHERE id = ANY($1::INT8[])', [int8Array(picked.map((b) => b.id))]);
  return picked.length;
}

// In this order: a dry run counts each rule on the state before the pass, so no rule may remove
// rows a later rule counts (delivered triggers go before the batches whose deletion would
// cascade to them; file lists are dropped before their rows go, and counted for both; arrivals
// before the firings their condition reads; fired values and signals before the triggers and
// batches that wait for them, whose conditions are written so that they hold the same before and
// after those rules ran).
const RULES: Rule[] = [
  {
    key: 'batchesArchived',
    cutoff: (p, now) => cutoff(now, p.batchFilesDays),
    count: `SELECT count(*) AS n FROM batches b WHERE ${archivable}`,
    apply: '',
    act: archiveBatches,
  },
  {
    key: 'batchFileListsPruned',
    cutoff: (p, now) => cutoff(now, p.batchFilesDays),
    count: `SELECT count(*) AS n FROM batch_tables t JOIN batches b ON b.id = t.batch_id
      WHERE t.files_pruned_at IS NULL AND b.closed_at < :cutoff AND ${unprotectedBatch} AND NOT (${archivable})`,
    apply: `UPDATE batch_tables SET files = '${EMPTY_FILES}'::JSONB, next_processed_files = '[]'::JSONB, files_pruned_at = now()
      WHERE (batch_id, source_table) IN (
        SELECT t.batch_id, t.source_table FROM batch_tables t JOIN batches b ON b.id = t.batch_id
         WHERE t.files_pruned_at IS NULL AND b.closed_at < :cutoff AND ${unprotectedBatch} AND NOT (${archivable})
         LIMIT :limit)`,
  },
  {
    key: 'chunkFileListsPruned',
    cutoff: (p, now) => cutoff(now, p.batchFilesDays),
    count: `SELECT count(*) AS n FROM backfill_chunks c JOIN backfills f ON f.name = c.backfill
      WHERE c.files_pruned_at IS NULL AND c.state = 'committed' AND f.state IN ('committed', 'cancelled') AND f.finished_at < :cutoff`,
    apply: `UPDATE backfill_chunks SET files = '${EMPTY_FILES}'::JSONB, files_pruned_at = now()
      WHERE (backfill, idx) IN (
        SELECT c.backfill, c.idx FROM backfill_chunks c JOIN backfills f ON f.name = c.backfill
         WHERE c.files_pruned_at IS NULL AND c.state = 'committed' AND f.state IN ('committed', 'cancelled') AND f.finished_at < :cutoff
         LIMIT :limit)`,
  },
  {
    key: 'backfillsDeleted',
    cutoff: (p, now) => cutoff(now, p.backfillDays),
    count: `SELECT count(*) AS n FROM backfills f WHERE f.state IN ('committed', 'cancelled') AND f.finished_at < :cutoff`,
    apply: `DELETE FROM backfills WHERE name IN (
      SELECT f.name FROM backfills f WHERE f.state IN ('committed', 'cancelled') AND f.finished_at < :cutoff LIMIT :limit)`,
  },
  {
    key: 'partitionArrivalsDeleted',
    cutoff: (p, now) => cutoff(now, p.batchDays),
    count: `SELECT count(*) AS n FROM partition_arrivals a
      WHERE EXISTS (SELECT 1 FROM partition_firings pf WHERE pf.subscription = a.subscription AND pf.value = a.value AND ${firingGoes})`,
    apply: `DELETE FROM partition_arrivals WHERE (subscription, value, source_table) IN (
      SELECT a.subscription, a.value, a.source_table FROM partition_arrivals a
       WHERE EXISTS (SELECT 1 FROM partition_firings pf WHERE pf.subscription = a.subscription AND pf.value = a.value AND ${firingGoes})
       LIMIT :limit)`,
  },
  {
    key: 'partitionFiringsDeleted',
    cutoff: (p, now) => cutoff(now, p.batchDays),
    count: `SELECT count(*) AS n FROM partition_firings pf WHERE ${firingGoes}`,
    apply: `DELETE FROM partition_firings WHERE (subscription, value) IN (
      SELECT pf.subscription, pf.value FROM partition_firings pf WHERE ${firingGoes} LIMIT :limit)`,
  },
  {
    key: 'signalsDeleted',
    also: 'signalConsumptionsDeleted',
    cutoff: (p, now) => cutoff(now, p.outboxDays),
    count: `SELECT (SELECT count(*) FROM signals s WHERE ${signalGoes('s')}) AS n,
      (SELECT count(*) FROM signal_consumptions c JOIN signals s ON s.id = c.signal_id WHERE ${signalGoes('s')}) AS m`,
    // The consumption rows go by the foreign key's cascade, at the end of the statement; the outer
    // SELECT reads the statement's snapshot, in which they are still there to be counted.
    apply: `WITH gone AS (DELETE FROM signals WHERE id IN (SELECT s.id FROM signals s WHERE ${signalGoes('s')} LIMIT :limit) RETURNING id)
      SELECT (SELECT count(*) FROM gone) AS n, (SELECT count(*) FROM signal_consumptions c WHERE c.signal_id IN (SELECT id FROM gone)) AS m`,
  },
  {
    key: 'outboxDeleted',
    cutoff: (p, now) => cutoff(now, p.outboxDays),
    count: `SELECT count(*) AS n FROM outbox o WHERE ${outboxAged}
      AND ${announcementsGo('o')}`,
    apply: `DELETE FROM outbox WHERE id IN (
      SELECT o.id FROM outbox o WHERE ${outboxAged}
        AND ${announcementsGo('o')} LIMIT :limit)`,
  },
  {
    // The archived ones first: their watermark moves that the policy keeps longer go back to
    // watermark_moves. Counted by the next rule, which deletes the others.
    key: 'batchesDeleted',
    cutoff: (p, now) => cutoff(now, p.batchDays),
    count: 'SELECT 0 AS n',
    apply: '',
    act: deleteArchivedBatches,
  },
  {
    key: 'batchesDeleted',
    cutoff: (p, now) => cutoff(now, p.batchDays),
    count: `SELECT count(*) AS n FROM batches b WHERE ${batchGoes}`,
    apply: `DELETE FROM batches WHERE id IN (SELECT b.id FROM batches b WHERE ${batchGoes} LIMIT :limit)`,
  },
  {
    key: 'watermarkMovesDeleted',
    cutoff: (p, now) => cutoff(now, p.watermarkMovesDays),
    count: `SELECT count(*) AS n FROM watermark_moves m WHERE m.moved_at < :cutoff AND ${newerMoveExists} AND ${beforeLiveBackfills('m.moved_at')}`,
    apply: `DELETE FROM watermark_moves WHERE id IN (
      SELECT m.id FROM watermark_moves m WHERE m.moved_at < :cutoff AND ${newerMoveExists} AND ${beforeLiveBackfills('m.moved_at')} LIMIT :limit)`,
  },
];

const countValue = z.union([z.bigint(), z.number(), z.string()]);
const countRow = z.object({ n: countValue });
const countsRow = z.object({ n: countValue, m: countValue });

export interface RetentionRunOptions {
  now?: Date;
  /** Rows acted on per transaction (small transactions keep locks short beside live traffic). */
  sliceSize?: number;
  /** Count only. */
  dryRun?: boolean;
  /** Called after every slice with the counts so far (progress on a long first pass). */
  onProgress?: (counts: RetentionCounts) => void;
  /** Stops between slices when it returns false (the replica lost its lease or is shutting down). */
  keepGoing?: () => boolean | Promise<boolean>;
}

/** Named parameters to positional ones (each used name once, in order of first use). */
function bind(sql: string, values: Record<string, SqlParam>): { text: string; params: SqlParam[] } {
  const order: string[] = [];
  const text = sql.replace(/:(cutoff|backfillCutoff|batchCutoff|outboxCutoff|movesCutoff|limit)\b/g, (_m, name: string) => {
    let i = order.indexOf(name);
    if (i < 0) i = order.push(name) - 1;
    const cast = name === 'limit' ? 'INT8' : 'TIMESTAMPTZ';
    return `$${i + 1}::${cast}`;
  });
  return { text, params: order.map((n) => values[n]!) };
}

export class RetentionRepo {
  constructor(private readonly q: Queryable) {}

  /** Applies the policy in slices of `sliceSize` rows, one transaction each; returns what it did. */
  async run(policy: RetentionPolicy, options: RetentionRunOptions = {}): Promise<RetentionCounts> {
    const now = options.now ?? new Date();
    const slice = options.sliceSize ?? 500;
    const shared = {
      backfillCutoff: cutoff(now, policy.backfillDays), batchCutoff: cutoff(now, policy.batchDays), outboxCutoff: cutoff(now, policy.outboxDays),
      movesCutoff: cutoff(now, policy.watermarkMovesDays),
    };
    const counts: RetentionCounts = { ...NO_COUNTS };
    for (const rule of RULES) {
      const values = { ...shared, cutoff: rule.cutoff(policy, now), limit: slice };
      if (options.dryRun) {
        const q = bind(rule.count, values);
        const res = await this.q.query(q.text, q.params);
        if (rule.also) {
          const row = parseRow(countsRow, res.rows[0], 'count');
          counts[rule.key] += Number(row.n);
          counts[rule.also] += Number(row.m);
        } else {
          counts[rule.key] += Number(parseRow(countRow, res.rows[0], 'count').n);
        }
        continue;
      }
      for (;;) {
        if (options.keepGoing && !(await options.keepGoing())) return counts;
        if (rule.act) {
          const act = rule.act;
          const n = await this.q.withTransaction((tx) => act(tx, values, slice));
          counts[rule.key] += n;
          if (n > 0) options.onProgress?.({ ...counts });
          if (n < slice) break;
          continue;
        }
        const q = bind(rule.apply, values);
        const res = await this.q.withTransaction((tx) => tx.query(q.text, q.params));
        let n = res.rowCount ?? 0;
        if (rule.also) {
          const row = parseRow(countsRow, res.rows[0], 'count');
          n = Number(row.n);
          counts[rule.also] += Number(row.m);
        }
        counts[rule.key] += n;
        if (n > 0) options.onProgress?.({ ...counts });
        if (n < slice) break;
      }
    }
    return counts;
  }

  /**
   * Claims the named maintenance job for `owner` when it is due (its last run started more than
   * `everySeconds` ago) and no other replica holds it: at most one replica runs it at a time.
   */
  async claim(name: string, owner: string, everySeconds: number, claimSeconds: number): Promise<boolean> {
    await this.q.query('INSERT INTO maintenance_leases (name) VALUES ($1) ON CONFLICT (name) DO NOTHING', [name]);
    const res = await this.q.query(
      `UPDATE maintenance_leases SET claimed_by = $2, claim_expires_at = now() + $3::INT8 * INTERVAL '1 second', last_started_at = now()
        WHERE name = $1
          AND (claimed_by IS NULL OR claim_expires_at < now())
          AND (last_started_at IS NULL OR last_started_at < now() - $4::INT8 * INTERVAL '1 second')`,
      [name, owner, claimSeconds, everySeconds]);
    return (res.rowCount ?? 0) === 1;
  }

  /** Extends a held claim; false when the claim was lost (expired and taken by another replica). */
  async extend(name: string, owner: string, claimSeconds: number): Promise<boolean> {
    const res = await this.q.query(
      `UPDATE maintenance_leases SET claim_expires_at = now() + $3::INT8 * INTERVAL '1 second' WHERE name = $1 AND claimed_by = $2`,
      [name, owner, claimSeconds]);
    return (res.rowCount ?? 0) === 1;
  }

  /** Releases the claim and records the run's result. */
  async finish(name: string, owner: string, result: unknown): Promise<void> {
    await this.q.query(
      `UPDATE maintenance_leases SET claimed_by = NULL, claim_expires_at = NULL, last_finished_at = now(), last_result = $3::JSONB
        WHERE name = $1 AND claimed_by = $2`,
      [name, owner, JSON.stringify(result)]);
  }

  async status(name: string): Promise<{ claimedBy: string | null; lastStartedAt: Date | null; lastFinishedAt: Date | null; lastResult: unknown } | undefined> {
    const res = await this.q.query(
      'SELECT claimed_by, last_started_at, last_finished_at, last_result FROM maintenance_leases WHERE name = $1', [name]);
    const r = res.rows[0];
    if (r === undefined) return undefined;
    const row = parseRow(z.object({
      claimed_by: z.string().nullable(), last_started_at: z.date().nullable(), last_finished_at: z.date().nullable(), last_result: z.unknown(),
    }), r, 'maintenance_leases');
    return { claimedBy: row.claimed_by, lastStartedAt: row.last_started_at, lastFinishedAt: row.last_finished_at, lastResult: row.last_result ?? null };
  }
}
