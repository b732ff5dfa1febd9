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

/** HTTP status per error code; anything not listed is a 500. */
const STATUS: Record<string, number> = {
  INVALID_ARGUMENT: 400,
  INVALID_SINK: 400,
  VALIDATION_FAILED: 400,
  MALFORMED_JSON: 400,
  INVALID_JSON: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
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
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  // The table's history no longer reaches the consumer's position: the request is fine, the state is not.
  FROM_NOT_ANCESTOR: 422,
  LINEAGE_BROKEN: 422,
  LINEAGE_CYCLE: 422,
  FROM_EXPIRED: 422,
  HISTORY_TRUNCATED: 422,
  UNKNOWN_SNAPSHOT: 422,
  NOT_ON_BRANCH: 422,
  UNKNOWN_BRANCH: 422,
  UNKNOWN_FIELD: 422,
  TABLE_UNAVAILABLE: 503,
  EMPTY_TABLE: 422,
  POLICY_VIOLATION: 422,
  MISSING_FILES: 422,
  DATABASE_UNAVAILABLE: 503,
  NOT_READY: 503,
};

const TITLES: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 409: 'Conflict',
  413: 'Payload Too Large', 415: 'Unsupported Media Type', 422: 'Unprocessable Content', 500: 'Internal Server Error', 503: 'Service Unavailable',
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
