import { z } from 'zod';
import { IpsError } from '../errors.js';
import { checkName, int8Array, parseRow } from './common.js';
import { jsonParam, sqlState, SQLSTATE, type Queryable, type SqlParam } from './database.js';

/**
 * Pipeline lineage (the tables each consumer writes) and managed backfills: a backfill
 * re-processes a range of one source table for one consumer in chunks. Each attempt at a chunk
 * is a batch of the backfill's own series (batches.backfill = its name): committing it marks
 * the chunk committed and never moves the consumer's watermark. A chunk whose attempts all fail
 * stops the backfill in `failed` with the cause.
 */

export type BackfillState = 'running' | 'paused' | 'failed' | 'cancelled' | 'committed';
export type ChunkState = 'pending' | 'running' | 'committed' | 'failed' | 'cancelled';
export type BackfillKind = 'where' | 'snapshots';
export type ChunkOrder = 'oldest-first' | 'newest-first';

export interface Backfill {
  name: string;
  consumer: string;
  sourceTable: string;
  kind: BackfillKind;
  state: BackfillState;
  stateReason: string | null;
  /** The request as planned (JSON; see src/backfill/plan.ts BackfillSpecJson). */
  spec: Record<string, unknown>;
  pinnedSnapshotId: bigint | null;
  pinnedSequenceNumber: bigint | null;
  concurrency: number;
  maxAttempts: number;
  order: ChunkOrder;
  createdBy: string;
  createdAt: Date;
  updatedAt: Date;
  finishedAt: Date | null;
}

