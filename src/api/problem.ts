import { IpsError, describeError, isIpsError } from '../errors.js';

/**
 * Errors on the wire: RFC 9457 `application/problem+json` with the IpsError code as a stable
 * `code` member (and in `type`), so that clients branch on the code, never on the text.
 */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  instance?: string;
  [extra: string]: unknown;
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/**
 * HTTP status per error code: the one place that decides it (anything not listed is a 500, an
 * ips bug). A request the caller got wrong is 4xx; a table whose metadata or files are corrupt,
 * hostile or unreadable by policy is 422 (the table's fault, not ips's); a catalog or store that
 * fails is 502, one that does not answer in time 504.
 */
const STATUS: Record<string, number> = {
  // the request
  INVALID_ARGUMENT: 400,
  INVALID_SINK: 400,
  INVALID_SIGNAL_NAME: 400,
  INVALID_SIGNAL_PARAMS: 400,
  UNKNOWN_GROUP_TABLE: 400,
  NOT_A_TIME_PARTITION: 422,
  VALIDATION_FAILED: 400,
  MALFORMED_JSON: 400,
  DUPLICATE_JSON_KEY: 400,
  INVALID_PROPERTY: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  LOCATION_NOT_ALLOWED: 403,
  NOT_FOUND: 404,
  TABLE_NOT_FOUND: 404,
  ROUTE_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  ALREADY_EXISTS: 409,
  CONFLICT: 409,
  BATCH_IN_FLIGHT: 409,
  BATCH_NOT_OPEN: 409,
  TRIGGER_NOT_DEAD: 409,
  CONSUMER_STALE: 409,
  AMBIGUOUS_TABLE: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  // The table's history no longer reaches the consumer's position: the request is fine, the state is not.
  FROM_NOT_ANCESTOR: 422,
  LINEAGE_BROKEN: 422,
  FROM_EXPIRED: 422,
  HISTORY_TRUNCATED: 422,
  UNKNOWN_SNAPSHOT: 422,
  NOT_ON_BRANCH: 422,
  UNKNOWN_BRANCH: 422,
  UNKNOWN_FIELD: 422,
  EMPTY_TABLE: 422,
  POLICY_VIOLATION: 422,
  MISSING_FILES: 422,
  FILES_MISSING: 422,
  FALLBACK_UNAVAILABLE: 422,
  // The consumer's capture policy refuses what the table did (overwrite=fail, delete=fail).
  OPERATION_NOT_ALLOWED: 422,
  // the table: corrupt, hostile or out of reach by its own settings
  LINEAGE_CYCLE: 422,
  INVALID_JSON: 422,
  INVALID_METADATA: 422,
  INVALID_MANIFEST: 422,
  INVALID_MANIFEST_LIST: 422,
  INVALID_BOUND: 422,
  CORRUPT_FILE: 422,
  FILE_TOO_LARGE: 422,
  NOT_A_FILE: 422,
  FILE_NOT_FOUND: 422,
  FILE_NOT_LIVE: 422,
  INVALID_LOCATION: 422,
  UNSUPPORTED_SCHEME: 422,
  UNSUPPORTED_CODEC: 422,
  UNSUPPORTED_TYPE: 422,
  UNSUPPORTED_TRANSFORM: 422,
  UNSUPPORTED_FORMAT_VERSION: 422,
  UNSUPPORTED_DELETE_FILES: 422,
  // Position deletes of a table read through a location mapping (src/capture/icdc-table.ts).
  MAPPED_POSITION_DELETES: 422,
  UNKNOWN_OPERATION: 422,
  PARTITION_UNKNOWN: 422,
  PARTITION_MISMATCH: 422,
  S3_CREDENTIALS: 422,
  UNSUPPORTED: 422,
  INVALID_TABLE: 422,
  INVALID_ICDC_TABLE: 422,
  TABLE_EXISTS: 409,
  // Row changes (issue 17): the range is too large for the budget, or the table has what rows cannot read.
  ROW_BUDGET_EXCEEDED: 422,
  SCHEMA_CHANGED: 422,
  UNSUPPORTED_FILE_FORMAT: 422,
  UNSUPPORTED_DELETE_FORMAT: 422,
  UPDATE_AMBIGUOUS: 422,
  // upstreams: catalogs and object stores
  CATALOG_ERROR: 502,
  CATALOG_UNREACHABLE: 502,
  CATALOG_UNAUTHORIZED: 502,
  IO_ERROR: 502,
  TABLE_UNAVAILABLE: 503,
  DATABASE_UNAVAILABLE: 503,
  DATABASE_LOCKED: 503,
  NOT_READY: 503,
  UPSTREAM_TIMEOUT: 504,
  // Lineage and backfills (issue 12).
  PIPELINE_CYCLE: 409,
  BACKFILL_OVERLAP: 409,
  BACKFILL_STATE: 409,
  INVALID_WHERE: 400,
  EMPTY_RANGE: 422,
  RANGE_NOT_PRUNABLE: 422,
  BACKFILL_SNAPSHOT_EXPIRED: 422,
  // Bounded state (issue 19).
  RETENTION_RUNNING: 409,
};

const TITLES: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 409: 'Conflict',
  413: 'Payload Too Large', 414: 'URI Too Long', 415: 'Unsupported Media Type', 422: 'Unprocessable Content', 500: 'Internal Server Error', 502: 'Bad Gateway',
  503: 'Service Unavailable', 504: 'Gateway Timeout',
};

export function statusOf(code: string): number {
  return STATUS[code] ?? 500;
}

export function problem(code: string, detail: string, extra: Record<string, unknown> = {}, status = statusOf(code)): Problem {
  return { type: `urn:ips:problem:${code.toLowerCase().replace(/_/g, '-')}`, title: TITLES[status] ?? 'Error', status, detail, code, ...extra };
}

export function problemFromError(e: unknown): Problem {
  if (isIpsError(e)) return problem(e.code, e.message, e.details ? { details: e.details } : {});
  return problem('INTERNAL', `internal error: ${describeError(e)}`);
}

export function apiError(code: string, message: string, details?: Record<string, unknown>): IpsError {
  return new IpsError(code, message, details ? { details } : undefined);
}
