import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import { runPython, testEnv } from '../setup/env.js';
import { RoutingFileIO } from '../../src/io/routing-file-io.js';
import { loadTable, parseTableRef, type TableRef } from '../../src/catalog/load-table.js';
import { inspectTable, type InspectJson } from '../../src/capture/inspect.js';
import { ManifestReader } from '../../src/capture/manifest-reader.js';
import type { FileJson } from '../../src/capture/file-json.js';

/** The ground truth an engine script reports from the engine's own metadata tables. */
export interface EngineFile {
  file_path: string;
  content: FileJson['content'];
  record_count: string;
  file_size_in_bytes: string;
  sequence_number: string | null;
  file_sequence_number: string | null;
  partition: Record<string, unknown>;
  lower_bounds: Record<string, unknown>;
  upper_bounds: Record<string, unknown>;
  lower_bounds_hex: Record<string, string>;
  upper_bounds_hex: Record<string, string>;
  undecodable?: string[] | number[];
}
export interface EngineSnapshot {
  snapshot_id: string;
  parent_snapshot_id: string | null;
  sequence_number: string;
  operation: string;
  summary: Record<string, string>;
  added_files: EngineFile[];
  removed_files: EngineFile[];
}
export interface EngineTable {
  scenario: string;
  identifier: string;
  catalog: 'sql' | 'jdbc' | 'hadoop';
  catalog_name?: string;
  metadata_location: string;
  table_location: string;
  format_version: number;
  current_snapshot_id: string | null;
  snapshots: EngineSnapshot[];
  current_row_count: number;
}
export interface EngineReport {
  engine: string;
  engine_version: string;
  tables: EngineTable[];
}

export type Storage = 'local' | 's3';

/** Runs an engine scenario script against PostgreSQL and the chosen storage; returns its report. */
export async function runEngineScenarios(script: 'pyiceberg' | 'spark', storage: Storage, extra: string[] = []): Promise<EngineReport & { workDir: string }> {
  const env = testEnv();
  const work = await fs.mkdtemp(path.join(os.tmpdir(), `ips-${script}-${storage}-`));
  const ns = `t_${script}_${storage}_${process.pid}_${Date.now().toString(36)}`;
  const warehouse = storage === 'local' ? `file://${path.join(work, 'warehouse')}` : `s3://${env.s3Bucket}/${ns}`;
  const out = path.join(work, 'report.json');
  const args = [
    '--warehouse', warehouse, '--catalog-uri', env.pgUrl, '--namespace', ns, '--out', out,
    '--s3-endpoint', env.s3Endpoint, '--s3-access-key', env.s3AccessKey, '--s3-secret-key', env.s3SecretKey, '--s3-region', env.s3Region,
    ...(script === 'spark' ? ['--jars', env.sparkJars.join(',')] : []),
    ...extra,
  ];
  await runPython(`test/interop/engines/${script}_scenarios.py`, args, { timeoutMs: 15 * 60_000 });
  // The work directory (the local warehouse, the engine's scratch files) is the caller's to remove once done with the tables.
  return { ...(JSON.parse(await fs.readFile(out, 'utf8')) as EngineReport), workDir: work };
}

export function ipsFileIO(): RoutingFileIO {
  const env = testEnv();
  return new RoutingFileIO({
    s3: { endpoint: env.s3Endpoint, region: env.s3Region, accessKeyId: env.s3AccessKey, secretAccessKey: env.s3SecretKey, pathStyle: true },
  });
}

/** How ips finds the table: through the catalog the engine used (and by metadata location). */
export function catalogRef(t: EngineTable): TableRef {
  const env = testEnv();
  if (t.catalog === 'hadoop') return parseTableRef(t.table_location);
  return parseTableRef(t.identifier, { catalogUri: env.pgUrl, catalogName: t.catalog_name });
}

export async function inspectWithIps(io: RoutingFileIO, ref: TableRef): Promise<InspectJson> {
  const table = await loadTable(io, ref);
  return inspectTable(table, new ManifestReader(io));
}

/** `file:/x` (as Java writes it) and `file:///x` name the same file. */
export function sameFile(loc: string): string {
  return loc.replace(/^file:(\/\/)?(?=\/)/, 'file://');
}

function byPath(files: { file_path: string }[]): Map<string, { file_path: string }> {
  return new Map(files.map((f) => [f.file_path, f]));
}

/**
 * Asserts that what ips read equals what the engine reports, snapshot by snapshot and file
 * by file. Bounds are compared where the engine decoded them itself; where it could not, ips
 * must still have decoded every bound present in the file.
 */
export function expectSameAsEngine(t: EngineTable, ips: InspectJson): void {
  const where = `${t.scenario} (${t.identifier})`;
  expect(ips.format_version, `${where}: format version`).toBe(t.format_version);
  expect(ips.current_snapshot_id, `${where}: current snapshot`).toBe(t.current_snapshot_id);
  const mine = ips.snapshots.filter((s) => s.on_main);
  expect(mine.map((s) => s.snapshot_id), `${where}: snapshots in lineage order`).toEqual(t.snapshots.map((s) => s.snapshot_id));
  for (const [i, es] of t.snapshots.entries()) {
    const s = mine[i]!;
    const sw = `${where} snapshot ${es.snapshot_id}`;
    expect(s.parent_snapshot_id, `${sw}: parent`).toBe(es.parent_snapshot_id);
    expect(s.sequence_number, `${sw}: sequence number`).toBe(es.sequence_number);
    expect(s.operation, `${sw}: operation`).toBe(es.operation);
    for (const [k, v] of Object.entries(es.summary)) {
      if (k === 'operation') continue;
      expect(s.summary[k], `${sw}: summary ${k}`).toBe(v);
    }
    for (const kind of ['added_files', 'removed_files'] as const) {
      const theirs = byPath(es[kind]) as Map<string, EngineFile>;
      const ours = byPath(s[kind]) as Map<string, FileJson>;
      expect([...ours.keys()].sort(), `${sw}: ${kind}`).toEqual([...theirs.keys()].sort());
      for (const [p, ef] of theirs) {
        const f = ours.get(p)!;
        const fw = `${sw} ${kind} ${path.basename(p)}`;
        expect(f.content, `${fw}: content`).toBe(ef.content);
        expect(f.record_count, `${fw}: record_count`).toBe(ef.record_count);
        expect(f.file_size_in_bytes, `${fw}: file_size_in_bytes`).toBe(ef.file_size_in_bytes);
        if (ef.sequence_number !== null) expect(f.sequence_number, `${fw}: sequence_number`).toBe(ef.sequence_number);
        if (ef.file_sequence_number !== null) expect(f.file_sequence_number, `${fw}: file_sequence_number`).toBe(ef.file_sequence_number);
        expect(f.partition, `${fw}: partition`).toEqual(ef.partition);
        for (const which of ['lower', 'upper'] as const) {
          const decoded = ef[`${which}_bounds`];
          const raw = ef[`${which}_bounds_hex`];
          const got = f[`${which}_bounds`];
          for (const [id, v] of Object.entries(decoded)) expect(got[id], `${fw}: ${which} bound of field ${id}`).toEqual(v);
          // Every bound the file carries is decoded by ips (nested-type ids excepted by the engine too).
          for (const id of Object.keys(raw)) expect(got, `${fw}: ${which} bound of field ${id} decoded`).toHaveProperty(id);
        }
      }
    }
  }
}
