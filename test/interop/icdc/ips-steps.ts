// The ips side of the ICDC interop tests: change sets and ICDC tables through the library (and the
// CLI), plus the comparisons against what the engines report. Expected values never come from ips.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createRequire } from 'node:module';
import pg from 'pg';
import { expect } from 'vitest';
import { REPO_ROOT, testEnv } from '../../setup/env.js';
import { isIpsError } from '../../../src/errors.js';
import { loadTable } from '../../../src/catalog/load-table.js';
import { commitSqlTable } from '../../../src/catalog/sql-catalog.js';
import { computeChangeSet, type ChangeSet } from '../../../src/capture/change-set.js';
import { changeKey } from '../../../src/capture/file-key.js';
import type { FileChange } from '../../../src/capture/snapshot-changes.js';
import { changesJson, type ChangesJson } from '../../../src/capture/changes-json.js';
import { verifyFilesExist, writeIcdcSnapshot, type IcdcWriteResult } from '../../../src/capture/icdc-table.js';
import { ManifestReader } from '../../../src/capture/manifest-reader.js';
import { DEFAULT_POLICY, type CapturePolicy } from '../../../src/capture/policy.js';
import { resolveRangeWithHistory } from '../../../src/capture/range.js';
import type { TableMetadata } from '../../../src/iceberg/metadata.js';
import type { RoutingFileIO } from '../../../src/io/routing-file-io.js';
import type { RowChange } from '../../../src/rows/net-rows.js';
import type { EngineEntry, EngineServer, IcdcReader, IcdcReads, IcdcView, RangeSnapshotFiles, Row, TableMeta } from './engines.js';

export const SOURCE_CATALOG = 'src';
export const ICDC_CATALOG = 'icdc';
export const RANGE_FIELDS = ['ts', 'id', 'name'];

export interface IpsContext {
  io: RoutingFileIO;
  pool: pg.Pool;
  /** Namespace of the source tables (catalog `src`) and of the ICDC tables (catalog `icdc`). */
  ns: string;
  /** Directory under which ICDC tables are written (file:///… or s3://…). */
  icdcRoot: string;
  storage: 'local' | 's3';
}

export async function loadSource(ctx: IpsContext, table: string): Promise<TableMetadata> {
  const env = testEnv();
  const t = await loadTable(ctx.io, { kind: 'sql', uri: env.pgUrl, catalogName: SOURCE_CATALOG, identifier: `${ctx.ns}.${table}` });
  return t.metadata;
}

export interface IpsBatch {
  md: TableMetadata;
  cs: ChangeSet;
  json: ChangesJson;
  write: IcdcWriteResult;
  ident: string;
}

/**
 * What a change set says, comparable across two computations: per snapshot its decision and
 * files, and the netted files, each file with the sequence numbers and row id it inherited
 * from its manifest's list record.
 */
export function changeSetShape(cs: ChangeSet): unknown {
  const f = (c: FileChange): string => [changeKey(c), c.entry.status, c.entry.sequenceNumber, c.entry.fileSequenceNumber, c.entry.dataFile.firstRowId, c.manifest.path].join(' ');
  const files = (xs: FileChange[]): string[] => xs.map(f).sort();
  return {
    added: files(cs.added), removed: files(cs.removed), warnings: cs.warnings,
    snapshots: cs.snapshots.map((d) => ({
      id: d.snapshot.snapshotId.toString(), action: d.action, reason: d.reason, added: files(d.added), removed: files(d.removed),
      rewritten: d.rewritten ? { added: files(d.rewritten.added), removed: files(d.rewritten.removed) } : null,
    })),
  };
}

