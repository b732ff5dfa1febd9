import crypto from 'node:crypto';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { FileJson } from '../../src/capture/file-json.js';
import {
  describeSourceTable, migrate, repositories, toS3Settings, toTableRef,
  type BatchTableInput, type Database, type Repositories, type WatermarkPosition,
} from '../../src/state/index.js';
import { DRIVERS, errorCode, freshDatabase, type TestDatabase } from './helpers.js';

const MAX_LONG = 9223372036854775807n; // 2^63 - 1
const MIN_LONG = -9223372036854775808n;
const ABOVE_2_53 = 9007199254740993n; // 2^53 + 1: a JS number would round it to 2^53

function uid(prefix: string): string {
  return `${prefix}-${crypto.randomBytes(4).toString('hex')}`;
}

function file(p: string, bytes = 1000, records = 10): FileJson {
  return {
    file_path: p, content: 'data', file_format: 'PARQUET', record_count: String(records), file_size_in_bytes: String(bytes),
    sequence_number: '1', file_sequence_number: '1', spec_id: 0, partition: {}, lower_bounds: {}, upper_bounds: {},
  };
}

function pos(snapshotId: bigint | null, sequenceNumber: bigint | null): WatermarkPosition {
  return { snapshotId, sequenceNumber, partialSnapshotId: null, partialSequenceNumber: null, processedFiles: [] };
}

const code = errorCode;

