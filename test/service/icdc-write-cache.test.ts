// ICDC writes that build on what this process wrote last (src/capture/icdc-cache.ts) must give
// the same table as writes that read the table back from storage, and must never build on a
// table that moved on or vanished. The source is the bundled PyIceberg fixture (read through a
// location mapping, as the service reads a moved table directory); its files are cut into
// batches. Expected values: what PyIceberg reads from the ICDC tables (the files of each batch's
// snapshot), and the cut itself (each batch snapshot holds exactly its chunk).
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadTable } from '../../src/catalog/load-table.js';
import { computeChangeSet } from '../../src/capture/change-set.js';
import { IcdcWriteCache } from '../../src/capture/icdc-cache.js';
import { writeIcdcSnapshot, type IcdcWriteResult } from '../../src/capture/icdc-table.js';
import { ManifestReader } from '../../src/capture/manifest-reader.js';
import { DEFAULT_POLICY } from '../../src/capture/policy.js';
import { resolveRangeWithHistory } from '../../src/capture/range.js';
import type { FileChange } from '../../src/capture/snapshot-changes.js';
import type { TableMetadata } from '../../src/iceberg/metadata.js';
import { RoutingFileIO } from '../../src/io/routing-file-io.js';
import { REPO_ROOT, runPythonCode } from '../setup/env.js';
import { errorCode } from '../state/helpers.js';

interface PySnapshot { id: string; operation: string; files: string[] }

/** PyIceberg's view of an ICDC table: every snapshot in history order with the files a scan of it plans. */
async function pySnapshots(metadataLocation: string): Promise<PySnapshot[]> {
  const out = await runPythonCode([
    'import json, sys',
    'from pyiceberg.table import StaticTable',
    't = StaticTable.from_metadata(sys.argv[1])',
    'snaps = sorted(t.metadata.snapshots, key=lambda s: (s.timestamp_ms, s.sequence_number or 0))',
    'print(json.dumps([{"id": str(s.snapshot_id), "operation": s.summary.operation.value,',
    '  "files": sorted(f.file.file_path for f in t.scan(snapshot_id=s.snapshot_id).plan_files())} for s in snaps]))',
  ].join('\n'), [metadataLocation]);
  return JSON.parse(out.trim().split('\n').at(-1)!) as PySnapshot[];
}

/** PyIceberg's reading of every manifest entry of each delete snapshot (DELETED entries included), without snapshot ids (random per table). */
async function pyDeleteEntries(metadataLocation: string): Promise<unknown[]> {
  const out = await runPythonCode([
    'import json, sys',
    'from pyiceberg.table import StaticTable',
    't = StaticTable.from_metadata(sys.argv[1])',
    'snaps = sorted(t.metadata.snapshots, key=lambda s: (s.timestamp_ms, s.sequence_number or 0))',
    'out = []',
    'for s in snaps:',
    '  if s.summary.operation.value != "delete": continue',
    '  es = [e for m in s.manifests(t.io) for e in m.fetch_manifest_entry(t.io, discard_deleted=False)]',
    '  out.append(sorted([[int(e.status), e.sequence_number, e.file_sequence_number, e.data_file.file_path, e.data_file.record_count,',
    '    e.snapshot_id == s.snapshot_id] for e in es], key=lambda x: x[3]))',
    'print(json.dumps(out))',
  ].join('\n'), [metadataLocation]);
  return JSON.parse(out.trim().split('\n').at(-1)!) as unknown[];
}

const paths = (fs: FileChange[]): string[] => fs.map((f) => f.entry.dataFile.filePath).sort();

