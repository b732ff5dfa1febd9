import { z } from 'zod';
import { IpsError } from '../errors.js';
import { parseRow } from './common.js';
import type { Queryable, SqlParam } from './database.js';
import { textArray } from './table-watch.js';
import type { TriggerDetail } from './batches.js';
import { readArchives } from './batch-archive.js';

export type OutboxState = 'pending' | 'delivered' | 'dead' | 'cancelled';

/** A trigger owed to a subscription's sink (one per fired batch). */
export interface OutboxEntry {
  id: bigint;
  subscription: string;
  /** Null for a trigger fired without changes (fire_on_signals, or a quiet partition value): no batch. */
  batchId: bigint | null;
  seq: bigint;
  dedupKey: string;
  state: OutboxState;
  attempts: number;
  nextAttemptAt: Date;
  lastError: string | null;
  outcome: string | null;
  runId: string | null;
  deliveredAt: Date | null;
  createdAt: Date;
  /** What the trigger announces besides its batch (partition values, consumed signal ids). */
  detail: TriggerDetail;
}

const rowSchema = z.object({
  id: z.bigint(),
  subscription: z.string(),
  batch_id: z.bigint().nullable(),
  seq: z.bigint(),
  dedup_key: z.string(),
  state: z.enum(['pending', 'delivered', 'dead', 'cancelled']),
  attempts: z.number().int(),
  next_attempt_at: z.date(),
  last_error: z.string().nullable(),
  outcome: z.string().nullable(),
  run_id: z.string().nullable(),
  delivered_at: z.date().nullable(),
  created_at: z.date(),
  detail: z.object({
    partition: z.object({ field: z.string(), values: z.array(z.object({ value: z.string(), reason: z.enum(['complete', 'quiet']) })) }).optional(),
    signals: z.array(z.string().regex(/^\d{1,19}$/)).optional(),
  }).default({}),
}).transform((r): OutboxEntry => ({
  id: r.id, subscription: r.subscription, batchId: r.batch_id, seq: r.seq, dedupKey: r.dedup_key, state: r.state,
  attempts: r.attempts, nextAttemptAt: r.next_attempt_at, lastError: r.last_error, outcome: r.outcome, runId: r.run_id,
  deliveredAt: r.delivered_at, createdAt: r.created_at,
  detail: {
    ...(r.detail.partition ? { partition: r.detail.partition } : {}),
    ...(r.detail.signals ? { signals: r.detail.signals.map((x) => BigInt(x)) } : {}),
  },
}));

const COLUMNS = 'id, subscription, batch_id, seq, dedup_key, state, attempts, next_attempt_at, last_error, outcome, run_id, delivered_at, created_at, detail';

export class OutboxRepo {
  constructor(private readonly q: Queryable) {}

  async get(id: bigint): Promise<OutboxEntry | undefined> {
    const res = await this.q.query(`SELECT ${COLUMNS} FROM outbox WHERE id = $1`, [id]);
    return res.rows[0] === undefined ? undefined : parseRow(rowSchema, res.rows[0], 'outbox');
  }

  /** Triggers per subscription and state, counted (the console's problem list). */
  async countByState(subscriptions: readonly string[]): Promise<{ subscription: string; state: OutboxState; n: number }[]> {
    if (subscriptions.length === 0) return [];
    const res = await this.q.query<{ subscription: string; state: OutboxState; n: string | number }>(
      'SELECT subscription, state, count(*) AS n FROM outbox WHERE subscription = ANY($1::TEXT[]) GROUP BY subscription, state', [textArray(subscriptions)]);
    return res.rows.map((r) => ({ subscription: r.subscription, state: r.state, n: Number(r.n) }));
  }

  async list(filter: { subscription?: string; state?: OutboxState; limit?: number; newestFirst?: boolean } = {}): Promise<OutboxEntry[]> {
    const where: string[] = [];
    const params: SqlParam[] = [];
    if (filter.subscription !== undefined) where.push(`subscription = $${params.push(filter.subscription)}`);
    if (filter.state !== undefined) where.push(`state = $${params.push(filter.state)}`);
    const limit = filter.limit !== undefined ? ` LIMIT $${params.push(filter.limit)}` : '';
    const res = await this.q.query(
      `SELECT ${COLUMNS} FROM outbox${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY subscription, ${filter.newestFirst ? 'seq DESC, id DESC' : 'seq'}${limit}`, params);
    const live = res.rows.map((r) => parseRow(rowSchema, r, 'outbox'));
    if (filter.state === 'pending' || filter.state === 'dead') return live; // never archived
    // Delivered and cancelled triggers of archived batches (src/state/batch-archive.ts), merged in order.
    const archives = filter.subscription !== undefined
      ? await readArchives(this.q, 'consumer = (SELECT s.consumer FROM subscriptions s WHERE s.name = $1)', [filter.subscription])
      : await readArchives(this.q, 'true', []);
    const archived = archives.flatMap((a) => (a.rows.trigger ? [parseRow(rowSchema, a.rows.trigger, 'archived trigger')] : []))
      .filter((e) => (filter.subscription === undefined || e.subscription === filter.subscription) && (filter.state === undefined || e.state === filter.state));
    if (archived.length === 0) return live;
    const dir = filter.newestFirst ? -1 : 1;
    const all = [...live, ...archived].sort((a, b) => (a.subscription < b.subscription ? -1 : a.subscription > b.subscription ? 1
      : a.seq !== b.seq ? (a.seq < b.seq ? -dir : dir) : a.id === b.id ? 0 : (a.id < b.id ? -dir : dir)));
    return filter.limit !== undefined ? all.slice(0, filter.limit) : all;
  }

