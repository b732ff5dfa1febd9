// Backfill chunks delivered through the consumer's subscription sink (a signed webhook, received
// by the CloudEvents receiver of the sink tests): the same outbox, dedup keys and retries as
// triggers; each chunk exactly once; the payload carries backfill {name, chunk, chunks, range};
// the workflow the event starts commits the chunk. On the real PostgreSQL and on PGlite.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { HadoopCatalog } from '../../src/catalog/table-catalog.js';
import { LocalFileIO } from '../../src/io/local-file-io.js';
import { IpsService } from '../../src/service/ips-service.js';
import { createSubscription } from '../../src/service/subscription-admin.js';
import { TriggerService } from '../../src/service/triggers.js';
import { State } from '../../src/state/index.js';
import { commitTableUpdate, createTable } from '../../src/table/table-writer.js';
import { uploadDataFile } from '../../src/table/data-files.js';
import { Duck } from '../unit/duckdb-parquet.js';
import { DRIVERS, createPgDatabase, pgliteTemplate } from '../state/helpers.js';
import { send, startServer, webhookReceiver, type TestServer } from '../sinks/receivers.js';

const io = new LocalFileIO();
const SECRET = 'webhook-secret-for-backfill-push';

describe.each(DRIVERS)('backfill chunks through the subscription sink (%s state)', (driver) => {
  let tmp: string;
  let state: State;
  let service: IpsService;
  let triggers: TriggerService;
  let hook: TestServer;
  let drop: (() => Promise<void>) | undefined;
  const recv = webhookReceiver(SECRET);
  /** Requests per idempotency key, and the first request for chunk 1 answered 503. */
  const statuses: { key: string; status: number }[] = [];
  let failedOnce = false;
  const commits: Promise<unknown>[] = [];

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-backfill-push-'));
    if (driver === 'postgres') {
      const created = await createPgDatabase('backfill_push');
      drop = created.drop;
      state = await State.open({ driver: 'postgres', url: created.url, poolMax: 4 });
    } else {
      state = await State.open({ driver: 'pglite', dataDir: null, loadDataDir: await pgliteTemplate() });
    }
    service = new IpsService(state, { warehouse: path.join(tmp, 'icdc') });

    // A table with three days of data, written by ips's table writer from DuckDB Parquet files.
    const duck = await Duck.open();
    const cat = new HadoopCatalog(io, `file://${tmp}/wh`);
    const md = (await createTable(cat, io, {
      identifier: 'db.events',
      schema: { fields: [{ id: 1, name: 'event_id', type: 'long', required: false }, { id: 2, name: 'event_date', type: 'date', required: false }] },
      partitionFields: [{ name: 'event_date', transform: 'identity', sourceId: 2, fieldId: 1000 }],
    })).metadata;
    const files = [];
    for (const [i, day] of ['2026-10-01', '2026-10-02', '2026-10-03'].entries()) {
      const f = path.join(tmp, `f${i}.parquet`);
      await duck.writeParquet(f, `SELECT (${i} * 1000 + x)::BIGINT AS event_id, DATE '${day}' AS event_date FROM range(0, 10) t(x)`, { event_id: 1, event_date: 2 });
      files.push(await uploadDataFile(io, md, fs.readFileSync(f), `data/event_date=${day}/f${i}.parquet`));
    }
    await commitTableUpdate(cat, io, 'db.events', { operation: 'append', add: files, removePaths: [] });
    await service.registerTable({ name: 'events', ref: cat.registration('db.events') });
    await service.createConsumer({ name: 'job', tables: [{ table: 'events', from: 'now' }] }, 'test');

    hook = await startServer((req, res) => {
      const ev = JSON.parse(req.body.toString('utf8')) as { data: { batch_id: string; backfill?: { chunk: number } } };
      const key = String(req.headers['idempotency-key']);
      if (ev.data.backfill?.chunk === 1 && !failedOnce) {
        failedOnce = true;
        send(res, 503, { error: 'down for a moment' });
      } else {
        const before = recv.events.length;
        recv.handler(req, res);
        // The run the event started commits its chunk.
        if (recv.events.length > before) commits.push(service.commit(BigInt(ev.data.batch_id), 'workflow'));
      }
      statuses.push({ key, status: res.statusCode });
    });
    await createSubscription(state, { name: 'job_sub', consumer: 'job', tables: ['events'], sink: { type: 'webhook', url: hook.url, secret: SECRET } }, undefined, (t) => service.load(t));
    triggers = new TriggerService(service, { tickMs: 50, retryBaseMs: 50, claimSeconds: 30 });
  });

  afterAll(async () => {
    await triggers?.stop();
    await hook?.close();
    service?.close();
    await state?.close();
    await drop?.();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('every chunk is delivered once with its backfill block, retried after a 503, committed by its run; the watermark stays', async () => {
    const before = await state.repos.watermarks.require('job', 'events');
    await service.backfills.create({ name: 'oct', consumer: 'job', where: 'event_date >= 2026-10-01 and event_date < 2026-10-04', concurrency: 2 }, 'test');
    await triggers.start();
    // Until the backfill is committed and every trigger is marked delivered (the run may commit before the sink's answer is recorded).
    const settled = async (): Promise<boolean> => (await state.repos.backfills.require('oct')).state === 'committed'
      && (await state.repos.outbox.list({ subscription: 'job_sub' })).every((o) => o.state === 'delivered');
    for (let i = 0; i < 600 && !(await settled()); i++) await new Promise((r) => setTimeout(r, 50));
    await Promise.all(commits);
    expect((await state.repos.backfills.require('oct')).state).toBe('committed');

    const data = recv.events.map((e) => (e as { data: { backfill: { name: string; chunk: number; chunks: number; range: { min: string } }; instance_id: string } }).data);
    expect(data.map((d) => d.backfill.chunk).sort()).toEqual([0, 1, 2]);
    for (const d of data) {
      expect(d.backfill.name).toBe('oct');
      expect(d.backfill.chunks).toBe(3);
      expect(d.backfill.range.min).toBe(['2026-10-01', '2026-10-02', '2026-10-03'][d.backfill.chunk]);
      expect(d.instance_id).toBe(`backfill:oct:${d.backfill.chunk}:1`);
    }
    // Chunk 1's trigger was refused once and redelivered with the same idempotency key.
    const keys = statuses.map((s) => s.key);
    expect(statuses.filter((s) => s.status === 503)).toHaveLength(1);
    const retried = statuses.find((s) => s.status === 503)!.key;
    expect(keys.filter((k) => k === retried)).toHaveLength(2);
    expect(new Set(keys).size).toBe(3);
    const outbox = await state.repos.outbox.list({ subscription: 'job_sub' });
    expect(outbox.map((o) => o.state)).toEqual(['delivered', 'delivered', 'delivered']);
    const after = await state.repos.watermarks.require('job', 'events');
    expect([after.snapshotId, after.version]).toEqual([before.snapshotId, before.version]);
  });
});
