// The ICDC step protocol over a real Iceberg table (fixtures/tables/playback, written by PyIceberg)
// and the state database on both drivers: the real PostgreSQL and in-memory PGlite. Expectations come from the table's own snapshot
// summaries (added-data-files / deleted-data-files / total-data-files, written by PyIceberg),
// not from ips' manifest reading.
import crypto from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { ICDC_RETAINED_BATCHES, StepProtocol, type PrepareResult } from '../../src/service/step-protocol.js';
import { BatchesRepo, State, type Batch } from '../../src/state/index.js';
import { REPO_ROOT, runPythonCode } from '../setup/env.js';
import { DRIVERS, createPgDatabase, errorCode, pgliteTemplate } from '../state/helpers.js';

interface SummarySnapshot {
  'snapshot-id': number | string;
  'parent-snapshot-id'?: number | string;
  summary: Record<string, string>;
}

function uid(prefix: string): string {
  return `${prefix}-${crypto.randomBytes(4).toString('hex')}`;
}

const code = errorCode;

function batchOf(r: PrepareResult): Batch {
  if (r.kind !== 'batch') throw new Error(`expected a batch, got ${r.kind}`);
  return r.batch;
}

function paths(b: Batch, which: 'added' | 'removed'): string[] {
  return b.tables.flatMap((t) => t.files[which].map((f) => f.file_path)).sort();
}