/** One consumer batch through the library: change set of (from, to], ICDC snapshot, SQL-catalog registration. */
export async function ipsBatch(ctx: IpsContext, table: string, from: string, to: string, icdcName: string, policy: CapturePolicy = DEFAULT_POLICY): Promise<IpsBatch> {
  const md = await loadSource(ctx, table);
  const reader = new ManifestReader(ctx.io);
  const range = await resolveRangeWithHistory(md, { from: BigInt(from), to: BigInt(to) }, reader);
  const cs = await computeChangeSet(reader, range, policy, md);
  // A second computation: each snapshot's own manifest list, as Iceberg Java reads them, must give
  // what the range's newest list gave (src/capture/own-manifests.ts).
  const perSnapshot = await computeChangeSet(new ManifestReader(ctx.io), range, policy, md, { newestList: false });
  expect(changeSetShape(cs), `${table} (${from}, ${to}]: planned from the newest manifest list and from each snapshot's own`).toEqual(changeSetShape(perSnapshot));
  const json = changesJson(md, cs, RANGE_FIELDS);
  await verifyFilesExist(ctx.io, cs.added);
  const write = await writeIcdcSnapshot({
    io: ctx.io, source: md, location: icdcLocation(ctx, icdcName), files: cs.added,
    summary: { 'ips.source-from': from, 'ips.source-to': to },
  });
  const ident = `${ctx.ns}.${icdcName}`;
  await commitSqlTable(ctx.pool, ICDC_CATALOG, ident, write.metadataLocation, write.previousMetadataLocation);
  return { md, cs, json, write, ident };
}

export function icdcLocation(ctx: IpsContext, icdcName: string): string {
  return `${ctx.icdcRoot}/${icdcName}`;
}

/** The typed error code resolveRange gives for (from, to], or 'OK'. */
export async function rangeOutcome(ctx: IpsContext, table: string, from: string, to?: string): Promise<string> {
  const md = await loadSource(ctx, table);
  try {
    await resolveRangeWithHistory(md, { from: BigInt(from), to: to === undefined ? undefined : BigInt(to) }, new ManifestReader(ctx.io));
    return 'OK';
  } catch (e) {
    if (isIpsError(e)) return e.code;
    throw e;
  }
}

// ---- the CLI, as a workflow's bash step runs it

