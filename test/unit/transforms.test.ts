// Bucket hashing (spec Appendix B vectors), truncate, and the date/time transforms.
// Expectations: the spec's published hash values and transform examples, or Date arithmetic.
import { describe, expect, it } from 'vitest';
import { murmur3x86_32 } from '../../src/iceberg/murmur3.js';
import type { PrimitiveType } from '../../src/iceberg/types.js';
import { applyTransform, bucketHash, parseTransform, preservesOrder, resultType, type Transform } from '../../src/iceberg/transforms.js';

const hex = (h: string): Buffer => Buffer.from(h.replace(/\s+/g, ''), 'hex');
const P = (kind: string): PrimitiveType => ({ kind } as PrimitiveType);
const usOf = (isoWithZone: string): bigint => BigInt(Date.parse(isoWithZone)) * 1000n;
const daysOf = (y: number, m: number, d: number): number => Date.UTC(y, m - 1, d) / 86_400_000;

describe('murmur3 x86 32-bit (seed 0) and bucket hash inputs: spec Appendix B test values', () => {
  // apache/iceberg format/spec.md, "Appendix B: 32-bit Hash Requirements".
  it('int 34 and long 34 hash alike (ints hash as longs): 2017239379', () => {
    expect(bucketHash(P('int'), 34)).toBe(2017239379);
    expect(bucketHash(P('long'), 34n)).toBe(2017239379);
    // the raw hash of the 8 little-endian bytes
    expect(murmur3x86_32(hex('2200000000000000'))).toBe(2017239379);
  });

  it('decimal 14.20 (unscaled 1420, minimal big-endian bytes 05 8C): -500754589', () => {
    expect(bucketHash({ kind: 'decimal', precision: 9, scale: 2 }, 1420n)).toBe(-500754589);
    expect(murmur3x86_32(hex('058c'))).toBe(-500754589);
  });

  it('date 2017-11-16: -653330422', () => {
    expect(daysOf(2017, 11, 16)).toBe(17486);
    expect(bucketHash(P('date'), daysOf(2017, 11, 16))).toBe(-653330422);
  });

  it('time 22:31:08: -662762989', () => {
    const us = BigInt(22 * 3600 + 31 * 60 + 8) * 1_000_000n;
    expect(bucketHash(P('time'), us)).toBe(-662762989);
  });

  it('timestamp 2017-11-16T22:31:08: -2047944441', () => {
    expect(bucketHash(P('timestamp'), usOf('2017-11-16T22:31:08Z'))).toBe(-2047944441);
  });

  it('timestamptz 2017-11-16T14:31:08-08:00: -2047944441', () => {
    expect(bucketHash(P('timestamptz'), usOf('2017-11-16T14:31:08-08:00'))).toBe(-2047944441);
  });

  it('timestamp_ns hashes its microsecond value, so it matches the µs vector', () => {
    const ns = usOf('2017-11-16T22:31:08Z') * 1000n + 999n;
    expect(bucketHash(P('timestamp_ns'), ns)).toBe(-2047944441);
    expect(bucketHash(P('timestamptz_ns'), ns)).toBe(-2047944441);
  });

  it('string "iceberg" (UTF-8 bytes): 1210000089', () => {
    expect(bucketHash(P('string'), 'iceberg')).toBe(1210000089);
    expect(murmur3x86_32(Buffer.from('iceberg', 'utf8'))).toBe(1210000089);
  });

  it('uuid f79c3e09-677c-4bbd-a479-3f349cb785e7 (16 big-endian bytes): 1488055340', () => {
    expect(bucketHash(P('uuid'), hex('F7 9C 3E 09 67 7C 4B BD A4 79 3F 34 9C B7 85 E7'))).toBe(1488055340);
  });

  it('fixed / binary 00 01 02 03: -188683207', () => {
    expect(bucketHash({ kind: 'fixed', length: 4 }, hex('00010203'))).toBe(-188683207);
    expect(bucketHash(P('binary'), hex('00010203'))).toBe(-188683207);
  });

  it('empty input with seed 0 hashes to 0 (no blocks, no tail, length 0)', () => {
    expect(murmur3x86_32(new Uint8Array(0))).toBe(0);
  });

  it('bucket[N] = (hash & Integer.MAX_VALUE) % N, recomputed from the spec vectors', () => {
    expect(applyTransform({ kind: 'bucket', n: 100 }, P('long'), 34n)).toBe(2017239379 % 100);
    expect(applyTransform({ kind: 'bucket', n: 16 }, P('string'), 'iceberg')).toBe(1210000089 % 16);
    // negative hash: drop the sign bit, do not take Math.abs
    expect(applyTransform({ kind: 'bucket', n: 16 }, P('binary'), hex('00010203'))).toBe(((-188683207 & 0x7fffffff) >>> 0) % 16);
    expect(((-188683207 & 0x7fffffff) >>> 0) % 16).not.toBe(Math.abs(-188683207) % 16);
    expect(applyTransform({ kind: 'bucket', n: 7 }, P('int'), null)).toBe(null);
  });
});

