import { isIpsError } from '../errors.js';
import { statusOf } from '../api/problem.js';

/**
 * Errors of the Iceberg REST catalog, as its spec has them (`IcebergErrorResponse`):
 * `{"error": {"message", "type", "code"}}` with `code` the HTTP status and `type` the exception
 * name the engines' clients map (Iceberg Java's ErrorHandlers: a 404 whose type is
 * NoSuchNamespaceException is a missing namespace, any other 404 on a table route a missing
 * table; 406 is an unsupported operation).
 */
export interface IcebergErrorModel {
  error: { message: string; type: string; code: number };
}

/** REST-only codes (never seen by the problem+json API): status and exception type. */
const REST_CODES: Record<string, [number, string]> = {
  NO_SUCH_TABLE: [404, 'NoSuchTableException'],
  NO_SUCH_NAMESPACE: [404, 'NoSuchNamespaceException'],
  NO_SUCH_VIEW: [404, 'NoSuchViewException'],
  NO_SUCH_WAREHOUSE: [404, 'NoSuchWarehouseException'],
  UNSUPPORTED_OPERATION: [406, 'UnsupportedOperationException'],
  TABLE_RELOCATED: [422, 'UnprocessableEntityException'],
};

/** The exception type per status for every other code (the spec's examples). */
function typeOfStatus(status: number): string {
  switch (status) {
    case 400: case 413: case 415: return 'BadRequestException';
    case 401: return 'NotAuthorizedException';
    case 403: return 'ForbiddenException';
    case 404: return 'NotFoundException';
    case 406: return 'UnsupportedOperationException';
    case 409: return 'AlreadyExistsException';
    case 503: return 'ServiceUnavailableException';
    default: return status >= 500 ? 'ServerErrorException' : 'BadRequestException';
  }
}

export function icebergError(code: string, message: string): { status: number; body: IcebergErrorModel } {
  const rest = REST_CODES[code];
  const status = rest ? rest[0] : statusOf(code);
  return { status, body: { error: { message: `${message} [${code}]`, type: rest ? rest[1] : typeOfStatus(status), code: status } } };
}

/** Any thrown value as the spec's error body (an unexpected one is a 500 that names no internals). */
export function icebergErrorFrom(e: unknown, fallbackStatus?: number): { status: number; body: IcebergErrorModel } {
  if (isIpsError(e)) return icebergError(e.code, e.message);
  if (fallbackStatus !== undefined && fallbackStatus >= 400 && fallbackStatus < 500) {
    return { status: fallbackStatus, body: { error: { message: (e as Error).message ?? 'bad request', type: typeOfStatus(fallbackStatus), code: fallbackStatus } } };
  }
  return { status: 500, body: { error: { message: 'internal error; see the ips log', type: 'ServerErrorException', code: 500 } } };
}