export interface BackfillChunk {
  backfill: string;
  idx: number;
  state: ChunkState;
  /** As the API shows it: field bounds or snapshot ids. */
  range: Record<string, unknown>;
  fileCount: number;
  byteCount: bigint;
  recordCount: bigint;
  fromSnapshotId: bigint | null;
  toSnapshotId: bigint | null;
  attempts: number;
  batchId: bigint | null;
  instanceId: string | null;
  lastError: string | null;
  /** Output table → snapshot id the chunk's run committed there. */
  outputs: Record<string, bigint>;
  /** The validation command's result, when it ran. */
  validation: ChunkValidation | null;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export interface ChunkValidation {
  passed: boolean;
  exitCode: number | null;
  output: string;
  at: string;
  /** Who ran it: `ips serve` replica, or the actor that recorded it. */
  by?: string;
}

/**
 * A planned file of a chunk, by what names it in the table: its path, and for a deletion vector
 * its blob's offset (several share one Puffin file). A chunk's batch describes its files in full
 * when it is prepared; the plan keeps only which ones, so that a backfill over millions of files
 * stores and reads megabytes, not a description of every file's statistics.
 */
export interface ChunkFileRef {
  file_path: string;
  content_offset?: string;
}

export interface ChunkFiles {
  added: ChunkFileRef[];
  removed: ChunkFileRef[];
  /**
   * --where: the manifests of the pinned snapshot that hold these files, so that preparing the
   * chunk decodes those only (absent in plans stored before: every manifest is read).
   */
  manifests?: string[];
}

export interface ChunkInput {
  range: Record<string, unknown>;
  files: ChunkFiles;
  byteCount: bigint;
  recordCount: bigint;
  fromSnapshotId: bigint | null;
  toSnapshotId: bigint | null;
}

/** What creating a backfill stores: the request as planned, and its chunks. */
export interface BackfillInput extends Pick<Backfill,
  'name' | 'consumer' | 'sourceTable' | 'kind' | 'spec' | 'pinnedSnapshotId' | 'pinnedSequenceNumber' | 'concurrency' | 'maxAttempts' | 'order' | 'createdBy'> {
  chunks: ChunkInput[];
}

const backfillRow = z.object({
  name: z.string(),
  consumer: z.string(),
  source_table: z.string(),
  kind: z.enum(['where', 'snapshots']),
  state: z.enum(['running', 'paused', 'failed', 'cancelled', 'committed']),
  state_reason: z.string().nullable(),
  spec: z.record(z.string(), z.unknown()),
  pinned_snapshot_id: z.bigint().nullable(),
  pinned_sequence_number: z.bigint().nullable(),
  concurrency: z.number().int(),
  max_attempts: z.number().int(),
  chunk_order: z.enum(['oldest-first', 'newest-first']),
  created_by: z.string(),
  created_at: z.date(),
  updated_at: z.date(),
  finished_at: z.date().nullable(),
}).transform((r): Backfill => ({
  name: r.name, consumer: r.consumer, sourceTable: r.source_table, kind: r.kind, state: r.state, stateReason: r.state_reason,
  spec: r.spec, pinnedSnapshotId: r.pinned_snapshot_id, pinnedSequenceNumber: r.pinned_sequence_number,
  concurrency: r.concurrency, maxAttempts: r.max_attempts, order: r.chunk_order, createdBy: r.created_by,
  createdAt: r.created_at, updatedAt: r.updated_at, finishedAt: r.finished_at,
}));

const chunkRow = z.object({
  backfill: z.string(),
  idx: z.number().int(),
  state: z.enum(['pending', 'running', 'committed', 'failed', 'cancelled']),
  range: z.record(z.string(), z.unknown()),
  file_count: z.number().int(),
  byte_count: z.bigint(),
  record_count: z.bigint(),
  from_snapshot_id: z.bigint().nullable(),
  to_snapshot_id: z.bigint().nullable(),
  attempts: z.number().int(),
  batch_id: z.bigint().nullable(),
  instance_id: z.string().nullable(),
  last_error: z.string().nullable(),
  outputs: z.record(z.string(), z.string()),
  validation: z.object({ passed: z.boolean(), exit_code: z.number().int().nullable(), output: z.string(), at: z.string(), by: z.string().optional() }).nullable(),
  started_at: z.date().nullable(),
  finished_at: z.date().nullable(),
}).transform((r): BackfillChunk => ({
  backfill: r.backfill, idx: r.idx, state: r.state, range: r.range, fileCount: r.file_count,
  byteCount: r.byte_count, recordCount: r.record_count, fromSnapshotId: r.from_snapshot_id, toSnapshotId: r.to_snapshot_id,
  attempts: r.attempts, batchId: r.batch_id, instanceId: r.instance_id, lastError: r.last_error,
  outputs: Object.fromEntries(Object.entries(r.outputs).map(([k, v]) => [k, BigInt(v)])),
  validation: r.validation === null ? null : { passed: r.validation.passed, exitCode: r.validation.exit_code, output: r.validation.output, at: r.validation.at, ...(r.validation.by ? { by: r.validation.by } : {}) },
  startedAt: r.started_at, finishedAt: r.finished_at,
}));

const chunkFileRef = z.object({ file_path: z.string(), content_offset: z.string().regex(/^\d{1,19}$/).optional() })
  .transform((f): ChunkFileRef => (f.content_offset === undefined ? { file_path: f.file_path } : { file_path: f.file_path, content_offset: f.content_offset }));
const chunkFilesRow = z.object({
  files: z.object({ added: z.array(chunkFileRef), removed: z.array(chunkFileRef), manifests: z.array(z.string()).optional() }),
  files_pruned_at: z.date().nullable(),
});

const BACKFILL_COLUMNS = `name, consumer, source_table, kind, state, state_reason, spec, pinned_snapshot_id, pinned_sequence_number,
  concurrency, max_attempts, chunk_order, created_by, created_at, updated_at, finished_at`;
// Without `files`: only a --where chunk's prepare reads them (chunkFiles), one chunk at a time.
const CHUNK_COLUMNS = `backfill, idx, state, range, file_count, byte_count, record_count, from_snapshot_id, to_snapshot_id,
  attempts, batch_id, instance_id, last_error, outputs, validation, started_at, finished_at`;

/** States in which a backfill still needs its files and history (retention counts it). */
export const ACTIVE_BACKFILL_STATES: readonly BackfillState[] = ['running', 'paused', 'failed'];

function notFound(name: string): IpsError {
  return new IpsError('NOT_FOUND', `backfill "${name}" does not exist; \`ips backfills list\` shows them`, { details: { backfill: name } });
}

/**
 * What closing a backfill batch does to its chunk, in the transaction that closes the batch:
 * committed → the chunk is committed (with the outputs the run named), and the backfill too
 * when it was the last; aborted/expired → the chunk goes back to pending, or, after
 * max_attempts attempts, fails and stops the backfill with the cause.
 */
/** Records the output snapshots of a batch being committed (in the commit's transaction). */
export async function recordBatchOutputs(q: Queryable, batchId: bigint, outputs: Record<string, bigint>): Promise<void> {
  for (const [t, id] of Object.entries(outputs)) {
    await q.query('INSERT INTO batch_outputs (batch_id, source_table, snapshot_id) VALUES ($1, $2, $3) ON CONFLICT (batch_id, source_table) DO NOTHING', [batchId, t, id]);
  }
}

export async function backfillBatchClosed(q: Queryable, batch: { id: bigint; backfill: string | null; backfillChunk: number | null },
  outcome: 'committed' | 'aborted' | 'expired', reason: string | null, outputs: Record<string, bigint> = {}): Promise<void> {
  if (batch.backfill === null || batch.backfillChunk === null) return;
  const rows = await q.query<{ state: ChunkState; attempts: number; batch_id: bigint | null; max_attempts: number; bstate: BackfillState }>(
    `SELECT c.state, c.attempts, c.batch_id, b.max_attempts, b.state AS bstate FROM backfill_chunks c JOIN backfills b ON b.name = c.backfill
      WHERE c.backfill = $1 AND c.idx = $2 FOR UPDATE`, [batch.backfill, batch.backfillChunk]);
  const c = rows.rows[0];
  // Only the chunk's current attempt moves it (an old attempt's late abort changes nothing).
  if (!c || c.batch_id !== batch.id || c.state !== 'running') return;
  if (outcome === 'committed') {
    const out = Object.fromEntries(Object.entries(outputs).map(([k, v]) => [k, v.toString()]));
    await q.query(
      `UPDATE backfill_chunks SET state = 'committed', finished_at = now(), last_error = NULL, outputs = $3::JSONB WHERE backfill = $1 AND idx = $2`,
      [batch.backfill, batch.backfillChunk, jsonParam(out)]);
    const left = await q.query<{ n: number }>(
      `SELECT count(*)::INT4 AS n FROM backfill_chunks WHERE backfill = $1 AND state <> 'committed'`, [batch.backfill]);
    if ((left.rows[0]?.n ?? 1) === 0 && (c.bstate === 'running' || c.bstate === 'paused')) {
      await q.query(`UPDATE backfills SET state = 'committed', state_reason = NULL, finished_at = now(), updated_at = now() WHERE name = $1`, [batch.backfill]);
    }
    return;
  }
  const error = `attempt ${c.attempts} (batch ${batch.id}) ${outcome}${reason ? `: ${reason}` : ''}`;
  if (c.bstate === 'cancelled') {
    await q.query(`UPDATE backfill_chunks SET state = 'cancelled', last_error = $3, finished_at = now() WHERE backfill = $1 AND idx = $2`,
      [batch.backfill, batch.backfillChunk, error]);
    return;
  }
  if (c.attempts >= c.max_attempts) {
    await q.query(`UPDATE backfill_chunks SET state = 'failed', last_error = $3, finished_at = now() WHERE backfill = $1 AND idx = $2`,
      [batch.backfill, batch.backfillChunk, error]);
    if (c.bstate === 'running' || c.bstate === 'paused') {
      await q.query(`UPDATE backfills SET state = 'failed', state_reason = $2, updated_at = now() WHERE name = $1`,
        [batch.backfill, `chunk ${batch.backfillChunk} failed ${c.attempts} time(s); last: ${error}`]);
    }
    return;
  }
  await q.query(`UPDATE backfill_chunks SET state = 'pending', last_error = $3 WHERE backfill = $1 AND idx = $2`,
    [batch.backfill, batch.backfillChunk, error]);
}

/**
 * A backfill (alias b) that pins its snapshot ($1: the active states): running, paused or failed,
 * or committed with its validation pending or a chunk invalid (a retry reads its files again).
 */
const PINNING = `(b.state = ANY($1::TEXT[])
  OR (b.state = 'committed' AND b.spec->>'validate' IS NOT NULL AND EXISTS (
        SELECT 1 FROM backfill_chunks c WHERE c.backfill = b.name AND (c.validation IS NULL OR c.validation->>'passed' = 'false'))))`;

export class BackfillsRepo {
  constructor(private readonly q: Queryable) {}

