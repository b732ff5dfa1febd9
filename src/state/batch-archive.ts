import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { z } from 'zod';
import { IpsError } from '../errors.js';
import type { Queryable, SqlParam } from './database.js';

/**
 * A closed batch's history in one value (issue 19: state after a week within 2× of a day).
 *
 * Once its file list is dropped, a closed batch used to keep four rows for months: the batch, its
 * table summary, its delivered trigger and the watermark move its commit wrote (≈ 1.4 KB, most of
 * it row headers, index entries and repeated JSON keys). The retention pass folds the last three
 * into the batch row's `archive` column (migration 0013) and deletes them; the repositories read
 * them back from there (batches, trigger listings, the audit log), so every reader sees the same
 * values before and after.
 *
 * Format: a version byte, then raw deflate (with a preset dictionary of what these records say
 * again and again) of a JSON array of rows, each row an array of its columns in a fixed order:
 * 64-bit values as decimal strings (exact), instants as milliseconds after the batch's creation,
 * and what the batch row already says (its id, its consumer, the trigger's dedup key when it is the
 * usual one) left out. Bounded on read: an archive inflates to at most MAX_INFLATED bytes.
 */

type Kind = 'i8' | 'ts' | 'json' | 'text' | 'int';
type Columns = readonly (readonly [string, Kind])[];

/** batch_tables, less batch_id and files (gone), in this order. */
const TABLE_COLUMNS: Columns = [
  ['source_table', 'text'], ['from_snapshot_id', 'i8'], ['from_sequence_number', 'i8'], ['to_snapshot_id', 'i8'], ['to_sequence_number', 'i8'],
  ['file_count', 'int'], ['byte_count', 'i8'], ['record_count', 'i8'], ['ranges', 'json'],
  ['icdc_table', 'text'], ['icdc_snapshot_id', 'i8'], ['icdc_metadata_location', 'text'], ['row_changelog', 'json'],
  ['base_watermark_version', 'i8'], ['next_snapshot_id', 'i8'], ['next_sequence_number', 'i8'],
  ['next_partial_snapshot_id', 'i8'], ['next_partial_sequence_number', 'i8'], ['files_pruned_at', 'ts'],
];

/** outbox, less batch_id (the batch's) and the delivery claim (none on a delivered or cancelled trigger). */
const TRIGGER_COLUMNS: Columns = [
  ['id', 'i8'], ['subscription', 'text'], ['seq', 'i8'], ['dedup_key', 'text'], ['state', 'text'], ['attempts', 'int'],
  ['next_attempt_at', 'ts'], ['last_error', 'text'], ['outcome', 'text'], ['run_id', 'text'], ['delivered_at', 'ts'], ['created_at', 'ts'], ['detail', 'json'],
];

/** watermark_moves, less consumer and batch_id (the batch's). */
const MOVE_COLUMNS: Columns = [
  ['id', 'i8'], ['source_table', 'text'], ['actor', 'text'], ['reason', 'text'], ['from_version', 'i8'], ['to_version', 'i8'],
  ['from_snapshot_id', 'i8'], ['from_sequence_number', 'i8'], ['to_snapshot_id', 'i8'], ['to_sequence_number', 'i8'],
  ['from_position', 'json'], ['to_position', 'json'], ['moved_at', 'ts'],
];

export const ARCHIVE_TABLE_SELECT = TABLE_COLUMNS.map(([c]) => c).join(', ');
export const ARCHIVE_TRIGGER_SELECT = TRIGGER_COLUMNS.map(([c]) => c).join(', ');
export const ARCHIVE_MOVE_SELECT = MOVE_COLUMNS.map(([c]) => c).join(', ');

/** Rows as the drivers return them (INT8 as bigint, TIMESTAMPTZ as Date, JSONB parsed). */
export type Row = Record<string, unknown>;

export interface ArchivedRows {
  tables: Row[];
  /** The batch's trigger (delivered or cancelled), or null when no subscription fired it. */
  trigger: Row | null;
  /** The watermark moves its commit wrote (one per table), oldest first. */
  moves: Row[];
}

