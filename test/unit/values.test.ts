// Bounds (binary single-value serialisation, spec Appendix D), their ordering, and the JSON
// single-value form. Expected values are hand-derived from the spec text or computed with
// Node's Buffer / Date / BigInt independently of src/.
import { describe, expect, it } from 'vitest';
import { IpsError } from '../../src/errors.js';
import type { PrimitiveType } from '../../src/iceberg/types.js';
import {
  bigIntFromTwosComplementBE,
  bigIntToTwosComplementBE,
  compareValues,
  decodeBinaryValue,
  encodeBinaryValue,
  formatTimestamp,
  formatTimestampBig,
  toJsonValue,
} from '../../src/iceberg/values.js';

const T = {
  boolean: { kind: 'boolean' },
  int: { kind: 'int' },
  long: { kind: 'long' },
  float: { kind: 'float' },
  double: { kind: 'double' },
  date: { kind: 'date' },
  time: { kind: 'time' },
  timestamp: { kind: 'timestamp' },
  timestamptz: { kind: 'timestamptz' },
  timestamp_ns: { kind: 'timestamp_ns' },
  timestamptz_ns: { kind: 'timestamptz_ns' },
  string: { kind: 'string' },
  uuid: { kind: 'uuid' },
  binary: { kind: 'binary' },
} satisfies Record<string, PrimitiveType>;
const dec = (precision: number, scale: number): PrimitiveType => ({ kind: 'decimal', precision, scale });
const fixed = (length: number): PrimitiveType => ({ kind: 'fixed', length });
const hex = (h: string): Buffer => Buffer.from(h.replace(/\s+/g, ''), 'hex');

// 2017-11-16T22:31:08.123456Z, the spec's example instant, from Date arithmetic.
const MS_2017 = Date.UTC(2017, 10, 16, 22, 31, 8);
const US_2017 = BigInt(MS_2017) * 1000n + 123_456n;
const DAYS_2017 = MS_2017 / 86_400_000 | 0; // floor: positive
const le8 = (v: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(v);
  return b;
};
const le4 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v);
  return b;
};

