// Shared helpers for the tests over the six committed Iceberg tables in
// ../shared/fixtures/iceberg-tables (beside the repo, read in place, never copied).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspectTable, type InspectJson } from '../../src/capture/inspect.js';
import { FileDescriber, type FileJson } from '../../src/capture/file-json.js';
import { ManifestReader } from '../../src/capture/manifest-reader.js';
import { loadTable, parseTableRef } from '../../src/catalog/load-table.js';
import type { LoadedTable } from '../../src/catalog/table.js';
import { EntryStatus, type ManifestEntry } from '../../src/iceberg/manifest.js';
import type { ManifestFile } from '../../src/iceberg/manifest-list.js';
import { snapshotById, type Snapshot } from '../../src/iceberg/metadata.js';
import { RoutingFileIO } from '../../src/io/routing-file-io.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FIXTURES = process.env['IPS_SHARED_CORPUS'] ?? path.resolve(REPO_ROOT, '../shared/fixtures/iceberg-tables');

// vitest.config.ts leaves this folder out when the corpus is missing, except with CI=true: then
// say what is missing instead of failing on the first ENOENT.
if (!fs.existsSync(FIXTURES)) {
  throw new Error(`the shared corpus of engine-written Iceberg tables is not at ${FIXTURES}: the tests in test/fixtures-shared/ read it in place. ` +
    'Put the shared/ folder beside the repository, or point IPS_SHARED_CORPUS at its fixtures/iceberg-tables folder (without CI=true these tests are left out).');
}

export type FixtureName =
  | 'duckdb-hive-partitioned'
  | 'duckdb-eqdel-partitioned'
  | 'icebird-spark-bunnies'
  | 'impala-v3-row-lineage'
  | 'impala-v3-deletion-vectors'
  | 'impala-v1-bucket';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

export interface Fixture {
  name: FixtureName;
  dir: string;
  tableDir: string;
  prefix: string;
  expected: Json;
  derived: Json;
  io: RoutingFileIO;
  reader: ManifestReader;
  /** Table path as stored in metadata → path relative to `table/` (the form expected.json uses). */
  rel(p: string): string;
  /** Relative path → the location as stored in metadata. */
  abs(rel: string): string;
  /** Load the table directory (version-hint resolution) or a specific metadata file, e.g. "v2". */
  load(version?: string): Promise<LoadedTable>;
}

const cache = new Map<string, Fixture>();

export function fixture(name: FixtureName): Fixture {
  const hit = cache.get(name);
  if (hit) return hit;
  const dir = path.join(FIXTURES, name);
  const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as Json;
  const derived = JSON.parse(fs.readFileSync(path.join(dir, 'derived', 'changes-by-snapshot.json'), 'utf8')) as Json;
  const prefix: string = expected.location_prefix;
  const tableDir = path.join(dir, expected.table_dir as string);
  const io = new RoutingFileIO({ mappings: [{ from: prefix, to: tableDir }] });
  const f: Fixture = {
    name,
    dir,
    tableDir,
    prefix,
    expected,
    derived,
    io,
    reader: new ManifestReader(io),
    rel(p) {
      if (!p.startsWith(`${prefix}/`)) throw new Error(`${p} does not start with the location prefix ${prefix}`);
      return p.slice(prefix.length + 1);
    },
    abs(rel) {
      return `${prefix}/${rel}`;
    },
    load(version) {
      const ref = version === undefined ? tableDir : path.join(tableDir, 'metadata', `${version}.metadata.json`);
      return loadTable(io, parseTableRef(ref));
    },
  };
  cache.set(name, f);
  return f;
}

/** "metadata/v2.metadata.json" → "v2". */
export function versionOf(metadataFile: string): string {
  const m = /(v\d+)\.metadata\.json$/.exec(metadataFile);
  if (!m) throw new Error(`not a vN.metadata.json: ${metadataFile}`);
  return m[1]!;
}

export interface LiveFile {
  entry: ManifestEntry;
  manifest: ManifestFile;
  json: FileJson;
}

/**
 * Live (ADDED or EXISTING) entries of a snapshot: every manifest of its manifest list, read
 * through the real decoders, without DELETED entries. Paths are deduplicated per manifest path.
 */
export async function liveFiles(f: Fixture, table: LoadedTable, snapshot: Snapshot): Promise<LiveFile[]> {
  const describer = new FileDescriber(table.metadata);
  const list = await f.reader.manifestList(snapshot);
  const out: LiveFile[] = [];
  const seen = new Set<string>();
  for (const mf of list.manifests) {
    if (seen.has(mf.path)) continue;
    seen.add(mf.path);
    const m = await f.reader.manifest(mf);
    for (const entry of m.entries) {
      if (entry.status === EntryStatus.DELETED) continue;
      out.push({ entry, manifest: mf, json: describer.describe({ entry, manifest: mf }) });
    }
  }
  return out;
}

export async function currentLiveFiles(f: Fixture, table: LoadedTable): Promise<LiveFile[]> {
  const id = table.metadata.currentSnapshotId;
  if (id === null) return [];
  return liveFiles(f, table, snapshotById(table.metadata, id)!);
}

export async function inspect(f: Fixture, version?: string): Promise<InspectJson> {
  return inspectTable(await f.load(version), f.reader);
}

/**
 * The single row of a one-row data file, from its bounds: with record_count 1, no nulls, and
 * lower == upper for every column, the bounds are the row's values. Fails loudly otherwise.
 */
export function rowFromBounds(lf: LiveFile, names: Record<string, string>): Record<string, unknown> {
  const df = lf.entry.dataFile;
  if (df.recordCount !== 1n) throw new Error(`${df.filePath} has ${df.recordCount} rows, not 1`);
  const row: Record<string, unknown> = {};
  for (const [id, name] of Object.entries(names)) {
    const lo = lf.json.lower_bounds[id];
    const hi = lf.json.upper_bounds[id];
    if (lo === undefined || hi === undefined) throw new Error(`${df.filePath}: no bounds for field ${id}`);
    if (lo !== hi) throw new Error(`${df.filePath}: field ${id} bounds differ (${String(lo)} .. ${String(hi)})`);
    if (df.nullValueCounts?.get(Number(id)) !== 0n) throw new Error(`${df.filePath}: field ${id} may be null`);
    row[name] = lo;
  }
  return row;
}

export const sortRows = <T extends Record<string, unknown>>(rows: T[], keys: string[]): T[] =>
  [...rows].sort((a, b) => {
    for (const k of keys) {
      const x = String(a[k]);
      const y = String(b[k]);
      if (x !== y) return Buffer.compare(Buffer.from(x), Buffer.from(y));
    }
    return 0;
  });

export const sum = (xs: bigint[]): bigint => xs.reduce((a, b) => a + b, 0n);
