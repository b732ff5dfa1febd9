// ips's table writer on the Hadoop layout (and the SQL catalog on the test PostgreSQL): the
// manifests and snapshots it commits, read back with ips's manifest reader and change capture,
// with expected counts and sizes from DuckDB and the file system; compare-and-set commits; the
// scan planner against a brute-force DuckDB filter over every file.
import pg from 'pg';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isIpsError } from '../../src/errors.js';
import { HadoopCatalog, SqlWritableCatalog, type WritableCatalog } from '../../src/catalog/table-catalog.js';
import { ManifestReader } from '../../src/capture/manifest-reader.js';
import { readSnapshotChanges } from '../../src/capture/snapshot-changes.js';
import { readMetadataFile } from '../../src/catalog/table.js';
import { LocalFileIO } from '../../src/io/local-file-io.js';
import { EntryStatus, type DataFile } from '../../src/iceberg/manifest.js';
import { snapshotById, type TableMetadata } from '../../src/iceberg/metadata.js';
import { createTable, commitTableUpdate, type NewTableSpec } from '../../src/table/table-writer.js';
import { uploadDataFile } from '../../src/table/data-files.js';
import { planScan, type ScanPredicate } from '../../src/table/scan-planner.js';
import { createPgDatabase } from '../state/helpers.js';
import { sourceTableSpec } from '../../src/playback/model.js';
import { Duck, days, sqlList } from './duckdb-parquet.js';
import { mulberry32 } from '../setup/random.js';

const io = new LocalFileIO();
let duck: Duck;
let tmp: string;