  // -- lineage ---------------------------------------------------------------------------

  /** Replaces the tables a consumer declares it writes. */
  async setOutputs(consumer: string, tables: string[]): Promise<void> {
    await this.q.withTransaction(async (tx) => {
      await tx.query('DELETE FROM consumer_outputs WHERE consumer = $1', [consumer]);
      for (const t of [...new Set(tables)]) {
        try {
          await tx.query('INSERT INTO consumer_outputs (consumer, source_table) VALUES ($1, $2)', [consumer, t]);
        } catch (e) {
          if (sqlState(e) === SQLSTATE.FOREIGN_KEY_VIOLATION) {
            throw new IpsError('NOT_FOUND', `output table "${t}" is not registered (or consumer "${consumer}" does not exist): register it with \`ips tables register ${t} …\` first, so that ips can follow what the consumer writes`, { cause: e, details: { table: t } });
          }
          throw e;
        }
      }
    });
  }

  /** Every (consumer, output table) edge, ordered. */
  async listOutputs(): Promise<{ consumer: string; sourceTable: string }[]> {
    const res = await this.q.query<{ consumer: string; source_table: string }>('SELECT consumer, source_table FROM consumer_outputs ORDER BY consumer, source_table');
    return res.rows.map((r) => ({ consumer: r.consumer, sourceTable: r.source_table }));
  }

