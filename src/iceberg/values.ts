import { IpsError } from '../errors.js';
import type { PrimitiveType } from './types.js';

/**
 * Iceberg values in memory, per primitive type:
 * boolean → boolean; int, date (days), float, double → number; long, time (µs), timestamp(tz)
 * (µs), timestamp(tz)_ns (ns) → bigint; decimal → bigint unscaled value (scale from the type);
 * string → string; uuid, fixed, binary → Buffer.
 */
export type Value = boolean | number | bigint | string | Buffer;

/** JSON form of a value: the spec's JSON single-value serialisation, with longs as strings. */
export type JsonValue = boolean | number | string | null;

const US_PER_DAY = 86_400_000_000n;

/**
 * Decode a bound stored with the binary single-value serialisation (spec Appendix D).
 * Type promotion never rewrites bounds, so the byte length tells the type at write time:
 * a 4-byte bound on a long column is an int, on a double a float, and on a timestamp a date.
 */
export function decodeBinaryValue(type: PrimitiveType, bytes: Buffer): Value {
  const bad = (): never => {
    throw new IpsError('INVALID_BOUND', `a ${bytes.length}-byte value cannot be a ${type.kind} bound`);
  };
  switch (type.kind) {
    case 'boolean':
      return bytes.length === 1 ? bytes[0] !== 0 : bad();
    case 'int':
    case 'date':
      return bytes.length === 4 ? bytes.readInt32LE(0) : bad();
    case 'long':
    case 'time':
      if (bytes.length === 8) return bytes.readBigInt64LE(0);
      return bytes.length === 4 ? BigInt(bytes.readInt32LE(0)) : bad();
    case 'timestamp':
    case 'timestamptz':
      if (bytes.length === 8) return bytes.readBigInt64LE(0);
      return bytes.length === 4 ? BigInt(bytes.readInt32LE(0)) * US_PER_DAY : bad();
    case 'timestamp_ns':
    case 'timestamptz_ns':
      if (bytes.length === 8) return bytes.readBigInt64LE(0);
      return bytes.length === 4 ? BigInt(bytes.readInt32LE(0)) * US_PER_DAY * 1000n : bad();
    case 'float':
      return bytes.length === 4 ? bytes.readFloatLE(0) : bad();
    case 'double':
      if (bytes.length === 8) return bytes.readDoubleLE(0);
      return bytes.length === 4 ? bytes.readFloatLE(0) : bad();
    case 'decimal':
      return bytes.length > 0 ? bigIntFromTwosComplementBE(bytes) : bad();
    case 'string':
      return bytes.toString('utf8');
    case 'uuid':
      return bytes.length === 16 ? Buffer.from(bytes) : bad();
    case 'fixed':
    case 'binary':
      return Buffer.from(bytes);
    case 'other':
      throw new IpsError('UNSUPPORTED_TYPE', `bounds of type ${type.name} are not decoded`);
  }
}

export function bigIntFromTwosComplementBE(bytes: Buffer): bigint {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  if (bytes.length > 0 && (bytes[0]! & 0x80) !== 0) n -= 1n << BigInt(bytes.length * 8);
  return n;
}

export function bigIntToTwosComplementBE(v: bigint): Buffer {
  // Minimal byte length that keeps the sign bit right.
  let len = 1;
  while (v < -(1n << BigInt(len * 8 - 1)) || v >= 1n << BigInt(len * 8 - 1)) len++;
  const out = Buffer.alloc(len);
  let x = BigInt.asUintN(len * 8, v);
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

function pad(n: bigint | number, width: number): string {
  return String(n).padStart(width, '0');
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return (a % b !== 0n && (a < 0n) !== (b < 0n)) ? q - 1n : q;
}

const pad2 = (n: number): string => String(n).padStart(2, '0');

/**
 * ISO date of a day number (days since 1970-01-01), for any day a bound can hold: the civil
 * calendar computed in integers (H. Hinnant's civil_from_days), because Date stops at ±275,760
 * years and a hostile bound must not turn a description into a crash. Years outside 0–9999 are
 * written as ISO 8601 expanded years (±YYYYYY), as Date's toISOString does.
 */
export function formatDate(days: number): string {
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  const y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  const year = y >= 0 && y <= 9999 ? String(y).padStart(4, '0') : `${y < 0 ? '-' : '+'}${String(Math.abs(y)).padStart(6, '0')}`;
  return `${year}-${pad2(m)}-${pad2(d)}`;
}

/** Time of day from units since midnight, `digits` fractional digits (6 for µs, 9 for ns). */
function formatTimeOfDay(units: bigint, perSecond: bigint, digits: number): string {
  const secs = units / perSecond;
  const frac = units % perSecond;
  return `${pad(secs / 3600n, 2)}:${pad((secs / 60n) % 60n, 2)}:${pad(secs % 60n, 2)}.${pad(frac, digits)}`;
}

export function formatTimestamp(units: bigint, perSecond: bigint, digits: number, zone: boolean): string {
  // In doubles while every intermediate is an exact integer (|units| and a day's units below
  // 2^53: microseconds within ±285 years of 1970, nanoseconds within ±104 days): the bigint
  // path below gives the same text, several times slower, and stays for the rest.
  if (units >= -MAX_EXACT && units <= MAX_EXACT && perSecond <= 1_000_000_000n) return formatTimestampExact(Number(units), Number(perSecond), digits, zone);
  return formatTimestampBig(units, perSecond, digits, zone);
}

const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER);

