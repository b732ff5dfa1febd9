// ips against a REAL Iceberg REST catalog: Apache Iceberg's RESTCatalogServer (see rest-server.ts)
// backed by a JdbcCatalog in the test PostgreSQL, once with the warehouse on local disk
// (HadoopFileIO) and once on MinIO (S3FileIO). PyIceberg's RestCatalog creates a table and
// appends twice THROUGH the server; ips must then load it through the same server and see exactly
// what PyIceberg sees.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPythonCode, testEnv } from '../setup/env.js';
import { loadTable, parseTableRef } from '../../src/catalog/load-table.js';
import { inspectTable } from '../../src/capture/inspect.js';
import { ManifestReader } from '../../src/capture/manifest-reader.js';
import { IpsError } from '../../src/errors.js';
import { RoutingFileIO } from '../../src/io/routing-file-io.js';
import { freeLoopbackPort, jdbcFromPgUrl, provisionRestCatalog, startRestServer, type RestServer } from './rest-server.js';

/**
 * PyIceberg through the REST catalog: create namespace and a day-partitioned table, append twice,
 * reload, report. argv[1]: JSON {uri, identifier, props}. Snapshot ids are printed as strings
 * (they exceed 2^53).
 */
const PYICEBERG_WRITE = String.raw`
import datetime, json, sys
import pyarrow as pa
import pyiceberg
from pyiceberg.catalog import load_catalog
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import DateType, LongType, NestedField, StringType

args = json.loads(sys.argv[1])
catalog = load_catalog('rest', type='rest', uri=args['uri'], **args['props'])
ns, _, name = args['identifier'].rpartition('.')
catalog.create_namespace_if_not_exists(ns)
schema = Schema(
    NestedField(1, 'id', LongType(), required=True),
    NestedField(2, 'name', StringType(), required=False),
    NestedField(3, 'day', DateType(), required=False),
)
spec = PartitionSpec(PartitionField(source_id=3, field_id=1000, transform=IdentityTransform(), name='day'))
table = catalog.create_table(args['identifier'], schema=schema, partition_spec=spec)

def rows(start, n, day):
    return pa.Table.from_pylist(
        [{'id': i, 'name': f'row {i}', 'day': day} for i in range(start, start + n)], schema=schema.as_arrow())

table.append(rows(0, 10, datetime.date(2024, 1, 1)))
table.append(rows(10, 5, datetime.date(2024, 1, 2)))

table = catalog.load_table(args['identifier'])
snapshots = table.inspect.snapshots()
print(json.dumps({
    'pyiceberg_version': pyiceberg.__version__,
    'metadata_location': table.metadata_location,
    'location': table.location(),
    'snapshot_ids': [str(s) for s in snapshots.column('snapshot_id').to_pylist()],
    'current_snapshot_id': str(table.current_snapshot().snapshot_id),
    'row_count': table.scan().to_arrow().num_rows,
}))
`;

interface PyIcebergReport {
  pyiceberg_version: string;
  metadata_location: string;
  location: string;
  snapshot_ids: string[];
  current_snapshot_id: string;
  row_count: number;
}

async function pyicebergWrite(uri: string, identifier: string, props: Record<string, string>): Promise<PyIcebergReport> {
  const out = await runPythonCode(PYICEBERG_WRITE, [JSON.stringify({ uri, identifier, props })], { timeoutMs: 180_000 });
  const last = out.trim().split('\n').pop() ?? '';
  return JSON.parse(last) as PyIcebergReport;
}

async function ipsError(p: Promise<unknown>): Promise<IpsError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(IpsError);
    return e as IpsError;
  }
  throw new Error('expected the promise to reject with an IpsError');
}

const env = testEnv();
const TAG = `${process.pid}_${Date.now().toString(36)}`;
const TABLE = 'ns.tbl';

