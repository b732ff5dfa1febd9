// Change capture over the real tables in ../shared/fixtures. Expected file sets come from the
// independent decode in derived/changes-by-snapshot.json, never from ips itself.
import { describe, expect, it } from 'vitest';
import { fixture, type FixtureName, type Json } from './helpers.js';
import { computeChangeSet } from '../../src/capture/change-set.js';
import { changesJson } from '../../src/capture/changes-json.js';
import { DEFAULT_POLICY, parsePolicy } from '../../src/capture/policy.js';
import { resolveRange } from '../../src/capture/range.js';
import { isIpsError } from '../../src/errors.js';

function derivedSnapshots(name: FixtureName): Json[] {
  return fixture(name).derived.snapshots as Json[];
}

/** Paths the derived decode says snapshot `id` ADDED (or DELETED), optionally only some content. */
function derivedFiles(name: FixtureName, id: string, status: 'ADDED' | 'DELETED', content?: string[]): string[] {
  const f = fixture(name);
  const snap = derivedSnapshots(name).find((s) => s.snapshot_id === id)!;
  return (snap.changes as Json[])
    .filter((c) => c.status === status && (!content || content.includes(c.content)))
    .map((c) => f.abs(c.file_path.startsWith(f.prefix) ? f.rel(c.file_path) : c.file_path));
}

async function changes(name: FixtureName, from: string | null, to: string | null, policy = DEFAULT_POLICY) {
  const f = fixture(name);
  const md = (await f.load()).metadata;
  const range = resolveRange(md, { from: from === null ? null : BigInt(from), to: to === null ? null : BigInt(to) });
  return { md, cs: await computeChangeSet(f.reader, range, policy, md) };
}

const paths = (fs: { entry: { dataFile: { filePath: string } } }[]) => fs.map((f) => f.entry.dataFile.filePath).sort();

async function rejection(p: Promise<unknown> | (() => unknown)): Promise<{ code: string; message: string }> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    if (isIpsError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error('expected an IpsError');
}

