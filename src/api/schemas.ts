import { z } from 'zod';
import { NAME_PATTERN } from '../state/index.js';

/**
 * Request schemas. 64-bit values (snapshot ids, byte and record limits) are decimal strings,
 * or JSON numbers only while they are exact (safe integers): a JSON client would round a
 * larger number before ips could see it.
 */

export const name = z.string().regex(NAME_PATTERN, 'letters, digits, "_", "." and "-" (at most 200, starting with a letter or digit)');

export const int64 = z.union([
  z.string().regex(/^\d{1,19}$/, 'a non-negative 64-bit integer as a decimal string'),
  z.number().int().nonnegative().refine(Number.isSafeInteger, 'integers above 2^53 must be sent as strings'),
]).transform((v) => BigInt(v)).refine((v) => v <= 9223372036854775807n, 'at most 2^63-1');

export const startPosition = z.union([z.literal('start'), z.literal('now'), int64])
  .describe('"start" (the first snapshot), "now" (the current head) or a snapshot id');

export const policy = z.object({
  overwrite: z.enum(['include', 'added-only', 'fail']).optional(),
  delete: z.enum(['include', 'skip', 'fail']).optional(),
}).strict();

const secret = z.string().min(1);

export const tableRef = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('metadata-file'), location: z.string().min(1).describe('…/vN.metadata.json, local path or s3://') }).strict(),
  z.object({ kind: z.literal('directory'), location: z.string().min(1).describe('table directory with metadata/version-hint.text') }).strict(),
  z.object({ kind: z.literal('sql'), uri: z.string().min(1).describe('postgresql://… of the JDBC/SQL catalog'), catalog_name: z.string().min(1).optional(), identifier: z.string().min(1) }).strict(),
  z.object({ kind: z.literal('rest'), uri: z.string().url(), warehouse: z.string().min(1).optional(), token: secret.optional(), identifier: z.string().min(1) }).strict(),
]);

export const registerTableBody = z.object({
  name,
  ref: tableRef,
  branch: z.string().min(1).optional(),
  s3: z.object({
    endpoint: z.string().url().optional(),
    region: z.string().min(1).optional(),
    path_style: z.boolean().optional(),
    access_key_id: z.string().min(1).optional(),
    secret_access_key: secret.optional(),
    session_token: secret.optional(),
  }).strict().optional(),
  properties: z.record(z.string(), z.string()).optional(),
  verify: z.boolean().optional().describe('load the table once before registering it (default true)'),
  poll_interval_seconds: z.number().int().positive().max(86_400).optional().describe('how often its metadata pointer is polled (default 30)'),
}).strict();

export const subscription = z.object({
  table: name,
  from: startPosition.optional(),
  range_fields: z.array(z.string().min(1)).max(64).optional(),
}).strict();

export const createConsumerBody = z.object({
  name,
  description: z.string().max(2000).optional(),
  policy: policy.optional(),
  lease_seconds: z.number().int().positive().max(7 * 86_400).optional(),
  mode: z.enum(['files', 'rows']).optional().describe('files (default): each batch is an ICDC table snapshot; rows: each batch also writes a changelog table of its rows (Parquet, Iceberg table <consumer>__<table>__changelog)'),
  properties: z.record(z.string(), z.string()).optional(),
  tables: z.array(subscription).max(100).optional(),
  outputs: z.array(name).max(100).optional().describe('tables this consumer writes (lineage; each must be registered)'),
  issue_token: z.boolean().optional().describe('also issue a consumer token (shown once in the response)'),
}).strict();

export const resetBody = z.object({
  to: startPosition,
  table: name.optional(),
}).strict();

export const tokenBody = z.object({
  description: z.string().max(500).optional(),
}).strict();

export const prepareBody = z.object({
  instance_id: z.string().min(1).max(500).describe("the orchestrator's step instance id: a retried step gets the same batch"),
  table: name.optional(),
  tables: z.array(name).min(1).max(100).optional().describe('several tables: one batch over all of them'),
  max_in_flight: z.number().int().positive().max(1000).optional().describe('batches that may be open at once (default 1); a later one starts where the open ones end and commits after them'),
  limits: z.object({
    max_files: z.number().int().positive().max(10_000_000).optional(),
    max_bytes: int64.optional(),
    max_records: int64.optional(),
  }).strict().optional(),
}).strict();

export const abortBody = z.object({ reason: z.string().max(2000).optional() }).strict();

export const batchState = z.enum(['open', 'committed', 'aborted', 'expired']);

export const previewQuery = z.object({
  from: int64.optional().describe('exclusive start snapshot (default: the consumer\'s watermark, or the first snapshot)'),
  to: int64.optional(),
  consumer: name.optional(),
  range: z.string().optional().describe('comma-separated fields to compute change ranges for'),
  overwrite: policy.shape.overwrite,
  delete: policy.shape.delete,
}).strict();

export const nameParams = z.object({ name }).strict();
export const idParams = z.object({ id: int64 }).strict();
