import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { IpsError, describeError } from '../errors.js';
import { databaseConfigFromEnv, DEFAULT_DATA_DIR, type DatabaseConfig } from '../state/database.js';
import { Secret } from '../state/common.js';
import { DEFAULT_MAX_BATCH_FILES, DEFAULT_PORT } from './defaults.js';
import { DEFAULT_READ_LIMITS, type ReadLimits } from '../io/limits.js';
import { DEFAULT_RETENTION, type RetentionPolicy } from '../state/retention.js';

export { DEFAULT_PORT };

/**
 * The service's configuration: an optional file (`IPS_CONFIG`, JSON or YAML, snake_case keys),
 * then the environment over it, validated once at start so that a typo fails the start with the
 * key named, not a request an hour later.
 */
export interface ServiceConfig {
  host: string;
  port: number;
  database: DatabaseConfig;
  /** Where ICDC tables are written (`<warehouse>/<consumer>__<table>`): a directory or s3:// URI. */
  warehouse: string;
  /** `token`: every /v1 request needs a bearer token; `none`: open (loopback only). */
  auth: 'token' | 'none';
  /** Tokens with the admin scope from configuration (more are issued through the API). */
  adminTokens: Secret[];
  bodyLimitBytes: number;
  /**
   * How long a verified issued token is trusted without asking the database again (0: every
   * request asks). A token revoked through another replica keeps working there this long at most.
   */
  tokenCacheSeconds: number;
  /** The most files one batch holds, whatever a prepare's limits (StepProtocolOptions.maxBatchFiles). */
  maxBatchFiles: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** How often a replica expires batches whose lease ran out. */
  leaseSweepSeconds: number;
  /** Run the trigger loops (watch, fire, deliver) in this process. */
  triggers: boolean;
  /** Hosts sinks may call (exact or *.suffix); undefined: any. */
  sinkAllowedHosts: string[] | undefined;
  /** This replica's name in row claims (default host:pid:random). */
  replicaId: string | undefined;
  /** Trigger loop period when idle, ms. */
  tickMs: number;
  /** How long a replica's claim on a table, subscription or trigger lasts: a dead replica's work waits this long. */
  claimSeconds: number;
  /** First retry delay of a failed delivery or poll (doubling, with jitter, up to 5 min). */
  retryBaseMs: number;
  /**
   * How often a subscription with nothing to fire is checked again. A commit, a table change or an
   * event wakes it sooner: this is the safety net, and its cost is subscriptions ÷ this a second.
   */
  triggerIdleCheckSeconds: number;
  /** Size limits per kind of table file, decompression limit and remote deadline (src/io/limits.ts). */
  readLimits: ReadLimits;
  /** Location prefixes a table may be registered at (metadata file, directory or S3 prefix); undefined: any. */
  tableAllowedLocations: string[] | undefined;
  /**
   * Run backfills' `--validate` commands in this process (src/service/backfill-validator.ts).
   * Off by default: it lets an admin token run shell commands on this host.
   */
  backfillValidation: boolean;
  /** Environment variables of this process the validation commands also get (they get none of its others). */
  backfillValidationEnv: string[];
  /** The Iceberg REST catalog (/iceberg) hands out a source table's S3 keys in its ICDC tables' config. */
  restVendCredentials: boolean;
  /** Also register every ICDC table in this JDBC/SQL catalog (postgres URL) under this catalog_name. */
  icdcCatalog: { url: string; name: string } | undefined;
  /** Bounded state (src/state/retention.ts): the policy, and whether this replica runs the loop. */
  retention: { enabled: boolean; intervalSeconds: number; policy: RetentionPolicy };
  /** Where the settings came from, for the start-up line. */
  sources: string[];
}


/** Retention ages: whole days, at least one (nothing younger than a day is ever deleted), at most 100 years. */
const days = z.coerce.number().int().min(1, 'at least 1 day').max(36_500).optional();

const bytes = (min: number) => z.coerce.number().int().min(min).max(8 * 1024 ** 3).optional();

/** Read limits: also honoured by the table-reading CLI commands (`ips inspect`, `ips changes`) from the environment. */
const limitSchema = z.object({
  max_metadata_bytes: bytes(1024),
  max_version_hint_bytes: bytes(16),
  max_manifest_list_bytes: bytes(1024),
  max_manifest_bytes: bytes(1024),
  max_data_file_bytes: bytes(1024),
  max_avro_decompressed_bytes: bytes(1024),
  remote_timeout_ms: z.coerce.number().int().min(100).max(3_600_000).optional(),
}).strict();