describe.each(DRIVERS)('state repositories (%s)', (driver) => {
  let t: TestDatabase;
  let db: Database;
  let repos: Repositories;

  beforeAll(async () => {
    t = await freshDatabase(driver, 'repos');
    db = t.db;
    await migrate(db);
    repos = repositories(db);
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  /** A table, a consumer subscribed to it, at version 1. */
  async function subscribed(position: WatermarkPosition = pos(null, null)): Promise<{ table: string; consumer: string }> {
    const table = uid('tbl');
    const consumer = uid('con');
    await repos.sourceTables.create({ name: table, ref: { kind: 'directory', location: `/warehouse/${table}` } });
    await repos.consumers.create({ name: consumer });
    await repos.watermarks.create({ consumer, sourceTable: table, position }, { actor: 'test', reason: 'subscribe' });
    return { table, consumer };
  }

  function batchTable(table: string, base: bigint, from: bigint | null, to: bigint, files: FileJson[]): BatchTableInput {
    return {
      sourceTable: table,
      fromSnapshotId: from, fromSequenceNumber: from === null ? null : 1n,
      toSnapshotId: to, toSequenceNumber: 2n,
      files: { added: files, removed: [] },
      ranges: { event_date: { min: '2026-11-07', max: '2026-11-20', flag: 'exact' } },
      baseWatermarkVersion: base,
      next: pos(to, 2n),
    };
  }

  test('BIGINT round-trips above 2^53 exactly, always as bigint', async () => {
    const r = await db.query<{ a: bigint; b: bigint; c: bigint; small: bigint; n: bigint; j: { n: bigint; s: number } }>(
      `SELECT $1::INT8 AS a, $2::INT8 AS b, $3::INT8 AS c, 5::INT8 AS small, count(*) AS n,
              '{"n": 9223372036854775807, "s": 7}'::JSONB AS j
         FROM (SELECT 1) x`,
      [MAX_LONG, MIN_LONG, ABOVE_2_53]);
    const row = r.rows[0]!;
    expect(row.a).toBe(MAX_LONG);
    expect(row.b).toBe(MIN_LONG);
    expect(row.c).toBe(ABOVE_2_53);
    expect(row.small).toBe(5n); // not a number, even when it would fit
    expect(row.n).toBe(1n);
    expect(row.j).toEqual({ n: MAX_LONG, s: 7 }); // JSON integers beyond 2^53 are not rounded

    // Through the repositories: watermark ids, batch ids, ICDC snapshot ids, audit rows.
    const { table, consumer } = await subscribed(pos(MAX_LONG, ABOVE_2_53));
    const wm = await repos.watermarks.require(consumer, table);
    expect(wm.snapshotId).toBe(MAX_LONG);
    expect(wm.sequenceNumber).toBe(ABOVE_2_53);
    const id = (1n << 62n) + 12345n;
    const icdcSnapshot = MAX_LONG - 1n;
    const { batch } = await repos.batches.create({
      id, consumer, instanceId: 'run-1', leaseSeconds: 60, limits: { maxFiles: 10, maxBytes: MAX_LONG },
      tables: [{
        ...batchTable(table, wm.version, MAX_LONG, ABOVE_2_53 + 2n, [file('s3://b/f1.parquet', 1, 1)]),
        icdc: { table: `icdc.${consumer}__${table}`, snapshotId: icdcSnapshot, metadataLocation: 's3://b/icdc/v1.metadata.json' },
      }],
    });
    const again = await repos.batches.require(id);
    expect(again.id).toBe(id);
    expect(again.limits).toEqual({ maxFiles: 10, maxBytes: MAX_LONG });
    expect(again.tables[0]!.fromSnapshotId).toBe(MAX_LONG);
    expect(again.tables[0]!.toSnapshotId).toBe(ABOVE_2_53 + 2n);
    expect(again.tables[0]!.icdc?.snapshotId).toBe(icdcSnapshot);
    expect(again).toEqual(batch);
    const moves = await repos.watermarks.moves({ consumer });
    expect(moves[0]!.to.snapshotId).toBe(MAX_LONG);
    expect(moves[0]!.to.sequenceNumber).toBe(ABOVE_2_53);
    // Random ids are 63-bit: positive, and almost all above 2^53.
    expect(moves[0]!.id > 0n && typeof moves[0]!.id === 'bigint').toBe(true);
  });

  test('source tables: every way to reach a table; secrets never in JSON or logs', async () => {
    const name = uid('events');
    const created = await repos.sourceTables.create({
      name,
      ref: { kind: 'sql', uri: 'postgresql://cat:hunter2@db:5432/catalog', catalogName: 'prod', identifier: 'db.events' },
      s3: { endpoint: 'http://minio:9000', region: 'us-east-1', pathStyle: true, accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'very-secret-key' },
      properties: { owner: 'data-eng' },
    });
    expect(created.ref).toEqual({ kind: 'sql', uri: 'postgresql://cat:hunter2@db:5432/catalog', catalogName: 'prod', identifier: 'db.events' });
    const got = await repos.sourceTables.require(name);
    expect(got.s3?.secretAccessKey?.reveal()).toBe('very-secret-key');
    expect(toS3Settings(got)).toEqual({ endpoint: 'http://minio:9000', region: 'us-east-1', pathStyle: true, accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'very-secret-key' });
    expect(toTableRef(got)).toEqual({ kind: 'sql', uri: 'postgresql://cat:hunter2@db:5432/catalog', catalogName: 'prod', identifier: 'db.events' });
    for (const text of [JSON.stringify(got), inspect(got, { depth: 10 }), `${got.s3?.secretAccessKey}`]) {
      expect(text).not.toContain('very-secret-key');
    }
    const safe = JSON.stringify(describeSourceTable(got));
    expect(safe).not.toContain('very-secret-key');
    expect(safe).not.toContain('hunter2');
    expect(safe).toContain('"secret_access_key":"***"');
    expect(safe).toContain('postgresql://cat:***@db:5432/catalog');

    const rest = await repos.sourceTables.create({
      name: uid('rest'), ref: { kind: 'rest', uri: 'https://catalog.example/api', warehouse: 'wh', token: 'tok-123', identifier: 'ns.t' },
    });
    expect(JSON.stringify(rest)).not.toContain('tok-123');
    expect(toTableRef(rest)).toEqual({ kind: 'rest', uri: 'https://catalog.example/api', warehouse: 'wh', token: 'tok-123', identifier: 'ns.t' });
    const meta = await repos.sourceTables.create({ name: uid('meta'), ref: { kind: 'metadata-file', location: 's3://b/t/metadata/v3.metadata.json' }, branch: 'audit' });
    expect(meta.branch).toBe('audit');
    expect(meta.s3).toBeNull();

    expect(await code(repos.sourceTables.create({ name, ref: { kind: 'directory', location: '/x' } }))).toBe('ALREADY_EXISTS');
    expect(await code(repos.sourceTables.create({ name: 'bad name!', ref: { kind: 'directory', location: '/x' } }))).toBe('INVALID_ARGUMENT');
    expect(await code(repos.sourceTables.create({ name: uid('x'), ref: { kind: 'sql', uri: '', identifier: 'a.b' } }))).toBe('INVALID_ARGUMENT');
    expect(await code(repos.sourceTables.require(uid('missing')))).toBe('NOT_FOUND');

    const updated = await repos.sourceTables.update({ name, ref: { kind: 'directory', location: '/moved' } });
    expect(updated.ref).toEqual({ kind: 'directory', location: '/moved' });
    expect(updated.s3).toBeNull();
    expect((await repos.sourceTables.list()).map((x) => x.name)).toContain(name);
  });

  test('a consumer\'s subscriptions with their source tables (one join) equal the two reads they replace', async () => {
    const consumer = uid('con');
    await repos.consumers.create({ name: consumer });
    const names = [uid('b_sql'), uid('a_rest'), uid('c_dir')];
    await repos.sourceTables.create({
      name: names[0]!, ref: { kind: 'sql', uri: 'postgresql://cat:hunter2@db:5432/catalog', catalogName: 'prod', identifier: 'db.events' },
      s3: { endpoint: 'http://minio:9000', region: 'us-east-1', pathStyle: true, accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'very-secret-key' },
      properties: { owner: 'data-eng' }, branch: 'audit',
    });
    await repos.sourceTables.create({ name: names[1]!, ref: { kind: 'rest', uri: 'https://catalog.example/api', warehouse: 'wh', token: 'tok-123', identifier: 'ns.t' } });
    await repos.sourceTables.create({ name: names[2]!, ref: { kind: 'directory', location: '/warehouse/c' } });
    await repos.sourceTables.create({ name: uid('not_subscribed'), ref: { kind: 'directory', location: '/warehouse/d' } });
    for (const [i, n] of names.entries()) {
      await repos.watermarks.create({ consumer, sourceTable: n, position: pos(BigInt(2 ** 53) + BigInt(i), 7n), rangeFields: i === 0 ? ['ts'] : [] }, { actor: 'test', reason: 'subscribe' });
    }
    const joined = await repos.watermarks.listByConsumerWithSources(consumer);
    const watermarks = await repos.watermarks.listByConsumer(consumer);
    expect(joined.map((j) => j.watermark)).toEqual(watermarks);
    expect(joined.map((j) => j.source.name)).toEqual([...names].sort());
    for (const j of joined) {
      const read = await repos.sourceTables.require(j.source.name);
      expect(j.source).toEqual(read);
      expect(toTableRef(j.source)).toEqual(toTableRef(read));
      expect(toS3Settings(j.source)).toEqual(toS3Settings(read));
    }
    expect(await repos.watermarks.listByConsumerWithSources(uid('nobody'))).toEqual([]);
  });

  test('consumers: create, policy, stale with a reason, active again', async () => {
    const name = uid('wf');
    const c = await repos.consumers.create({ name, description: 'daily job', policy: { overwrite: 'added-only' }, leaseSeconds: 900 });
    expect(c).toMatchObject({ name, state: 'active', stateReason: null, policy: { overwrite: 'added-only', delete: 'include' }, leaseSeconds: 900 });
    const stale = await repos.consumers.setState(name, 'stale', 'snapshot 42 expired');
    expect(stale).toMatchObject({ state: 'stale', stateReason: 'snapshot 42 expired' });
    expect((await repos.consumers.setState(name, 'active')).stateReason).toBeNull();
    expect((await repos.consumers.update(name, { policy: { delete: 'skip' } })).policy).toEqual({ overwrite: 'added-only', delete: 'skip' });
    expect(await code(repos.consumers.create({ name }))).toBe('ALREADY_EXISTS');
    expect(await code(repos.consumers.create({ name: uid('x'), leaseSeconds: 0 }))).toBe('INVALID_ARGUMENT');
  });

  test('watermark compare-and-set: a moved version is a CONFLICT', async () => {
    const { table, consumer } = await subscribed();
    const wm = await repos.watermarks.require(consumer, table);
    expect(wm.version).toBe(1n);
    const moved = await repos.watermarks.advance(consumer, table, 1n, pos(100n, 1n), { actor: 'step-a', reason: 'commit' });
    expect(moved).toMatchObject({ version: 2n, snapshotId: 100n, sequenceNumber: 1n });

    let err: unknown;
    try {
      await repos.watermarks.advance(consumer, table, 1n, pos(200n, 2n), { actor: 'step-b', reason: 'commit' });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'CONFLICT', details: { expected_version: '1', actual_version: '2' } });
    expect(await repos.watermarks.require(consumer, table)).toMatchObject({ version: 2n, snapshotId: 100n });
    expect(await code(repos.watermarks.advance(consumer, uid('nope'), 1n, pos(1n, 1n), { actor: 'x', reason: 'commit' }))).toBe('NOT_FOUND');
    // A partly processed snapshot: files of it are recorded, sorted, once each.
    const partial = await repos.watermarks.advance(consumer, table, 2n, {
      snapshotId: 100n, sequenceNumber: 1n, partialSnapshotId: 300n, partialSequenceNumber: 3n,
      processedFiles: ['s3://b/z.parquet', 's3://b/a.parquet', 's3://b/z.parquet'],
    }, { actor: 'step-c', reason: 'commit' });
    expect(partial.processedFiles).toEqual(['s3://b/a.parquet', 's3://b/z.parquet']);
    expect(await code(repos.watermarks.advance(consumer, table, 3n, { ...pos(1n, 1n), processedFiles: ['x'] }, { actor: 'x', reason: 'commit' })))
      .toBe('INVALID_ARGUMENT');

    // Every move is audited, in order.
    const moves = await repos.watermarks.moves({ consumer, sourceTable: table });
    expect(moves.map((m) => [m.reason, m.actor, m.fromVersion, m.toVersion])).toEqual([
      ['subscribe', 'test', null, 1n], ['commit', 'step-a', 1n, 2n], ['commit', 'step-c', 2n, 3n],
    ]);
    expect(moves[1]!.from).toEqual(pos(null, null));
    expect(moves[1]!.to).toEqual(pos(100n, 1n));
    expect(moves[2]!.to.processedFiles).toEqual(['s3://b/a.parquet', 's3://b/z.parquet']);

    // From the split position on to a whole snapshot: the audit row gives both back exactly,
    // though only the split one is stored as JSON (a whole snapshot is in the scalar columns).
    const split = { snapshotId: 100n, sequenceNumber: 1n, partialSnapshotId: 300n, partialSequenceNumber: 3n, processedFiles: ['s3://b/a.parquet', 's3://b/z.parquet'] };
    await repos.watermarks.advance(consumer, table, 3n, pos(300n, 3n), { actor: 'step-d', reason: 'commit' });
    const last = (await repos.watermarks.moves({ consumer, sourceTable: table }))[3]!;
    expect([last.fromVersion, last.from, last.toVersion, last.to]).toEqual([3n, split, 4n, pos(300n, 3n)]);
    const stored = await db.query<{ to_version: bigint; f: boolean; t: boolean }>(
      'SELECT to_version, from_position IS NOT NULL AS f, to_position IS NOT NULL AS t FROM watermark_moves WHERE consumer = $1 ORDER BY to_version', [consumer]);
    expect(stored.rows.map((r) => [BigInt(r.to_version), r.f, r.t])).toEqual([[1n, false, false], [2n, false, false], [3n, false, true], [4n, true, false]]);
  });

  test('the audit row is written in the transaction of the move: a failed transaction leaves neither', async () => {
    const { table, consumer } = await subscribed();
    const movesBefore = (await repos.watermarks.moves({ consumer })).length;
    await expect(db.withTransaction(async (tx) => {
      const r = repositories(tx);
      await r.watermarks.advance(consumer, table, 1n, pos(500n, 5n), { actor: 'step', reason: 'commit' });
      // Inside the transaction both are visible...
      expect((await r.watermarks.require(consumer, table)).version).toBe(2n);
      expect((await r.watermarks.moves({ consumer })).length).toBe(movesBefore + 1);
      // ...then a later statement of the same transaction fails.
      await tx.query('SELECT * FROM no_such_table');
    })).rejects.toThrow(/no_such_table/);
    expect(await repos.watermarks.require(consumer, table)).toMatchObject({ version: 1n, snapshotId: null });
    expect((await repos.watermarks.moves({ consumer })).length).toBe(movesBefore);

    // And a thrown error in the callback rolls back the same way.
    await expect(db.withTransaction(async (tx) => {
      await repositories(tx).watermarks.advance(consumer, table, 1n, pos(500n, 5n), { actor: 'step', reason: 'commit' });
      throw new Error('workflow step crashed');
    })).rejects.toThrow('workflow step crashed');
    expect((await repos.watermarks.require(consumer, table)).version).toBe(1n);
    expect((await repos.watermarks.moves({ consumer })).length).toBe(movesBefore);
  });

  test('concurrent compare-and-set on one watermark: exactly one wins', async () => {
    const { table, consumer } = await subscribed();
    const other = t.driver === 'postgres' ? await t.openAnother() : db;
    const attempts = await Promise.allSettled([db, other, db, other].map((d, i) =>
      repositories(d).watermarks.advance(consumer, table, 1n, pos(BigInt(1000 + i), 1n), { actor: `replica-${i}`, reason: 'commit' })));
    const won = attempts.filter((a) => a.status === 'fulfilled');
    const lost = attempts.filter((a): a is PromiseRejectedResult => a.status === 'rejected');
    expect(won.length).toBe(1);
    expect(lost.map((l) => (l.reason as { code?: string }).code)).toEqual(['CONFLICT', 'CONFLICT', 'CONFLICT']);
    expect((await repos.watermarks.require(consumer, table)).version).toBe(2n);
    expect((await repos.watermarks.moves({ consumer })).length).toBe(2); // subscribe + the winner
  });

  test('a batch over two tables stores both (as read back); an unregistered table is refused and stores nothing', async () => {
    const a = await subscribed();
    const b = uid('tbl');
    await repos.sourceTables.create({ name: b, ref: { kind: 'directory', location: `/warehouse/${b}` } });
    await repos.watermarks.create({ consumer: a.consumer, sourceTable: b, position: pos(null, null) }, { actor: 'test', reason: 'subscribe' });
    const made = await repos.batches.create({
      consumer: a.consumer, instanceId: 'two-tables', leaseSeconds: 600,
      tables: [batchTable(b, 1n, null, MAX_LONG, [file('s3://b/x.parquet', 7, 1)]), batchTable(a.table, 1n, null, ABOVE_2_53, [file('s3://b/y.parquet', 5, 2), file('s3://b/z.parquet', 4, 3)])],
    });
    expect(made.created).toBe(true);
    const read = await repos.batches.require(made.batch.id);
    expect(read).toEqual(made.batch);
    const byName = new Map(read.tables.map((x) => [x.sourceTable, x]));
    expect(byName.get(b)).toMatchObject({ toSnapshotId: MAX_LONG, fileCount: 1, byteCount: 7n, recordCount: 1n });
    expect(byName.get(a.table)).toMatchObject({ toSnapshotId: ABOVE_2_53, fileCount: 2, byteCount: 9n, recordCount: 5n });

    const missing = uid('not-registered');
    const refused = await repos.batches.create({
      consumer: a.consumer, instanceId: 'unregistered', leaseSeconds: 600, tables: [batchTable(missing, 1n, null, 3n, [])],
    }).then(() => null, (e: unknown) => e as { code?: string; message?: string });
    expect(refused).toMatchObject({ code: 'NOT_FOUND' });
    expect(refused?.message).toContain(`source table "${missing}" is not registered`);
    expect(await repos.batches.findByInstance(a.consumer, 'unregistered')).toBeUndefined();
    const second = await repos.batches.create({
      consumer: a.consumer, instanceId: 'unregistered-second', leaseSeconds: 600, tables: [batchTable(a.table, 1n, null, 3n, []), batchTable(missing, 1n, null, 3n, [])],
    }).then(() => null, (e: unknown) => e as { code?: string; message?: string });
    expect(second?.message).toContain(`source table "${missing}" is not registered`);
    expect(await repos.batches.findByInstance(a.consumer, 'unregistered-second')).toBeUndefined();
  });

  test('prepare is idempotent on (consumer, instance_id)', async () => {
    const { table, consumer } = await subscribed();
    const input = {
      consumer, instanceId: 'maestro-run-7/step-2', leaseSeconds: 600,
      tables: [batchTable(table, 1n, null, 10n, [file('s3://b/1.parquet', 100, 3), file('s3://b/2.parquet', 50, 2)])],
    };
    const first = await repos.batches.create(input);
    expect(first.created).toBe(true);
    expect(first.batch).toMatchObject({ consumer, instanceId: 'maestro-run-7/step-2', state: 'open' });
    expect(first.batch.tables[0]).toMatchObject({ fileCount: 2, byteCount: 150n, recordCount: 5n, baseWatermarkVersion: 1n });
    // A retry, even with other content, gets the stored batch unchanged.
    const retry = await repos.batches.create({ ...input, tables: [batchTable(table, 1n, null, 11n, [file('s3://b/3.parquet')])] });
    expect(retry.created).toBe(false);
    expect(retry.batch).toEqual(first.batch);
    expect((await repos.batches.findByInstance(consumer, 'maestro-run-7/step-2'))?.id).toBe(first.batch.id);
    // The same instance id under another consumer is another batch.
    const two = await subscribed();
    const otherConsumer = await repos.batches.create({ ...input, consumer: two.consumer, tables: [batchTable(two.table, 1n, null, 10n, [])] });
    expect(otherConsumer.created).toBe(true);
    expect(otherConsumer.batch.id).not.toBe(first.batch.id);

    // Concurrent prepares of one step instance (two replicas, two pools): one batch.
    const other = t.driver === 'postgres' ? await t.openAnother() : db;
    const racing = await Promise.all([db, other, db, other].map((d, i) => repositories(d).batches.create({
      consumer, instanceId: 'racing-instance', leaseSeconds: 600, tables: [batchTable(table, 1n, null, BigInt(20 + i), [file(`s3://b/r${i}.parquet`)])],
    })));
    expect(racing.filter((r) => r.created).length).toBe(1);
    expect(new Set(racing.map((r) => r.batch.id)).size).toBe(1);
    expect(new Set(racing.map((r) => r.batch.tables[0]!.toSnapshotId)).size).toBe(1);
    expect((await repos.batches.list({ consumer })).map((b) => b.instanceId).sort()).toEqual(['maestro-run-7/step-2', 'racing-instance']);

    expect(await code(repos.batches.create({ ...input, consumer: uid('ghost'), instanceId: 'x' }))).toBe('NOT_FOUND');
    expect(await code(repos.batches.create({ ...input, instanceId: 'y', tables: [batchTable(uid('ghost'), 1n, null, 1n, [])] }))).toBe('NOT_FOUND');
    // A failed create leaves no half batch behind.
    expect(await repos.batches.findByInstance(consumer, 'y')).toBeUndefined();
  });

  test('a live prepare\'s store (lock, in-flight check and insert sent together): what is refused stores nothing', async () => {
    const { table, consumer } = await subscribed();
    const live = (instanceId: string, base = 1n, extra: Partial<Parameters<typeof repos.batches.create>[0]> = {}) => ({
      consumer, instanceId, leaseSeconds: 600, maxInFlight: 1, tables: [batchTable(table, base, null, 10n, [file(`s3://b/${instanceId}.parquet`)])], ...extra,
    });
    const storedRows = async (): Promise<number> => Number((await db.query<{ n: bigint }>(
      'SELECT count(*)::INT8 AS n FROM batch_tables t JOIN batches b ON b.id = t.batch_id WHERE b.consumer = $1', [consumer])).rows[0]!.n);
    const a = await repos.batches.create(live('a'));
    expect(a.created).toBe(true);
    expect(await repos.batches.get(a.batch.id)).toEqual(a.batch);
    // A retry of the same instance: the stored batch, unchanged, nothing more stored.
    const again = await repos.batches.create(live('a', 1n, { tables: [batchTable(table, 1n, null, 11n, [])] }));
    expect(again).toEqual({ batch: a.batch, created: false });
    // Another instance while a is open: refused, and its row (inserted behind the check) is gone.
    const busy = await repos.batches.create(live('b')).catch((e: unknown) => e);
    expect(busy).toMatchObject({ code: 'BATCH_IN_FLIGHT', details: { batch_id: a.batch.id.toString() } });
    expect(await repos.batches.findByInstance(consumer, 'b')).toBeUndefined();
    expect(await storedRows()).toBe(1);
    // Planned on a watermark version that is not the current one: CONFLICT, nothing stored.
    await repos.batches.close(a.batch.id, 'aborted', 'test');
    expect(await code(repos.batches.create(live('c', 7n)))).toBe('CONFLICT');
    expect(await repos.batches.findByInstance(consumer, 'c')).toBeUndefined();
    // No such consumer, a table it does not subscribe to: NOT_FOUND, nothing stored.
    expect(await code(repos.batches.create(live('d', 1n, { consumer: uid('ghost') })))).toBe('NOT_FOUND');
    expect(await code(repos.batches.create(live('e', 1n, { tables: [batchTable(uid('ghost'), 1n, null, 1n, [])] })))).toBe('NOT_FOUND');
    expect(await storedRows()).toBe(1);
    // Prepares of other instances racing from two processes: one batch, the rest in flight.
    const other = t.driver === 'postgres' ? await t.openAnother() : db;
    const raced = await Promise.allSettled([db, other, db, other, db, other].map((d, i) => repositories(d).batches.create(live(`race-${i}`))));
    const won = raced.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    expect(raced.filter((r) => r.status === 'rejected').map((r) => ((r as PromiseRejectedResult).reason as { code?: string }).code)).toEqual(Array(5).fill('BATCH_IN_FLIGHT'));
    expect((await repos.batches.list({ consumer, state: 'open' })).map((b) => b.id)).toEqual([(won[0] as PromiseFulfilledResult<{ batch: { id: bigint } }>).value.batch.id]);
    expect(await storedRows()).toBe(2);
  });

  test('commit moves the watermark once; a replay is a no-op; a moved base is a CONFLICT', async () => {
    const { table, consumer } = await subscribed();
    const a = (await repos.batches.create({ consumer, instanceId: 'a', leaseSeconds: 600, tables: [batchTable(table, 1n, null, 10n, [file('s3://b/a')])] })).batch;
    const b = (await repos.batches.create({ consumer, instanceId: 'b', leaseSeconds: 600, tables: [batchTable(table, 1n, null, 11n, [file('s3://b/b')])] })).batch;
    await repos.batches.setIcdc(a.id, table, { table: 'icdc.x', snapshotId: ABOVE_2_53, metadataLocation: 's3://icdc/v2.metadata.json' });

    const done = await repos.batches.commit(a.id, 'step-a');
    expect(done.alreadyCommitted).toBe(false);
    expect(done.batch.state).toBe('committed');
    expect(done.batch.closedAt).toBeInstanceOf(Date);
    expect(done.watermarks[0]).toMatchObject({ version: 2n, snapshotId: 10n, sequenceNumber: 2n });
    const replay = await repos.batches.commit(a.id, 'step-a');
    expect(replay.alreadyCommitted).toBe(true);
    expect((await repos.watermarks.require(consumer, table)).version).toBe(2n);

    // b was prepared on version 1 too: its commit conflicts and changes nothing.
    expect(await code(repos.batches.commit(b.id, 'step-b'))).toBe('CONFLICT');
    expect((await repos.batches.require(b.id)).state).toBe('open');
    expect((await repos.watermarks.require(consumer, table)).snapshotId).toBe(10n);
    const moves = await repos.watermarks.moves({ consumer });
    expect(moves.map((m) => [m.reason, m.batchId])).toEqual([['subscribe', null], ['commit', a.id]]);
    expect((await repos.watermarks.moves({ batchId: a.id })).length).toBe(1);
  });

  test('a commit checked in its transaction: the head it is shown is head()\'s; a refusal or a "not yet" changes nothing', async () => {
    const { table, consumer } = await subscribed();
    const out = uid('out');
    await repos.sourceTables.create({ name: out, ref: { kind: 'directory', location: `/warehouse/${out}` } });
    const a = (await repos.batches.create({ consumer, instanceId: 'a', leaseSeconds: 600, tables: [batchTable(table, 1n, null, 10n, [file('s3://b/a')])] })).batch;
    const seen: unknown[] = [];
    // Refused (the check throws): the batch stays open, the watermark where it was, no move recorded.
    await expect(repos.batches.commitIf(a.id, 'step', [], (h) => {
      seen.push(h);
      throw new Error('not yours');
    })).rejects.toThrow('not yours');
    expect(seen[0]).toEqual(await repos.batches.head(a.id));
    expect((await repos.batches.require(a.id)).state).toBe('open');
    expect((await repos.watermarks.require(consumer, table)).version).toBe(1n);
    expect(await repos.watermarks.moves({ batchId: a.id })).toEqual([]);
    // Not yet (the consumer declares outputs to resolve first): null, nothing changed.
    await repos.backfills.setOutputs(consumer, [out]);
    expect(await repos.batches.commitIf(a.id, 'step', [], (h) => !h.hasOutputs)).toBeNull();
    expect(await repos.batches.head(a.id)).toMatchObject({ state: 'open', hasOutputs: true });
    expect((await repos.watermarks.require(consumer, table)).version).toBe(1n);
    // Allowed: committed as commit() would; a replay is shown the committed head and is a no-op.
    const done = await repos.batches.commitIf(a.id, 'step', [], () => true);
    expect(done).toMatchObject({ alreadyCommitted: false, batch: { state: 'committed' }, watermarks: [{ version: 2n, snapshotId: 10n }] });
    expect((await repos.watermarks.moves({ batchId: a.id })).map((m) => m.reason)).toEqual(['commit']);
    const replay = await repos.batches.commitIf(a.id, 'step', [], (h) => h.state === 'committed');
    expect(replay?.alreadyCommitted).toBe(true);
    expect(await code(repos.batches.commitIf(123456789n, 'step', [], () => true))).toBe('NOT_FOUND');
  });

  test('abort and lease expiry release a batch; a released batch cannot be committed', async () => {
    const { table, consumer } = await subscribed();
    const a = (await repos.batches.create({ consumer, instanceId: 'a', leaseSeconds: 600, tables: [batchTable(table, 1n, null, 10n, [])] })).batch;
    const aborted = await repos.batches.close(a.id, 'aborted', 'step failed');
    expect(aborted).toMatchObject({ changed: true, batch: { state: 'aborted', stateReason: 'step failed' } });
    expect((await repos.batches.close(a.id, 'aborted')).changed).toBe(false);
    expect(await code(repos.batches.commit(a.id, 'step'))).toBe('BATCH_NOT_OPEN');
    expect(await code(repos.batches.close(a.id, 'expired'))).toBe('BATCH_NOT_OPEN');

    const b = (await repos.batches.create({ consumer, instanceId: 'b', leaseSeconds: 600, tables: [batchTable(table, 1n, null, 10n, [])] })).batch;
    await db.query(`UPDATE batches SET lease_expires_at = now() - INTERVAL '1 second' WHERE id = $1`, [b.id]);
    expect(await code(repos.batches.commit(b.id, 'late-step'))).toBe('BATCH_NOT_OPEN'); // even before the sweep
    const expired = await repos.batches.expireDue();
    expect(expired).toContain(b.id);
    expect((await repos.batches.require(b.id)).state).toBe('expired');
    expect((await repos.watermarks.require(consumer, table)).version).toBe(1n);

    const c = (await repos.batches.create({ consumer, instanceId: 'c', leaseSeconds: 1, tables: [batchTable(table, 1n, null, 10n, [])] })).batch;
    const extended = await repos.batches.extendLease(c.id, 3600);
    expect(extended.leaseExpiresAt.getTime()).toBeGreaterThan(c.leaseExpiresAt.getTime() + 3000_000);
    expect(await code(repos.batches.extendLease(a.id, 60))).toBe('BATCH_NOT_OPEN');

    // A delivered trigger starts the lease again, for the consumer's lease seconds (7,200 here),
    // measured on the database clock; a closed batch is left as it is.
    const other = uid('con');
    await repos.consumers.create({ name: other, leaseSeconds: 7200 });
    await repos.watermarks.create({ consumer: other, sourceTable: table, position: pos(null, null) }, { actor: 'test', reason: 'subscribe' });
    const d = (await repos.batches.create({ consumer: other, instanceId: 'd', leaseSeconds: 1, tables: [batchTable(table, 1n, null, 10n, [])] })).batch;
    expect(await repos.batches.restartLease(d.id)).toBe(true);
    const left = await db.query<{ s: string }>(`SELECT extract(epoch FROM lease_expires_at - now())::TEXT AS s FROM batches WHERE id = $1`, [d.id]);
    expect(Number(left.rows[0]!.s)).toBeGreaterThan(7100);
    expect(Number(left.rows[0]!.s)).toBeLessThanOrEqual(7200);
    expect(await repos.batches.restartLease(a.id)).toBe(false);
    expect((await repos.batches.require(a.id)).state).toBe('aborted');
  });

  test('wake makes the enabled subscriptions over a table, or of a consumer, due now, and counts them', async () => {
    const { table: t1, consumer: c1 } = await subscribed();
    const { table: t2, consumer: c2 } = await subscribed();
    // A name with dots and dashes: the match is on the JSON array's elements, whole.
    const odd = uid('db.odd-t');
    await repos.sourceTables.create({ name: odd, ref: { kind: 'directory', location: '/warehouse/odd' } });
    const sink = { type: 'webhook' as const, url: 'http://127.0.0.1:9/x' };
    const names = { a: uid('sa'), b: uid('sb'), off: uid('soff'), c: uid('sc') };
    await repos.subscriptions.create({ name: names.a, consumer: c1, tables: [t1, odd], sink });
    await repos.subscriptions.create({ name: names.b, consumer: c2, tables: [t2], sink });
    await repos.subscriptions.create({ name: names.off, consumer: c2, tables: [t1], sink, enabled: false });
    await repos.subscriptions.create({ name: names.c, consumer: c2, tables: [odd], sink });
    const all = Object.values(names);
    const later = async (): Promise<void> => {
      await db.query(`UPDATE subscriptions SET next_check_at = now() + INTERVAL '1 hour', claimed_by = NULL WHERE name = ANY($1::TEXT[])`, [`{${all.join(',')}}`]);
    };
    const dueNow = async (): Promise<string[]> => (await db.query<{ name: string }>(
      `SELECT name FROM subscriptions WHERE name = ANY($1::TEXT[]) AND next_check_at <= now() ORDER BY name`,
      [`{${all.join(',')}}`])).rows.map((r) => r.name);
    await later();
    expect(await repos.subscriptions.wake({ tables: [t1] })).toBe(1); // not the disabled one
    expect(await dueNow()).toEqual([names.a]);
    // Due already: still counted (the caller pokes its loop), left as it is.
    expect(await repos.subscriptions.wake({ tables: [t1] })).toBe(1);
    await later();
    expect(await repos.subscriptions.wake({ tables: [odd] })).toBe(2);
    expect(await dueNow()).toEqual([names.a, names.c].sort());
    await later();
    expect(await repos.subscriptions.wake({ consumer: c2 })).toBe(2);
    expect(await dueNow()).toEqual([names.b, names.c].sort());
    await later();
    expect(await repos.subscriptions.wake({ tables: [uid('nothing')] })).toBe(0);
    expect(await repos.subscriptions.wake({ tables: [] })).toBe(0);
    expect(await dueNow()).toEqual([]);
  });

  test('claims: open batches go to one owner until the claim expires', async () => {
    const { table, consumer } = await subscribed();
    const ids: bigint[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push((await repos.batches.create({ consumer, instanceId: `i${i}`, leaseSeconds: 600, tables: [batchTable(table, 1n, null, 10n, [])] })).batch.id);
    }
    // Other tests' open batches are in the same database: look at ours only.
    const mine = (bs: { id: bigint }[]): bigint[] => bs.map((b) => b.id).filter((id) => ids.includes(id));
    const first = await repos.batches.claimOpen({ owner: 'replica-1', limit: 1000, claimSeconds: 60 });
    expect(mine(first).sort()).toEqual([...ids].sort());
    expect(first.every((b) => b.claimedBy === 'replica-1')).toBe(true);
    expect(mine(await repos.batches.claimOpen({ owner: 'replica-2', limit: 1000, claimSeconds: 60 }))).toEqual([]);
    expect(await repos.batches.releaseClaim(ids[0]!, 'replica-2')).toBe(false);
    expect(await repos.batches.releaseClaim(ids[0]!, 'replica-1')).toBe(true);
    await db.query(`UPDATE batches SET claim_expires_at = now() - INTERVAL '1 second' WHERE id = $1`, [ids[1]!]);
    expect(mine(await repos.batches.claimOpen({ owner: 'replica-2', limit: 1000, claimSeconds: 60 })).sort()).toEqual([ids[0]!, ids[1]!].sort());
  });
});
