// `ips changes` output streamed from compact entries (compact-entry.ts, writeChangesJson,
// writeChangesText) against the previous implementation on the same real tables: the change set
// of full decoded entries read one snapshot at a time, rendered whole by changesJson +
// stringifyJsonLossless / renderChanges. Every range of every table, with ranges over every
// primitive column, must give the same bytes (or the same error). As the CLI plans, the compact
// entries keep only the range fields' bounds and --json reads every file's bounds back from its
// manifest (output-bounds.ts), here in windows of 1 to 5 files so that windows split manifests.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixture, REPO_ROOT, type FixtureName } from './helpers.js';
import { computeChangeSet, type ChangeSet } from '../../src/capture/change-set.js';
import { changesJson, writeChangesJson } from '../../src/capture/changes-json.js';
import { compactEntry, EntryInterner, POS_FILE_PATH_ID, statsForRanges } from '../../src/capture/compact-entry.js';
import { ManifestReader } from '../../src/capture/manifest-reader.js';
import { OutputBounds } from '../../src/capture/output-bounds.js';
import { parsePolicy } from '../../src/capture/policy.js';
import { resolveRange, type SnapshotRange } from '../../src/capture/range.js';
import { resolveFieldId } from '../../src/capture/ranges.js';
import { renderChanges, writeChangesText } from '../../src/cli/changes.js';
import { describeError } from '../../src/errors.js';
import { stringifyJsonLossless } from '../../src/iceberg/json.js';
import { currentSchema, type TableMetadata } from '../../src/iceberg/metadata.js';
import { indexById, isPrimitive } from '../../src/iceberg/types.js';

const NAMES: FixtureName[] = [
  'duckdb-hive-partitioned', 'duckdb-eqdel-partitioned', 'icebird-spark-bunnies',
  'impala-v3-row-lineage', 'impala-v3-deletion-vectors', 'impala-v1-bucket',
];

function primitiveColumns(md: TableMetadata): string[] {
  return [...indexById(currentSchema(md).struct).values()].filter((f) => isPrimitive(f.field.type) && f.field.type.kind !== 'other').map((f) => f.path);
}

/** (from, to] for every pair of snapshots on the current lineage, oldest first, plus from the start. */
function ranges(md: TableMetadata): { from: bigint | null; to: bigint }[] {
  const byId = new Map(md.snapshots.map((s) => [s.snapshotId, s] as const));
  const chain: bigint[] = [];
  for (let id = md.currentSnapshotId; id !== null && byId.has(id); id = byId.get(id)!.parentSnapshotId) chain.unshift(id);
  const out: { from: bigint | null; to: bigint }[] = [];
  for (let j = 0; j < chain.length; j++) {
    out.push({ from: null, to: chain[j]! });
    for (let i = 0; i < j; i++) out.push({ from: chain[i]!, to: chain[j]! });
  }
  return out;
}

async function attempt<T>(f: () => Promise<T>): Promise<T | { error: string }> {
  try {
    return await f();
  } catch (e) {
    return { error: describeError(e) };
  }
}

async function collect(write: (sink: (s: string) => void) => Promise<void>): Promise<string> {
  const parts: string[] = [];
  await write((s) => void parts.push(s));
  return parts.join('');
}