describe('decodeBinaryValue: one case per primitive type', () => {
  it('boolean: 0x00 false, any non-zero byte true', () => {
    expect(decodeBinaryValue(T.boolean, hex('00'))).toBe(false);
    expect(decodeBinaryValue(T.boolean, hex('01'))).toBe(true);
    expect(decodeBinaryValue(T.boolean, hex('ff'))).toBe(true);
  });

  it('int: 4-byte little-endian, signed', () => {
    expect(decodeBinaryValue(T.int, hex('22000000'))).toBe(34);
    expect(decodeBinaryValue(T.int, hex('ffffffff'))).toBe(-1);
    expect(decodeBinaryValue(T.int, hex('00000080'))).toBe(-2147483648);
    expect(decodeBinaryValue(T.int, hex('ffffff7f'))).toBe(2147483647);
  });

  it('long: 8-byte little-endian, exact beyond 2^53', () => {
    expect(decodeBinaryValue(T.long, hex('2200000000000000'))).toBe(34n);
    expect(decodeBinaryValue(T.long, hex('ffffffffffffffff'))).toBe(-1n);
    // 2^53 + 1 = 0x0020000000000001
    expect(decodeBinaryValue(T.long, hex('0100000000002000'))).toBe(9007199254740993n);
    expect(decodeBinaryValue(T.long, hex('ffffffffffffff7f'))).toBe(9223372036854775807n);
    expect(decodeBinaryValue(T.long, hex('0000000000000080'))).toBe(-9223372036854775808n);
  });

  it('float and double: IEEE754 little-endian', () => {
    // 1.5f = 0x3FC00000, 1.5d = 0x3FF8000000000000
    expect(decodeBinaryValue(T.float, hex('0000c03f'))).toBe(1.5);
    expect(decodeBinaryValue(T.double, hex('000000000000f83f'))).toBe(1.5);
    // -0.0 keeps its sign
    expect(Object.is(decodeBinaryValue(T.double, hex('0000000000000080')), -0)).toBe(true);
    expect(Object.is(decodeBinaryValue(T.float, hex('00000080')), -0)).toBe(true);
    const b = Buffer.alloc(8);
    b.writeDoubleLE(0.9);
    expect(decodeBinaryValue(T.double, b)).toBe(0.9);
  });

  it('date: days since 1970-01-01 as 4-byte int, incl. pre-1970', () => {
    expect(decodeBinaryValue(T.date, le4(DAYS_2017))).toBe(17486);
    expect(decodeBinaryValue(T.date, hex('ffffffff'))).toBe(-1);
  });

  it('time: microseconds since midnight as 8-byte long', () => {
    const us = BigInt((22 * 3600 + 31 * 60 + 8) * 1_000_000 + 123_456);
    expect(decodeBinaryValue(T.time, le8(us))).toBe(81_068_123_456n);
  });

  it('timestamp / timestamptz: microseconds since epoch', () => {
    expect(decodeBinaryValue(T.timestamp, le8(US_2017))).toBe(1_510_871_468_123_456n);
    expect(decodeBinaryValue(T.timestamptz, le8(US_2017))).toBe(1_510_871_468_123_456n);
    expect(decodeBinaryValue(T.timestamp, le8(-1n))).toBe(-1n);
  });

  it('timestamp_ns / timestamptz_ns: nanoseconds since epoch', () => {
    const ns = US_2017 * 1000n + 789n;
    expect(decodeBinaryValue(T.timestamp_ns, le8(ns))).toBe(1_510_871_468_123_456_789n);
    expect(decodeBinaryValue(T.timestamptz_ns, le8(ns))).toBe(1_510_871_468_123_456_789n);
  });

  it('string: UTF-8 bytes without length, incl. multi-byte and astral characters', () => {
    expect(decodeBinaryValue(T.string, hex('69636562657267'))).toBe('iceberg');
    // U+00E9 = C3 A9, U+1D11E = F0 9D 84 9E
    expect(decodeBinaryValue(T.string, hex('c3a9 f09d849e'))).toBe('\u00e9\u{1D11E}');
    expect(decodeBinaryValue(T.string, Buffer.alloc(0))).toBe('');
  });

  it('uuid: 16 bytes big-endian', () => {
    const v = decodeBinaryValue(T.uuid, hex('f79c3e09677c4bbda4793f349cb785e7'));
    expect(Buffer.isBuffer(v)).toBe(true);
    expect((v as Buffer).toString('hex')).toBe('f79c3e09677c4bbda4793f349cb785e7');
  });

  it('fixed and binary: raw bytes, returned as a copy', () => {
    const src = hex('000102ff');
    const f = decodeBinaryValue(fixed(4), src) as Buffer;
    const b = decodeBinaryValue(T.binary, src) as Buffer;
    expect([...f]).toEqual([0, 1, 2, 255]);
    expect([...b]).toEqual([0, 1, 2, 255]);
    src[0] = 9;
    expect(f[0]).toBe(0);
    expect(b[0]).toBe(0);
  });

  it('rejects byte lengths no type could have written, with code INVALID_BOUND', () => {
    const bad: [PrimitiveType, Buffer][] = [
      [T.int, hex('0100')],
      [T.long, hex('010000')],
      [T.boolean, hex('0000')],
      [T.date, hex('0100000000000000')],
      [T.uuid, hex('00')],
      [T.float, hex('0000000000000000')],
      [dec(9, 2), Buffer.alloc(0)],
    ];
    for (const [t, b] of bad) {
      let err: unknown;
      try {
        decodeBinaryValue(t, b);
      } catch (e) {
        err = e;
      }
      expect(err, `${t.kind} ${b.length}`).toBeInstanceOf(IpsError);
      expect((err as IpsError).code).toBe('INVALID_BOUND');
    }
  });
});

