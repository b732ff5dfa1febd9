import { z } from 'zod';
import { IpsError } from '../errors.js';
import { checkName, int64FromJson, int64ToJson, parseInput, parseRow } from './common.js';
import { jsonParam, sqlState, SQLSTATE, type Queryable } from './database.js';
import { limitsJson, limitsToJson, type BatchLimits } from './batches.js';
import { textArray } from './table-watch.js';
import { wakeSql } from './wake.js';
import type { SignalRequirement } from './signals.js';

/**
 * When a subscription fires: its tables changed, at most once per interval, once enough has
 * changed (files, bytes or records), or anyway once the oldest unfired change is maxDelay old.
 */
export interface FireCondition {
  intervalSeconds?: number;
  minFiles?: number;
  minBytes?: bigint;
  minRecords?: bigint;
  maxDelaySeconds?: number;
  /** An all-of group: fire only when every one of these tables (of the subscription's) has changes. */
  all?: string[];
  /** Partition-complete: fire per value of this time-transform partition field (see src/service/conditions). */
  partition?: PartitionCondition;
  /** Signals that must be there (one matching signal each, consumed by the firing). */
  signals?: SignalRequirement[];
  /** With signals: fire on the signals alone when the tables have no changes (a trigger without a batch). */
  fireOnSignals?: boolean;
}

export interface PartitionCondition {
  /** A partition field name with a year/month/day/hour transform, e.g. `ts_day`. */
  field: string;
  /** Fire a value anyway once no snapshot wrote it for this long. */
  quietSeconds?: number;
}

export interface Subscription {
  name: string;
  consumer: string;
  tables: string[];
  condition: FireCondition;
  limits: BatchLimits;
  /** The sink's configuration as stored (secrets included): show it only through src/sinks describeSinkConfig. */
  sink: Record<string, unknown>;
  maxInFlight: number;
  maxAttempts: number;
  enabled: boolean;
  nextCheckAt: Date;
  pendingSince: Date | null;
  lastFiredAt: Date | null;
  fireSeq: bigint;
  lastError: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface SubscriptionInput {
  name: string;
  consumer: string;
  tables: string[];
  condition?: FireCondition;
  limits?: BatchLimits;
  sink: Record<string, unknown>;
  maxInFlight?: number;
  maxAttempts?: number;
  enabled?: boolean;
}

const conditionJson = z.object({
  interval_seconds: z.number().int().nonnegative().optional(),
  min_files: z.number().int().positive().optional(),
  min_bytes: int64FromJson.optional(),
  min_records: int64FromJson.optional(),
  max_delay_seconds: z.number().int().positive().optional(),
  all: z.array(z.string()).optional(),
  partition: z.object({ field: z.string(), quiet_seconds: z.number().int().positive().optional() }).optional(),
  signals: z.array(z.object({ name: z.string(), params: z.record(z.string(), z.string()).default({}) })).optional(),
  fire_on_signals: z.boolean().optional(),
}).transform((j): FireCondition => ({
  ...(j.interval_seconds !== undefined ? { intervalSeconds: j.interval_seconds } : {}),
  ...(j.min_files !== undefined ? { minFiles: j.min_files } : {}),
  ...(j.min_bytes !== undefined ? { minBytes: j.min_bytes } : {}),
  ...(j.min_records !== undefined ? { minRecords: j.min_records } : {}),
  ...(j.max_delay_seconds !== undefined ? { maxDelaySeconds: j.max_delay_seconds } : {}),
  ...(j.all !== undefined ? { all: j.all } : {}),
  ...(j.partition !== undefined ? { partition: { field: j.partition.field, ...(j.partition.quiet_seconds !== undefined ? { quietSeconds: j.partition.quiet_seconds } : {}) } } : {}),
  ...(j.signals !== undefined ? { signals: j.signals } : {}),
  ...(j.fire_on_signals !== undefined ? { fireOnSignals: j.fire_on_signals } : {}),
}));

export function conditionToJson(c: FireCondition): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (c.intervalSeconds !== undefined) out.interval_seconds = c.intervalSeconds;
  if (c.minFiles !== undefined) out.min_files = c.minFiles;
  if (c.minBytes !== undefined) out.min_bytes = int64ToJson(c.minBytes);
  if (c.minRecords !== undefined) out.min_records = int64ToJson(c.minRecords);
  if (c.maxDelaySeconds !== undefined) out.max_delay_seconds = c.maxDelaySeconds;
  if (c.all !== undefined) out.all = c.all;
  if (c.partition !== undefined) out.partition = { field: c.partition.field, ...(c.partition.quietSeconds !== undefined ? { quiet_seconds: c.partition.quietSeconds } : {}) };
  if (c.signals !== undefined) out.signals = c.signals.map((r) => ({ name: r.name, params: r.params }));
  if (c.fireOnSignals !== undefined) out.fire_on_signals = c.fireOnSignals;
  return out;
}