const TSX = createRequire(import.meta.url).resolve('tsx/cli');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runIps(ctx: IpsContext, args: string[]): Promise<CliResult> {
  const env = testEnv();
  const s3 = ctx.storage === 's3' ? ['--s3-endpoint', env.s3Endpoint] : [];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [TSX, path.join(REPO_ROOT, 'src', 'cli', 'main.ts'), ...args, ...s3], {
      cwd: REPO_ROOT,
      env: { ...process.env, AWS_ACCESS_KEY_ID: env.s3AccessKey, AWS_SECRET_ACCESS_KEY: env.s3SecretKey, AWS_REGION: env.s3Region },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** `ips changes … --icdc … --icdc-catalog … --json`; returns the parsed JSON. */
export async function ipsChangesCli(ctx: IpsContext, table: string, from: string, to: string, icdcName: string, extra: string[] = []): Promise<ChangesJson> {
  const env = testEnv();
  const r = await runIps(ctx, [
    'changes', `${ctx.ns}.${table}`, '--catalog', env.pgUrl, '--catalog-name', SOURCE_CATALOG,
    '--from', from, '--to', to, '--range', RANGE_FIELDS.join(','),
    '--icdc', `${ctx.ns}.${icdcName}`, '--icdc-location', icdcLocation(ctx, icdcName),
    '--icdc-catalog', env.pgUrl, '--icdc-catalog-name', ICDC_CATALOG, '--json', ...extra,
  ]);
  expect(r.code, `ips changes failed:\n${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout) as ChangesJson;
}

// ---- comparisons

/** Rows as a sorted multiset (JSON text per row). */
export function bag(rows: Row[]): string[] {
  return rows.map((r) => JSON.stringify(r)).sort();
}

/** a − b as multisets. */
export function minus(a: Row[], b: Row[]): Row[] {
  const count = new Map<string, number>();
  for (const r of b) count.set(JSON.stringify(r), (count.get(JSON.stringify(r)) ?? 0) + 1);
  return a.filter((r) => {
    const k = JSON.stringify(r);
    const n = count.get(k) ?? 0;
    if (n > 0) {
      count.set(k, n - 1);
      return false;
    }
    return true;
  });
}

/**
 * The files the ICDC snapshot of (from, to] must reference, from the engine's own entries tables:
 * files added by the range's non-replace snapshots, minus those such a snapshot removed again.
 * (Compaction adds no change; the files it removed keep their rows, so they stay.)
 */
export function expectedIcdcFiles(range: RangeSnapshotFiles[]): Map<string, EngineEntry> {
  const live = new Map<string, EngineEntry>();
  for (const s of range) {
    if (s.operation === 'replace') continue;
    for (const r of s.removed) live.delete(r.file_path);
    for (const a of s.added) live.set(a.file_path, a);
  }
  return live;
}

const sameLoc = (p: string): string => p.replace(/^file:(\/\/)?(?=\/)/, 'file://');

/**
 * A delete file's identity when several deletion vectors share one Puffin file: path + content
 * offset (data files and position-delete files have no offset, so their key is the path).
 */
export function entryKey(e: Pick<EngineEntry, 'file_path' | 'content_offset'>): string {
  return e.content_offset === undefined || e.content_offset === null ? sameLoc(e.file_path) : `${sameLoc(e.file_path)}#${e.content_offset}`;
}

/**
 * expectedIcdcFiles keyed by entryKey (needs rangeFiles(…, { dv: true })): each DV of a shared
 * Puffin file counts on its own, and a DV a later snapshot replaced leaves only that one entry.
 */
export function expectedIcdcFilesByKey(range: RangeSnapshotFiles[]): Map<string, EngineEntry> {
  const live = new Map<string, EngineEntry>();
  for (const s of range) {
    if (s.operation === 'replace') continue;
    for (const r of s.removed) live.delete(entryKey(r));
    for (const a of s.added) live.set(entryKey(a), a);
  }
  return live;
}

/** An ICDC table version as handed to a workflow: its name and metadata location. */
export interface IcdcRef {
  ident: string;
  metadataLocation: string;
  snapshotId: string;
}

export function refOf(b: IpsBatch): IcdcRef {
  return { ident: b.ident, metadataLocation: b.write.metadataLocation, snapshotId: b.write.snapshotId.toString() };
}

export function refOfJson(ctx: IpsContext, j: ChangesJson): IcdcRef {
  expect(j.icdc, 'ips changes --icdc reported its table').toBeDefined();
  return { ident: j.icdc!.table, metadataLocation: j.icdc!.metadata_location, snapshotId: j.icdc!.snapshot_id };
}

export interface IcdcExpectation {
  batch: IcdcRef;
  expected: Row[];
  /** Engine metadata of the source table, keyed by the engine family reading it. */
  sourceMeta: { spark: TableMeta; pyiceberg: TableMeta };
  /** Engine-reported files the ICDC snapshot must hold (expectedIcdcFiles). */
  files: Map<string, EngineEntry>;
  /** ICDC versions written so far (snapshots in its history). */
  version: number;
  readers?: IcdcReader[];
  /** Also read with the engine filter `ts >= tsFromUs` and expect the expected rows so filtered. */
  tsFromUs?: number;
  where: string;
  /**
   * `files` is keyed by entryKey (expectedIcdcFilesByKey): entries are compared per DV (path +
   * content offset), with their referenced data file, offset and size.
   */
  dv?: boolean;
  /**
   * Engine limits: metadata tables that fail on the *source* table with this error text (e.g.
   * PyIceberg 0.12 on DVs). The ICDC table may fail the same way there, and only that way.
   */
  engineLimits?: { py?: Record<string, number | string>; spark?: Record<string, number | string> };
}

/**
 * Reads the ICDC table with every engine reader and checks rows, metadata and files:
 * rows equal the expected multiset; gc.enabled=false; the source's schemas, specs and sort
 * orders with the same ids; data/delete file paths, sizes, record counts identical to the
 * source's; one snapshot per batch; with delete files, the source's data sequence numbers.
 */
export async function expectIcdc(server: EngineServer, x: IcdcExpectation): Promise<IcdcReads> {
  const reads = await server.readIcdc(x.batch.ident, x.batch.metadataLocation, { readers: x.readers, ...(x.dv ? { dv: true } : {}) });
  const hasDeletes = [...x.files.values()].some((f) => f.content !== 0);
  for (const [reader, v] of Object.entries(reads)) {
    const where = `${x.where} [${reader}]`;
    expect(v, `${where}: engine error`).not.toHaveProperty('error');
    const view = v as IcdcView;
    expect(bag(view.rows), `${where}: rows`).toEqual(bag(x.expected));
    if (reader === 'spark_path') {
      // Spark path-loads tables through HadoopFileIO; without hadoop-aws there is no s3 FileSystem.
      if (x.batch.metadataLocation.startsWith('s3://')) {
        expect(view.method, where).toBe('register_table');
        expect(view.path_error, where).toMatch(/Failed to get file system for path: s3:|No FileSystem for scheme "s3"/);
      } else expect(view.method, where).toBe('path');
    }
    const src = reader.startsWith('py') ? x.sourceMeta.pyiceberg : x.sourceMeta.spark;
    expect(view.properties['gc.enabled'], `${where}: gc.enabled`).toBe('false');
    expect(view.format_version, `${where}: format version`).toBe(src.format_version);
    expect(view.schemas, `${where}: schemas`).toEqual(src.schemas);
    expect(view.current_schema_id, `${where}: current schema id`).toBe(src.current_schema_id);
    expect(view.specs, `${where}: partition specs`).toEqual(src.specs);
    expect(view.default_spec_id, `${where}: default spec id`).toBe(src.default_spec_id);
    expect(view.sort_orders, `${where}: sort orders`).toEqual(src.sort_orders);
    expect(view.current_snapshot_id, `${where}: current snapshot`).toBe(x.batch.snapshotId);
    // One snapshot per batch, plus one before each batch that removes the previous batch's files
    // (none before the first batch, nor after a batch that handed out no files).
    expect(view.snapshots.length, `${where}: batch snapshots and their delete snapshots`).toBeGreaterThanOrEqual(x.version);
    expect(view.snapshots.length, `${where}: batch snapshots and their delete snapshots`).toBeLessThanOrEqual(2 * x.version - 1);
    for (const [t, n] of Object.entries(view.metadata_tables ?? {})) {
      const limit = x.engineLimits?.[reader.startsWith('py') ? 'py' : 'spark']?.[t];
      if (typeof limit === 'string' && n === limit) continue; // the engine fails the same way on the source table
      expect(typeof n, `${where}: metadata table ${t} loads (${String(n)})`).toBe('number');
    }
    if (view.partitions && !hasDeletes) {
      // The engine's partitions table (partition values from the ICDC manifests) vs. the rows' days.
      const perDay = new Map<string, number>();
      for (const r of x.expected) perDay.set(isoDay(r[1]), (perDay.get(isoDay(r[1])) ?? 0) + 1);
      expect(view.partitions.map(([d, n]) => [d, n]), `${where}: partitions table`).toEqual([...perDay].sort());
      expect(view.partitions.reduce((n, p) => n + p[2], 0), `${where}: partitions table file count`).toBe([...x.files.values()].filter((f) => f.content === 0).length);
    }
    if (view.entries && x.dv) {
      const got = new Map(view.entries.map((e) => [entryKey(e), e]));
      expect(got.size, `${where}: entries with the same path and offset`).toBe(view.entries.length);
      expect([...got.keys()].sort(), `${where}: file paths (+ DV offsets)`).toEqual([...x.files.keys()].sort());
      expect(view.entries.every((e) => e.status === 1), `${where}: every entry ADDED`).toBe(true);
      for (const [k, f] of x.files) {
        const e = got.get(k);
        if (!e) continue; // reported by the key comparison above
        const pick = (v: EngineEntry) => ({
          file_path: v.file_path, file_size_in_bytes: v.file_size_in_bytes, record_count: v.record_count, content: v.content,
          referenced_data_file: v.referenced_data_file ?? null, content_offset: v.content_offset ?? null, content_size_in_bytes: v.content_size_in_bytes ?? null,
          ...(hasDeletes ? { sequence_number: v.sequence_number } : {}),
        });
        expect(pick(e), `${where}: entry ${k}`).toEqual(pick(f));
      }
    } else if (view.entries) {
      const got = new Map(view.entries.map((e) => [sameLoc(e.file_path), e]));
      expect([...got.keys()].sort(), `${where}: file paths`).toEqual([...x.files.keys()].map(sameLoc).sort());
      expect(view.entries.every((e) => e.status === 1), `${where}: every entry ADDED`).toBe(true);
      for (const [p, f] of x.files) {
        const e = got.get(sameLoc(p))!;
        expect(e.file_path, `${where}: path of ${p} verbatim`).toBe(f.file_path);
        expect(e.file_size_in_bytes, `${where}: size of ${p}`).toBe(f.file_size_in_bytes);
        expect(e.record_count, `${where}: records of ${p}`).toBe(f.record_count);
        expect(e.content, `${where}: content of ${p}`).toBe(f.content);
        if (hasDeletes) expect(e.sequence_number, `${where}: data sequence number of ${p}`).toBe(f.sequence_number);
      }
    }
  }
  if (x.tsFromUs !== undefined) {
    const filtered = await server.readIcdc(x.batch.ident, x.batch.metadataLocation, { readers: x.readers, tsFromUs: x.tsFromUs });
    const want = x.expected.filter((r) => r[1] >= x.tsFromUs!);
    expect(want.length, `${x.where}: the filter keeps some rows`).toBeGreaterThan(0);
    expect(want.length, `${x.where}: the filter drops some rows`).toBeLessThan(x.expected.length);
    for (const [reader, v] of Object.entries(filtered)) {
      expect(v, `${x.where} [${reader}, ts filter]: engine error`).not.toHaveProperty('error');
      expect(bag((v as IcdcView).rows), `${x.where} [${reader}]: rows with ts >= ${x.tsFromUs}`).toEqual(bag(want));
    }
  }
  return reads;
}

/** `ts` bounds as ips prints them (ISO-8601 with µs and +00:00), from µs since epoch. */
export function isoMicros(us: number): string {
  const ms = Math.floor(us / 1000);
  const d = new Date(ms).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  const micros = String(((us % 1_000_000) + 1_000_000) % 1_000_000).padStart(6, '0');
  return `${d.slice(0, 19)}.${micros}+00:00`;
}

export function isoDay(us: number): string {
  return new Date(Math.floor(us / 1000)).toISOString().slice(0, 10);
}

/** Min/max under UTF-8 byte order (how Iceberg orders strings). */
export function utf8MinMax(values: string[]): [string, string] {
  const sorted = [...values].sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
  return [sorted[0]!, sorted[sorted.length - 1]!];
}

/** µs since the epoch of ips's ISO rendering of a UTC timestamp (`2026-03-01T05:00:00.123456+00:00`). */
export function microsOfIso(s: string): number {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(?:Z|\+00:00)?$/.exec(s);
  if (!m) throw new Error(`not a UTC ISO timestamp: ${s}`);
  return Date.parse(`${m[1]}Z`) * 1000 + Number((m[2] ?? '').padEnd(6, '0'));
}

/** An ips row change as the engines' normalised row [id, ts µs, name, qty, batch]. */
export function rowOfChange(r: RowChange): Row {
  expect(typeof r['id'], 'long values are strings').toBe('string');
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$/.test(String(r['ts']))) throw new Error(`not ips's timestamptz rendering: ${String(r['ts'])}`);
  return [Number(r['id']), microsOfIso(String(r['ts'])), r['name'] as string | null, r['qty'] as number | null, r['batch'] as number];
}