describe('truncate[W] (spec "Truncate Transform Details")', () => {
  const tr = (w: number): Transform => ({ kind: 'truncate', width: w });

  it('int: v - (((v % W) + W) % W), so negatives round towards -infinity', () => {
    expect(applyTransform(tr(10), P('int'), 1)).toBe(0);
    expect(applyTransform(tr(10), P('int'), -1)).toBe(-10);
    expect(applyTransform(tr(10), P('int'), 10)).toBe(10);
    expect(applyTransform(tr(10), P('int'), -10)).toBe(-10);
    expect(applyTransform(tr(10), P('int'), -11)).toBe(-20);
    expect(applyTransform(tr(7), P('int'), 22)).toBe(21);
    expect(applyTransform(tr(3), P('int'), 0)).toBe(0);
  });

  it('long: same formula on bigints, exact beyond 2^53', () => {
    expect(applyTransform(tr(10), P('long'), 1n)).toBe(0n);
    expect(applyTransform(tr(10), P('long'), -1n)).toBe(-10n);
    expect(applyTransform(tr(10), P('long'), 9007199254740993n)).toBe(9007199254740990n);
  });

  it('decimal: width applies to the unscaled value (10.65 -> 10.50 for truncate[50])', () => {
    const d: PrimitiveType = { kind: 'decimal', precision: 9, scale: 2 };
    expect(applyTransform(tr(50), d, 1065n)).toBe(1050n);
    expect(applyTransform(tr(50), d, -1065n)).toBe(-1100n);
  });

  it('string: first W code points, never splitting a surrogate pair', () => {
    expect(applyTransform(tr(3), P('string'), 'iceberg')).toBe('ice');
    expect(applyTransform(tr(10), P('string'), 'ice')).toBe('ice');
    const clef = '\u{1D11E}';
    const out = applyTransform(tr(2), P('string'), `${clef}${clef}x`) as string;
    expect(out).toBe(`${clef}${clef}`);
    expect(out.length).toBe(4); // 2 code points, 4 UTF-16 units
    expect(applyTransform(tr(1), P('string'), '\u6d4b\u8bd5')).toBe('\u6d4b');
    // width 3 on "a𝄞b": a, 𝄞, b (a UTF-16 slice(0, 3) would give "a𝄞" without b)
    expect(applyTransform(tr(3), P('string'), `a${clef}bc`)).toBe(`a${clef}b`);
  });

  it('binary: first W bytes', () => {
    const out = applyTransform(tr(3), P('binary'), hex('0102030405')) as Buffer;
    expect(out.toString('hex')).toBe('010203');
    expect((applyTransform(tr(8), P('binary'), hex('01')) as Buffer).toString('hex')).toBe('01');
  });
});