const inputSchema = z.object({
  name: z.string(),
  consumer: z.string().min(1),
  tables: z.array(z.string().min(1)).min(1).max(100).refine((t) => new Set(t).size === t.length, 'a table is listed twice'),
  condition: z.custom<FireCondition>().default({}),
  limits: z.custom<BatchLimits>().default({}),
  sink: z.record(z.string(), z.unknown()),
  maxInFlight: z.number().int().positive().max(1000).default(1),
  maxAttempts: z.number().int().positive().max(1000).default(8),
  enabled: z.boolean().default(true),
});

const rowSchema = z.object({
  name: z.string(),
  consumer: z.string(),
  tables: z.array(z.string()),
  condition: conditionJson,
  limits: limitsJson,
  sink: z.record(z.string(), z.unknown()),
  max_in_flight: z.number().int(),
  max_attempts: z.number().int(),
  enabled: z.boolean(),
  next_check_at: z.date(),
  pending_since: z.date().nullable(),
  last_fired_at: z.date().nullable(),
  fire_seq: z.bigint(),
  last_error: z.string().nullable(),
  created_at: z.date(),
  updated_at: z.date(),
}).transform((r): Subscription => ({
  name: r.name, consumer: r.consumer, tables: r.tables, condition: r.condition, limits: r.limits, sink: r.sink,
  maxInFlight: r.max_in_flight, maxAttempts: r.max_attempts, enabled: r.enabled, nextCheckAt: r.next_check_at,
  pendingSince: r.pending_since, lastFiredAt: r.last_fired_at, fireSeq: r.fire_seq, lastError: r.last_error,
  createdAt: r.created_at, updatedAt: r.updated_at,
}));

const COLUMNS = `name, consumer, tables, condition, limits, sink, max_in_flight, max_attempts, enabled, next_check_at, pending_since,
  last_fired_at, fire_seq, last_error, created_at, updated_at`;

export class SubscriptionsRepo {
  constructor(private readonly q: Queryable) {}

  /** ALREADY_EXISTS for a taken name; NOT_FOUND when the consumer does not exist. */
  async create(input: SubscriptionInput): Promise<Subscription> {
    const v = parseInput(inputSchema, input, 'subscription');
    checkName('subscription', v.name);
    try {
      const res = await this.q.query(
        `INSERT INTO subscriptions (name, consumer, tables, condition, limits, sink, max_in_flight, max_attempts, enabled)
         VALUES ($1, $2, $3::JSONB, $4::JSONB, $5::JSONB, $6::JSONB, $7, $8, $9) RETURNING ${COLUMNS}`,
        [v.name, v.consumer, jsonParam(v.tables), jsonParam(conditionToJson(v.condition)), jsonParam(limitsToJson(v.limits)),
          jsonParam(v.sink), v.maxInFlight, v.maxAttempts, v.enabled]);
      return parseRow(rowSchema, res.rows[0], 'subscriptions');
    } catch (e) {
      const s = sqlState(e);
      if (s === SQLSTATE.UNIQUE_VIOLATION) throw new IpsError('ALREADY_EXISTS', `subscription "${v.name}" already exists`, { cause: e });
      if (s === SQLSTATE.FOREIGN_KEY_VIOLATION) throw new IpsError('NOT_FOUND', `consumer "${v.consumer}" does not exist`, { cause: e });
      throw e;
    }
  }

  async get(name: string): Promise<Subscription | undefined> {
    const res = await this.q.query(`SELECT ${COLUMNS} FROM subscriptions WHERE name = $1`, [name]);
    return res.rows[0] === undefined ? undefined : parseRow(rowSchema, res.rows[0], 'subscriptions');
  }

  async require(name: string): Promise<Subscription> {
    const s = await this.get(name);
    if (!s) throw new IpsError('NOT_FOUND', `subscription "${name}" does not exist`);
    return s;
  }