describe('decodeBinaryValue: type promotion never rewrote the bound (spec "Schema Evolution")', () => {
  it('a 4-byte bound on a long column is an int', () => {
    expect(decodeBinaryValue(T.long, hex('22000000'))).toBe(34n);
    expect(decodeBinaryValue(T.long, hex('feffffff'))).toBe(-2n);
  });

  it('a 4-byte bound on a double column is a float', () => {
    expect(decodeBinaryValue(T.double, hex('0000c03f'))).toBe(1.5);
    // 0.1f widened to double is 0.100000001490116119384765625, not 0.1
    expect(decodeBinaryValue(T.double, hex('cdcccc3d'))).toBe(Math.fround(0.1));
    expect(decodeBinaryValue(T.double, hex('cdcccc3d'))).not.toBe(0.1);
  });

  it('a 4-byte bound on a timestamp column is a date in days, converted to microseconds', () => {
    // 2017-11-16 = day 17486; midnight of that day in µs
    const expected = BigInt(Date.UTC(2017, 10, 16)) * 1000n;
    expect(decodeBinaryValue(T.timestamp, le4(17486))).toBe(expected);
    expect(decodeBinaryValue(T.timestamptz, le4(17486))).toBe(expected);
    // pre-1970: day -1 is 1969-12-31T00:00Z
    expect(decodeBinaryValue(T.timestamp, le4(-1))).toBe(BigInt(Date.UTC(1969, 11, 31)) * 1000n);
  });

  it('a 4-byte bound on a timestamp_ns column is a date in days, converted to nanoseconds', () => {
    const expected = BigInt(Date.UTC(2017, 10, 16)) * 1_000_000n;
    expect(decodeBinaryValue(T.timestamp_ns, le4(17486))).toBe(expected);
    expect(decodeBinaryValue(T.timestamptz_ns, le4(17486))).toBe(expected);
  });
});

describe('decimal: unscaled two\'s-complement big-endian', () => {
  it('decodes 14.20 (unscaled 1420 = 0x058C) and -14.20 (0xFA74)', () => {
    expect(decodeBinaryValue(dec(9, 2), hex('058c'))).toBe(1420n);
    expect(decodeBinaryValue(dec(9, 2), hex('fa74'))).toBe(-1420n);
  });

  it('decodes single bytes at the sign boundary', () => {
    expect(decodeBinaryValue(dec(3, 0), hex('00'))).toBe(0n);
    expect(decodeBinaryValue(dec(3, 0), hex('7f'))).toBe(127n);
    expect(decodeBinaryValue(dec(3, 0), hex('80'))).toBe(-128n);
    expect(decodeBinaryValue(dec(3, 0), hex('ff'))).toBe(-1n);
    expect(decodeBinaryValue(dec(3, 0), hex('0080'))).toBe(128n);
    expect(decodeBinaryValue(dec(3, 0), hex('ff7f'))).toBe(-129n);
  });

  it('accepts non-minimal (sign-extended) encodings of any length', () => {
    expect(bigIntFromTwosComplementBE(hex('000001'))).toBe(1n);
    expect(bigIntFromTwosComplementBE(hex('ffffffff'))).toBe(-1n);
    expect(bigIntFromTwosComplementBE(hex('fffffffe'))).toBe(-2n);
  });

  it('decodes 16-byte decimal(38, s) extremes', () => {
    const max = 10n ** 38n - 1n;
    const posHex = max.toString(16).padStart(32, '0');
    const negHex = ((1n << 128n) - max).toString(16).padStart(32, '0');
    expect(decodeBinaryValue(dec(38, 0), hex(posHex))).toBe(max);
    expect(decodeBinaryValue(dec(38, 0), hex(negHex))).toBe(-max);
  });

  it('encodes with the minimum number of bytes (hash input, spec Appendix B note 2)', () => {
    const cases: [bigint, string][] = [
      [0n, '00'], [1n, '01'], [127n, '7f'], [128n, '0080'], [-1n, 'ff'], [-128n, '80'],
      [-129n, 'ff7f'], [1420n, '058c'], [-1420n, 'fa74'], [32767n, '7fff'], [32768n, '008000'],
      [-32768n, '8000'], [-32769n, 'ff7fff'],
    ];
    for (const [v, h] of cases) expect(bigIntToTwosComplementBE(v).toString('hex'), String(v)).toBe(h);
    for (const v of [10n ** 38n - 1n, -(10n ** 38n) + 1n, 2n ** 63n, -(2n ** 63n)]) {
      expect(bigIntFromTwosComplementBE(bigIntToTwosComplementBE(v))).toBe(v);
    }
  });
});