  /** Every (consumer, table it reads) edge: the subscriptions. */
  async listInputs(): Promise<{ consumer: string; sourceTable: string }[]> {
    const res = await this.q.query<{ consumer: string; source_table: string }>('SELECT consumer, source_table FROM watermarks ORDER BY consumer, source_table');
    return res.rows.map((r) => ({ consumer: r.consumer, sourceTable: r.source_table }));
  }

  async outputsOf(consumer: string): Promise<string[]> {
    const res = await this.q.query<{ source_table: string }>('SELECT source_table FROM consumer_outputs WHERE consumer = $1 ORDER BY source_table', [consumer]);
    return res.rows.map((r) => r.source_table);
  }

  // -- backfills -------------------------------------------------------------------------

  /** Stores a planned backfill with its chunks (ALREADY_EXISTS when the name is taken). */
  async create(input: BackfillInput): Promise<Backfill> {
    checkName('backfill', input.name);
    if (input.chunks.length === 0) throw new IpsError('EMPTY_RANGE', `backfill "${input.name}" has no chunk: nothing to do`);
    return this.q.withTransaction(async (tx) => {
      try {
        await tx.query(
          `INSERT INTO backfills (name, consumer, source_table, kind, spec, pinned_snapshot_id, pinned_sequence_number, concurrency, max_attempts, chunk_order, created_by)
           VALUES ($1, $2, $3, $4, $5::JSONB, $6, $7, $8, $9, $10, $11)`,
          [input.name, input.consumer, input.sourceTable, input.kind, jsonParam(input.spec), input.pinnedSnapshotId, input.pinnedSequenceNumber,
            input.concurrency, input.maxAttempts, input.order, input.createdBy]);
      } catch (e) {
        if (sqlState(e) === SQLSTATE.UNIQUE_VIOLATION) throw new IpsError('ALREADY_EXISTS', `backfill "${input.name}" already exists; pick another name`, { cause: e });
        if (sqlState(e) === SQLSTATE.FOREIGN_KEY_VIOLATION) throw new IpsError('NOT_FOUND', `consumer "${input.consumer}" or table "${input.sourceTable}" does not exist`, { cause: e });
        throw e;
      }
      for (const [i, c] of input.chunks.entries()) {
        await tx.query(
          `INSERT INTO backfill_chunks (backfill, idx, range, files, file_count, byte_count, record_count, from_snapshot_id, to_snapshot_id)
           VALUES ($1, $2, $3::JSONB, $4::JSONB, $5, $6, $7, $8, $9)`,
          [input.name, i, jsonParam(c.range), jsonParam(c.files), c.files.added.length + c.files.removed.length,
            c.byteCount, c.recordCount, c.fromSnapshotId, c.toSnapshotId] satisfies SqlParam[]);
      }
      return (await new BackfillsRepo(tx).get(input.name))!;
    });
  }