interface Variant {
  catalogName: string;
  server?: RestServer;
  /** PyIceberg's write, started in the top-level beforeAll so that both variants write at once. */
  written?: Promise<PyIcebergReport>;
  /** How long that write took (ms), once it is done. */
  writeMs?: number;
  pyProps: Record<string, string>;
  io: RoutingFileIO;
}

const s3Props = {
  's3.endpoint': env.s3Endpoint,
  's3.access-key-id': env.s3AccessKey,
  's3.secret-access-key': env.s3SecretKey,
  's3.region': env.s3Region,
};
const variants: Record<'local' | 's3', Variant> = {
  local: { catalogName: `ips_rest_local_${TAG}`, pyProps: {}, io: new RoutingFileIO() },
  s3: {
    catalogName: `ips_rest_s3_${TAG}`,
    pyProps: s3Props,
    io: new RoutingFileIO({
      s3: { endpoint: env.s3Endpoint, region: env.s3Region, accessKeyId: env.s3AccessKey, secretAccessKey: env.s3SecretKey, pathStyle: true },
    }),
  },
};

let workDir: string | undefined;

beforeAll(async () => {
  const t0 = Date.now();
  const lib = await provisionRestCatalog();
  const t1 = Date.now();
  workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'ips-rest-catalog-'));
  const jdbc = jdbcFromPgUrl(env.pgUrl);
  const awsBundle = env.sparkJars.find((j) => path.basename(j).startsWith('iceberg-aws-bundle-'));
  if (!awsBundle) throw new Error(`no iceberg-aws-bundle jar among the test jars (${env.sparkJars.join(', ')}); see scripts/provision/jars.sh`);
  const started = await Promise.allSettled([
    startRestServer({ lib, catalogName: variants.local.catalogName, jdbc, warehouse: `file://${path.join(workDir, 'warehouse')}` }),
    startRestServer({
      lib,
      catalogName: variants.s3.catalogName,
      jdbc,
      warehouse: `s3://${env.s3Bucket}/rest-catalog-${TAG}`,
      properties: {
        'io-impl': 'org.apache.iceberg.aws.s3.S3FileIO',
        's3.endpoint': env.s3Endpoint,
        's3.path-style-access': 'true',
        's3.access-key-id': env.s3AccessKey,
        's3.secret-access-key': env.s3SecretKey,
        'client.region': env.s3Region,
      },
      extraClasspath: [awsBundle],
    }),
  ]);
  if (started[0].status === 'fulfilled') variants.local.server = started[0].value;
  if (started[1].status === 'fulfilled') variants.s3.server = started[1].value;
  for (const s of started) if (s.status === 'rejected') throw s.reason;
  const t2 = Date.now();
  process.stderr.write(`[rest-catalog] provisioning ${((t1 - t0) / 1000).toFixed(1)}s, both servers answering after ${((t2 - t1) / 1000).toFixed(1)}s\n`);
  for (const v of Object.values(variants)) {
    const start = Date.now();
    v.written = pyicebergWrite(v.server!.url, TABLE, v.pyProps);
    v.written.then(() => (v.writeMs = Date.now() - start)).catch(() => {}); // awaited (and reported) by the variant's beforeAll
  }
}, 600_000);

afterAll(async () => {
  const t0 = Date.now();
  // Drop what the test created through the servers (purging the files), then make sure no row of
  // these catalogs stays in the shared iceberg_tables, whatever happened before.
  await Promise.all(
    Object.values(variants).map(async (v) => {
      const s = v.server;
      if (!s) return;
      await v.written?.catch(() => {});
      try {
        await fetch(`${s.url}/v1/namespaces/ns/tables/tbl?purgeRequested=true`, { method: 'DELETE' });
        await fetch(`${s.url}/v1/namespaces/ns`, { method: 'DELETE' });
      } catch {
        /* best effort: the rows go below, the local warehouse with workDir */
      }
      await s.stop();
    }),
  );
  const client = new pg.Client({ connectionString: env.pgUrl });
  try {
    await client.connect();
    const names = Object.values(variants).map((v) => v.catalogName);
    for (const t of ['iceberg_tables', 'iceberg_namespace_properties']) {
      await client.query(`delete from ${t} where catalog_name = any($1)`, [names]).catch(() => {});
    }
  } catch (e) {
    process.stderr.write(`[rest-catalog] could not remove the test catalogs' rows: ${String(e)}\n`);
  } finally {
    await client.end().catch(() => {});
  }
  for (const v of Object.values(variants)) v.io.close();
  if (workDir) await fs.rm(workDir, { recursive: true, force: true });
  process.stderr.write(`[rest-catalog] cleaned up and stopped the servers in ${((Date.now() - t0) / 1000).toFixed(1)}s\n`);
}, 60_000);