describe('compact entries keep what planning and output read, exactly', () => {
  it('every entry of every manifest of the six tables: identity, counts, sequence numbers, bounds; counts only for wanted fields', async () => {
    let checked = 0;
    for (const name of NAMES) {
      const f = fixture(name);
      const md = (await f.load()).metadata;
      const interner = new EntryInterner();
      const ids = [...indexById(currentSchema(md).struct).keys()];
      const wanted = new Set([ids[0]!, POS_FILE_PATH_ID]);
      for (const snap of md.snapshots) {
        for (const mf of (await f.reader.manifestList(snap)).manifests) {
          for (const e of (await f.reader.manifest(mf)).entries) {
            const c = compactEntry(e, mf, { fields: wanted, allBounds: true }, interner);
            const d = e.dataFile;
            expect([c.status, c.snapshotId, c.sequenceNumber, c.fileSequenceNumber]).toEqual([e.status, e.snapshotId, e.sequenceNumber, e.fileSequenceNumber]);
            expect(c.dataFile).toBe(c);
            expect(c.entry).toBe(c);
            expect(c.manifest).toBe(mf);
            expect({ ...pick(c) }).toEqual({ ...pick(d) });
            // Decoded stats are read-only views (packed-stats.ts): compared as Maps of their entries.
            expect(c.lowerBounds ?? new Map()).toEqual(new Map(d.lowerBounds ?? []));
            expect(c.upperBounds ?? new Map()).toEqual(new Map(d.upperBounds ?? []));
            const only = (m: ReadonlyMap<number, bigint> | null) => new Map([...(m ?? new Map<number, bigint>())].filter(([id]) => wanted.has(id)));
            expect(c.valueCounts ?? new Map()).toEqual(only(d.valueCounts));
            expect(c.nullValueCounts ?? new Map()).toEqual(only(d.nullValueCounts));
            checked++;
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(20);
  });
});

function pick(d: import('../../src/iceberg/manifest.js').DataFile) {
  return {
    content: d.content, filePath: d.filePath, fileFormat: d.fileFormat, partition: d.partition, recordCount: d.recordCount, fileSizeInBytes: d.fileSizeInBytes,
    equalityIds: d.equalityIds, firstRowId: d.firstRowId, referencedDataFile: d.referencedDataFile, contentOffset: d.contentOffset, contentSizeInBytes: d.contentSizeInBytes,
  };
}

describe('ips changes output, streamed from compact entries, equals the previous whole-document output', () => {
  for (const name of NAMES) {
    it(`${name}: every range, every policy, ranges over every primitive column`, async () => {
      const f = fixture(name);
      const md = (await f.load()).metadata;
      const columns = primitiveColumns(md);
      let compared = 0; // ranges that gave a document
      for (const policyText of ['overwrite=include,delete=include', 'overwrite=added-only,delete=skip']) {
        const policy = parsePolicy(policyText);
        for (const r of ranges(md)) {
          const range: SnapshotRange = resolveRange(md, r);
          for (const fields of [[], columns]) {
            // Previous implementation: full entries, a fresh cached reader, whole document.
            const before = await attempt(async () => {
              const cs = await computeChangeSet(new ManifestReader(f.io), range, policy, md, { deleteFootprints: fields.length > 0 });
              const doc = changesJson(md, cs, fields);
              return { json: stringifyJsonLossless(doc, 2) + '\n', text: renderChanges(doc) };
            });
            const after = await attempt(async () => {
              const ids = fields.map((c) => resolveFieldId(md, c).id);
              const reader = new ManifestReader(f.io, 0);
              const cs: ChangeSet = await computeChangeSet(reader, range, policy, md, {
                deleteFootprints: fields.length > 0, compact: { stats: statsForRanges(ids, false), concurrency: 3 },
              });
              const bounds = new OutputBounds(reader, 1 + (compared % 3), 5, 1); // windows from 2+ manifests grow to 5 files
              return {
                json: await collect((sink) => writeChangesJson(md, cs, fields, sink, {}, { bounds })),
                text: await collect((sink) => writeChangesText(md, cs, fields, sink)),
              };
            });
            expect(after, `${name} ${policyText} (${r.from}, ${r.to}] ranges ${fields.join(',')}`).toEqual(before);
            if (!('error' in before)) compared++;
          }
        }
      }
      expect(compared).toBeGreaterThan(4); // documents, not only equal errors
    });
  }

  it('the ips changes command prints the previous implementation\'s bytes (--json and text, with --range)', async () => {
    const f = fixture('duckdb-eqdel-partitioned');
    const md = (await f.load()).metadata;
    const columns = primitiveColumns(md);
    const cs = await computeChangeSet(new ManifestReader(f.io), resolveRange(md, { from: null }), parsePolicy('overwrite=include,delete=include'), md, { deleteFootprints: true });
    const doc = changesJson(md, cs, columns);
    const run = (...extra: string[]) => spawnSync(process.execPath, [path.join(REPO_ROOT, 'bin', 'ips.js'), 'changes', f.tableDir, '--range', columns.join(','), ...extra], { cwd: REPO_ROOT, encoding: 'utf8' });
    const json = run('--json');
    expect(json.status, json.stderr).toBe(0);
    expect(json.stdout).toBe(stringifyJsonLossless(doc, 2) + '\n');
    const text = run();
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toBe(renderChanges(doc));
  });
});

describe('OutputBounds reads a file\'s bounds back from its own manifest entry', () => {
  it('a compact entry without bounds gets exactly its entry\'s bounds; one its manifest does not list fails with INVALID_MANIFEST', async () => {
    const f = fixture('duckdb-hive-partitioned');
    const md = (await f.load()).metadata;
    const manifests = new Map<string, import('../../src/iceberg/manifest-list.js').ManifestFile>();
    for (const snap of md.snapshots) for (const mf of (await f.reader.manifestList(snap)).manifests) manifests.set(mf.path, mf);
    const [a, b] = [...manifests.values()];
    expect(b, 'the fixture has two manifests').toBeDefined();
    const e = (await f.reader.manifest(a!)).entries[0]!;
    expect(e.dataFile.lowerBounds?.size, 'the writer recorded bounds').toBeGreaterThan(0);
    const bare = compactEntry(e, a!, { fields: 'none' }, new EntryInterner());
    expect(bare.lowerBounds).toBeNull();
    const out: import('../../src/capture/snapshot-changes.js').FileChange[] = [];
    for await (const w of new OutputBounds(new ManifestReader(f.io, 0)).windows([bare])) out.push(...w);
    expect(out).toHaveLength(1);
    expect(new Map(out[0]!.entry.dataFile.lowerBounds!)).toEqual(new Map(e.dataFile.lowerBounds!));
    expect(new Map(out[0]!.entry.dataFile.upperBounds!)).toEqual(new Map(e.dataFile.upperBounds!));
    // The same entry said to come from another manifest, which does not list it.
    const misplaced = compactEntry(e, b!, { fields: 'none' }, new EntryInterner());
    const drain = async (): Promise<void> => {
      for await (const w of new OutputBounds(new ManifestReader(f.io, 0)).windows([misplaced])) void w;
    };
    await expect(drain()).rejects.toMatchObject({ code: 'INVALID_MANIFEST' });
  });
});
