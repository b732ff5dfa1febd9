// Row values of `ips changes --rows` are rendered as `ips inspect --json` renders values: the
// same value read by DuckDB (selectExpr) and rendered (renderValue) must equal inspect's
// rendering (toJsonValue) of the value's Iceberg representation, for every primitive type the
// row reader supports.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqlEngine } from '../../src/engine/duckdb.js';
import { LocalFileIO } from '../../src/io/local-file-io.js';
import type { PrimitiveType } from '../../src/iceberg/types.js';
import { toJsonValue, type Value } from '../../src/iceberg/values.js';
import { renderValue, selectExpr } from '../../src/rows/render.js';

describe('row values render as ips inspect --json renders them', () => {
  let engine: SqlEngine;
  let dir: string;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-render-'));
    engine = await SqlEngine.open({ io: new LocalFileIO(), scratchDir: dir, threads: 1 });
  });
  afterAll(() => {
    engine?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  // [Iceberg type, DuckDB literal, the value as Iceberg holds it (what inspect renders)]
  const cases: [PrimitiveType, string, Value][] = [
    [{ kind: 'boolean' }, 'true', true],
    [{ kind: 'int' }, '(-2147483648)::INTEGER', -2147483648],
    [{ kind: 'long' }, '9223372036854775807::BIGINT', 9223372036854775807n],
    [{ kind: 'long' }, '-4611686018427387905::BIGINT', -4611686018427387905n],
    [{ kind: 'float' }, '1.1::FLOAT', Math.fround(1.1)],
    [{ kind: 'double' }, '0.1::DOUBLE', 0.1],
    [{ kind: 'double' }, '-1e300::DOUBLE', -1e300],
    [{ kind: 'decimal', precision: 10, scale: 2 }, '-0.05::DECIMAL(10, 2)', -5n],
    [{ kind: 'decimal', precision: 38, scale: 4 }, '12345678901234567890123456789012.3456::DECIMAL(38, 4)', 123456789012345678901234567890123456n],
    [{ kind: 'date' }, "DATE '1969-12-31'", -1],
    [{ kind: 'date' }, "DATE '2026-11-18'", 20775],
    [{ kind: 'time' }, "TIME '13:45:07.000123'", 49507000123n],
    [{ kind: 'timestamp' }, "TIMESTAMP '2026-11-18 10:00:00.000001'", BigInt(Date.UTC(2026, 10, 18, 10)) * 1000n + 1n],
    [{ kind: 'timestamp' }, "TIMESTAMP '1969-12-31 23:59:59.999999'", -1n],
    [{ kind: 'timestamptz' }, "TIMESTAMPTZ '2026-03-01 05:00:00.123456+00'", 1772341200123456n],
    [{ kind: 'timestamp_ns' }, "TIMESTAMP_NS '2026-03-01 05:00:00.123456789'", 1772341200123456789n],
    [{ kind: 'string' }, "'zoë 😀 \"q\"'", 'zoë 😀 "q"'],
    [{ kind: 'uuid' }, "'f79c3e09-677c-4bbd-a479-3f349cb785e7'::UUID", Buffer.from('f79c3e09677c4bbda4793f349cb785e7', 'hex')],
    [{ kind: 'binary' }, "'\\x00\\xFFa'::BLOB", Buffer.from([0, 255, 0x61])],
    [{ kind: 'fixed', length: 2 }, "'\\xAB\\xCD'::BLOB", Buffer.from([0xab, 0xcd])],
  ];

  it('every supported type, and NULL', async () => {
    for (const [type, literal, value] of cases) {
      const [row] = await engine.all<Record<string, string | null>>(`SELECT ${selectExpr('c', type)} FROM (SELECT ${literal} AS c)`);
      expect(renderValue(type, row!['c']!), `${type.kind} ${literal}`).toEqual(toJsonValue(type, value));
      const duck = /::(.+)$/.exec(literal)?.[1] ?? /^([A-Z_]+) '/.exec(literal)?.[1] ?? 'VARCHAR';
      const [nul] = await engine.all<Record<string, string | null>>(`SELECT ${selectExpr('c', type)} FROM (SELECT NULL::${duck} AS c)`);
      expect(renderValue(type, nul!['c'] ?? null)).toBeNull();
    }
  });

  it('NaN and infinities, which JSON cannot hold, as strings', async () => {
    const [row] = await engine.all<Record<string, string | null>>(`SELECT ${selectExpr('a', { kind: 'double' })}, ${selectExpr('b', { kind: 'double' })}, ${selectExpr('c', { kind: 'float' })} FROM (SELECT 'nan'::DOUBLE AS a, '-inf'::DOUBLE AS b, 'inf'::FLOAT AS c)`);
    expect([renderValue({ kind: 'double' }, row!['a']!), renderValue({ kind: 'double' }, row!['b']!), renderValue({ kind: 'float' }, row!['c']!)]).toEqual(['NaN', '-Infinity', 'Infinity']);
  });
});
