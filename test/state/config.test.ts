import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { LosslessNumber, stringify as stringifyLossless } from 'lossless-json';
import { databaseConfigFromEnv, describeConfig, jsonParam, normalizeParams, openDatabase, parseJsonValue, redactUrl } from '../../src/state/database.js';
import { pgliteTemplate } from './helpers.js';

describe('state database configuration', () => {
  test('DATABASE_URL picks the driver; the embedded default lives in IPS_DATA_DIR', () => {
    expect(databaseConfigFromEnv({ DATABASE_URL: 'postgres://u:p@h:5432/d' })).toEqual({ driver: 'postgres', url: 'postgres://u:p@h:5432/d' });
    expect(databaseConfigFromEnv({ DATABASE_URL: 'jdbc:postgresql://h/d', IPS_DB_POOL_MAX: '20' })).toEqual({ driver: 'postgres', url: 'postgresql://h/d', poolMax: 20 });
    expect(databaseConfigFromEnv({ DATABASE_URL: 'memory:' })).toEqual({ driver: 'pglite', dataDir: null });
    expect(databaseConfigFromEnv({ DATABASE_URL: 'pglite:///var/lib/ips/db' })).toEqual({ driver: 'pglite', dataDir: '/var/lib/ips/db' });
    expect(databaseConfigFromEnv({ DATABASE_URL: 'pglite:rel/db' })).toEqual({ driver: 'pglite', dataDir: 'rel/db' });
    expect(databaseConfigFromEnv({ IPS_DATA_DIR: '/data/ips/' })).toEqual({ driver: 'pglite', dataDir: '/data/ips/db' });
    expect(databaseConfigFromEnv({})).toEqual({ driver: 'pglite', dataDir: '.ips/db' });
    expect(() => databaseConfigFromEnv({ DATABASE_URL: 'mysql://u:secret@h/d' })).toThrow(/postgres:\/\/.*got "mysql:\/\/u:\*\*\*@h\/d"/);
    expect(() => databaseConfigFromEnv({ DATABASE_URL: 'postgres://h/d', IPS_DB_POOL_MAX: 'lots' })).toThrow(/IPS_DB_POOL_MAX/);
  });

  test('passwords never reach a description', () => {
    expect(redactUrl('postgres://ips:s3cr3t@db:5432/ips')).toBe('postgres://ips:***@db:5432/ips');
    expect(redactUrl('postgresql://db/ips?user=a&password=s3cr3t')).toBe('postgresql://db/ips?user=a&password=***');
    expect(redactUrl('postgres://db/ips')).toBe('postgres://db/ips');
    expect(describeConfig({ driver: 'postgres', url: 'postgres://a:b@h/d' })).toBe('postgres://a:***@h/d');
  });

  test('parameters: bigint and Date as text, objects only through jsonParam', () => {
    expect(normalizeParams([9223372036854775807n, new Date('2026-01-02T03:04:05.678Z'), undefined, null, 1, 'x', true]))
      .toEqual(['9223372036854775807', '2026-01-02T03:04:05.678Z', null, null, 1, 'x', true]);
    expect(() => normalizeParams([{ a: 1 } as never])).toThrow(/jsonParam/);
    expect(jsonParam({ id: 9223372036854775807n, s: 'x' })).toBe('{"id":9223372036854775807,"s":"x"}');
    // The native path (no bigint) prints what lossless-json prints, the second computation here.
    const plain = [
      { file_path: 's3://b/é/"q"\\x\n', n: 1.5, neg: -0, big: 2 ** 60, nan: NaN, inf: -Infinity, t: true, z: null, u: undefined, f: () => 1, nested: [[], {}, [undefined, null]] },
      [new Date('2026-01-02T03:04:05.678Z'), new Map([[1, 2]]), { toJSON: () => ({ x: [1] }) }, 'a\u2028b', '\ud800'],
      'text', 7, null,
    ];
    for (const v of plain) expect(jsonParam(v)).toBe(stringifyLossless(v));
    expect(jsonParam({ deep: [{ n: new LosslessNumber('12345678901234567890') }] })).toBe('{"deep":[{"n":12345678901234567890}]}');
    for (const bad of [{ a: 'x\u0000' }, { ['k\u0000']: 1 }, [{ id: 1n, s: 'y\u0000' }], { n: new LosslessNumber('1'), s: '\u0000' }]) {
      expect(() => jsonParam(bad)).toThrow(/NUL/);
    }
    expect(parseJsonValue('{"id":9223372036854775807,"small":3,"f":1.5}')).toEqual({ id: 9223372036854775807n, small: 3, f: 1.5 });
    // Both paths (no 16-digit run: the built-in parser) give the same values.
    expect(parseJsonValue('{"a":[1,-2.5e3,null,true],"s":"x\\u00e9","n":900719925474099}')).toEqual({ a: [1, -2500, null, true], s: 'xé', n: 900719925474099 });
    expect(parseJsonValue('{"n":9007199254740991}')).toEqual({ n: 9007199254740991 });
    expect(parseJsonValue('{"big":9007199254740993,"s":"1234567890123456"}')).toEqual({ big: 9007199254740993n, s: '1234567890123456' });
    expect(parseJsonValue('[-9223372036854775808]')).toEqual([-9223372036854775808n]);
  });

  test('an unreachable server is a clear DATABASE_UNAVAILABLE error without the password', async () => {
    const err = await openDatabase({ driver: 'postgres', url: 'postgres://ips:topsecret@127.0.0.1:1/ips' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DATABASE_UNAVAILABLE' });
    expect((err as Error).message).toContain('postgres://ips:***@127.0.0.1:1/ips');
    expect((err as Error).message).not.toContain('topsecret');
  });

  test('the embedded data directory serves one process at a time', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ips-state-lock-'));
    try {
      const dataDir = path.join(dir, 'db');
      const first = await openDatabase({ driver: 'pglite', dataDir, loadDataDir: await pgliteTemplate() });
      try {
        await expect(openDatabase({ driver: 'pglite', dataDir })).rejects.toMatchObject({ code: 'DATABASE_LOCKED' });
      } finally {
        await first.close();
      }
      // Closed: the next one opens it, and sees the data.
      const second = await openDatabase({ driver: 'pglite', dataDir });
      expect((await second.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      await second.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a new embedded directory is created whole (initdb in a child process); leftovers of a crashed first start are cleared', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ips-state-initdb-'));
    try {
      const dataDir = path.join(dir, 'db');
      // What a first start killed mid-initdb leaves: a half-made staging directory beside the data directory.
      mkdirSync(`${dataDir}.initdb`);
      writeFileSync(`${dataDir}.initdb/PG_VERSION`, 'half-made');
      const db = await openDatabase({ driver: 'pglite', dataDir });
      try {
        await db.exec('CREATE TABLE kept (v BIGINT)');
        await db.query('INSERT INTO kept VALUES ($1)', [9007199254740993n]);
        // PostgreSQL's own view of the sizing the embedded database runs with.
        const show = async (s: string): Promise<string> => String((await db.query<Record<string, string>>(`SHOW ${s}`)).rows[0]![s]);
        expect(await show('shared_buffers')).toBe('16MB');
        expect(await show('max_connections')).toBe('4');
      } finally {
        await db.close();
      }
      expect(existsSync(`${dataDir}.initdb`)).toBe(false);
      expect(readFileSync(path.join(dataDir, 'PG_VERSION'), 'utf8').trim()).toMatch(/^\d+$/);
      const again = await openDatabase({ driver: 'pglite', dataDir });
      try {
        expect((await again.query<{ v: bigint }>('SELECT v FROM kept')).rows).toEqual([{ v: 9007199254740993n }]);
      } finally {
        await again.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an in-memory embedded database starts from a new cluster (made by the child initdb) and keeps nothing', async () => {
    const first = await openDatabase({ driver: 'pglite', dataDir: null });
    try {
      expect((await first.query<{ shared_buffers: string }>('SHOW shared_buffers')).rows).toEqual([{ shared_buffers: '16MB' }]);
      await first.exec('CREATE TABLE gone (v BIGINT)');
      expect((await first.query<{ n: bigint }>('SELECT count(*) AS n FROM gone')).rows).toEqual([{ n: 0n }]);
    } finally {
      await first.close();
    }
    const second = await openDatabase({ driver: 'pglite', dataDir: null });
    try {
      expect((await second.query<{ n: bigint }>("SELECT count(*) AS n FROM pg_tables WHERE tablename = 'gone'")).rows).toEqual([{ n: 0n }]);
    } finally {
      await second.close();
    }
  });

  test('an existing empty data directory (a volume\'s mount point) is filled in place; what a first start killed mid-move left is cleared', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ips-state-initdb-inplace-'));
    try {
      const dataDir = path.join(dir, 'db');
      // A start that died moving the cluster in: the staging directory and some moved entries, no PG_VERSION.
      mkdirSync(path.join(dataDir, '.ips-initdb'), { recursive: true });
      mkdirSync(path.join(dataDir, 'base'));
      writeFileSync(path.join(dataDir, 'base', 'half-moved'), 'x');
      const db = await openDatabase({ driver: 'pglite', dataDir });
      try {
        await db.exec('CREATE TABLE kept (v TEXT)');
        await db.query('INSERT INTO kept VALUES ($1)', ['in place']);
      } finally {
        await db.close();
      }
      expect(existsSync(path.join(dataDir, '.ips-initdb'))).toBe(false);
      expect(existsSync(path.join(dataDir, 'base', 'half-moved'))).toBe(false);
      expect(readFileSync(path.join(dataDir, 'PG_VERSION'), 'utf8').trim()).toMatch(/^\d+$/);
      const again = await openDatabase({ driver: 'pglite', dataDir });
      try {
        expect((await again.query<{ v: string }>('SELECT v FROM kept')).rows).toEqual([{ v: 'in place' }]);
      } finally {
        await again.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
