// The IpsError a call fails with: tests assert codes, so anything else is a test failure.
import { expect } from 'vitest';
import { IpsError } from '../../src/errors.js';

/** The IpsError `fn` throws (fails when it returns or throws something else). */
export function thrown(fn: () => unknown): IpsError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(IpsError);
    return e as IpsError;
  }
  throw new Error('expected an error');
}

/** The IpsError `p` rejects with (fails when it resolves or rejects with something else). */
export async function rejection(p: Promise<unknown>): Promise<IpsError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(IpsError);
    return e as IpsError;
  }
  throw new Error('expected a rejection');
}