describe('compareValues: the order bounds are merged in', () => {
  it('strings by Unicode code point (= unsigned UTF-8 bytes), not by UTF-16 units', () => {
    const astral = '\u{1D11E}'; // musical G clef, UTF-16 D834 DD1E
    const replacement = '\uFFFD';
    const privateUse = '\uE000';
    // JS `<` compares UTF-16 code units: the surrogate D834 sorts before E000 and FFFD ...
    expect(astral < replacement).toBe(true);
    expect(astral < privateUse).toBe(true);
    // ... but in code-point / UTF-8 byte order U+1D11E is the larger one.
    expect(Buffer.compare(Buffer.from(astral), Buffer.from(replacement))).toBe(1);
    expect(compareValues(T.string, astral, replacement)).toBeGreaterThan(0);
    expect(compareValues(T.string, replacement, astral)).toBeLessThan(0);
    expect(compareValues(T.string, astral, privateUse)).toBeGreaterThan(0);
    expect(compareValues(T.string, 'a', 'b')).toBeLessThan(0);
    expect(compareValues(T.string, 'ab', 'a')).toBeGreaterThan(0);
    expect(compareValues(T.string, 'é', 'é')).toBe(0);
  });

  it('floats and doubles: -0.0 sorts before +0.0', () => {
    for (const t of [T.float, T.double]) {
      expect(compareValues(t, -0, 0)).toBeLessThan(0);
      expect(compareValues(t, 0, -0)).toBeGreaterThan(0);
      expect(compareValues(t, 0, 0)).toBe(0);
      expect(compareValues(t, -0, -0)).toBe(0);
      expect(compareValues(t, -1.5, -0)).toBeLessThan(0);
      expect(compareValues(t, 2.5, 1.5)).toBeGreaterThan(0);
    }
  });

  it('binary and fixed: unsigned byte order', () => {
    expect(compareValues(T.binary, hex('7f'), hex('80'))).toBeLessThan(0);
    expect(compareValues(fixed(2), hex('ff00'), hex('0100'))).toBeGreaterThan(0);
    expect(compareValues(T.binary, hex('01'), hex('0100'))).toBeLessThan(0);
  });

  it('longs and decimals as bigints, dates as numbers', () => {
    expect(compareValues(T.long, 9007199254740993n, 9007199254740992n)).toBeGreaterThan(0);
    expect(compareValues(dec(9, 2), -1420n, 1420n)).toBeLessThan(0);
    expect(compareValues(T.date, -1, 0)).toBeLessThan(0);
    expect(compareValues(T.long, 5n, 5n)).toBe(0);
  });
});

