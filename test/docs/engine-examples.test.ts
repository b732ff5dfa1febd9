// The README's "Reading a batch from your engine" runs for real: `ips serve` (embedded state), a
// PyIceberg-written table, the README's setup block, one prepared batch, then the PyIceberg block
// and the Spark session block with the stage-1 MERGE block, against ips's Iceberg REST catalog.
// The only changes made to the examples are the documented placeholders (the server URL, and the
// Maven coordinates replaced by the same jars from the provisioned cache: no network here), each
// of which must still be in the example. Expected counts and sums come from PyIceberg's own read
// of the source table, never from ips.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { pythonEnv, runPythonCode, testEnv } from '../setup/env.js';
import { bash, example, ipsOnPath, startServe, substitute, writePlaybackTable, type Served, type WrittenTable } from './helpers.js';

const ADMIN = 'docs-engines-admin-token-0123456789';
const URL_PLACEHOLDER = 'http://127.0.0.1:8742';
const PACKAGES = '.config("spark.jars.packages", "org.apache.iceberg:iceberg-spark-runtime-3.5_2.12:1.10.0,org.apache.iceberg:iceberg-aws-bundle:1.10.0")';

describe('README: reading a batch from your engine (PyIceberg and Spark through the REST catalog)', () => {
  let tmp: string;
  let table: WrittenTable;
  let server: Served;
  let token: string;
  let source: { rows: number; watch_seconds: number; groups: number };

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-docs-engines-'));
    const base = pythonEnv();
    for (const k of Object.keys(base)) if (k.startsWith('IPS_') || k === 'DATABASE_URL') delete base[k];
    const written = writePlaybackTable(path.join(tmp, 'lake'), 2);
    server = await startServe(['--json'], { ...base, IPS_ADMIN_TOKEN: ADMIN, IPS_PORT: '0', IPS_DATA_DIR: path.join(tmp, 'data'), IPS_TRIGGERS: 'off' }, tmp);
    table = await written;
    const env = { ...base, PATH: `${ipsOnPath(tmp)}${path.delimiter}${base.PATH}`, IPS_ADMIN_TOKEN: ADMIN };
    const setup = substitute(example('setup'), [[URL_PLACEHOLDER, server.url], ['s3://lake/db/playback', table.location]]);
    const r = bash(`set -euo pipefail\n${setup}`, { cwd: tmp, env });
    expect(r.status, r.stderr).toBe(0);
    token = /token \(shown once; store it now\): (\S+)/.exec(r.stdout)![1]!;
    const prepared = await fetch(`${server.url}/v1/consumers/playback_daily/batches`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ instance_id: 'docs-engines-1' }),
    });
    expect(prepared.status).toBe(201);
    // The source, read by PyIceberg from its own catalog: rows, total watch seconds, (day, profile, title) groups.
    const out = await runPythonCode([
      'import json, sys',
      'from pyiceberg.catalog.sql import SqlCatalog',
      'root = sys.argv[1]',
      'rows = SqlCatalog("docs", uri=f"sqlite:///{root}/catalog.db", warehouse=f"file://{root}").load_table("demo.playback").scan().to_arrow().to_pylist()',
      'groups = {(r["event_ts"].date(), r["profile_id"], r["title"]) for r in rows}',
      'print(json.dumps({"rows": len(rows), "watch_seconds": sum(r["watch_seconds"] for r in rows), "groups": len(groups)}))',
    ].join('\n'), [path.join(tmp, 'lake')]);
    source = JSON.parse(out.trim().split('\n').at(-1)!) as typeof source;
    expect(source.rows).toBe(table.records);
  }, 240_000);

  afterAll(async () => {
    await server?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test('the PyIceberg block lists the consumer\'s ICDC table and reads the batch', async () => {
    const code = `${substitute(example('pyiceberg-catalog'), [[URL_PLACEHOLDER, server.url]])}
import json
print(json.dumps({"tables": [list(t) for t in catalog.list_tables("icdc")], "rows": batch.num_rows}))`;
    const out = await runPythonCode(code, [], { env: { IPS_TOKEN: token } });
    const got = JSON.parse(out.trim().split('\n').at(-1)!) as { tables: string[][]; rows: number };
    expect(got.tables).toEqual([['icdc', 'playback_daily__playback']]);
    expect(got.rows).toBe(source.rows);
  });

  test('the Spark session block attaches the catalog and the MERGE block runs stage 1 from the batch', async () => {
    const session = substitute(example('spark-session'), [
      [URL_PLACEHOLDER, server.url],
      [PACKAGES, `.config("spark.jars", ${JSON.stringify(testEnv().sparkJars.join(','))})`],
    ]);
    const code = `${session}
import json
spark.conf.set("spark.sql.catalog.lake", "org.apache.iceberg.spark.SparkCatalog")
spark.conf.set("spark.sql.catalog.lake.type", "hadoop")
spark.conf.set("spark.sql.catalog.lake.warehouse", ${JSON.stringify(path.join(tmp, 'target'))})
spark.sql("CREATE TABLE lake.db.playback_daily (event_date DATE, profile_id BIGINT, title STRING, plays BIGINT, watch_seconds BIGINT) USING iceberg")
spark.sql(${JSON.stringify(example('spark-merge'))}).collect()
r = spark.sql("SELECT count(*) AS groups, sum(plays) AS plays, sum(watch_seconds) AS watch_seconds FROM lake.db.playback_daily").collect()[0]
n = spark.sql("SELECT count(*) FROM ips.icdc.playback_daily__playback").collect()[0][0]
print(json.dumps({"groups": r["groups"], "plays": r["plays"], "watch_seconds": r["watch_seconds"], "icdc_rows": n}))
spark.stop()`;
    const out = await runPythonCode(code, [], { env: { IPS_TOKEN: token, SPARK_LOCAL_IP: '127.0.0.1' }, timeoutMs: 480_000 });
    const got = JSON.parse(out.trim().split('\n').at(-1)!) as { groups: number; plays: number; watch_seconds: number; icdc_rows: number };
    expect(got).toEqual({ groups: source.groups, plays: source.rows, watch_seconds: source.watch_seconds, icdc_rows: source.rows });
  }, 600_000);
});