  async get(name: string): Promise<Backfill | undefined> {
    const res = await this.q.query(`SELECT ${BACKFILL_COLUMNS} FROM backfills WHERE name = $1`, [name]);
    return res.rows[0] === undefined ? undefined : parseRow(backfillRow, res.rows[0], 'backfills');
  }

  async require(name: string): Promise<Backfill> {
    const b = await this.get(name);
    if (!b) throw notFound(name);
    return b;
  }

  /** Backfills, newest first; filtered by consumer, table and/or states. */
  async list(filter: { consumer?: string; sourceTable?: string; states?: readonly BackfillState[] } = {}): Promise<Backfill[]> {
    const where: string[] = [];
    const params: SqlParam[] = [];
    if (filter.consumer !== undefined) where.push(`consumer = $${params.push(filter.consumer)}`);
    if (filter.sourceTable !== undefined) where.push(`source_table = $${params.push(filter.sourceTable)}`);
    if (filter.states !== undefined) where.push(`state = ANY($${params.push(`{${filter.states.join(',')}}`)}::TEXT[])`);
    const res = await this.q.query(`SELECT ${BACKFILL_COLUMNS} FROM backfills${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, name`, params);
    return res.rows.map((r) => parseRow(backfillRow, r, 'backfills'));
  }

  async chunks(name: string): Promise<BackfillChunk[]> {
    const res = await this.q.query(`SELECT ${CHUNK_COLUMNS} FROM backfill_chunks WHERE backfill = $1 ORDER BY idx`, [name]);
    return res.rows.map((r) => parseRow(chunkRow, r, 'backfill_chunks'));
  }

  async chunk(name: string, idx: number): Promise<BackfillChunk | undefined> {
    const res = await this.q.query(`SELECT ${CHUNK_COLUMNS} FROM backfill_chunks WHERE backfill = $1 AND idx = $2`, [name, idx]);
    return res.rows[0] === undefined ? undefined : parseRow(chunkRow, res.rows[0], 'backfill_chunks');
  }

  /** How many chunks the backfill has. */
  async chunkCount(name: string): Promise<number> {
    const res = await this.q.query<{ n: number }>('SELECT count(*)::INT4 AS n FROM backfill_chunks WHERE backfill = $1', [name]);
    return res.rows[0]?.n ?? 0;
  }

  /**
   * The files one chunk was planned with (undefined when there is no such chunk). Rows stored
   * before plans kept references only hold whole file descriptions: their path and offset are read.
   */
  async chunkFiles(name: string, idx: number): Promise<ChunkFiles | undefined> {
    const res = await this.q.query(`SELECT files, files_pruned_at FROM backfill_chunks WHERE backfill = $1 AND idx = $2`, [name, idx]);
    if (res.rows[0] === undefined) return undefined;
    const row = parseRow(chunkFilesRow, res.rows[0], 'backfill_chunks');
    if (row.files_pruned_at !== null) {
      throw new IpsError('BACKFILL_STATE', `backfill "${name}" chunk ${idx}: its file list was pruned by retention on ${row.files_pruned_at.toISOString()}, so it cannot be handed out again; create a new backfill for its range`);
    }
    return row.files;
  }