/** Whose archive it is: what the rows leave out. */
export interface ArchiveOwner {
  id: bigint;
  consumer: string;
  createdAt: Date;
}

/** The orchestrator-side dedup key of a subscription's batch: the same on every redelivery. */
export function triggerDedupKey(subscription: string, batchId: bigint): string {
  return `ips:${subscription}:${batchId}`;
}

const VERSION = 1;
const MAX_INFLATED = 16 * 1024 * 1024;

// What archives repeat: JSON punctuation around nulls and decimal strings, the range JSON's keys,
// trigger states and outcomes, move reasons, ICDC metadata paths. Part of format VERSION 1: never
// changed (a new dictionary is a new version).
const DICTIONARY = Buffer.from(
  '"metadata/"s3://".metadata.json","icdc.__"file:///metadata/v0000000000.metadata.json"'
  + '{"changed_partitions":[{"name":"date=2026-01-01"}]}'
  + '{"ranges":{"ts":{"min":"2026-01-01T00:00:00.000000+00:00","max":"2026-01-01T23:59:59.999999+00:00","flag":"exact"}},'
  + '"flag":"inexact"},"min":"0","max":"0"'
  + '"service","commit","cli","started","delivered",0,"cancelled",null,{}]],[["1000000000000000000",'
  + '[[["t",null,null,"1000000000000000000","1",1,"1000","10",{"ranges":{},"changed_partitions":[]},null,null,null,null,"1","1000000000000000000","1",null,null,0]],',
  'utf8');

function encodeValue(kind: Kind, v: unknown, base: number, column: string): unknown {
  if (v === null || v === undefined) return null;
  switch (kind) {
    case 'i8':
      if (typeof v !== 'bigint') throw archiveError(`column ${column} is not a 64-bit integer`);
      return v.toString();
    case 'ts':
      if (!(v instanceof Date)) throw archiveError(`column ${column} is not an instant`);
      return v.getTime() - base;
    case 'int':
      if (typeof v !== 'number') throw archiveError(`column ${column} is not a number`);
      return v;
    case 'text':
      if (typeof v !== 'string') throw archiveError(`column ${column} is not text`);
      return v;
    case 'json':
      return v;
  }
}

function decodeValue(kind: Kind, v: unknown, base: number, column: string): unknown {
  if (v === null) return null;
  switch (kind) {
    case 'i8':
      if (typeof v !== 'string' || !/^-?\d{1,19}$/.test(v)) throw archiveError(`column ${column} is not a 64-bit integer`);
      return BigInt(v);
    case 'ts':
      if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw archiveError(`column ${column} is not an instant`);
      return new Date(base + v);
    case 'int':
      if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw archiveError(`column ${column} is not a number`);
      return v;
    case 'text':
      if (typeof v !== 'string') throw archiveError(`column ${column} is not text`);
      return v;
    case 'json':
      return v;
  }
}

function pack(columns: Columns, row: Row, base: number): unknown[] {
  const out = columns.map(([c, k]) => encodeValue(k, row[c], base, c));
  // Trailing nulls cost a few bytes each: left off, read back as null.
  while (out.length > 0 && out[out.length - 1] === null) out.pop();
  return out;
}

function unpack(columns: Columns, packed: unknown, base: number, what: string): Row {
  if (!Array.isArray(packed) || packed.length > columns.length) throw archiveError(`${what} is not a row of ${columns.length} columns`);
  const row: Row = {};
  columns.forEach(([c, k], i) => { row[c] = decodeValue(k, i < packed.length ? packed[i] : null, base, c); });
  return row;
}

function archiveError(message: string): IpsError {
  return new IpsError('STATE_CORRUPT', `a batch archive could not be read: ${message}. The state database was changed outside ips; restore it from a backup`);
}