describe('toJsonValue: JSON single-value serialisation (spec Appendix D), longs as strings', () => {
  it('date as ISO yyyy-mm-dd, incl. pre-1970', () => {
    expect(toJsonValue(T.date, 17486)).toBe('2017-11-16');
    expect(toJsonValue(T.date, 0)).toBe('1970-01-01');
    expect(toJsonValue(T.date, -1)).toBe('1969-12-31');
    expect(toJsonValue(T.date, -25567)).toBe(new Date(Date.UTC(1900, 0, 1)).toISOString().slice(0, 10));
  });

  it('time with microsecond precision (spec example 22:31:08.123456)', () => {
    expect(toJsonValue(T.time, 81_068_123_456n)).toBe('22:31:08.123456');
    expect(toJsonValue(T.time, 0n)).toBe('00:00:00.000000');
    expect(toJsonValue(T.time, 86_399_999_999n)).toBe('23:59:59.999999');
  });

  it('timestamp without zone, timestamptz with +00:00 (spec examples)', () => {
    expect(toJsonValue(T.timestamp, US_2017)).toBe('2017-11-16T22:31:08.123456');
    expect(toJsonValue(T.timestamptz, US_2017)).toBe('2017-11-16T22:31:08.123456+00:00');
    // Date's own ISO rendering agrees to the millisecond
    expect(new Date(MS_2017).toISOString()).toBe('2017-11-16T22:31:08.000Z');
  });

  it('timestamps before 1970 floor to the previous day', () => {
    expect(toJsonValue(T.timestamp, -1n)).toBe('1969-12-31T23:59:59.999999');
    const us = BigInt(Date.UTC(1900, 0, 1, 12, 0, 0)) * 1000n + 1n;
    expect(toJsonValue(T.timestamptz, us)).toBe('1900-01-01T12:00:00.000001+00:00');
  });

  it('timestamp_ns / timestamptz_ns with nanosecond precision', () => {
    const ns = US_2017 * 1000n + 789n;
    expect(toJsonValue(T.timestamp_ns, ns)).toBe('2017-11-16T22:31:08.123456789');
    expect(toJsonValue(T.timestamptz_ns, ns)).toBe('2017-11-16T22:31:08.123456789+00:00');
    expect(toJsonValue(T.timestamp_ns, -1n)).toBe('1969-12-31T23:59:59.999999999');
  });

  it('decimal with the type\'s scale (spec example "14.20")', () => {
    expect(toJsonValue(dec(9, 2), 1420n)).toBe('14.20');
    expect(toJsonValue(dec(9, 2), -1420n)).toBe('-14.20');
    expect(toJsonValue(dec(9, 2), 5n)).toBe('0.05');
    expect(toJsonValue(dec(9, 2), -5n)).toBe('-0.05');
    expect(toJsonValue(dec(9, 0), 123n)).toBe('123');
    expect(toJsonValue(dec(38, 10), 10n ** 38n - 1n)).toBe('9999999999999999999999999999.9999999999');
  });

  it('uuid as lowercase hyphenated string', () => {
    expect(toJsonValue(T.uuid, hex('F79C3E09677C4BBDA4793F349CB785E7'))).toBe('f79c3e09-677c-4bbd-a479-3f349cb785e7');
  });

  it('fixed and binary as hex (spec example "000102ff")', () => {
    expect(toJsonValue(fixed(4), hex('000102ff'))).toBe('000102ff');
    expect(toJsonValue(T.binary, hex('000102ff'))).toBe('000102ff');
  });

  it('longs as decimal strings, exact beyond 2^53; ints and doubles as numbers', () => {
    expect(toJsonValue(T.long, 9007199254740993n)).toBe('9007199254740993');
    expect(toJsonValue(T.long, -9223372036854775808n)).toBe('-9223372036854775808');
    expect(toJsonValue(T.int, 34)).toBe(34);
    expect(toJsonValue(T.double, 1.5)).toBe(1.5);
    expect(toJsonValue(T.boolean, true)).toBe(true);
    expect(toJsonValue(T.string, 'iceberg')).toBe('iceberg');
    expect(toJsonValue(T.long, null)).toBe(null);
  });

  it('decode + format end to end: promoted bounds render in the column type', () => {
    expect(toJsonValue(T.long, decodeBinaryValue(T.long, hex('22000000')))).toBe('34');
    expect(toJsonValue(T.timestamp, decodeBinaryValue(T.timestamp, le4(17486)))).toBe('2017-11-16T00:00:00.000000');
    expect(toJsonValue(dec(9, 2), decodeBinaryValue(dec(9, 2), hex('fa74')))).toBe('-14.20');
  });
});