describe('ICDC writes with the per-process write cache', () => {
  let tmp: string;
  let io: RoutingFileIO;
  let md: TableMetadata;
  let chunks: FileChange[][];

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-icdc-cache-'));
    const copy = path.join(tmp, 'source');
    cpSync(path.join(REPO_ROOT, 'fixtures', 'tables', 'playback'), copy, { recursive: true });
    io = new RoutingFileIO({});
    md = (await loadTable(io, { kind: 'directory', location: copy })).metadata;
    const reader = new ManifestReader(io);
    const cs = await computeChangeSet(reader, await resolveRangeWithHistory(md, { from: null }, reader), DEFAULT_POLICY, md);
    const added = cs.added.filter((f) => f.entry.dataFile.content === 0);
    expect(added.length).toBeGreaterThanOrEqual(4); // the premise: enough files for several batches
    // Resolved as the service hands them out (the fixture names another place).
    const resolved = added.map((f) => ({ ...f, entry: { ...f.entry, dataFile: { ...f.entry.dataFile, filePath: io.resolve!(f.entry.dataFile.filePath) } } }));
    const n = Math.ceil(resolved.length / 4);
    chunks = [0, 1, 2, 3].map((i) => resolved.slice(i * n, (i + 1) * n)).filter((c) => c.length > 0);
  });
  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  const write = (location: string, files: FileChange[], cache?: IcdcWriteCache): Promise<IcdcWriteResult> =>
    writeIcdcSnapshot({ io, source: md, location, files, retainBatches: 10, ...(cache ? { cache } : {}) });

  test('cached writes give the table that writes reading it back give; each batch snapshot holds exactly its chunk', async () => {
    const cache = new IcdcWriteCache();
    const cached = path.join(tmp, 'icdc-cached');
    const plain = path.join(tmp, 'icdc-plain');
    let a: IcdcWriteResult | null = null;
    let b: IcdcWriteResult | null = null;
    for (const c of chunks) {
      a = await write(cached, c, cache);
      b = await write(plain, c);
    }
    expect(cache.hits).toBe(chunks.length - 1); // every write after the first built on the cache
    const [pa, pb] = await Promise.all([pySnapshots(a!.metadataLocation), pySnapshots(b!.metadataLocation)]);
    const shape = (ss: PySnapshot[]) => ss.map((s) => ({ operation: s.operation, files: s.files }));
    expect(shape(pa)).toEqual(shape(pb));
    // Appends hold their chunk; the delete snapshot before each leaves nothing live.
    const appends = pa.filter((s) => s.operation === 'append');
    expect(appends.map((s) => s.files)).toEqual(chunks.map(paths));
    expect(pa.filter((s) => s.operation === 'delete').every((s) => s.files.length === 0)).toBe(true);
    expect(pa.length).toBe(2 * chunks.length - 1);
    // The delete snapshots (built from the entries the cache kept, or from the manifests read
    // back) hold the same DELETED entries: same files, sequence numbers, the deleting snapshot's id.
    const [da, db] = await Promise.all([pyDeleteEntries(a!.metadataLocation), pyDeleteEntries(b!.metadataLocation)]);
    expect(da).toEqual(db);
    expect(da.length).toBe(chunks.length - 1);
    expect((da as unknown[][][]).map((entries) => entries.map((e) => e[0]))).toEqual(chunks.slice(0, -1).map((c) => c.map(() => 2)));
  });

  test('a table another writer moved on: the cached write fails with CONFLICT, the next one builds on the other writer\'s batch', async () => {
    const cache = new IcdcWriteCache();
    const loc = path.join(tmp, 'icdc-raced');
    await write(loc, chunks[0]!, cache);
    await write(loc, chunks[1]!); // another process (no cache of ours)
    expect(await errorCode(write(loc, chunks[2]!, cache))).toBe('CONFLICT');
    const last = await write(loc, chunks[2]!, cache);
    expect(last.version).toBe(3);
    const snaps = await pySnapshots(last.metadataLocation);
    expect(snaps.at(-1)!.files).toEqual(paths(chunks[2]!));
    // The other writer's batch is the one the delete before it removed (it was live until then).
    expect(snaps.filter((s) => s.operation === 'append').map((s) => s.files)).toEqual([paths(chunks[0]!), paths(chunks[1]!), paths(chunks[2]!)]);
  });

  test('a table dropped by hand is not built on: the next cached write starts it anew', async () => {
    const cache = new IcdcWriteCache();
    const loc = path.join(tmp, 'icdc-dropped');
    await write(loc, chunks[0]!, cache);
    await write(loc, chunks[1]!, cache);
    rmSync(loc, { recursive: true, force: true });
    const fresh = await write(loc, chunks[2]!, cache);
    expect(fresh.version).toBe(1);
    expect(fresh.previousMetadataLocation).toBeNull();
    const snaps = await pySnapshots(fresh.metadataLocation);
    expect(snaps.map((s) => ({ operation: s.operation, files: s.files }))).toEqual([{ operation: 'append', files: paths(chunks[2]!) }]);
  });
});