describe('year / month / day / hour', () => {
  const Y: Transform = { kind: 'year' };
  const M: Transform = { kind: 'month' };
  const D: Transform = { kind: 'day' };
  const H: Transform = { kind: 'hour' };

  it('dates after 1970', () => {
    const d = daysOf(2017, 11, 16);
    expect(applyTransform(Y, P('date'), d)).toBe(47);
    expect(applyTransform(M, P('date'), d)).toBe(47 * 12 + 10);
    expect(applyTransform(D, P('date'), d)).toBe(17486);
  });

  it('timestamps after 1970 (µs and ns)', () => {
    const us = usOf('2017-11-16T22:31:08Z');
    const hours = Math.floor(Date.parse('2017-11-16T22:31:08Z') / 3_600_000);
    expect(applyTransform(H, P('timestamp'), us)).toBe(hours);
    expect(applyTransform(D, P('timestamptz'), us)).toBe(17486);
    expect(applyTransform(M, P('timestamp'), us)).toBe(574);
    expect(applyTransform(Y, P('timestamp'), us)).toBe(47);
    expect(applyTransform(H, P('timestamp_ns'), us * 1000n)).toBe(hours);
    expect(applyTransform(D, P('timestamptz_ns'), us * 1000n)).toBe(17486);
  });

  it('pre-1970 values floor towards -infinity (1969-12-31T23:59:59.999999 is year/month/day/hour -1)', () => {
    for (const t of [Y, M, D, H]) expect(applyTransform(t, P('timestamp'), -1n), t.kind).toBe(-1);
    expect(applyTransform(D, P('timestamp_ns'), -1n)).toBe(-1);
    expect(applyTransform(H, P('timestamp_ns'), -1n)).toBe(-1);
    expect(applyTransform(Y, P('date'), -1)).toBe(-1);
    expect(applyTransform(M, P('date'), -1)).toBe(-1);
  });

  it('further before 1970', () => {
    // 1969-01-01 is day -365: year -1, month -12
    expect(applyTransform(Y, P('date'), daysOf(1969, 1, 1))).toBe(-1);
    expect(applyTransform(M, P('date'), daysOf(1969, 1, 1))).toBe(-12);
    // 1900-03-15: year -70, month -70*12 + 2
    expect(applyTransform(Y, P('date'), daysOf(1900, 3, 15))).toBe(-70);
    expect(applyTransform(M, P('date'), daysOf(1900, 3, 15))).toBe(-838);
    // 1969-12-31T22:59:59.999999Z: hour -2, day -1
    const us = usOf('1969-12-31T22:59:59.999Z') + 999n;
    expect(applyTransform(H, P('timestamptz'), us)).toBe(-2);
    expect(applyTransform(D, P('timestamptz'), us)).toBe(-1);
    // exactly midnight 1969-12-31: day -1, hour -24
    expect(applyTransform(D, P('timestamp'), usOf('1969-12-31T00:00:00Z'))).toBe(-1);
    expect(applyTransform(H, P('timestamp'), usOf('1969-12-31T00:00:00Z'))).toBe(-24);
  });

  it('identity, void, and null inputs', () => {
    expect(applyTransform({ kind: 'identity' }, P('long'), 5n)).toBe(5n);
    expect(applyTransform({ kind: 'void' }, P('long'), 5n)).toBe(null);
    for (const t of [Y, M, D, H]) expect(applyTransform(t, P('timestamp'), null)).toBe(null);
  });
});

describe('transform names and result types', () => {
  it('parses the spec JSON names', () => {
    expect(parseTransform('bucket[16]')).toEqual({ kind: 'bucket', n: 16 });
    expect(parseTransform('truncate[10]')).toEqual({ kind: 'truncate', width: 10 });
    expect(parseTransform('day')).toEqual({ kind: 'day' });
    expect(parseTransform('void')).toEqual({ kind: 'void' });
    expect(parseTransform('zorder').kind).toBe('unknown');
  });

  it('result types: bucket/year/month/hour int, day date, identity/truncate the source type', () => {
    const ts = P('timestamp');
    expect(resultType({ kind: 'bucket', n: 4 }, P('string'))).toEqual({ kind: 'int' });
    expect(resultType({ kind: 'year' }, ts)).toEqual({ kind: 'int' });
    expect(resultType({ kind: 'month' }, ts)).toEqual({ kind: 'int' });
    expect(resultType({ kind: 'hour' }, ts)).toEqual({ kind: 'int' });
    expect(resultType({ kind: 'day' }, ts)).toEqual({ kind: 'date' });
    expect(resultType({ kind: 'identity' }, P('string'))).toEqual({ kind: 'string' });
    expect(resultType({ kind: 'truncate', width: 3 }, P('long'))).toEqual({ kind: 'long' });
  });

  it('order-preserving transforms are exactly identity, year, month, day, hour, truncate', () => {
    for (const n of ['identity', 'year', 'month', 'day', 'hour', 'truncate[4]']) expect(preservesOrder(parseTransform(n)), n).toBe(true);
    for (const n of ['bucket[4]', 'void', 'zorder']) expect(preservesOrder(parseTransform(n)), n).toBe(false);
  });
});
