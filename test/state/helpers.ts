// Databases for the state tests: a fresh PostgreSQL database on the test server (one per call,
// dropped at the end), or a fresh PGlite instance started from a cached initdb template.
import crypto from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { isIpsError } from '../../src/errors.js';
import { openDatabase, type Database, type DatabaseConfig } from '../../src/state/database.js';
import { REPO_ROOT, testEnv } from '../setup/env.js';

export const DRIVERS = ['postgres', 'pglite'] as const;
export type Driver = (typeof DRIVERS)[number];

function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

/** Creates an empty database on the test server; returns its URL and a drop function. */
export async function createPgDatabase(label: string): Promise<{ url: string; name: string; drop: () => Promise<void> }> {
  const name = `ips_state_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase().slice(0, 30)}_${crypto.randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: testEnv().pgUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  return {
    url: withDatabase(testEnv().pgUrl, name),
    name,
    drop: async () => {
      const c = new pg.Client({ connectionString: testEnv().pgUrl });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

let template: Promise<Blob> | undefined;

/**
 * A tarball of a freshly initialised PGlite data directory, cached on disk per PGlite version:
 * initdb in WebAssembly takes 5–20 s on this machine, loading the tarball about one.
 */
export function pgliteTemplate(): Promise<Blob> {
  template ??= (async () => {
    const pkg = path.join(REPO_ROOT, 'node_modules', '@electric-sql', 'pglite', 'package.json');
    const version = (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
    const dir = path.join(testEnv().cacheDir, 'pglite');
    const file = path.join(dir, `template-${version}.tar`);
    if (existsSync(file)) return new Blob([readFileSync(file)]);
    const { PGlite } = await import('@electric-sql/pglite');
    const db = new PGlite();
    await db.waitReady;
    const dump = await db.dumpDataDir('none');
    await db.close();
    const bytes = Buffer.from(await dump.arrayBuffer());
    mkdirSync(dir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, bytes);
    renameSync(tmp, file);
    return new Blob([bytes]);
  })();
  return template;
}

export interface TestDatabase {
  driver: Driver;
  config: DatabaseConfig;
  db: Database;
  /** Opens another Database on the same data (postgres: a second pool, like a second process). */
  openAnother(): Promise<Database>;
  cleanup(): Promise<void>;
}

/**
 * A fresh, empty database for the driver: postgres → a new database on the test server;
 * pglite → in memory, or in `dataDir` when given (so it can be closed and opened again).
 */
export async function freshDatabase(driver: Driver, label: string, opts: { dataDir?: string } = {}): Promise<TestDatabase> {
  if (driver === 'postgres') {
    const created = await createPgDatabase(label);
    const config: DatabaseConfig = { driver: 'postgres', url: created.url, poolMax: 4 };
    const db = await openDatabase(config);
    const others: Database[] = [];
    return {
      driver, config, db,
      openAnother: async () => {
        const d = await openDatabase(config);
        others.push(d);
        return d;
      },
      cleanup: async () => {
        await Promise.allSettled([db.close(), ...others.map((o) => o.close())]);
        await created.drop();
      },
    };
  }
  const config: DatabaseConfig = { driver: 'pglite', dataDir: opts.dataDir ?? null, loadDataDir: await pgliteTemplate() };
  const db = await openDatabase(config);
  return {
    driver, config, db,
    openAnother: () => Promise.reject(new Error('PGlite serves one process: there is no second connection')),
    cleanup: async () => {
      await db.close().catch(() => {});
    },
  };
}

/** The IpsError code a promise rejects with (fails when it resolves or throws something else). */
export async function errorCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (isIpsError(e)) return e.code;
    throw e;
  }
  throw new Error('expected an IpsError, got success');
}
