import { IpsError } from '../errors.js';
import { murmur3x86_32 } from './murmur3.js';
import { bigIntToTwosComplementBE, formatDate, type Value } from './values.js';
import type { PrimitiveType } from './types.js';

/** Partition transforms (spec "Partition Transforms"), parsed from their JSON names. */
export type Transform =
  | { kind: 'identity' }
  | { kind: 'bucket'; n: number }
  | { kind: 'truncate'; width: number }
  | { kind: 'year' }
  | { kind: 'month' }
  | { kind: 'day' }
  | { kind: 'hour' }
  | { kind: 'void' }
  | { kind: 'unknown'; name: string };

export function parseTransform(name: string): Transform {
  const s = name.trim().toLowerCase();
  switch (s) {
    case 'identity':
    case 'year':
    case 'month':
    case 'day':
    case 'hour':
    case 'void':
      return { kind: s };
  }
  const m = /^(bucket|truncate)\[(\d+)\]$/.exec(s);
  if (m) {
    const n = Number(m[2]);
    return m[1] === 'bucket' ? { kind: 'bucket', n } : { kind: 'truncate', width: n };
  }
  // Unknown transforms still count for partition equality; they are never used for pruning.
  return { kind: 'unknown', name };
}

/** The type of the value a transform stores in the manifest's partition tuple. */
export function resultType(t: Transform, source: PrimitiveType): PrimitiveType {
  switch (t.kind) {
    case 'bucket':
    case 'year':
    case 'month':
    case 'hour':
      return { kind: 'int' };
    case 'day':
      return { kind: 'date' };
    default:
      return source;
  }
}

/** Transforms whose output order follows the source order: partition values bound the source. */
export function preservesOrder(t: Transform): boolean {
  return ['identity', 'year', 'month', 'day', 'hour', 'truncate'].includes(t.kind);
}

const US_PER_HOUR = 3_600_000_000n;
const US_PER_DAY = 86_400_000_000n;

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && (a < 0n) !== (b < 0n) ? q - 1n : q;
}

function le64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(BigInt.asIntN(64, v));
  return b;
}

/** The bytes the bucket hash runs over (spec Appendix B). */
function hashInput(type: PrimitiveType, v: Value): Uint8Array {
  switch (type.kind) {
    case 'int':
    case 'date':
      return le64(BigInt(v as number));
    case 'long':
    case 'time':
    case 'timestamp':
    case 'timestamptz':
      return le64(v as bigint);
    case 'timestamp_ns':
    case 'timestamptz_ns':
      // Nanosecond timestamps hash as their microsecond value, so buckets match µs columns.
      return le64(floorDiv(v as bigint, 1000n));
    case 'decimal':
      return bigIntToTwosComplementBE(v as bigint);
    case 'string':
      return Buffer.from(v as string, 'utf8');
    case 'uuid':
    case 'fixed':
    case 'binary':
      return v as Buffer;
    default:
      throw new IpsError('UNSUPPORTED_TRANSFORM', `bucket is not defined for type ${type.kind}`);
  }
}

export function bucketHash(type: PrimitiveType, v: Value): number {
  return murmur3x86_32(hashInput(type, v));
}

function truncateString(s: string, width: number): string {
  // Width counts code points, not UTF-16 units.
  const cps = Array.from(s);
  return cps.length <= width ? s : cps.slice(0, width).join('');
}

function daysOf(type: PrimitiveType, v: Value): number {
  if (type.kind === 'date') return v as number;
  const perDay = type.kind === 'timestamp_ns' || type.kind === 'timestamptz_ns' ? US_PER_DAY * 1000n : US_PER_DAY;
  return Number(floorDiv(v as bigint, perDay));
}

/** Apply a transform to a source value; null in, null out. */
export function applyTransform(t: Transform, type: PrimitiveType, v: Value | null): Value | null {
  if (v === null) return null;
  switch (t.kind) {
    case 'identity':
      return v;
    case 'void':
      return null;
    case 'bucket':
      return (bucketHash(type, v) & 0x7fffffff) % t.n;
    case 'truncate':
      switch (type.kind) {
        case 'int':
          return (v as number) - ((((v as number) % t.width) + t.width) % t.width);
        case 'long':
        case 'decimal': {
          const w = BigInt(t.width);
          const x = v as bigint;
          return x - (((x % w) + w) % w);
        }
        case 'string':
          return truncateString(v as string, t.width);
        case 'binary':
          return (v as Buffer).subarray(0, t.width);
        default:
          throw new IpsError('UNSUPPORTED_TRANSFORM', `truncate is not defined for type ${type.kind}`);
      }
    case 'day':
      return daysOf(type, v);
    case 'year':
    case 'month': {
      const d = new Date(daysOf(type, v) * 86_400_000);
      const years = d.getUTCFullYear() - 1970;
      return t.kind === 'year' ? years : years * 12 + d.getUTCMonth();
    }
    case 'hour': {
      const perHour = type.kind === 'timestamp_ns' || type.kind === 'timestamptz_ns' ? US_PER_HOUR * 1000n : US_PER_HOUR;
      return Number(floorDiv(v as bigint, perHour));
    }
    case 'unknown':
      throw new IpsError('UNSUPPORTED_TRANSFORM', `transform ${t.name} is not supported`);
  }
}

/**
 * Human-readable partition value as engines print it in paths: `2026-11-18` for day,
 * `2026-11` for month, `2026` for year, `2026-11-18-10` for hour.
 */
export function humanPartitionValue(t: Transform, v: Value | null, asJson: (v: Value) => string | number | boolean): string {
  if (v === null) return 'null';
  switch (t.kind) {
    case 'year':
      return String(1970 + (v as number));
    case 'month': {
      const m = v as number;
      const y = 1970 + Math.floor(m / 12);
      return `${y}-${String(((m % 12) + 12) % 12 + 1).padStart(2, '0')}`;
    }
    case 'day':
      return formatDate(v as number);
    case 'hour': {
      const h = v as number;
      return `${formatDate(Math.floor(h / 24))}-${String(((h % 24) + 24) % 24).padStart(2, '0')}`;
    }
    default:
      return String(asJson(v));
  }
}
