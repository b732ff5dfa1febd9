import { z } from 'zod';
import { IpsError } from '../errors.js';
import { capturePolicySchema, type CapturePolicy } from '../capture/policy.js';
import { checkName, parseInput, parseRow, stringMap } from './common.js';
import { jsonParam, sqlState, SQLSTATE, type Queryable } from './database.js';

export type ConsumerState = 'active' | 'stale';

/** `files`: each batch is an ICDC table snapshot of files; `rows`: also a changelog table of its rows (issue 17). */
export const CONSUMER_MODES = ['files', 'rows'] as const;
export type ConsumerMode = (typeof CONSUMER_MODES)[number];

export interface Consumer {
  name: string;
  description: string | null;
  /** `stale`: its history broke (rollback, expired snapshots); stateReason says how. */
  state: ConsumerState;
  stateReason: string | null;
  policy: CapturePolicy;
  /** How long a prepared batch stays open before it expires (default 3600). */
  leaseSeconds: number;
  mode: ConsumerMode;
  properties: Record<string, string>;
  createdAt: Date;
  updatedAt: Date;
}

export interface ConsumerInput {
  name: string;
  description?: string | null;
  policy?: Partial<CapturePolicy>;
  leaseSeconds?: number;
  mode?: ConsumerMode;
  properties?: Record<string, string>;
}

const inputSchema = z.object({
  name: z.string(),
  description: z.string().nullish().transform((v) => v ?? null),
  policy: capturePolicySchema.default({ overwrite: 'include', delete: 'include' }),
  leaseSeconds: z.number().int().positive().max(2_147_483_647).default(3600),
  mode: z.enum(CONSUMER_MODES).default('files'),
  properties: stringMap.default({}),
});

const rowSchema = z.object({
  name: z.string(),
  description: z.string().nullable(),
  state: z.enum(['active', 'stale']),
  state_reason: z.string().nullable(),
  policy: capturePolicySchema,
  lease_seconds: z.number().int(),
  mode: z.enum(CONSUMER_MODES),
  properties: stringMap,
  created_at: z.date(),
  updated_at: z.date(),
}).transform((r): Consumer => ({
  name: r.name,
  description: r.description,
  state: r.state,
  stateReason: r.state_reason,
  policy: r.policy,
  leaseSeconds: r.lease_seconds,
  mode: r.mode,
  properties: r.properties,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
}));

const COLUMNS = 'name, description, state, state_reason, policy, lease_seconds, mode, properties, created_at, updated_at';
/** COLUMNS, for a statement of another repository that reads a consumer with its own rows (see parseConsumerRow). */
export const CONSUMER_COLUMNS = COLUMNS;

/** A consumer from a row holding CONSUMER_COLUMNS. */
export function parseConsumerRow(row: unknown): Consumer {
  return parseRow(rowSchema, row, 'consumers');
}

const stateRow = z.object({ name: z.string(), state: z.enum(['active', 'stale']) });

export class ConsumersRepo {
  constructor(private readonly q: Queryable) {}

  /** ALREADY_EXISTS when the name is taken. */
  async create(input: ConsumerInput): Promise<Consumer> {
    const v = parseInput(inputSchema, input, 'consumer');
    checkName('consumer', v.name);
    try {
      const res = await this.q.query(
        `INSERT INTO consumers (name, description, policy, lease_seconds, properties, mode)
         VALUES ($1, $2, $3::JSONB, $4, $5::JSONB, $6)
         RETURNING ${COLUMNS}`,
        [v.name, v.description, jsonParam(v.policy), v.leaseSeconds, jsonParam(v.properties), v.mode]);
      return parseRow(rowSchema, res.rows[0], 'consumers');
    } catch (e) {
      if (sqlState(e) === SQLSTATE.UNIQUE_VIOLATION) throw new IpsError('ALREADY_EXISTS', `consumer "${v.name}" already exists`, { cause: e });
      throw e;
    }
  }

  async get(name: string): Promise<Consumer | undefined> {
    const res = await this.q.query(`SELECT ${COLUMNS} FROM consumers WHERE name = $1`, [name]);
    return res.rows[0] === undefined ? undefined : parseRow(rowSchema, res.rows[0], 'consumers');
  }

  async require(name: string): Promise<Consumer> {
    const c = await this.get(name);
    if (!c) throw notFound(name);
    return c;
  }

  async list(): Promise<Consumer[]> {
    const res = await this.q.query(`SELECT ${COLUMNS} FROM consumers ORDER BY name`);
    return res.rows.map((r) => parseRow(rowSchema, r, 'consumers'));
  }

  /** The state of each consumer of one table (its view lists them), without reading the whole fleet's consumers. */
  async statesByTable(sourceTable: string): Promise<Map<string, Consumer['state']>> {
    const res = await this.q.query<{ name: string; state: Consumer['state'] }>(
      'SELECT c.name, c.state FROM consumers c JOIN watermarks w ON w.consumer = c.name WHERE w.source_table = $1', [sourceTable]);
    return new Map(res.rows.map((r) => {
      const row = parseRow(stateRow, r, 'consumers');
      return [row.name, row.state];
    }));
  }

  /** Changes description, policy, lease or properties (what is given). */
  async update(name: string, patch: Omit<ConsumerInput, 'name'>): Promise<Consumer> {
    const cur = await this.require(name);
    const v = parseInput(inputSchema, {
      name,
      description: patch.description !== undefined ? patch.description : cur.description,
      policy: { ...cur.policy, ...patch.policy },
      leaseSeconds: patch.leaseSeconds ?? cur.leaseSeconds,
      mode: patch.mode ?? cur.mode,
      properties: patch.properties ?? cur.properties,
    }, 'consumer');
    const res = await this.q.query(
      `UPDATE consumers SET description = $2, policy = $3::JSONB, lease_seconds = $4, properties = $5::JSONB, mode = $6, updated_at = now()
        WHERE name = $1 RETURNING ${COLUMNS}`,
      [name, v.description, jsonParam(v.policy), v.leaseSeconds, jsonParam(v.properties), v.mode]);
    if (res.rowCount === 0) throw notFound(name);
    return parseRow(rowSchema, res.rows[0], 'consumers');
  }

  /** Marks the consumer stale (with why) or active again (reason cleared). */
  async setState(name: string, state: ConsumerState, reason: string | null = null): Promise<Consumer> {
    if (state === 'stale' && !reason) throw new IpsError('INVALID_ARGUMENT', 'a stale consumer needs a reason');
    const res = await this.q.query(
      `UPDATE consumers SET state = $2, state_reason = $3, updated_at = now() WHERE name = $1 RETURNING ${COLUMNS}`,
      [name, state, state === 'active' ? null : reason]);
    if (res.rowCount === 0) throw notFound(name);
    return parseRow(rowSchema, res.rows[0], 'consumers');
  }

  /** Deletes the consumer with its watermarks and batches (the audit log stays). */
  async delete(name: string): Promise<boolean> {
    const res = await this.q.query('DELETE FROM consumers WHERE name = $1', [name]);
    return res.rowCount > 0;
  }
}

function notFound(name: string): IpsError {
  return new IpsError('NOT_FOUND', `consumer "${name}" does not exist`, { details: { consumer: name } });
}
