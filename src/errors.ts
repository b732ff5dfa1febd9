/**
 * One error type for the whole service: a stable machine-readable `code` (the API and CLI
 * surface it verbatim) and a message that tells the user what to do next.
 */
export class IpsError extends Error {
  readonly code: string;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: string, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'IpsError';
    this.code = code;
    this.details = options?.details;
  }
}

export function isIpsError(e: unknown): e is IpsError {
  return e instanceof IpsError;
}

/** Short text of any thrown value, for wrapping lower-level failures. */
export function describeError(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