  /**
   * The batches of a subscription's triggers that were never delivered and are not being
   * delivered right now (no live claim), with those rows locked until the transaction ends: a
   * delivery that claims one afterwards finds it gone. Undelivered means no run has the batch.
   */
  async lockUndelivered(subscription: string): Promise<bigint[]> {
    const res = await this.q.query<{ batch_id: bigint | null }>(
      `SELECT batch_id FROM outbox
        WHERE subscription = $1 AND state IN ('pending', 'dead') AND (claimed_by IS NULL OR claim_expires_at < now())
        ORDER BY seq FOR UPDATE`, [subscription]);
    return res.rows.filter((r) => r.batch_id !== null).map((r) => BigInt(r.batch_id!));
  }

  /**
   * Triggers due for delivery, to one replica each (SKIP LOCKED) until the claim expires. Only
   * the oldest undelivered trigger of a subscription is due: a sink gets its backlog in order,
   * and a dead trigger holds the ones after it until it is retried.
   */
  claimDue(owner: string, limit: number, claimSeconds: number): Promise<OutboxEntry[]> {
    return this.q.withTransaction(async (tx) => {
      const picked = await tx.query<{ id: bigint }>(
        `SELECT o.id FROM outbox o
          WHERE o.state = 'pending' AND o.next_attempt_at <= now() AND (o.claimed_by IS NULL OR o.claim_expires_at < now())
            AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.subscription = o.subscription AND p.seq < o.seq AND p.state IN ('pending', 'dead'))
          ORDER BY o.next_attempt_at, o.id LIMIT $1 FOR UPDATE SKIP LOCKED`, [limit]);
      if (picked.rows.length === 0) return [];
      const ids = `{${picked.rows.map((r) => r.id.toString()).join(',')}}`;
      const res = await tx.query(
        `UPDATE outbox SET claimed_by = $2, claim_expires_at = now() + $3::INT8 * INTERVAL '1 second'
          WHERE id = ANY($1::INT8[]) RETURNING ${COLUMNS}`, [ids, owner, claimSeconds]);
      return res.rows.map((r) => parseRow(rowSchema, r, 'outbox')).sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
    });
  }

  /** Delivered (or the orchestrator already had it). False when the claim was lost meanwhile. */
  async markDelivered(id: bigint, owner: string, r: { outcome: string; runId?: string | null }): Promise<boolean> {
    const res = await this.q.query(
      `UPDATE outbox SET state = 'delivered', attempts = attempts + 1, outcome = $3, run_id = $4, delivered_at = now(), last_error = NULL,
          claimed_by = NULL, claim_expires_at = NULL
        WHERE id = $1 AND claimed_by = $2 AND state = 'pending'`, [id, owner, r.outcome, r.runId ?? null]);
    return res.rowCount > 0;
  }

  /**
   * A failed attempt: due again after `retryInMs`, or dead (kept with its last error, for a
   * person to retry) when it was not retryable or this was attempt `maxAttempts`.
   */
  async markFailed(id: bigint, owner: string, r: { error: string; retryable: boolean; maxAttempts: number; retryInMs: number }): Promise<OutboxState | null> {
    const res = await this.q.query<{ state: OutboxState }>(
      `UPDATE outbox SET attempts = attempts + 1, last_error = $3,
          state = CASE WHEN NOT $4 OR attempts + 1 >= $5 THEN 'dead' ELSE 'pending' END,
          next_attempt_at = now() + $6::INT8 * INTERVAL '1 millisecond', claimed_by = NULL, claim_expires_at = NULL
        WHERE id = $1 AND claimed_by = $2 AND state = 'pending' RETURNING state`,
      [id, owner, r.error.slice(0, 2000), r.retryable, r.maxAttempts, Math.round(r.retryInMs)]);
    return res.rows[0]?.state ?? null;
  }

  /** A person retries a dead trigger: pending again, attempts from zero. */
  async retry(id: bigint): Promise<OutboxEntry> {
    const res = await this.q.query(
      `UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = now(), claimed_by = NULL, claim_expires_at = NULL
        WHERE id = $1 AND state = 'dead' RETURNING ${COLUMNS}`, [id]);
    if (res.rows[0] !== undefined) return parseRow(rowSchema, res.rows[0], 'outbox');
    const e = await this.get(id);
    if (!e) throw new IpsError('NOT_FOUND', `no trigger ${id}`);
    throw new IpsError('TRIGGER_NOT_DEAD', `trigger ${id} is ${e.state}: only a dead trigger can be retried`);
  }

  /** Undelivered triggers per subscription (for the API and for in-flight limits). */
  async countOpen(subscription: string): Promise<number> {
    const res = await this.q.query<{ n: number }>(
      `SELECT count(*)::INT4 AS n FROM outbox WHERE subscription = $1 AND state IN ('pending', 'dead')`, [subscription]);
    return res.rows[0]?.n ?? 0;
  }
}