/** The archive of a closed batch: its table summaries, trigger and moves, as stored in batches.archive. */
export function encodeArchive(owner: ArchiveOwner, rows: ArchivedRows): Buffer {
  const base = owner.createdAt.getTime();
  let trigger: unknown[] | null = null;
  if (rows.trigger) {
    const t = { ...rows.trigger };
    if (t['dedup_key'] === triggerDedupKey(String(t['subscription']), owner.id)) t['dedup_key'] = null;
    trigger = pack(TRIGGER_COLUMNS, t, base);
  }
  const json = JSON.stringify([rows.tables.map((t) => pack(TABLE_COLUMNS, t, base)), trigger, rows.moves.map((m) => pack(MOVE_COLUMNS, m, base))]);
  const body = deflateRawSync(Buffer.from(json, 'utf8'), { level: 9, dictionary: DICTIONARY });
  return Buffer.concat([Buffer.from([VERSION]), body]);
}

const archiveShape = z.tuple([z.array(z.unknown()).max(10_000), z.unknown().nullable(), z.array(z.unknown()).max(10_000)]);

/** The rows an archive holds, with what the batch row says put back (batch_id, consumer, the usual dedup key). */
export function decodeArchive(owner: ArchiveOwner, bytes: Uint8Array): ArchivedRows {
  if (bytes.length < 2 || bytes[0] !== VERSION) throw archiveError(`unknown format ${bytes[0] ?? 'empty'}`);
  let json: string;
  try {
    json = inflateRawSync(bytes.subarray(1), { dictionary: DICTIONARY, maxOutputLength: MAX_INFLATED }).toString('utf8');
  } catch (e) {
    throw archiveError(`it does not inflate (${(e as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw archiveError('it is not JSON');
  }
  const shape = archiveShape.safeParse(parsed);
  if (!shape.success) throw archiveError('it is not [tables, trigger, moves]');
  const [tables, trigger, moves] = shape.data;
  const base = owner.createdAt.getTime();
  const t = trigger === null ? null : unpack(TRIGGER_COLUMNS, trigger, base, 'the trigger');
  if (t) {
    t['batch_id'] = owner.id;
    if (t['dedup_key'] === null) t['dedup_key'] = triggerDedupKey(String(t['subscription']), owner.id);
    if (t['detail'] === null) t['detail'] = {};
  }
  return {
    tables: tables.map((x) => ({ ...unpack(TABLE_COLUMNS, x, base, 'a table'), batch_id: owner.id })),
    trigger: t,
    moves: moves.map((x) => ({ ...unpack(MOVE_COLUMNS, x, base, 'a move'), consumer: owner.consumer, batch_id: owner.id })),
  };
}

const archivedRow = z.object({ id: z.bigint(), consumer: z.string(), created_at: z.date(), archive: z.string() });

/** An archived batch's owner and rows. */
export interface ArchivedBatch {
  owner: ArchiveOwner;
  rows: ArchivedRows;
}

/**
 * The archived batches matching a condition on the batches table (no alias; `archive IS NOT NULL`
 * is added), decoded, in the order given (`order`, default by id).
 */
export async function readArchives(q: Queryable, where: string, params: SqlParam[], order = 'id', page?: { limit: number; offset: number }): Promise<ArchivedBatch[]> {
  const res = await q.query(
    `SELECT id, consumer, created_at, encode(archive, 'base64') AS archive FROM batches WHERE archive IS NOT NULL AND (${where}) ORDER BY ${order}`
    + (page !== undefined ? ` LIMIT ${Math.max(1, Math.floor(page.limit))} OFFSET ${Math.max(0, Math.floor(page.offset))}` : ''), params);
  return res.rows.map((r) => {
    const row = archivedRow.safeParse(r);
    if (!row.success) throw archiveError('its batch row is not as stored');
    const owner = { id: row.data.id, consumer: row.data.consumer, createdAt: row.data.created_at };
    return { owner, rows: decodeArchive(owner, Buffer.from(row.data.archive, 'base64')) };
  });
}