describe.each(DRIVERS)('StepProtocol (%s state, playback fixture)', (driver) => {
  let tmp: string;
  let tableDir: string;
  let state: State;
  let proto: StepProtocol;
  let dropDb: (() => Promise<void>) | undefined;
  const table = 'playback';
  /** From the PyIceberg-written summaries of the last metadata file. */
  let summaryAdded = 0;
  let summaryDeleted = 0;
  let headTotal = 0;

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-step-'));
    tableDir = path.join(tmp, 'playback');
    cpSync(path.join(REPO_ROOT, 'fixtures', 'tables', 'playback'), tableDir, { recursive: true });
    const metaDir = path.join(tableDir, 'metadata');
    const last = readdirSync(metaDir).filter((f) => f.endsWith('.metadata.json')).sort().at(-1)!;
    // Raw JSON read of the ids would lose precision; only the summaries (strings) are used.
    const md = JSON.parse(readFileSync(path.join(metaDir, last), 'utf8')) as { snapshots: SummarySnapshot[]; 'current-snapshot-id': number };
    for (const s of md.snapshots) {
      summaryAdded += Number(s.summary['added-data-files'] ?? 0);
      summaryDeleted += Number(s.summary['deleted-data-files'] ?? 0);
    }
    headTotal = Number(md.snapshots.at(-1)!.summary['total-data-files']);

    if (driver === 'postgres') {
      const created = await createPgDatabase('step_protocol');
      dropDb = created.drop;
      state = await State.open({ driver: 'postgres', url: created.url, poolMax: 4 });
    } else {
      state = await State.open({ driver: 'pglite', dataDir: null, loadDataDir: await pgliteTemplate() });
    }
    await state.repos.sourceTables.create({ name: table, ref: { kind: 'directory', location: tableDir } });
    proto = new StepProtocol(state, { icdcRoot: path.join(tmp, 'icdc'), actor: 'test' });
  });

  afterAll(async () => {
    await state?.close();
    await dropDb?.();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  async function consumer(): Promise<string> {
    const name = uid('con');
    await state.repos.consumers.create({ name });
    await state.repos.watermarks.create({ consumer: name, sourceTable: table }, { actor: 'test', reason: 'subscribe' });
    return name;
  }

  test('the fixture has a snapshot that removes files (the expectations are not trivial)', () => {
    expect(summaryAdded).toBe(13);
    expect(summaryDeleted).toBe(5);
    expect(headTotal).toBe(8);
  });

  test('prepare → commit → prepare finds no changes', async () => {
    const c = await consumer();
    const b = batchOf(await proto.prepare({ consumer: c, table, instanceId: 'i1' }));
    expect(b.state).toBe('open');
    // The whole range nets out: files added and removed inside it are not handed out.
    expect(paths(b, 'added')).toHaveLength(headTotal);
    expect(paths(b, 'removed')).toHaveLength(0);
    const t = b.tables[0]!;
    expect(t.icdc).not.toBeNull();
    expect(t.icdc!.metadataLocation.startsWith(path.join(tmp, 'icdc', `${c}__${table}`))).toBe(true);
    expect(t.baseWatermarkVersion).toBe(1n);
    expect(t.next.partialSnapshotId).toBeNull();
    expect(t.next.snapshotId).toBe(t.toSnapshotId);

    const done = await proto.commit(b.id);
    expect(done.alreadyCommitted).toBe(false);
    expect(done.batch.state).toBe('committed');
    const wm = await state.repos.watermarks.require(c, table);
    expect(wm.snapshotId).toBe(t.toSnapshotId);
    expect(wm.version).toBe(2n);
    const moves = await state.repos.watermarks.moves({ consumer: c, batchId: b.id });
    expect(moves).toHaveLength(1);

    const again = await proto.prepare({ consumer: c, table, instanceId: 'i2' });
    expect(again.kind).toBe('no-changes');
  });

  test('prepare twice with the same instance id gives the identical batch', async () => {
    const c = await consumer();
    const first = await proto.prepare({ consumer: c, table, instanceId: 'same', limits: { maxFiles: 3 } });
    const second = await proto.prepare({ consumer: c, table, instanceId: 'same', limits: { maxFiles: 3 } });
    expect(first.kind === 'batch' && first.created).toBe(true);
    expect(second.kind === 'batch' && second.created).toBe(false);
    const a = batchOf(first);
    const b = batchOf(second);
    expect(b.id).toBe(a.id);
    expect(b.tables).toEqual(a.tables);
    expect(b.tables[0]!.icdc).toEqual(a.tables[0]!.icdc);
    expect(a.tables[0]!.fileCount).toBe(3);
  });

  test('abort, then prepare hands out the same files', async () => {
    const c = await consumer();
    const a = batchOf(await proto.prepare({ consumer: c, table, instanceId: 'a1', limits: { maxFiles: 4 } }));
    // One batch in flight per consumer and table.
    expect(await code(proto.prepare({ consumer: c, table, instanceId: 'a-other' }))).toBe('BATCH_IN_FLIGHT');
    const aborted = await proto.abort(a.id, 'test');
    expect(aborted.batch.state).toBe('aborted');
    expect((await proto.abort(a.id)).changed).toBe(false);
    expect(await code(proto.commit(a.id))).toBe('BATCH_NOT_OPEN');
    const b = batchOf(await proto.prepare({ consumer: c, table, instanceId: 'a2', limits: { maxFiles: 4 } }));
    expect(b.id).not.toBe(a.id);
    expect(paths(b, 'added')).toEqual(paths(a, 'added'));
    expect(paths(b, 'removed')).toEqual(paths(a, 'removed'));
    expect(b.tables[0]!.next).toEqual(a.tables[0]!.next);
    expect(b.tables[0]!.icdc!.snapshotId).not.toBe(a.tables[0]!.icdc!.snapshotId);
  });

  test('maxFiles=1 splits snapshots; after committing every batch each file was handed out exactly once', async () => {
    const c = await consumer();
    const added: string[] = [];
    const removed: string[] = [];
    let partials = 0;
    for (let i = 0; i < 100; i++) {
      const r = await proto.prepare({ consumer: c, table, instanceId: `step-${i}`, limits: { maxFiles: 1 } });
      if (r.kind === 'no-changes') break;
      const t = r.batch.tables[0]!;
      expect(t.fileCount).toBe(1);
      if (t.next.partialSnapshotId !== null) partials++;
      added.push(...paths(r.batch, 'added'));
      removed.push(...paths(r.batch, 'removed'));
      const done = await proto.commit(r.batch.id);
      expect(done.alreadyCommitted).toBe(false);
    }
    expect(partials).toBeGreaterThan(0);
    // Independent expectation: the summaries' added-data-files and deleted-data-files.
    expect(added).toHaveLength(summaryAdded);
    expect(new Set(added).size).toBe(summaryAdded);
    expect(removed).toHaveLength(summaryDeleted);
    expect(new Set(removed).size).toBe(summaryDeleted);
    for (const p of removed) expect(added).toContain(p);
    // What is still live is what the head snapshot says it holds.
    expect(added.length - removed.length).toBe(headTotal);
    const wm = await state.repos.watermarks.require(c, table);
    expect(wm.partialSnapshotId).toBeNull();
    expect(wm.processedFiles).toEqual([]);
    expect(wm.version).toBe(BigInt(1 + summaryAdded + summaryDeleted));

    // The ICDC table got two snapshots per batch after the first (the previous batch's files
    // deleted, then the batch appended) but keeps only those of the last ICDC_RETAINED_BATCHES
    // batches in its metadata, the newest being the last batch's; the log only names kept snapshots.
    const icdcMeta = path.join(proto.icdcLocation(c, table), 'metadata');
    const hint = readFileSync(path.join(icdcMeta, 'version-hint.text'), 'utf8');
    expect(Number(hint)).toBe(summaryAdded + summaryDeleted);
    const icdcText = readFileSync(path.join(icdcMeta, `v${hint}.metadata.json`), 'utf8');
    const ids = [...icdcText.matchAll(/"snapshot-id"\s*:\s*(\d+)/g)].map((m) => m[1]);
    const icdc = JSON.parse(icdcText) as { snapshots: unknown[]; 'snapshot-log': unknown[]; 'metadata-log': unknown[] };
    // A batch gets a delete snapshot when the batch before it handed out files (a batch of
    // removed files only leaves nothing to delete).
    const all = await state.repos.batches.list({ consumer: c });
    const kept = all.slice(-ICDC_RETAINED_BATCHES);
    const clears = kept.filter((_, i) => (all[all.length - kept.length + i - 1]?.tables[0]!.files.added.length ?? 0) > 0).length;
    expect(clears).toBeGreaterThan(0);
    expect(icdc.snapshots).toHaveLength(ICDC_RETAINED_BATCHES + clears);
    expect(icdc['snapshot-log']).toHaveLength(ICDC_RETAINED_BATCHES + clears);
    expect(icdc['metadata-log']).toHaveLength(ICDC_RETAINED_BATCHES);
    const last = all.at(-1)!;
    expect(ids).toContain(last.tables[0]!.icdc!.snapshotId.toString());
    expect(/"current-snapshot-id"\s*:\s*(\d+)/.exec(icdcText)![1]).toBe(last.tables[0]!.icdc!.snapshotId.toString());
    // PyIceberg reads the trimmed table: the current snapshot holds exactly the last batch's file.
    const read = await runPythonCode([
      'import json, sys',
      'from pyiceberg.table import StaticTable',
      't = StaticTable.from_metadata(sys.argv[1])',
      'print(json.dumps({"files": sorted(f.file.file_path for f in t.scan().plan_files()), "snapshots": len(t.metadata.snapshots)}))',
    ].join('\n'), [path.join(icdcMeta, `v${hint}.metadata.json`)]);
    const got = JSON.parse(read.trim().split('\n').at(-1)!) as { files: string[]; snapshots: number };
    expect(got.snapshots).toBe(ICDC_RETAINED_BATCHES + clears);
    // The fixture is a copy of a table PyIceberg wrote elsewhere: the ICDC table names the files
    // where ips read them (the batch lists them as the source's metadata does).
    const written = (JSON.parse(readFileSync(path.join(tableDir, 'metadata', readdirSync(path.join(tableDir, 'metadata')).filter((f) => f.endsWith('.metadata.json')).sort().at(-1)!), 'utf8')) as { location: string }).location;
    expect(got.files).toEqual(paths(last, 'added').map((p) => p.replace(written, tableDir)));
    expect(got.files.every((f) => f.startsWith(`${tableDir}/`))).toBe(true);
  });

  test('the service ceiling on files per batch (maxBatchFiles 2) cuts a batch without limits, and a walk still hands out every file once', async () => {
    const capped = new StepProtocol(state, { icdcRoot: path.join(tmp, 'icdc-capped'), actor: 'test', maxBatchFiles: 2 });
    const c = await consumer();
    const added: string[] = [];
    const removed: string[] = [];
    for (let i = 0; i < 100; i++) {
      const r = await capped.prepare({ consumer: c, table, instanceId: `capped-${i}`, ...(i % 2 === 1 ? { limits: { maxFiles: 50 } } : {}) });
      if (r.kind === 'no-changes') break;
      const t = r.batch.tables[0]!;
      expect(t.fileCount).toBeLessThanOrEqual(2);
      expect(r.batch.limits.maxFiles).toBe(2);
      added.push(...paths(r.batch, 'added'));
      removed.push(...paths(r.batch, 'removed'));
      await capped.commit(r.batch.id);
    }
    expect(added).toHaveLength(summaryAdded);
    expect(new Set(added).size).toBe(summaryAdded);
    expect(removed).toHaveLength(summaryDeleted);
    expect(added.length - removed.length).toBe(headTotal);
    // A lower limit of the caller's own still holds.
    const c2 = await consumer();
    const one = batchOf(await capped.prepare({ consumer: c2, table, instanceId: 'one', limits: { maxFiles: 1 } }));
    expect(one.tables[0]!.fileCount).toBe(1);
    expect(one.limits.maxFiles).toBe(1);
  });

  test('maxInFlight 3: batches chain, commit only in order, and an abort releases the ones after it', async () => {
    const c = await consumer();
    const opts = { consumer: c, table, limits: { maxFiles: 2 }, maxInFlight: 3 };
    const a = batchOf(await proto.prepare({ ...opts, instanceId: 'm1' }));
    const b = batchOf(await proto.prepare({ ...opts, instanceId: 'm2' }));
    const d = batchOf(await proto.prepare({ ...opts, instanceId: 'm3' }));
    expect(await code(proto.prepare({ ...opts, instanceId: 'm4' }))).toBe('BATCH_IN_FLIGHT');
    const [ta, tb, td] = [a.tables[0]!, b.tables[0]!, d.tables[0]!];
    // Each starts where the one before ends, on the next watermark version.
    expect([ta.baseWatermarkVersion, tb.baseWatermarkVersion, td.baseWatermarkVersion]).toEqual([1n, 2n, 3n]);
    expect(tb.fromSnapshotId).toBe(ta.next.snapshotId);
    expect(td.fromSnapshotId).toBe(tb.next.snapshotId);
    const all = [...paths(a, 'added'), ...paths(b, 'added'), ...paths(d, 'added'), ...paths(a, 'removed'), ...paths(b, 'removed'), ...paths(d, 'removed')];
    expect(new Set(all).size).toBe(6);

    // Out of order: the base has not moved there yet.
    expect(await code(proto.commit(b.id))).toBe('CONFLICT');
    expect((await proto.commit(a.id)).alreadyCommitted).toBe(false);

    // Aborting b releases d too (it could never commit); the next batch hands out b's files again.
    const aborted = await proto.abort(b.id, 'test');
    expect(aborted.changed).toBe(true);
    expect((await state.repos.batches.require(d.id)).state).toBe('aborted');
    const again = batchOf(await proto.prepare({ ...opts, instanceId: 'm5' }));
    expect(again.tables[0]!.fromSnapshotId).toBe(tb.fromSnapshotId);
    expect(paths(again, 'added')).toEqual(paths(b, 'added'));
    expect(paths(again, 'removed')).toEqual(paths(b, 'removed'));
    expect((await proto.commit(again.id)).watermarks[0]!.version).toBe(3n);
  });

  test('committing twice is a no-op', async () => {
    const c = await consumer();
    const b = batchOf(await proto.prepare({ consumer: c, table, instanceId: 'x', limits: { maxFiles: 2 } }));
    const first = await proto.commit(b.id);
    const wm1 = await state.repos.watermarks.require(c, table);
    const second = await proto.commit(b.id);
    expect(first.alreadyCommitted).toBe(false);
    expect(second.alreadyCommitted).toBe(true);
    const wm2 = await state.repos.watermarks.require(c, table);
    expect(wm2.version).toBe(wm1.version);
    expect(await state.repos.watermarks.moves({ consumer: c, batchId: b.id })).toHaveLength(1);
  });

  test('a batch whose base moved fails with CONFLICT and changes nothing', async () => {
    const c = await consumer();
    const b = batchOf(await proto.prepare({ consumer: c, table, instanceId: 'base', limits: { maxFiles: 1 } }));
    const wm = await state.repos.watermarks.require(c, table);
    // Someone resets the watermark (to where the batch would move it) behind the batch's back.
    await state.repos.watermarks.advance(c, table, wm.version, b.tables[0]!.next, { actor: 'test', reason: 'reset' });
    expect(await code(proto.commit(b.id))).toBe('CONFLICT');
    expect((await state.repos.batches.require(b.id)).state).toBe('open');
    expect((await state.repos.watermarks.require(c, table)).version).toBe(wm.version + 1n);
  });

  test('a crash between the ICDC write and the database leaves no batch; the retry converges', async () => {
    const c = await consumer();
    const spy = vi.spyOn(BatchesRepo.prototype, 'create').mockRejectedValueOnce(new Error('crash'));
    try {
      await expect(proto.prepare({ consumer: c, table, instanceId: 'crashy', limits: { maxFiles: 2 } })).rejects.toThrow('crash');
    } finally {
      spy.mockRestore();
    }
    expect(await state.repos.batches.findByInstance(c, 'crashy')).toBeUndefined();
    expect((await state.repos.watermarks.require(c, table)).version).toBe(1n);
    const r = await proto.prepare({ consumer: c, table, instanceId: 'crashy', limits: { maxFiles: 2 } });
    const b = batchOf(r);
    expect(r.kind === 'batch' && r.created).toBe(true);
    expect(b.tables[0]!.fileCount).toBe(2);
    expect(batchOf(await proto.prepare({ consumer: c, table, instanceId: 'crashy' })).id).toBe(b.id);
  });

  test('a watermark off the table lineage makes the consumer stale', async () => {
    const c = await consumer();
    const wm = await state.repos.watermarks.require(c, table);
    await state.repos.watermarks.advance(c, table, wm.version,
      { snapshotId: 123n, sequenceNumber: 1n, partialSnapshotId: null, partialSequenceNumber: null, processedFiles: [] },
      { actor: 'test', reason: 'reset' });
    const err = await code(proto.prepare({ consumer: c, table, instanceId: 's1' }));
    expect(['FROM_EXPIRED', 'UNKNOWN_SNAPSHOT', 'FROM_NOT_ANCESTOR', 'LINEAGE_BROKEN']).toContain(err);
    const con = await state.repos.consumers.require(c);
    expect(con.state).toBe('stale');
    expect(con.stateReason).toContain(err);
    expect(await code(proto.prepare({ consumer: c, table, instanceId: 's2' }))).toBe('CONSUMER_STALE');
  });
});