const LIMIT_ENV: Record<string, keyof z.infer<typeof limitSchema>> = {
  IPS_MAX_METADATA_BYTES: 'max_metadata_bytes',
  IPS_MAX_VERSION_HINT_BYTES: 'max_version_hint_bytes',
  IPS_MAX_MANIFEST_LIST_BYTES: 'max_manifest_list_bytes',
  IPS_MAX_MANIFEST_BYTES: 'max_manifest_bytes',
  IPS_MAX_DATA_FILE_BYTES: 'max_data_file_bytes',
  IPS_MAX_AVRO_DECOMPRESSED_BYTES: 'max_avro_decompressed_bytes',
  IPS_REMOTE_TIMEOUT_MS: 'remote_timeout_ms',
};

function toReadLimits(c: z.infer<typeof limitSchema>): ReadLimits {
  return {
    metadataBytes: c.max_metadata_bytes ?? DEFAULT_READ_LIMITS.metadataBytes,
    versionHintBytes: c.max_version_hint_bytes ?? DEFAULT_READ_LIMITS.versionHintBytes,
    manifestListBytes: c.max_manifest_list_bytes ?? DEFAULT_READ_LIMITS.manifestListBytes,
    manifestBytes: c.max_manifest_bytes ?? DEFAULT_READ_LIMITS.manifestBytes,
    dataBytes: c.max_data_file_bytes ?? DEFAULT_READ_LIMITS.dataBytes,
    avroDecompressedBytes: c.max_avro_decompressed_bytes ?? DEFAULT_READ_LIMITS.avroDecompressedBytes,
    remoteTimeoutMs: c.remote_timeout_ms ?? DEFAULT_READ_LIMITS.remoteTimeoutMs,
  };
}

/** The read limits from the environment alone (`IPS_MAX_*_BYTES`, `IPS_REMOTE_TIMEOUT_MS`), for the CLI's table commands. */
export function readLimitsFromEnv(env: Record<string, string | undefined> = process.env): ReadLimits {
  const raw: Record<string, string> = {};
  for (const [name, key] of Object.entries(LIMIT_ENV)) {
    const v = env[name]?.trim();
    if (v) raw[key] = v;
  }
  const r = limitSchema.safeParse(raw);
  if (!r.success) {
    const byKey = new Map(Object.entries(LIMIT_ENV).map(([n, k]) => [k as string, n]));
    throw new IpsError('INVALID_CONFIG', `invalid configuration: ${issues(r.error, (k) => byKey.get(k) ?? k)}`);
  }
  return toReadLimits(r.data);
}