describe.each([['local disk (HadoopFileIO)', 'local'], ['MinIO (S3FileIO)', 's3']] as const)(
  'Iceberg REST catalog server, warehouse on %s',
  (_label, key) => {
    const v = variants[key];
    let py: PyIcebergReport;

    beforeAll(async () => {
      py = await v.written!;
      process.stderr.write(`[rest-catalog] ${key}: PyIceberg ${py.pyiceberg_version} created ${TABLE} and appended twice in ${((v.writeMs ?? 0) / 1000).toFixed(1)}s\n`);
    }, 300_000);

    it('PyIceberg created the table and appended twice through the server', () => {
      expect(py.snapshot_ids).toHaveLength(2);
      expect(py.current_snapshot_id).toBe(py.snapshot_ids[1]);
      expect(py.row_count).toBe(15);
      expect(py.metadata_location).toMatch(key === 's3' ? new RegExp(`^s3://${env.s3Bucket}/rest-catalog-${TAG}/`) : /^file:/);
    });

    it('ips loads it through the REST catalog: same metadata location, same snapshots in order', async () => {
      const table = await loadTable(v.io, parseTableRef(TABLE, { catalogUri: v.server!.url }));
      expect(table.metadataLocation).toBe(py.metadata_location);
      expect(table.metadata.snapshots.map((s) => s.snapshotId.toString())).toEqual(py.snapshot_ids);
      expect(table.metadata.currentSnapshotId?.toString()).toBe(py.current_snapshot_id);
      expect(table.metadata.location).toBe(py.location);

      // The manifests behind the catalog's pointer hold what PyIceberg appended.
      const inspected = await inspectTable(table, new ManifestReader(v.io));
      expect(inspected.snapshots.map((s) => s.snapshot_id)).toEqual(py.snapshot_ids);
      expect(inspected.snapshots.map((s) => s.operation)).toEqual(['append', 'append']);
      const added = inspected.snapshots.map((s) => s.added_files.reduce((n, f) => n + Number(f.record_count), 0));
      expect(added).toEqual([10, 5]);
    });

    it('the server keeps its pointer in the test PostgreSQL under the test catalog name', async () => {
      const viaSql = await loadTable(v.io, parseTableRef(TABLE, { catalogUri: env.pgUrl, catalogName: v.catalogName }));
      expect(viaSql.metadataLocation).toBe(py.metadata_location);
    });

    it('an unknown table or namespace is TABLE_NOT_FOUND', async () => {
      for (const id of ['ns.no_such_table', 'no_such_ns.tbl']) {
        const e = await ipsError(loadTable(v.io, parseTableRef(id, { catalogUri: v.server!.url })));
        expect(e.code, id).toBe('TABLE_NOT_FOUND');
      }
    });
  },
);

describe('REST catalog client errors', () => {
  it('a REST catalog on a port nobody listens on is CATALOG_UNREACHABLE', async () => {
    const port = await freeLoopbackPort();
    const e = await ipsError(loadTable(new RoutingFileIO(), parseTableRef(TABLE, { catalogUri: `http://127.0.0.1:${port}` })));
    expect(e.code).toBe('CATALOG_UNREACHABLE');
  });
});