  /** Chunk counts by state, per backfill (for metrics). */
  async chunkCounts(): Promise<{ backfill: string; state: ChunkState; n: number }[]> {
    const res = await this.q.query<{ backfill: string; state: ChunkState; n: number }>(
      'SELECT backfill, state, count(*)::INT4 AS n FROM backfill_chunks GROUP BY backfill, state ORDER BY backfill, state');
    return res.rows;
  }

  /**
   * The next chunk to hand out, or why there is none: the backfill is not running, `concurrency`
   * chunks are running already, or no chunk is pending. Read only; startChunk decides.
   */
  async nextChunk(name: string): Promise<{ chunk: BackfillChunk } | { none: 'not-running' | 'busy' | 'no-pending'; backfill: Backfill }> {
    const b = await this.require(name);
    if (b.state !== 'running') return { none: 'not-running', backfill: b };
    const counts = await this.q.query<{ state: ChunkState; n: number }>(
      'SELECT state, count(*)::INT4 AS n FROM backfill_chunks WHERE backfill = $1 GROUP BY state', [name]);
    const running = counts.rows.find((r) => r.state === 'running')?.n ?? 0;
    if (running >= b.concurrency) return { none: 'busy', backfill: b };
    const res = await this.q.query(
      `SELECT ${CHUNK_COLUMNS} FROM backfill_chunks WHERE backfill = $1 AND state = 'pending' ORDER BY idx ${b.order === 'newest-first' ? 'DESC' : 'ASC'} LIMIT 1`, [name]);
    if (res.rows[0] === undefined) return { none: 'no-pending', backfill: b };
    return { chunk: parseRow(chunkRow, res.rows[0], 'backfill_chunks') };
  }

  /**
   * In the transaction that stores the chunk's batch: the backfill row is locked (hand-outs of
   * one backfill queue on it), the chunk must still be pending and the backfill running with
   * fewer than `concurrency` chunks running. False when another prepare took it first.
   */
  async startChunk(tx: Queryable, name: string, idx: number, batchId: bigint, instanceId: string): Promise<boolean> {
    const b = await tx.query<{ state: BackfillState; concurrency: number }>('SELECT state, concurrency FROM backfills WHERE name = $1 FOR UPDATE', [name]);
    const row = b.rows[0];
    if (!row || row.state !== 'running') return false;
    const running = await tx.query<{ n: number }>(`SELECT count(*)::INT4 AS n FROM backfill_chunks WHERE backfill = $1 AND state = 'running'`, [name]);
    if ((running.rows[0]?.n ?? 0) >= row.concurrency) return false;
    const res = await tx.query(
      `UPDATE backfill_chunks SET state = 'running', attempts = attempts + 1, batch_id = $3, instance_id = $4, started_at = now(), finished_at = NULL
        WHERE backfill = $1 AND idx = $2 AND state = 'pending' RETURNING idx`, [name, idx, batchId, instanceId]);
    return res.rowCount === 1;
  }

  /**
   * pause: no new chunk is handed out (running ones finish). resume: hand out again (also after
   * `failed`, with the failed chunks' attempts reset). cancel: pending chunks are cancelled and
   * running batches aborted by the caller.
   */
  async setState(name: string, state: BackfillState, reason: string | null): Promise<Backfill> {
    const res = await this.q.query(
      `UPDATE backfills SET state = $2, state_reason = $3, updated_at = now(),
              finished_at = CASE WHEN $2 IN ('cancelled', 'committed') THEN now() ELSE NULL END
        WHERE name = $1 RETURNING name`, [name, state, reason]);
    if (res.rowCount === 0) throw notFound(name);
    return this.require(name);
  }

