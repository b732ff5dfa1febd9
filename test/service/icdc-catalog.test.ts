// `icdc_catalog_url`: the service registers each ICDC table it writes in an Iceberg JDBC/SQL
// catalog (a fresh database on the test PostgreSQL), like `ips changes --icdc-catalog`. PyIceberg's
// SqlCatalog loads `icdc.<consumer>__<table>` from it at the newest batch; the expected rows are
// pyarrow's own read of the batch's Parquet files. A catalog that does not answer fails the
// prepare with a typed error and stores no batch.
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { IpsService } from '../../src/service/ips-service.js';
import { State, type Batch } from '../../src/state/index.js';
import { REPO_ROOT, runPythonCode } from '../setup/env.js';
import { createPgDatabase, errorCode, pgliteTemplate } from '../state/helpers.js';

const WRITTEN = 'file:///ips-fixtures/demo/playback';

describe('icdc_catalog_url: ICDC tables registered in a JDBC/SQL catalog by the service', () => {
  let tmp: string;
  let copy: string;
  let catalogDb: Awaited<ReturnType<typeof createPgDatabase>>;

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-icdc-catalog-'));
    copy = path.join(tmp, 'tables', 'playback');
    cpSync(path.join(REPO_ROOT, 'fixtures', 'tables', 'playback'), copy, { recursive: true });
    catalogDb = await createPgDatabase('icdc_catalog');
  });
  afterAll(async () => {
    await catalogDb?.drop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  async function open(url: string): Promise<{ state: State; service: IpsService; close: () => Promise<void> }> {
    const state = await State.open({ driver: 'pglite', dataDir: null, loadDataDir: await pgliteTemplate() });
    const service = new IpsService(state, { warehouse: path.join(tmp, `warehouse-${Math.random().toString(36).slice(2)}`), icdcCatalog: { url, name: 'ips' } });
    await service.registerTable({ name: 'playback', ref: { kind: 'directory', location: copy } });
    await service.createConsumer({ name: 'daily', tables: [{ table: 'playback', from: 'start' }] }, 'test');
    return { state, service, close: async () => { service.close(); await state.close(); } };
  }

  test('each batch moves the catalog entry; PyIceberg SqlCatalog reads the newest batch', async () => {
    const { service, close } = await open(catalogDb.url);
    try {
      const batches: Batch[] = [];
      for (const id of ['run-1', 'run-2']) {
        const r = await service.prepare({ consumer: 'daily', table: 'playback', instanceId: id, limits: { maxFiles: 3 } });
        if (r.kind !== 'batch') throw new Error('expected a batch');
        batches.push(r.batch);
        await service.commit(r.batch.id, 'test');
      }
      const last = batches[1]!.tables[0]!;
      const u = new URL(catalogDb.url);
      const out = await runPythonCode([
        'import json, sys',
        'import pyarrow.parquet as pq',
        'from pyiceberg.catalog.sql import SqlCatalog',
        'cat = SqlCatalog("ips", uri=sys.argv[1], warehouse="file:///unused")',
        't = cat.load_table("icdc.daily__playback")',
        'files = json.loads(sys.argv[2])',
        'print(json.dumps({"metadata_location": t.metadata_location, "current": str(t.current_snapshot().snapshot_id),',
        '  "rows": t.scan().to_arrow().num_rows, "expected_rows": sum(pq.read_metadata(f).num_rows for f in files)}))',
      ].join('\n'), [
        `postgresql+psycopg2://${u.username}:${u.password}@${u.hostname}:${u.port}${u.pathname}`,
        JSON.stringify(last.files.added.map((f) => (f as { file_path: string }).file_path.replace(WRITTEN, copy).replace(/^file:\/\//, ''))),
      ]);
      const got = JSON.parse(out.trim().split('\n').at(-1)!) as { metadata_location: string; current: string; rows: number; expected_rows: number };
      expect(got.metadata_location).toBe(last.icdc!.metadataLocation);
      expect(got.current).toBe(last.icdc!.snapshotId.toString());
      expect(got.expected_rows).toBeGreaterThan(0);
      expect(got.rows).toBe(got.expected_rows);
    } finally {
      await close();
    }
  });

  test('a catalog that does not answer fails the prepare (typed) and stores no batch', async () => {
    const { service, state, close } = await open('postgres://nobody:nothing@127.0.0.1:1/none');
    try {
      expect(await errorCode(service.prepare({ consumer: 'daily', table: 'playback', instanceId: 'run-x' }))).toBe('CATALOG_UNREACHABLE');
      expect(await state.repos.batches.list({ consumer: 'daily' })).toEqual([]);
    } finally {
      await close();
    }
  });
});