  async list(filter: { consumer?: string } = {}): Promise<Subscription[]> {
    const res = filter.consumer === undefined
      ? await this.q.query(`SELECT ${COLUMNS} FROM subscriptions ORDER BY name`)
      : await this.q.query(`SELECT ${COLUMNS} FROM subscriptions WHERE consumer = $1 ORDER BY name`, [filter.consumer]);
    return res.rows.map((r) => parseRow(rowSchema, r, 'subscriptions'));
  }

  async setEnabled(name: string, enabled: boolean): Promise<Subscription> {
    const res = await this.q.query(
      `UPDATE subscriptions SET enabled = $2, next_check_at = now(), updated_at = now() WHERE name = $1 RETURNING ${COLUMNS}`, [name, enabled]);
    if (res.rows[0] === undefined) throw new IpsError('NOT_FOUND', `subscription "${name}" does not exist`);
    return parseRow(rowSchema, res.rows[0], 'subscriptions');
  }

  async delete(name: string): Promise<boolean> {
    const res = await this.q.query('DELETE FROM subscriptions WHERE name = $1', [name]);
    return res.rowCount > 0;
  }

  /** Enabled subscriptions due for a check, each to one replica until the claim expires. */
  claimDue(owner: string, limit: number, claimSeconds: number): Promise<Subscription[]> {
    return this.q.withTransaction(async (tx) => {
      const picked = await tx.query<{ name: string }>(
        `SELECT name FROM subscriptions
          WHERE enabled AND next_check_at <= now() AND (claimed_by IS NULL OR claim_expires_at < now())
          ORDER BY next_check_at LIMIT $1 FOR UPDATE SKIP LOCKED`, [limit]);
      if (picked.rows.length === 0) return [];
      const res = await tx.query(
        `UPDATE subscriptions SET claimed_by = $2, claim_expires_at = now() + $3::INT8 * INTERVAL '1 second'
          WHERE name = ANY($1::TEXT[]) RETURNING ${COLUMNS}`, [textArray(picked.rows.map((r) => r.name)), owner, claimSeconds]);
      return res.rows.map((r) => parseRow(rowSchema, r, 'subscriptions'));
    });
  }

  /**
   * Ends a check: releases the claim and says when to look next. `pending`: changes are held
   * back by the condition (pending_since is kept, or set now); otherwise it is cleared. A wake
   * that came during the check (next_check_at moved past the claimed value) is kept.
   */
  async release(name: string, owner: string, r: { nextInMs: number; claimedNextCheckAt: Date; pending: boolean; error?: string | null }): Promise<void> {
    await this.q.query(
      `UPDATE subscriptions SET
          next_check_at = CASE WHEN date_trunc('milliseconds', next_check_at) > $4 THEN next_check_at ELSE now() + $3::INT8 * INTERVAL '1 millisecond' END,
          pending_since = CASE WHEN $5 THEN COALESCE(pending_since, now()) ELSE NULL END,
          last_error = $6, claimed_by = NULL, claim_expires_at = NULL, updated_at = now()
        WHERE name = $1 AND claimed_by = $2`,
      [name, owner, Math.round(r.nextInMs), r.claimedNextCheckAt, r.pending, r.error ?? null]);
  }

  /**
   * Makes the enabled subscriptions over these tables (or of this consumer) due now, in one
   * statement (a table's change must not read every subscription of a fleet). Returns how many
   * match, due already or not.
   */
  async wake(by: { tables?: string[]; consumer?: string }): Promise<number> {
    const res = await this.q.query<{ matched: number }>(
      `WITH matched AS (SELECT name FROM subscriptions WHERE enabled AND (consumer = $1 OR tables ?| $2::TEXT[])),
            woken AS (${wakeSql('name IN (SELECT name FROM matched)')} RETURNING 1)
       -- woken is read so the UPDATE is plainly part of the answer on every engine the state
       -- runs on (PostgreSQL runs an unread data-modifying CTE anyway); the caller wants matched.
       SELECT (SELECT count(*) FROM matched)::INT4 AS matched, (SELECT count(*) FROM woken)::INT4 AS woken`,
      [by.consumer ?? null, textArray(by.tables ?? [])]);
    return res.rows[0]?.matched ?? 0;
  }
}
