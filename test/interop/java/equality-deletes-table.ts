// The TypeScript side of EqualityDeletesTable.java: compiles it once per source and classpath
// (cached under the test cache dir) and runs it against the interop tests' JDBC catalog.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, testEnv } from '../../setup/env.js';
import type { Row } from '../icdc/engines.js';

const SOURCE = path.join(REPO_ROOT, 'test/interop/java/EqualityDeletesTable.java');
const CLASS = path.join('ipstest', 'EqualityDeletesTable.class');

export type EqualityDeleteOp =
  | { op: 'create'; partition: 'day' | 'none' }
  | { op: 'append'; rows: Row[] }
  | { op: 'delete'; fields: string[]; rows: Row[] };

let classpath: string | undefined;

function helperClasspath(): string {
  if (classpath) return classpath;
  const env = testEnv();
  const runtime = env.sparkJars.filter((j) => /iceberg-spark-runtime|postgresql/.test(j));
  const pysparkJars = spawnSync(env.python, ['-c', 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))'], { encoding: 'utf8' }).stdout.trim();
  const cp = [...runtime, `${pysparkJars}/*`];
  const h = crypto.createHash('sha256').update(fs.readFileSync(SOURCE)).update(cp.join(':')).digest('hex').slice(0, 16);
  const out = path.join(env.cacheDir, 'test-java', h);
  if (!fs.existsSync(path.join(out, CLASS))) {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-javac-'));
    const r = spawnSync(path.join(env.javaHome, 'bin', 'javac'), ['-nowarn', '-encoding', 'UTF-8', '--release', '11', '-cp', cp.join(':'), '-d', tmp, SOURCE], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`javac failed: ${r.stderr}`);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    // Another test file may have compiled it meanwhile: keep the first.
    if (!fs.existsSync(path.join(out, CLASS))) {
      fs.rmSync(out, { recursive: true, force: true });
      fs.renameSync(tmp, out);
    }
  }
  return (classpath = [out, ...cp].join(':'));
}

/**
 * Runs the Java writer on `namespace.table` of the JDBC catalog `catalogName` (the test
 * PostgreSQL), with tables under `warehouse`; returns the snapshot id after each op (null for create).
 */
export function writeWithEqualityDeletes(opts: { catalogName: string; warehouse: string; namespace: string; table: string; ops: EqualityDeleteOp[] }): (string | null)[] {
  const env = testEnv();
  const u = new URL(env.pgUrl);
  const input = JSON.stringify({
    catalog: { uri: `jdbc:postgresql://${u.host}${u.pathname}`, user: decodeURIComponent(u.username), password: decodeURIComponent(u.password), name: opts.catalogName, warehouse: opts.warehouse },
    table: `${opts.namespace}.${opts.table}`, ops: opts.ops,
  });
  const r = spawnSync(path.join(env.javaHome, 'bin', 'java'), ['-Xss4m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-cp', helperClasspath(), 'ipstest.EqualityDeletesTable'],
    { input, encoding: 'utf8', maxBuffer: 64 << 20, timeout: 5 * 60_000 });
  if (r.status !== 0) throw new Error(`EqualityDeletesTable failed (${r.status}): ${r.stderr.slice(-3000)}`);
  return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { snapshots: (string | null)[] }).snapshots;
}
