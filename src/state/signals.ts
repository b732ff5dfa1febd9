import { z } from 'zod';
import { IpsError } from '../errors.js';
import { int8Array, newId, parseRow } from './common.js';
import { jsonParam, type Queryable, type SqlParam } from './database.js';
import { wakeSql } from './wake.js';

/**
 * Signals (issue 18): named announcements with string parameters, sent by an admin or by a
 * committed batch (output signals). A subscription that requires a signal consumes one matching
 * signal per firing, at most once per subscription (signal_consumptions' key).
 */

/** A signal name: it appears in URLs, CLI arguments and logs, so it is a plain identifier. */
export const SIGNAL_NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_.-]{0,127}$/;
/** A parameter key; values are strings of at most 1024 characters, at most 32 of them. */
export const SIGNAL_PARAM_KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
export const SIGNAL_PARAM_MAX = 32;
export const SIGNAL_VALUE_MAX = 1024;

export type SignalParams = Record<string, string>;

export function checkSignalName(name: string): string {
  if (typeof name !== 'string' || !SIGNAL_NAME_PATTERN.test(name)) {
    const shown = typeof name === 'string' ? JSON.stringify(name.slice(0, 80)) : String(name);
    throw new IpsError('INVALID_SIGNAL_NAME',
      `signal name ${shown} is not a safe identifier: use a letter followed by up to 127 letters, digits, "_", "." or "-" (e.g. upstream_done)`,
      { details: { pattern: SIGNAL_NAME_PATTERN.source } });
  }
  return name;
}

export function checkSignalParams(params: unknown): SignalParams {
  if (params === undefined || params === null) return {};
  if (typeof params !== 'object' || Array.isArray(params)) throw new IpsError('INVALID_SIGNAL_PARAMS', 'signal params must be an object of string values, e.g. {"date": "2026-11-02"}');
  const entries = Object.entries(params as Record<string, unknown>);
  if (entries.length > SIGNAL_PARAM_MAX) throw new IpsError('INVALID_SIGNAL_PARAMS', `a signal has at most ${SIGNAL_PARAM_MAX} params, got ${entries.length}`);
  const out: SignalParams = {};
  for (const [k, v] of entries) {
    if (!SIGNAL_PARAM_KEY_PATTERN.test(k)) {
      throw new IpsError('INVALID_SIGNAL_PARAMS', `signal param key ${JSON.stringify(k.slice(0, 80))} is not an identifier: use a letter or "_" followed by up to 63 letters, digits or "_"`);
    }
    if (typeof v !== 'string' || v.length > SIGNAL_VALUE_MAX) {
      throw new IpsError('INVALID_SIGNAL_PARAMS', `signal param "${k}" must be a string of at most ${SIGNAL_VALUE_MAX} characters (send numbers and dates as text, e.g. "2026-11-02")`);
    }
    out[k] = v;
  }
  return out;
}

/** A signal a subscription requires: this name, with at least these params (equal values). */
export interface SignalRequirement {
  name: string;
  params: SignalParams;
}

export function signalMatches(req: SignalRequirement, s: { name: string; params: SignalParams }): boolean {
  if (req.name !== s.name) return false;
  return Object.entries(req.params).every(([k, v]) => s.params[k] === v);
}

export interface Signal {
  id: bigint;
  name: string;
  params: SignalParams;
  /** Who sent it: the caller's actor (admin:configured, token:<prefix>). */
  sender: string;
  /** An output signal: the consumer whose committed batch announced it, and that batch. */
  consumer: string | null;
  batchId: bigint | null;
  createdAt: Date;
}

export interface NewSignal {
  name: string;
  params?: SignalParams;
  sender: string;
  consumer?: string | null;
  batchId?: bigint | null;
}

const rowSchema = z.object({
  id: z.bigint(),
  name: z.string(),
  params: z.record(z.string(), z.string()),
  sender: z.string(),
  consumer: z.string().nullable(),
  batch_id: z.bigint().nullable(),
  created_at: z.date(),
}).transform((r): Signal => ({
  id: r.id, name: r.name, params: r.params, sender: r.sender, consumer: r.consumer, batchId: r.batch_id, createdAt: r.created_at,
}));