function formatTimestampExact(units: number, perSecond: number, digits: number, zone: boolean): string {
  const perDay = perSecond * 86_400;
  // Exact: the quotient of two exact integers never rounds across an integer here (it would take
  // 1/perDay below half an ulp of the day number, and |days| · perDay ≤ 2^53 keeps it above),
  // and a day's units and their multiples are representable, so the remainder is too.
  const days = Math.floor(units / perDay);
  const rest = units - days * perDay;
  const secs = Math.floor(rest / perSecond);
  const frac = rest - secs * perSecond;
  const time = `${pad2(Math.floor(secs / 3600))}:${pad2(Math.floor(secs / 60) % 60)}:${pad2(secs % 60)}.${String(frac).padStart(digits, '0')}`;
  return `${formatDate(days)}T${time}${zone ? '+00:00' : ''}`;
}

/** formatTimestamp in bigints alone (what the fast path must equal; tests compare the two). */
export function formatTimestampBig(units: bigint, perSecond: bigint, digits: number, zone: boolean): string {
  const perDay = perSecond * 86_400n;
  const days = floorDiv(units, perDay);
  const rest = units - days * perDay;
  return `${formatDate(Number(days))}T${formatTimeOfDay(rest, perSecond, digits)}${zone ? '+00:00' : ''}`;
}

export function formatDecimal(unscaled: bigint, scale: number): string {
  const neg = unscaled < 0n;
  const digits = (neg ? -unscaled : unscaled).toString();
  if (scale <= 0) return (neg ? '-' : '') + digits + '0'.repeat(-scale);
  const padded = digits.padStart(scale + 1, '0');
  return `${neg ? '-' : ''}${padded.slice(0, -scale)}.${padded.slice(-scale)}`;
}

export function formatUuid(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function toJsonValue(type: PrimitiveType, v: Value | null | undefined): JsonValue {
  if (v === null || v === undefined) return null;
  switch (type.kind) {
    case 'boolean': return Boolean(v);
    case 'int':
    case 'float':
    case 'double': return Number(v);
    case 'long': return String(v);
    case 'date': return formatDate(Number(v));
    case 'time': return formatTimeOfDay(BigInt(v as bigint), 1_000_000n, 6);
    case 'timestamp': return formatTimestamp(BigInt(v as bigint), 1_000_000n, 6, false);
    case 'timestamptz': return formatTimestamp(BigInt(v as bigint), 1_000_000n, 6, true);
    case 'timestamp_ns': return formatTimestamp(BigInt(v as bigint), 1_000_000_000n, 9, false);
    case 'timestamptz_ns': return formatTimestamp(BigInt(v as bigint), 1_000_000_000n, 9, true);
    case 'decimal': return formatDecimal(BigInt(v as bigint), type.scale);
    case 'string': return String(v);
    case 'uuid': return formatUuid(v as Buffer);
    case 'fixed':
    case 'binary': return (v as Buffer).toString('hex');
    case 'other': return Buffer.isBuffer(v) ? v.toString('hex') : String(v);
  }
}

/**
 * Total order used to merge bounds across files (Java `Comparators`): strings by Unicode code
 * point, which equals unsigned UTF-8 byte order (JS `<` compares UTF-16 units and is wrong for
 * astral characters); binary and fixed by unsigned bytes; floats with -0.0 before +0.0.
 */
export function compareValues(type: PrimitiveType, a: Value, b: Value): number {
  switch (type.kind) {
    case 'string':
      return Buffer.compare(Buffer.from(a as string, 'utf8'), Buffer.from(b as string, 'utf8'));
    case 'uuid':
    case 'fixed':
    case 'binary':
      return Buffer.compare(a as Buffer, b as Buffer);
    case 'boolean':
      return Number(a) - Number(b);
    case 'float':
    case 'double': {
      const x = a as number;
      const y = b as number;
      if (x === y) return Object.is(x, -0) && Object.is(y, 0) ? -1 : Object.is(x, 0) && Object.is(y, -0) ? 1 : 0;
      return x < y ? -1 : 1;
    }
    default: {
      const x = a as bigint | number;
      const y = b as bigint | number;
      return x < y ? -1 : x > y ? 1 : 0;
    }
  }
}

/** The binary single-value serialisation (spec Appendix D), the inverse of decodeBinaryValue. */
export function encodeBinaryValue(type: PrimitiveType, v: Value): Buffer {
  switch (type.kind) {
    case 'boolean':
      return Buffer.from([v ? 1 : 0]);
    case 'int':
    case 'date': {
      const n = Number(v);
      if (!Number.isInteger(n) || n < -(2 ** 31) || n >= 2 ** 31) throw new IpsError('INVALID_BOUND', `${String(v)} does not fit a 4-byte ${type.kind} value`);
      const b = Buffer.alloc(4);
      b.writeInt32LE(n);
      return b;
    }
    case 'long':
    case 'time':
    case 'timestamp':
    case 'timestamptz':
    case 'timestamp_ns':
    case 'timestamptz_ns': {
      const x = BigInt(v as bigint);
      // A promoted value (a date bound read as a timestamp) may not fit 64 bits any more.
      if (x < -(2n ** 63n) || x >= 2n ** 63n) throw new IpsError('INVALID_BOUND', `${x} does not fit an 8-byte ${type.kind} value`);
      const b = Buffer.alloc(8);
      b.writeBigInt64LE(x);
      return b;
    }
    case 'float': {
      const b = Buffer.alloc(4);
      b.writeFloatLE(Number(v));
      return b;
    }
    case 'double': {
      const b = Buffer.alloc(8);
      b.writeDoubleLE(Number(v));
      return b;
    }
    case 'decimal':
      return bigIntToTwosComplementBE(BigInt(v as bigint));
    case 'string':
      return Buffer.from(v as string, 'utf8');
    case 'uuid':
    case 'fixed':
    case 'binary':
      return Buffer.from(v as Buffer);
    case 'other':
      throw new IpsError('UNSUPPORTED_TYPE', `values of type ${type.name} have no binary form`);
  }
}