const fileSchema = z.object({
  host: z.string().min(1).optional(),
  port: z.coerce.number().int().min(0).max(65535).optional(),
  database_url: z.string().min(1).optional(),
  data_dir: z.string().min(1).optional(),
  warehouse: z.string().min(1).optional(),
  auth: z.enum(['token', 'none']).optional(),
  admin_tokens: z.array(z.string().min(16, 'an admin token has at least 16 characters')).optional(),
  body_limit_bytes: z.coerce.number().int().min(1024).max(1024 ** 3).optional(),
  token_cache_seconds: z.coerce.number().min(0).max(60).optional(),
  max_batch_files: z.coerce.number().int().min(1).max(10_000_000).optional(),
  log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional(),
  lease_sweep_seconds: z.coerce.number().int().min(1).max(86_400).optional(),
  triggers: z.union([z.boolean(), z.enum(['on', 'off', 'true', 'false']).transform((v) => v === 'on' || v === 'true')]).optional(),
  sink_allowed_hosts: z.array(z.string().min(1)).optional(),
  replica_id: z.string().min(1).max(200).optional(),
  tick_ms: z.coerce.number().int().min(10).max(60_000).optional(),
  claim_seconds: z.coerce.number().int().min(1).max(3600).optional(),
  retry_base_ms: z.coerce.number().int().min(10).max(600_000).optional(),
  trigger_idle_check_seconds: z.coerce.number().int().min(1).max(86_400).optional(),
  table_allowed_locations: z.array(z.string().min(1)).optional(),
  backfill_validation: z.union([z.boolean(), z.enum(['on', 'off', 'true', 'false']).transform((v) => v === 'on' || v === 'true')]).optional(),
  backfill_validation_env: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name')).max(100).optional(),
  icdc_catalog_url: z.string().regex(/^(jdbc:)?postgres(ql)?:\/\//, 'a postgres://… (or jdbc:postgresql://…) URL of an Iceberg JDBC/SQL catalog database').optional(),
  icdc_catalog_name: z.string().min(1).max(255).optional(),
  rest_vend_credentials: z.union([z.boolean(), z.enum(['on', 'off', 'true', 'false']).transform((v) => v === 'on' || v === 'true')]).optional(),
  retention: z.union([z.boolean(), z.enum(['on', 'off', 'true', 'false']).transform((v) => v === 'on' || v === 'true')]).optional(),
  retention_interval_seconds: z.coerce.number().int().min(1).max(7 * 86_400).optional(),
  retention_batch_files_days: days,
  retention_batch_days: days,
  retention_outbox_days: days,
  retention_watermark_moves_days: days,
  retention_backfill_days: days,
  ...limitSchema.shape,
}).strict();

type FileConfig = z.infer<typeof fileSchema>;

/** Environment variable → file key. */
const ENV_KEYS: Record<string, keyof FileConfig> = {
  IPS_HOST: 'host',
  IPS_PORT: 'port',
  DATABASE_URL: 'database_url',
  IPS_DATA_DIR: 'data_dir',
  IPS_WAREHOUSE: 'warehouse',
  IPS_AUTH: 'auth',
  IPS_ADMIN_TOKEN: 'admin_tokens',
  IPS_BODY_LIMIT_BYTES: 'body_limit_bytes',
  IPS_TOKEN_CACHE_SECONDS: 'token_cache_seconds',
  IPS_MAX_BATCH_FILES: 'max_batch_files',
  IPS_LOG_LEVEL: 'log_level',
  IPS_LEASE_SWEEP_SECONDS: 'lease_sweep_seconds',
  IPS_TRIGGERS: 'triggers',
  IPS_SINK_ALLOWED_HOSTS: 'sink_allowed_hosts',
  IPS_REPLICA_ID: 'replica_id',
  IPS_TICK_MS: 'tick_ms',
  IPS_CLAIM_SECONDS: 'claim_seconds',
  IPS_RETRY_BASE_MS: 'retry_base_ms',
  IPS_TRIGGER_IDLE_CHECK_SECONDS: 'trigger_idle_check_seconds',
  IPS_TABLE_ALLOWED_LOCATIONS: 'table_allowed_locations',
  IPS_BACKFILL_VALIDATION: 'backfill_validation',
  IPS_BACKFILL_VALIDATION_ENV: 'backfill_validation_env',
  IPS_REST_VEND_CREDENTIALS: 'rest_vend_credentials',
  IPS_ICDC_CATALOG_URL: 'icdc_catalog_url',
  IPS_ICDC_CATALOG_NAME: 'icdc_catalog_name',
  IPS_RETENTION: 'retention',
  IPS_RETENTION_INTERVAL_SECONDS: 'retention_interval_seconds',
  IPS_RETENTION_BATCH_FILES_DAYS: 'retention_batch_files_days',
  IPS_RETENTION_BATCH_DAYS: 'retention_batch_days',
  IPS_RETENTION_OUTBOX_DAYS: 'retention_outbox_days',
  IPS_RETENTION_WATERMARK_MOVES_DAYS: 'retention_watermark_moves_days',
  IPS_RETENTION_BACKFILL_DAYS: 'retention_backfill_days',
  ...LIMIT_ENV,
};

/** `file_key (ENV_VAR)` for every setting, for help texts. */
export function settingsHelp(): string[] {
  return Object.entries(ENV_KEYS).map(([env, key]) => `${key} (${env})`);
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function readFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new IpsError('INVALID_CONFIG', `cannot read the configuration file ${file}: ${describeError(e)}`, { cause: e });
  }
  try {
    return /\.json$/i.test(file) ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new IpsError('INVALID_CONFIG', `the configuration file ${file} is not valid ${/\.json$/i.test(file) ? 'JSON' : 'YAML'}: ${describeError(e)}`, { cause: e });
  }
}

function issues(err: z.ZodError, origin: (key: string) => string): string {
  return err.issues.map((i) => {
    // An unknown key has no path of its own: name where each one came from.
    if (i.code === 'unrecognized_keys') return i.keys.map((k) => `${origin(k)}: unknown setting (every setting is in docs/configuration.md)`).join('; ');
    return `${origin(String(i.path[0] ?? ''))}: ${i.message}`;
  }).join('; ');
}

export interface LoadConfigOptions {
  env?: Record<string, string | undefined>;
  /** Overrides from the command line (highest precedence), in file-key form. */
  overrides?: Partial<Record<keyof FileConfig, string | number | string[]>>;
}