const COLUMNS = 'id, name, params, sender, consumer, batch_id, created_at';

export class SignalsRepo {
  constructor(private readonly q: Queryable) {}

  /**
   * Records a signal and makes the subscriptions that require its name due now. Called inside a
   * transaction (a commit's output signals), both happen with it or not at all.
   */
  async record(input: NewSignal): Promise<Signal> {
    checkSignalName(input.name);
    const params = checkSignalParams(input.params);
    const res = await this.q.query(
      `INSERT INTO signals (id, name, params, sender, consumer, batch_id) VALUES ($1, $2, $3::JSONB, $4, $5, $6) RETURNING ${COLUMNS}`,
      [newId(), input.name, jsonParam(params), input.sender.slice(0, 200), input.consumer ?? null, input.batchId ?? null]);
    await this.q.query(wakeSql(`condition -> 'signals' @> $1::JSONB`), [jsonParam([{ name: input.name }])]);
    return parseRow(rowSchema, res.rows[0], 'signals');
  }

  /**
   * Signals, newest first. `visibleTo` scopes the list to what one consumer may see: its own
   * output signals, and signals whose name one of its subscriptions requires (the condition's
   * `signals`, matched as the wake-up does). Filtered here, in the query, so `limit` counts only
   * visible signals and no other consumer's rows leave the database.
   */
  async list(filter: { name?: string; limit?: number; visibleTo?: string } = {}): Promise<Signal[]> {
    const where: string[] = [];
    const params: SqlParam[] = [];
    if (filter.name !== undefined) where.push(`s.name = $${params.push(filter.name)}`);
    if (filter.visibleTo !== undefined) {
      const c = `$${params.push(filter.visibleTo)}`;
      where.push(`(s.consumer = ${c} OR EXISTS (SELECT 1 FROM subscriptions sub WHERE sub.consumer = ${c}
        AND sub.condition -> 'signals' @> jsonb_build_array(jsonb_build_object('name', s.name))))`);
    }
    const limit = `$${params.push(filter.limit ?? 100)}`;
    const res = await this.q.query(
      `SELECT ${COLUMNS} FROM signals s${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY s.created_at DESC, s.id DESC LIMIT ${limit}`, params);
    return res.rows.map((r) => parseRow(rowSchema, r, 'signals'));
  }

  async load(ids: readonly bigint[]): Promise<Signal[]> {
    if (ids.length === 0) return [];
    const res = await this.q.query(`SELECT ${COLUMNS} FROM signals WHERE id = ANY($1::INT8[])`, [int8Array(ids)]);
    const byId = new Map(res.rows.map((r) => parseRow(rowSchema, r, 'signals')).map((s) => [s.id, s] as const));
    return ids.map((id) => byId.get(id)).filter((s): s is Signal => s !== undefined);
  }

  /**
   * For each requirement, the oldest signal this subscription has not consumed that matches it
   * (a signal serves one requirement), or null when one is missing.
   */
  async unconsumedMatches(subscription: string, reqs: SignalRequirement[]): Promise<Signal[] | null> {
    const out: Signal[] = [];
    for (const req of reqs) {
      // JSONB containment: the signal's params hold at least the required values.
      const res = await this.q.query(
        `SELECT ${COLUMNS} FROM signals s
          WHERE s.name = $1 AND s.params @> $2::JSONB AND NOT (s.id = ANY($4::INT8[]))
            AND NOT EXISTS (SELECT 1 FROM signal_consumptions c WHERE c.signal_id = s.id AND c.subscription = $3)
          ORDER BY s.created_at, s.id LIMIT 1`,
        [req.name, jsonParam(req.params), subscription, int8Array(out.map((x) => x.id))]);
      if (res.rows[0] === undefined) return null;
      out.push(parseRow(rowSchema, res.rows[0], 'signals'));
    }
    return out;
  }

}