  /** Records the validation command's result for a committed chunk (and releases a service claim on it). */
  async setValidation(name: string, idx: number, v: { passed: boolean; exitCode: number | null; output: string; by?: string }): Promise<void> {
    const res = await this.q.query(
      `UPDATE backfill_chunks SET validation = $3::JSONB, validation_claimed_by = NULL, validation_claim_expires_at = NULL
        WHERE backfill = $1 AND idx = $2 AND state = 'committed' RETURNING idx`,
      [name, idx, jsonParam({ passed: v.passed, exit_code: v.exitCode, output: v.output.slice(-4000), at: new Date().toISOString(), ...(v.by ? { by: v.by } : {}) })]);
    if (res.rowCount === 0) throw new IpsError('BACKFILL_STATE', `chunk ${idx} of backfill "${name}" is not committed (or does not exist): only a committed chunk is validated`);
  }

  /**
   * For the service's validation loop: claims one committed chunk without a validation result
   * whose backfill has a command (and is not cancelled), for `owner` until the claim expires.
   * Each chunk goes to one replica at a time (SKIP LOCKED, then the claim columns).
   */
  async claimValidation(owner: string, claimSeconds: number, defaultTimeoutSeconds: number): Promise<{ backfill: Backfill; chunk: BackfillChunk; chunks: number } | undefined> {
    const claimed = await this.q.withTransaction(async (tx) => {
      const res = await tx.query<{ backfill: string; idx: number }>(
        `SELECT backfill, idx FROM backfill_chunks
          WHERE state = 'committed' AND validation IS NULL
            AND (validation_claim_expires_at IS NULL OR validation_claim_expires_at < now())
            AND backfill IN (SELECT name FROM backfills WHERE state <> 'cancelled' AND spec->>'validate' IS NOT NULL)
          ORDER BY finished_at, backfill, idx LIMIT 1 FOR UPDATE SKIP LOCKED`);
      const row = res.rows[0];
      if (!row) return undefined;
      // The claim outlasts the command's own timeout by claimSeconds: a replica that dies mid-run frees the chunk soon after.
      const spec = await tx.query<{ t: string | null }>(`SELECT spec->>'validate_timeout_seconds' AS t FROM backfills WHERE name = $1`, [row.backfill]);
      const timeout = Number(spec.rows[0]?.t ?? defaultTimeoutSeconds);
      await tx.query(
        `UPDATE backfill_chunks SET validation_claimed_by = $3, validation_claim_expires_at = now() + $4::INT8 * INTERVAL '1 second'
          WHERE backfill = $1 AND idx = $2`, [row.backfill, row.idx, owner, (Number.isSafeInteger(timeout) ? timeout : defaultTimeoutSeconds) + claimSeconds]);
      return row;
    });
    if (!claimed) return undefined;
    const chunk = await this.chunk(claimed.backfill, claimed.idx);
    if (!chunk) return undefined;
    return { backfill: await this.require(claimed.backfill), chunk, chunks: await this.chunkCount(claimed.backfill) };
  }

  /** Cancels every pending chunk. */
  async cancelPending(name: string): Promise<void> {
    await this.q.query(`UPDATE backfill_chunks SET state = 'cancelled', finished_at = now() WHERE backfill = $1 AND state = 'pending'`, [name]);
  }

  /** Failed, cancelled and committed-but-invalid chunks back to pending with fresh attempts; `only` limits it to one chunk. */
  async retryChunks(name: string, only?: number): Promise<number> {
    const params: SqlParam[] = [name];
    const one = only === undefined ? '' : ` AND idx = $${params.push(only)}`;
    const res = await this.q.query(
      `UPDATE backfill_chunks SET state = 'pending', attempts = 0, finished_at = NULL, validation = NULL, outputs = '{}'::JSONB,
              validation_claimed_by = NULL, validation_claim_expires_at = NULL
        WHERE backfill = $1${one}
          AND (state IN ('failed', 'cancelled') OR (state = 'committed' AND validation IS NOT NULL AND validation->>'passed' = 'false'))
        RETURNING idx`, params);
    return res.rowCount;
  }