export function loadServiceConfig(options: LoadConfigOptions = {}): ServiceConfig {
  const env = options.env ?? process.env;
  const sources: string[] = [];
  const merged: Record<string, unknown> = {};
  const origin = new Map<string, string>();
  const file = env.IPS_CONFIG?.trim();
  if (file) {
    const raw = readFile(file);
    if (raw !== null && raw !== undefined && (typeof raw !== 'object' || Array.isArray(raw))) {
      throw new IpsError('INVALID_CONFIG', `the configuration file ${file} must hold a mapping of settings`);
    }
    for (const [k, v] of Object.entries((raw ?? {}) as Record<string, unknown>)) {
      merged[k] = v;
      origin.set(k, `${file}: ${k}`);
    }
    sources.push(file);
  }
  for (const [name, key] of Object.entries(ENV_KEYS)) {
    const v = env[name]?.trim();
    if (!v) continue;
    merged[key] = key === 'admin_tokens' || key === 'sink_allowed_hosts' || key === 'table_allowed_locations' || key === 'backfill_validation_env' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v;
    origin.set(key, name);
    if (!sources.includes('environment')) sources.push('environment');
  }
  for (const [k, v] of Object.entries(options.overrides ?? {})) {
    if (v === undefined) continue;
    merged[k] = v;
    origin.set(k, `--${k.replace(/_/g, '-')}`);
  }
  const parsed = fileSchema.safeParse(merged);
  if (!parsed.success) {
    throw new IpsError('INVALID_CONFIG', `invalid configuration: ${issues(parsed.error, (k) => origin.get(k) ?? k)}`);
  }
  const c = parsed.data;
  const dataDir = path.resolve(c.data_dir ?? DEFAULT_DATA_DIR);
  const database = databaseConfigFromEnv({ DATABASE_URL: c.database_url, IPS_DATA_DIR: dataDir, IPS_DB_POOL_MAX: env.IPS_DB_POOL_MAX, IPS_DB_PREPARED_STATEMENTS: env.IPS_DB_PREPARED_STATEMENTS });
  const host = c.host ?? '127.0.0.1';
  const adminTokens = (c.admin_tokens ?? []).map((t) => new Secret(t));
  const auth = c.auth ?? (adminTokens.length > 0 || !isLoopback(host) ? 'token' : 'none');
  if (auth === 'none' && !isLoopback(host)) {
    throw new IpsError('INVALID_CONFIG',
      `auth "none" is allowed only on a loopback address, and ${origin.get('host') ?? 'host'} is "${host}"; set IPS_ADMIN_TOKEN (and issue consumer tokens) or listen on 127.0.0.1`);
  }
  if (auth === 'token' && adminTokens.length === 0) {
    throw new IpsError('INVALID_CONFIG',
      `token auth needs at least one admin token to bootstrap: set IPS_ADMIN_TOKEN (16+ random characters, e.g. from \`openssl rand -hex 24\`), or listen on 127.0.0.1 without auth`);
  }
  const warehouse = c.warehouse ?? path.join(dataDir, 'warehouse');
  return {
    host,
    port: c.port ?? DEFAULT_PORT,
    database,
    warehouse: /^[a-z][a-z0-9+.-]*:\/\//i.test(warehouse) ? warehouse : path.resolve(warehouse),
    auth,
    adminTokens,
    bodyLimitBytes: c.body_limit_bytes ?? 1024 * 1024,
    tokenCacheSeconds: c.token_cache_seconds ?? 1,
    maxBatchFiles: c.max_batch_files ?? DEFAULT_MAX_BATCH_FILES,
    logLevel: c.log_level ?? 'warn',
    leaseSweepSeconds: c.lease_sweep_seconds ?? 30,
    triggers: c.triggers ?? true,
    sinkAllowedHosts: c.sink_allowed_hosts,
    replicaId: c.replica_id,
    tickMs: c.tick_ms ?? 1000,
    claimSeconds: c.claim_seconds ?? 60,
    retryBaseMs: c.retry_base_ms ?? 1000,
    triggerIdleCheckSeconds: c.trigger_idle_check_seconds ?? 60,
    readLimits: toReadLimits(c),
    tableAllowedLocations: c.table_allowed_locations,
    backfillValidation: c.backfill_validation ?? false,
    backfillValidationEnv: c.backfill_validation_env ?? [],
    restVendCredentials: c.rest_vend_credentials ?? false,
    icdcCatalog: c.icdc_catalog_url ? { url: c.icdc_catalog_url, name: c.icdc_catalog_name ?? 'ips' } : undefined,
    retention: {
      enabled: c.retention ?? true,
      intervalSeconds: c.retention_interval_seconds ?? 3600,
      policy: {
        batchFilesDays: c.retention_batch_files_days ?? DEFAULT_RETENTION.batchFilesDays,
        batchDays: c.retention_batch_days ?? DEFAULT_RETENTION.batchDays,
        outboxDays: c.retention_outbox_days ?? DEFAULT_RETENTION.outboxDays,
        watermarkMovesDays: c.retention_watermark_moves_days ?? DEFAULT_RETENTION.watermarkMovesDays,
        backfillDays: c.retention_backfill_days ?? DEFAULT_RETENTION.backfillDays,
      },
    },
    sources: sources.length ? sources : ['defaults'],
  };
}
