import { z } from 'zod';
import { IpsError } from '../errors.js';

/**
 * What a consumer does with each snapshot operation. Never a silent skip: every skipped or
 * narrowed snapshot is reported in the change set with its reason.
 */
export interface CapturePolicy {
  /** MERGE/UPDATE copy-on-write, INSERT OVERWRITE, upserts: added AND removed files by default. */
  overwrite: 'include' | 'added-only' | 'fail';
  /** Removed files and new delete files by default. */
  delete: 'include' | 'skip' | 'fail';
}

export const DEFAULT_POLICY: CapturePolicy = { overwrite: 'include', delete: 'include' };

export const capturePolicySchema = z.object({
  overwrite: z.enum(['include', 'added-only', 'fail']).default('include'),
  delete: z.enum(['include', 'skip', 'fail']).default('include'),
});

/** `overwrite=include,delete=skip` (the CLI form). */
export function parsePolicy(text: string | undefined): CapturePolicy {
  const policy: CapturePolicy = { ...DEFAULT_POLICY };
  if (!text) return policy;
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const [k, v] = part.split('=').map((x) => x?.trim());
    if (k === 'overwrite' && (v === 'include' || v === 'added-only' || v === 'fail')) policy.overwrite = v;
    else if (k === 'delete' && (v === 'include' || v === 'skip' || v === 'fail')) policy.delete = v;
    else {
      throw new IpsError('INVALID_ARGUMENT', `invalid policy "${part}": use overwrite=include|added-only|fail and delete=include|skip|fail`);
    }
  }
  return policy;
}