describe('change sets on real tables', () => {
  it('row lineage table: compaction (replace) is skipped and re-emits no row; appends in range are captured', async () => {
    const snaps = derivedSnapshots('impala-v3-row-lineage');
    expect(snaps.map((s) => s.operation)).toEqual(['append', 'append', 'append', 'replace']);
    const { md, cs } = await changes('impala-v3-row-lineage', snaps[0].snapshot_id, null);
    expect(cs.snapshots.map((d) => [d.operation, d.action])).toEqual([['append', 'included'], ['append', 'included'], ['replace', 'skipped']]);
    expect(paths(cs.added)).toEqual([...derivedFiles('impala-v3-row-lineage', snaps[1].snapshot_id, 'ADDED'), ...derivedFiles('impala-v3-row-lineage', snaps[2].snapshot_id, 'ADDED')].sort());
    expect(cs.removed).toEqual([]);
    // One row per appended file, values 2 and 3 (expected.json states rows 1, 2, 3 by snapshot).
    const out = changesJson(md, cs, ['i']);
    expect(out.ranges['i']).toEqual({ min: 2, max: 3, flag: 'exact' });
  });

  it('compaction of appends the consumer has not read yet loses no row', async () => {
    const snaps = derivedSnapshots('impala-v3-row-lineage');
    const { cs } = await changes('impala-v3-row-lineage', null, null);
    // The three appended files, not the compaction output: 3 rows, each exactly once.
    expect(cs.added.reduce((n, f) => n + f.entry.dataFile.recordCount, 0n)).toBe(3n);
    expect(paths(cs.added)).toEqual(snaps.slice(0, 3).flatMap((s) => derivedFiles('impala-v3-row-lineage', s.snapshot_id, 'ADDED')).sort());
  });

  it('equality deletes: delete snapshots contribute their delete files under delete=include', async () => {
    const snaps = derivedSnapshots('duckdb-eqdel-partitioned');
    const { md, cs } = await changes('duckdb-eqdel-partitioned', snaps[0].snapshot_id, null);
    const expectedAdded = snaps.slice(1).flatMap((s) => derivedFiles('duckdb-eqdel-partitioned', s.snapshot_id, 'ADDED')).sort();
    expect(paths(cs.added)).toEqual(expectedAdded);
    expect(cs.added.filter((f) => f.entry.dataFile.content === 2).length).toBe(
      snaps.slice(1).flatMap((s) => derivedFiles('duckdb-eqdel-partitioned', s.snapshot_id, 'ADDED', ['EQUALITY_DELETES'])).length,
    );
    const out = changesJson(md, cs, []);
    expect(out.changed_partitions.map((p) => p.name).every((n) => n.startsWith('name='))).toBe(true);
  });

  it('delete=skip reports each delete snapshot as skipped with its reason; delete=fail stops with a typed error', async () => {
    const snaps = derivedSnapshots('duckdb-eqdel-partitioned');
    const { cs } = await changes('duckdb-eqdel-partitioned', snaps[0].snapshot_id, null, parsePolicy('delete=skip'));
    const deletes = cs.snapshots.filter((d) => d.operation === 'delete');
    expect(deletes.length).toBe(snaps.filter((s) => s.operation === 'delete').length);
    for (const d of deletes) {
      expect(d.action).toBe('skipped');
      expect(d.reason).toMatch(/delete=skip/);
    }
    expect(cs.added.every((f) => f.entry.dataFile.content === 0)).toBe(true);
    const err = await rejection(changes('duckdb-eqdel-partitioned', snaps[0].snapshot_id, null, parsePolicy('delete=fail')));
    expect(err.code).toBe('OPERATION_NOT_ALLOWED');
  });

  it('copy-on-write overwrite: include gives added and removed files; added-only just the added data files', async () => {
    const snaps = derivedSnapshots('icebird-spark-bunnies');
    const last = snaps[snaps.length - 1];
    const { cs } = await changes('icebird-spark-bunnies', snaps[1].snapshot_id, null);
    expect(paths(cs.added)).toEqual(derivedFiles('icebird-spark-bunnies', last.snapshot_id, 'ADDED').sort());
    expect(paths(cs.removed)).toEqual(derivedFiles('icebird-spark-bunnies', last.snapshot_id, 'DELETED').sort());
    const narrow = await changes('icebird-spark-bunnies', snaps[0].snapshot_id, null, parsePolicy('overwrite=added-only'));
    expect(narrow.cs.removed).toEqual([]);
    expect(narrow.cs.added.every((f) => f.entry.dataFile.content === 0)).toBe(true);
    expect(narrow.cs.snapshots.every((d) => d.action === 'added-only')).toBe(true);
    expect((await rejection(changes('icebird-spark-bunnies', snaps[0].snapshot_id, null, parsePolicy('overwrite=fail')))).code).toBe('OPERATION_NOT_ALLOWED');
  });

  it('a start snapshot that is not an ancestor of the end (as after a rollback) is a typed error', async () => {
    const snaps = derivedSnapshots('duckdb-hive-partitioned');
    const f = fixture('duckdb-hive-partitioned');
    const md = (await f.load()).metadata;
    const err = await rejection(() => resolveRange(md, { from: BigInt(snaps[1].snapshot_id), to: BigInt(snaps[0].snapshot_id) }));
    expect(err.code).toBe('FROM_NOT_ANCESTOR');
    expect(err.message).toMatch(/reset the consumer/);
    expect((await rejection(() => resolveRange(md, { from: 42n }))).code).toBe('UNKNOWN_SNAPSHOT');
  });

  it('ranges flag partition-derived bounds as conservative and say which files lack bounds', async () => {
    const { md, cs } = await changes('duckdb-hive-partitioned', null, null);
    const out = changesJson(md, cs, ['event_date', 'user_id']);
    const c = fixture('duckdb-hive-partitioned').expected.column_stats.files as Json[];
    const dates = c.map((x) => x.columns.event_date.lower_bound as string).sort();
    expect(out.ranges['event_date']).toEqual({ min: dates[0], max: dates[dates.length - 1], flag: 'exact' });
    const users = c.map((x) => BigInt(x.columns.user_id.lower_bound as string)).sort((a, b) => (a < b ? -1 : 1));
    expect(out.ranges['user_id']).toMatchObject({ min: users[0]!.toString(), max: users[users.length - 1]!.toString() });
  });
});