  /** Batches of the backfill's running chunks. */
  async runningBatchIds(name: string): Promise<bigint[]> {
    const res = await this.q.query<{ batch_id: bigint }>(
      `SELECT batch_id FROM backfill_chunks WHERE backfill = $1 AND state = 'running' AND batch_id IS NOT NULL`, [name]);
    return res.rows.map((r) => r.batch_id);
  }

  /**
   * The oldest snapshot a running, paused or failed backfill of the table pins (its planned-on
   * snapshot, or the start of its replayed range), or a committed one whose validation is
   * pending or failed (retrying an invalid chunk reads its files again): expiry must keep it.
   */
  async oldestPinned(sourceTable: string): Promise<{ backfill: string; consumer: string; snapshotId: bigint | null; sequenceNumber: bigint | null } | undefined> {
    const res = await this.q.query<{ name: string; consumer: string; pinned_snapshot_id: bigint | null; pinned_sequence_number: bigint | null }>(
      `SELECT name, consumer, pinned_snapshot_id, pinned_sequence_number FROM backfills b
        WHERE source_table = $2 AND ${PINNING}
        ORDER BY (pinned_sequence_number IS NOT NULL), pinned_sequence_number, name LIMIT 1`, [`{${ACTIVE_BACKFILL_STATES.join(',')}}`, sourceTable]);
    const r = res.rows[0];
    return r === undefined ? undefined : { backfill: r.name, consumer: r.consumer, snapshotId: r.pinned_snapshot_id, sequenceNumber: r.pinned_sequence_number };
  }

  /** oldestPinned() of every table that has one, in one statement. */
  async oldestPinnedByTable(): Promise<Map<string, { backfill: string; consumer: string; snapshotId: bigint | null; sequenceNumber: bigint | null }>> {
    const res = await this.q.query<{ source_table: string; name: string; consumer: string; pinned_snapshot_id: bigint | null; pinned_sequence_number: bigint | null }>(
      `SELECT DISTINCT ON (source_table) source_table, name, consumer, pinned_snapshot_id, pinned_sequence_number FROM backfills b
        WHERE ${PINNING} ORDER BY source_table, (pinned_sequence_number IS NOT NULL), pinned_sequence_number, name`, [`{${ACTIVE_BACKFILL_STATES.join(',')}}`]);
    return new Map(res.rows.map((r) => [r.source_table, { backfill: r.name, consumer: r.consumer, snapshotId: r.pinned_snapshot_id, sequenceNumber: r.pinned_sequence_number }]));
  }

  /** The output snapshots recorded for a committed batch. */
  async batchOutputs(batchId: bigint): Promise<Record<string, bigint>> {
    const res = await this.q.query<{ source_table: string; snapshot_id: bigint }>('SELECT source_table, snapshot_id FROM batch_outputs WHERE batch_id = $1', [batchId]);
    return Object.fromEntries(res.rows.map((r) => [r.source_table, r.snapshot_id]));
  }

  /** The delivery of each chunk's current batch through a subscription: trigger state and the orchestrator's run id. */
  async deliveries(name: string): Promise<Map<number, { state: string; runId: string | null; subscription: string }>> {
    const res = await this.q.query<{ idx: number; state: string; run_id: string | null; subscription: string }>(
      `SELECT c.idx, o.state, o.run_id, o.subscription FROM backfill_chunks c JOIN outbox o ON o.batch_id = c.batch_id WHERE c.backfill = $1`, [name]);
    return new Map(res.rows.map((r) => [r.idx, { state: r.state, runId: r.run_id, subscription: r.subscription }]));
  }

  /** Batch ids → chunk for a set of batches (monitoring). */
  async batchesOf(ids: bigint[]): Promise<Map<bigint, { backfill: string; idx: number }>> {
    if (ids.length === 0) return new Map();
    const res = await this.q.query<{ id: bigint; backfill: string; backfill_chunk: number }>(
      'SELECT id, backfill, backfill_chunk FROM batches WHERE id = ANY($1::INT8[]) AND backfill IS NOT NULL', [int8Array(ids)]);
    return new Map(res.rows.map((r) => [r.id, { backfill: r.backfill, idx: r.backfill_chunk }]));
  }
}