describe('bounds beyond what Date can hold (found by test/fuzz)', () => {
  it('dates and timestamps of any 32/64-bit value format as ISO expanded years, never throw', () => {
    expect(toJsonValue({ kind: 'date' }, 2 ** 31 - 1)).toBe('+5881580-07-11');
    expect(toJsonValue({ kind: 'date' }, -(2 ** 31))).toBe('-5877641-06-23');
    expect(toJsonValue({ kind: 'date' }, 0)).toBe('1970-01-01');
    expect(toJsonValue({ kind: 'date' }, 2932896)).toBe('9999-12-31');
    expect(toJsonValue({ kind: 'date' }, 2932897)).toBe('+010000-01-01');
    expect(toJsonValue({ kind: 'timestamp' }, 9223372036854775807n)).toBe('+294247-01-10T04:00:54.775807');
    expect(toJsonValue({ kind: 'timestamptz_ns' }, -9223372036854775808n)).toBe('1677-09-21T00:12:43.145224192+00:00');
  });

  it('agrees with Date wherever Date works', () => {
    for (const d of [-719468, -719469, -1, 1, 18000, 2932896, 100_000_000, -100_000_000]) {
      expect(toJsonValue({ kind: 'date' }, d), String(d)).toBe(new Date(d * 86_400_000).toISOString().split('T')[0]);
    }
  });

  it('a promoted bound that no longer fits 64 bits is INVALID_BOUND when encoded', () => {
    const ts = decodeBinaryValue({ kind: 'timestamp' }, Buffer.from([0xff, 0xff, 0xff, 0x7f]));
    expect(() => encodeBinaryValue({ kind: 'timestamp' }, ts)).toThrow(/does not fit an 8-byte timestamp/);
    expect(() => encodeBinaryValue({ kind: 'int' }, 2 ** 31)).toThrow(/does not fit a 4-byte int/);
  });
});

describe('formatTimestamp: the double fast path equals the bigint path and Date', () => {
  const MAX = BigInt(Number.MAX_SAFE_INTEGER);
  // Deterministic pseudo-random 64-bit values (xorshift), scaled into a range.
  function* values(seed: bigint, count: number, span: bigint): Generator<bigint> {
    let x = seed;
    for (let i = 0; i < count; i++) {
      x ^= (x << 13n) & 0xffff_ffff_ffff_ffffn;
      x ^= x >> 7n;
      x ^= (x << 17n) & 0xffff_ffff_ffff_ffffn;
      yield (x % (2n * span + 1n)) - span;
    }
  }

  it('microseconds and nanoseconds: random values, day edges far from 1970, the exact limits and just past them', () => {
    for (const [perSecond, digits] of [[1_000_000n, 6], [1_000_000_000n, 9]] as const) {
      const perDay = perSecond * 86_400n;
      const cases = [...values(0x9e3779b97f4a7c15n, 20_000, MAX), ...values(0x1234567n, 5_000, perDay * 800n), 0n, -1n, 1n, MAX, -MAX, MAX + 1n, -MAX - 1n];
      const far = MAX / perDay;
      for (const k of [far, far - 1n, -far, -far + 1n, 1n, -1n]) cases.push(k * perDay - 1n, k * perDay, k * perDay + 1n);
      for (const u of cases) {
        for (const zone of [false, true]) {
          expect(formatTimestamp(u, perSecond, digits, zone), `${u} at ${perSecond}/s`).toBe(formatTimestampBig(u, perSecond, digits, zone));
        }
      }
    }
  });

  it('agrees with Date.toISOString within Date\'s range (milliseconds padded to microseconds)', () => {
    for (const ms of [0, -1, 1, 1_780_000_000_123, -62_135_596_800_000, 253_402_300_799_999, -86_400_001]) {
      const iso = new Date(ms).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
      expect(formatTimestamp(BigInt(ms) * 1000n + 456n, 1_000_000n, 6, true)).toBe(`${iso.slice(0, 23)}456+00:00`);
    }
  });
});