beforeAll(async () => {
  duck = await Duck.open();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-table-writer-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

// The demo's source table: the shape the writer is used for.
const PLAYBACK: Omit<NewTableSpec, 'identifier'> = sourceTableSpec();
const IDS = { event_id: 1, profile_id: 2, title_id: 3, event_date: 4, watch_seconds: 5, device: 6 };

const local = (loc: string): string => loc.replace(/^file:\/\//, '');

let fileNo = 0;
/** One Parquet file of `n` playback rows on `date`, written by DuckDB and uploaded into the table. */
async function playbackFile(md: TableMetadata, date: string, n: number, seed: number): Promise<DataFile> {
  const scratch = path.join(tmp, `scratch-${fileNo++}.parquet`);
  await duck.writeParquet(scratch, `
    SELECT (${seed} * 100000 + i)::BIGINT AS event_id, ((i * 31 + ${seed}) % 500)::BIGINT AS profile_id, ((i + ${seed}) % 40)::INTEGER AS title_id,
           DATE '${date}' AS event_date, (i * 7 % 3600)::INTEGER AS watch_seconds, 'tv-' || (i % 4) AS device
      FROM range(0, ${n}) t(i)`, IDS);
  return uploadDataFile(io, md, fs.readFileSync(scratch), `event_date=${date}/f${seed}-${fileNo}.parquet`);
}

async function rowCount(df: DataFile): Promise<bigint> {
  const [r] = await duck.rows(`SELECT count(*)::VARCHAR AS n FROM read_parquet('${local(df.filePath)}')`);
  return BigInt(r!['n'] as string);
}
const size = (df: DataFile): bigint => BigInt(fs.statSync(local(df.filePath)).size);

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  try {
    await p;
  } catch (e) {
    expect(isIpsError(e) ? e.code : String(e)).toBe(code);
    return;
  }
  throw new Error(`expected an IpsError ${code}`);
}

async function changesOf(md: TableMetadata, snapshotId: bigint): Promise<{ added: string[]; removed: string[] }> {
  const ch = await readSnapshotChanges(new ManifestReader(io), snapshotById(md, snapshotId)!);
  return { added: ch.added.map((c) => c.entry.dataFile.filePath).sort(), removed: ch.removed.map((c) => c.entry.dataFile.filePath).sort() };
}

describe('table writer (Hadoop layout)', () => {
  it('creates a table, appends twice, overwrites and deletes, with exact manifests and summaries', async () => {
    const cat = new HadoopCatalog(io, `file://${tmp}/wh`);
    const id = 'demo.playback_table';
    const created = await createTable(cat, io, { identifier: id, ...PLAYBACK });
    expect(created.metadataLocation).toBe(`file://${tmp}/wh/demo/playback_table/metadata/v1.metadata.json`);
    expect(fs.readFileSync(`${tmp}/wh/demo/playback_table/metadata/version-hint.text`, 'utf8')).toBe('1');
    expect(created.metadata.currentSnapshotId).toBeNull();
    expect(created.metadata.formatVersion).toBe(2);
    await expectCode(createTable(cat, io, { identifier: id, ...PLAYBACK }), 'TABLE_EXISTS');
    expect(cat.registration(id)).toEqual({ kind: 'directory', location: `file://${tmp}/wh/demo/playback_table` });

    const md0 = created.metadata;
    const a1 = await playbackFile(md0, '2026-01-01', 300, 1);
    const a2 = await playbackFile(md0, '2026-01-02', 200, 2);
    const s1 = await commitTableUpdate(cat, io, id, { operation: 'append', add: [a1, a2], removePaths: [] });
    const b1 = await playbackFile(s1.metadata, '2026-01-01', 150, 3);
    const b2 = await playbackFile(s1.metadata, '2026-01-03', 120, 4);
    const s2 = await commitTableUpdate(cat, io, id, { operation: 'append', add: [b1, b2], removePaths: [], summary: { 'ips.batch': 'b-2' } });
    const c1 = await playbackFile(s2.metadata, '2026-01-01', 410, 5);
    const s3 = await commitTableUpdate(cat, io, id, { operation: 'overwrite', add: [c1], removePaths: [a1.filePath, b2.filePath] });
    const s4 = await commitTableUpdate(cat, io, id, { operation: 'delete', add: [], removePaths: [a2.filePath] });
    expect([s1, s2, s3, s4].map((s) => s.sequenceNumber)).toEqual([1n, 2n, 3n, 4n]);
    expect(s4.metadataLocation).toBe(`file://${tmp}/wh/demo/playback_table/metadata/v5.metadata.json`);
    expect(fs.readFileSync(`${tmp}/wh/demo/playback_table/metadata/version-hint.text`, 'utf8')).toBe('5');

    // The metadata as a reader loads it from the catalog.
    const md = await readMetadataFile(io, (await cat.currentMetadataLocation(id))!);
    expect(md.currentSnapshotId).toBe(s4.snapshotId);
    expect(md.refs['main']).toEqual({ snapshotId: s4.snapshotId, type: 'branch' });
    expect(md.lastSequenceNumber).toBe(4n);
    expect(md.snapshots.map((s) => [s.snapshotId, s.parentSnapshotId, s.sequenceNumber, s.operation])).toEqual([
      [s1.snapshotId, null, 1n, 'append'], [s2.snapshotId, s1.snapshotId, 2n, 'append'],
      [s3.snapshotId, s2.snapshotId, 3n, 'overwrite'], [s4.snapshotId, s3.snapshotId, 4n, 'delete'],
    ]);
    const raw = md.raw as { 'snapshot-log': { 'snapshot-id': bigint }[]; 'metadata-log': { 'metadata-file': string }[] };
    expect(raw['snapshot-log'].map((e) => e['snapshot-id'])).toEqual([s1, s2, s3, s4].map((s) => s.snapshotId));
    expect(raw['metadata-log'].map((e) => path.basename(e['metadata-file']))).toEqual(['v1.metadata.json', 'v2.metadata.json', 'v3.metadata.json', 'v4.metadata.json']);

    // ips change capture: exactly the files each snapshot added and removed.
    const sorted = (...fs: DataFile[]): string[] => fs.map((f) => f.filePath).sort();
    expect(await changesOf(md, s1.snapshotId)).toEqual({ added: sorted(a1, a2), removed: [] });
    expect(await changesOf(md, s2.snapshotId)).toEqual({ added: sorted(b1, b2), removed: [] });
    expect(await changesOf(md, s3.snapshotId)).toEqual({ added: sorted(c1), removed: sorted(a1, b2) });
    expect(await changesOf(md, s4.snapshotId)).toEqual({ added: [], removed: sorted(a2) });

    // Summaries as Java writes them; counts from DuckDB, sizes from the file system.
    const rows = new Map<DataFile, bigint>();
    for (const f of [a1, a2, b1, b2, c1]) rows.set(f, await rowCount(f));
    const total = (fs: DataFile[]) => ({ n: String(fs.length), rows: String(fs.reduce((n, f) => n + rows.get(f)!, 0n)), size: String(fs.reduce((n, f) => n + size(f), 0n)) });
    const totals = (fs: DataFile[]) => ({
      'total-data-files': total(fs).n, 'total-records': total(fs).rows, 'total-files-size': total(fs).size,
      'total-delete-files': '0', 'total-position-deletes': '0', 'total-equality-deletes': '0',
    });
    const summary = (i: number) => md.snapshots[i]!.summary;
    expect(summary(0)).toEqual({
      operation: 'append', 'added-data-files': '2', 'added-records': total([a1, a2]).rows, 'added-files-size': total([a1, a2]).size,
      'changed-partition-count': '2', ...totals([a1, a2]),
    });
    expect(summary(1)).toEqual({
      operation: 'append', 'ips.batch': 'b-2', 'added-data-files': '2', 'added-records': total([b1, b2]).rows, 'added-files-size': total([b1, b2]).size,
      'changed-partition-count': '2', ...totals([a1, a2, b1, b2]),
    });
    expect(summary(2)).toEqual({
      operation: 'overwrite', 'added-data-files': '1', 'added-records': total([c1]).rows, 'added-files-size': total([c1]).size,
      'deleted-data-files': '2', 'deleted-records': total([a1, b2]).rows, 'removed-files-size': total([a1, b2]).size,
      'changed-partition-count': '2', ...totals([a2, b1, c1]),
    });
    expect(summary(3)).toEqual({
      operation: 'delete', 'deleted-data-files': '1', 'deleted-records': total([a2]).rows, 'removed-files-size': total([a2]).size,
      'changed-partition-count': '1', ...totals([b1, c1]),
    });

    // Manifests of the last snapshot: entries keep the snapshot ids and sequence numbers of
    // the commit that added them (EXISTING) or name the deleting snapshot (DELETED).
    const reader = new ManifestReader(io);
    const list = await reader.manifestList(snapshotById(md, s4.snapshotId)!);
    const entries: { path: string; status: number; snapshotId: bigint; seq: bigint | null; fileSeq: bigint | null; manifestBy: bigint | null; manifestSeq: bigint }[] = [];
    for (const mf of list.manifests) {
      const m = await reader.manifest(mf);
      const counts = { added: 0, existing: 0, deleted: 0, addedRows: 0n, existingRows: 0n, deletedRows: 0n };
      for (const e of m.entries) {
        const n = rows.get([a1, a2, b1, b2, c1].find((f) => f.filePath === e.dataFile.filePath)!)!;
        if (e.status === EntryStatus.ADDED) { counts.added++; counts.addedRows += n; }
        if (e.status === EntryStatus.EXISTING) { counts.existing++; counts.existingRows += n; }
        if (e.status === EntryStatus.DELETED) { counts.deleted++; counts.deletedRows += n; }
        entries.push({ path: e.dataFile.filePath, status: e.status, snapshotId: e.snapshotId, seq: e.sequenceNumber, fileSeq: e.fileSequenceNumber, manifestBy: mf.addedSnapshotId, manifestSeq: mf.sequenceNumber });
      }
      expect([mf.addedFilesCount, mf.existingFilesCount, mf.deletedFilesCount, mf.addedRowsCount, mf.existingRowsCount, mf.deletedRowsCount])
        .toEqual([counts.added, counts.existing, counts.deleted, counts.addedRows, counts.existingRows, counts.deletedRows]);
      const liveSeqs = m.entries.filter((e) => e.status !== EntryStatus.DELETED).map((e) => e.sequenceNumber!);
      expect(mf.minSequenceNumber).toBe(liveSeqs.length ? liveSeqs.reduce((a, b) => (b < a ? b : a)) : mf.sequenceNumber);
    }
    const byPath = (f: DataFile) => entries.filter((e) => e.path === f.filePath);
    // c1: ADDED by S3 in S3's manifest, carried over.
    expect(byPath(c1)).toEqual([{ path: c1.filePath, status: EntryStatus.ADDED, snapshotId: s3.snapshotId, seq: 3n, fileSeq: 3n, manifestBy: s3.snapshotId, manifestSeq: 3n }]);
    // S3 removed a1 (S1's manifest) and b2 (S2's): it rewrote both manifests' entries into one,
    // which S4 rewrote again to remove a2. b1: EXISTING there with S2's snapshot id and sequence
    // numbers; the DELETED entries of S3 (a1, b2) were dropped in S4's rewrite.
    expect(byPath(b1)).toEqual([{ path: b1.filePath, status: EntryStatus.EXISTING, snapshotId: s2.snapshotId, seq: 2n, fileSeq: 2n, manifestBy: s4.snapshotId, manifestSeq: 4n }]);
    expect(byPath(b2)).toEqual([]);
    // a2: DELETED by S4, keeping S1's sequence numbers.
    expect(byPath(a2)).toEqual([{ path: a2.filePath, status: EntryStatus.DELETED, snapshotId: s4.snapshotId, seq: 1n, fileSeq: 1n, manifestBy: s4.snapshotId, manifestSeq: 4n }]);
    expect(byPath(a1)).toEqual([]);

    // The plan of the current snapshot: the live files.
    const plan = await planScan(io, md, []);
    expect(plan.files.map((f) => f.filePath).sort()).toEqual(sorted(b1, c1));
  });

  it('commits are compare-and-set: a lost race is a CONFLICT and the winner stays', async () => {
    const cat = new HadoopCatalog(io, `file://${tmp}/wh-cas`);
    const id = 'demo.cas';
    const { metadata: md0, metadataLocation: v1 } = await createTable(cat, io, { identifier: id, ...PLAYBACK });
    const x = await playbackFile(md0, '2026-01-01', 10, 11);
    const y = await playbackFile(md0, '2026-01-01', 10, 12);
    const results = await Promise.allSettled([
      commitTableUpdate(cat, io, id, { operation: 'append', add: [x], removePaths: [] }),
      commitTableUpdate(cat, io, id, { operation: 'append', add: [y], removePaths: [] }),
    ]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost.map((r) => (isIpsError(r.reason) ? r.reason.code : String(r.reason)))).toEqual(['CONFLICT']);
    const md = await readMetadataFile(io, (await cat.currentMetadataLocation(id))!);
    expect(md.snapshots).toHaveLength(1);
    // A commit built on an old version never replaces the current one.
    await expectCode(cat.commit(id, '{}', v1), 'CONFLICT');
    await expectCode(cat.commit(id, '{}', null), 'CONFLICT');

    // Invalid updates are refused before anything is committed.
    const live = (await planScan(io, md, [])).files[0]!;
    await expectCode(commitTableUpdate(cat, io, id, { operation: 'delete', add: [], removePaths: [`${live.filePath}.nope`] }), 'FILE_NOT_LIVE');
    await expectCode(commitTableUpdate(cat, io, id, { operation: 'append', add: [], removePaths: [live.filePath] }), 'INVALID_ARGUMENT');
    await expectCode(commitTableUpdate(cat, io, id, { operation: 'delete', add: [x], removePaths: [] }), 'INVALID_ARGUMENT');
    const z = await playbackFile(md, '2026-01-02', 10, 13);
    await expectCode(commitTableUpdate(cat, io, id, { operation: 'overwrite', add: [z, live], removePaths: [z.filePath] }), 'INVALID_ARGUMENT');
    await expectCode(commitTableUpdate(cat, io, 'demo.missing', { operation: 'append', add: [z], removePaths: [] }), 'TABLE_NOT_FOUND');
    expect((await readMetadataFile(io, (await cat.currentMetadataLocation(id))!)).snapshots).toHaveLength(1);
  });
});

describe('SqlWritableCatalog', () => {
  it('commits through iceberg_tables with compare-and-set', async () => {
    const db = await createPgDatabase('table_writer');
    const cat: WritableCatalog = new SqlWritableCatalog(db.url, 'ips_demo', `file://${tmp}/sqlwh`, io);
    try {
      const id = 'demo.playback_table';
      expect(await cat.currentMetadataLocation(id)).toBeNull();
      const created = await createTable(cat, io, { identifier: id, ...PLAYBACK });
      expect(created.metadataLocation).toMatch(new RegExp(`^file://${tmp}/sqlwh/demo\\.db/playback_table/metadata/00000-[0-9a-f-]{36}\\.metadata\\.json$`));
      const f = await playbackFile(created.metadata, '2026-01-05', 20, 21);
      const s1 = await commitTableUpdate(cat, io, id, { operation: 'append', add: [f], removePaths: [] });
      expect(path.basename(s1.metadataLocation)).toMatch(/^00001-/);
      expect(await cat.currentMetadataLocation(id)).toBe(s1.metadataLocation);
      await expectCode(cat.commit(id, '{}', created.metadataLocation), 'CONFLICT');
      expect(await cat.currentMetadataLocation(id)).toBe(s1.metadataLocation);
      expect(cat.registration(id)).toEqual({ kind: 'sql', uri: db.url, catalog_name: 'ips_demo', identifier: id });
    } finally {
      await cat.close();
      await db.drop();
    }
  });

  it('survives the server dropping its idle connections (a restart, an admin\'s terminate) and reconnects', async () => {
    const db = await createPgDatabase('table_writer_term');
    const cat = new SqlWritableCatalog(db.url, 'ips_demo', `file://${tmp}/sqlwh-term`, io);
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      const id = 'demo.playback_table';
      const created = await createTable(cat, io, { identifier: id, ...PLAYBACK });
      // Every connection of the catalog's pool is now idle; the server ends them. Without an
      // error listener on the pool, pg raises that as an uncaught exception and the run fails.
      const killed = await admin.query<{ ok: boolean }>(
        'SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
      expect(killed.rows.length).toBeGreaterThan(0);
      await new Promise((r) => setTimeout(r, 300));
      expect(await cat.currentMetadataLocation(id)).toBe(created.metadataLocation);
    } finally {
      await admin.end();
      await cat.close();
      await db.drop();
    }
  });
});

// -- scan planning -------------------------------------------------------------------------------

const iso = (d: number): string => new Date(d * 86_400_000).toISOString().slice(0, 10);

function predicateSql(p: ScanPredicate): string {
  const lit = (v: unknown): string => {
    if (p.field === 'event_date') return `DATE '${iso(v as number)}'`;
    if (typeof v === 'string') return `'${v.replace(/'/g, "''")}'`;
    return String(v);
  };
  return p.op === 'between' ? `(${p.field} BETWEEN ${lit(p.lo)} AND ${lit(p.hi)})` : p.values.length === 0 ? 'false' : `(${p.field} IN (${p.values.map(lit).join(', ')}))`;
}

describe('planScan', () => {
  it('never drops a file that holds a matching row (brute force over every file), and prunes', async () => {
    const cat = new HadoopCatalog(io, `file://${tmp}/wh-scan`);
    const id = 'demo.daily';
    const { metadata: md0 } = await createTable(cat, io, {
      identifier: id,
      schema: PLAYBACK.schema,
      partitionFields: [
        { name: 'event_date', transform: 'identity', sourceId: 4, fieldId: 1000 },
        { name: 'profile_id_trunc', transform: 'truncate[100]', sourceId: 2, fieldId: 1001 },
      ],
    });
    const dates = ['2026-01-01', '2026-01-02', '2026-01-03', '2026-01-10'];
    const files: DataFile[] = [];
    let k = 0;
    for (const date of dates) {
      for (const base of [0, 100, 200, 300, 400]) {
        k++;
        const scratch = path.join(tmp, `scan-${k}.parquet`);
        // Each file covers a narrow band of its partition's profiles and titles; some have null titles or devices.
        await duck.writeParquet(scratch, `
          SELECT (${k} * 1000 + i)::BIGINT AS event_id, (${base} + ${(k * 13) % 60} + i % ${10 + (k % 30)})::BIGINT AS profile_id,
                 ${k % 7 === 0 ? 'NULL' : `(${(k * 5) % 50} + i % ${3 + (k % 5)})`}::INTEGER AS title_id, DATE '${date}' AS event_date,
                 (i * 11 % 900)::INTEGER AS watch_seconds,
                 ${k % 6 === 0 ? 'NULL::VARCHAR' : `'dev-' || chr(${97 + (k % 20)}) || (i % 3)`} AS device
            FROM range(0, ${20 + k}) t(i)`, IDS);
        files.push(await uploadDataFile(io, md0, fs.readFileSync(scratch), `f-${k}.parquet`));
      }
    }
    // Several commits, one overwrite, so that the plan reads ADDED and EXISTING entries across manifests.
    let res = await commitTableUpdate(cat, io, id, { operation: 'append', add: files.slice(0, 8), removePaths: [] });
    res = await commitTableUpdate(cat, io, id, { operation: 'append', add: files.slice(8, 16), removePaths: [] });
    res = await commitTableUpdate(cat, io, id, { operation: 'overwrite', add: files.slice(16), removePaths: [files[3]!.filePath, files[9]!.filePath] });
    const md = res.metadata;
    // The overwrite removed a file from each of the two appends' manifests: their entries were
    // rewritten into one manifest (14 EXISTING with the appends' snapshot ids, 2 DELETED), not two.
    const reader = new ManifestReader(io);
    const list = await reader.manifestList(snapshotById(md, res.snapshotId)!);
    const appends = md.snapshots.filter((s) => s.snapshotId !== res.snapshotId).map((s) => s.snapshotId);
    const rewritten: Awaited<ReturnType<ManifestReader["manifest"]>>[] = [];
    for (const mf of list.manifests) {
      const m = await reader.manifest(mf);
      if (m.entries.some((e) => e.status !== EntryStatus.ADDED)) rewritten.push(m);
    }
    expect(list.manifests).toHaveLength(2);
    expect(rewritten).toHaveLength(1);
    const statusOf = (f: DataFile) => rewritten[0]!.entries.find((e) => e.dataFile.filePath === f.filePath);
    expect(files.slice(0, 16).map((f, i) => [statusOf(f)?.status, statusOf(f)?.snapshotId])).toEqual(files.slice(0, 16).map((_, i) => [
      i === 3 || i === 9 ? EntryStatus.DELETED : EntryStatus.EXISTING, i === 3 || i === 9 ? res.snapshotId : appends[i < 8 ? 0 : 1],
    ]));
    const live = files.filter((_, i) => i !== 3 && i !== 9);
    const livePaths = live.map((f) => local(f.filePath)).sort();
    expect((await planScan(io, md, [])).files.map((f) => local(f.filePath)).sort()).toEqual(livePaths);

    const rand = mulberry32(42);
    const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
    const gen = (): ScanPredicate => {
      switch (int(0, 5)) {
        case 0: { const a = int(-20, 520); return { field: 'profile_id', op: 'between', lo: BigInt(a), hi: BigInt(a + int(0, 150)) }; }
        case 1: return { field: 'profile_id', op: 'in', values: Array.from({ length: int(0, 4) }, () => BigInt(int(0, 499))) };
        case 2: { const d = days(pick(dates)) + int(-2, 3); return { field: 'event_date', op: 'between', lo: d, hi: d + int(0, 3) }; }
        case 3: return { field: 'event_date', op: 'in', values: [days(pick(dates)), days('2026-01-05')].slice(0, int(1, 2)) };
        case 4: { const a = int(-5, 60); return { field: 'title_id', op: 'between', lo: a, hi: a + int(0, 8) }; }
        default: return { field: 'device', op: 'in', values: Array.from({ length: int(1, 3) }, () => `dev-${String.fromCharCode(97 + int(0, 22))}${int(0, 3)}`) };
      }
    };
    let pruned = 0;
    for (let round = 0; round < 150; round++) {
      const preds = Array.from({ length: int(1, 3) }, gen);
      const where = preds.map(predicateSql).join(' AND ');
      const matching = (await duck.rows(`SELECT DISTINCT filename FROM read_parquet(${sqlList(livePaths)}, filename = true) WHERE ${where}`)).map((r) => r['filename'] as string);
      const plan = await planScan(io, md, preds);
      const planned = new Set(plan.files.map((f) => local(f.filePath)));
      const dropped = matching.filter((f) => !planned.has(f));
      expect(dropped, `files with rows matching ${where} were pruned`).toEqual([]);
      expect(plan.files.length + plan.filesSkipped).toBe(live.length);
      pruned += plan.filesSkipped;
    }
    expect(pruned).toBeGreaterThan(0);

    // Identity partitions prune exactly; truncate partitions and bounds narrow further.
    const day2 = await planScan(io, md, [{ field: 'event_date', op: 'in', values: [days('2026-01-02')] }]);
    expect(day2.files.map((f) => local(f.filePath)).sort()).toEqual(live.filter((f) => f.partition.get(1000) === days('2026-01-02')).map((f) => local(f.filePath)).sort());
    const band = await planScan(io, md, [{ field: 'profile_id', op: 'between', lo: 100n, hi: 199n }, { field: 'event_date', op: 'between', lo: days('2026-01-01'), hi: days('2026-01-03') }]);
    expect(band.files.every((f) => f.partition.get(1001) === 100n && (f.partition.get(1000) as number) <= days('2026-01-03'))).toBe(true);
    const none = await planScan(io, md, [{ field: 'event_date', op: 'in', values: [days('2027-01-01')] }]);
    expect(none.files).toEqual([]);
    expect(none.manifestsRead).toBe(0); // the manifests' partition summaries already exclude it
    await expectCode(planScan(io, md, [{ field: 'nope', op: 'in', values: [1] }]), 'INVALID_ARGUMENT');
  });
});
