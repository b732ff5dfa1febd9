import { inspect } from 'node:util';
import { z } from 'zod';
import { IpsError } from '../errors.js';
import { randomId63 } from '../random.js';

/**
 * A credential held in memory: JSON.stringify, String() and console.log show `***`; only
 * reveal() gives the value (to the S3 client or catalog that needs it).
 */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return '***';
  }
  toJSON(): string {
    return '***';
  }
  [inspect.custom](): string {
    return 'Secret(***)';
  }
}

/** Names of source tables and consumers: they appear in ICDC table names, URLs and logs. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$/;
export const nameSchema = z.string().regex(NAME_PATTERN, 'use letters, digits, "_", "." and "-" (at most 200, starting with a letter or digit)');

export function checkName(kind: string, name: string): string {
  const r = nameSchema.safeParse(name);
  if (!r.success) throw new IpsError('INVALID_ARGUMENT', `invalid ${kind} name "${name}": ${r.error.issues[0]?.message ?? 'invalid'}`);
  return name;
}

/** A new 63-bit positive id (batches, audit rows), like Iceberg's snapshot ids: no shared counter. */
export function newId(): bigint {
  return randomId63();
}

/** 64-bit integers inside JSONB are decimal strings (exact in every JSON reader). */
export const int64String = z.string().regex(/^-?\d{1,19}$/, 'a 64-bit integer as a decimal string');
export const int64FromString = int64String.transform((s) => BigInt(s));
export const int64FromJson = z.union([int64FromString, z.bigint(), z.number().int().refine(Number.isSafeInteger).transform((n) => BigInt(n))]);

export function int64ToJson(v: bigint | null | undefined): string | null {
  return v === null || v === undefined ? null : v.toString();
}

/** Validates a database row; a row that does not fit the schema is a STATE_CORRUPT error. */
export function parseRow<S extends z.ZodType>(schema: S, row: unknown, what: string): z.output<S> {
  const r = schema.safeParse(row);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new IpsError('STATE_CORRUPT', `unexpected ${what} row in the state database: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'}`, {
      details: { issues: r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) },
    });
  }
  return r.data;
}

/** Validates caller input; failures are INVALID_ARGUMENT with the first issue. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new IpsError('INVALID_ARGUMENT', `invalid ${what}: ${issue ? `${issue.path.join('.') || 'value'}: ${issue.message}` : 'invalid'}`);
  }
  return r.data;
}

/** A bigint list as an INT8[] parameter: `= ANY($1::INT8[])`. */
export function int8Array(ids: readonly bigint[]): string {
  return `{${ids.map((i) => i.toString()).join(',')}}`;
}

export const stringMap = z.record(z.string(), z.string());
