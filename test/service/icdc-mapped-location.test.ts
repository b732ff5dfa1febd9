// An ICDC table of a source read through a location mapping names the files where ips read
// them, so an engine can open it (issue 14, item 4). The bundled playback fixture was written by
// PyIceberg at file:///ips-fixtures/demo/playback and lives elsewhere: the service reads it as a
// moved table directory, `ips changes --map-location` through an explicit mapping. PyIceberg then
// reads the ICDC table by its metadata file; the expected row count is the head snapshot's
// `total-records`, as PyIceberg wrote it (every file of the range is live at the head, or
// netted out inside the batch). Position deletes of a mapped table are refused: they name their
// data files by the original paths, inside the delete files.
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { IpsService } from '../../src/service/ips-service.js';
import { State } from '../../src/state/index.js';
import { mappedFiles } from '../../src/capture/icdc-table.js';
import { RoutingFileIO } from '../../src/io/routing-file-io.js';
import type { FileChange } from '../../src/capture/snapshot-changes.js';
import { REPO_ROOT, runPythonCode } from '../setup/env.js';
import { errorCode, pgliteTemplate } from '../state/helpers.js';

const WRITTEN = 'file:///ips-fixtures/demo/playback';

function headTotalRecords(dir: string): number {
  const meta = path.join(dir, 'metadata');
  const newest = readdirSync(meta).filter((f) => f.endsWith('.metadata.json')).sort().at(-1)!;
  const text = readFileSync(path.join(meta, newest), 'utf8');
  const md = JSON.parse(text) as { location: string; snapshots: { summary: Record<string, string> }[] };
  expect(md.location).toBe(WRITTEN); // the premise: the metadata names another place
  return Number(md.snapshots.at(-1)!.summary['total-records']);
}

/** PyIceberg reads an ICDC table by its metadata file: rows and the files its scan plans. */
async function pyRead(metadataLocation: string): Promise<{ rows: number; files: string[] }> {
  const out = await runPythonCode([
    'import json, sys',
    'from pyiceberg.table import StaticTable',
    't = StaticTable.from_metadata(sys.argv[1])',
    'print(json.dumps({"rows": t.scan().to_arrow().num_rows, "files": sorted(f.file.file_path for f in t.scan().plan_files())}))',
  ].join('\n'), [metadataLocation]);
  return JSON.parse(out.trim().split('\n').at(-1)!) as { rows: number; files: string[] };
}

describe('ICDC tables of a source read through a location mapping', () => {
  let tmp: string;
  let copy: string;

  beforeAll(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-icdc-mapped-'));
    copy = path.join(tmp, 'tables', 'playback');
    cpSync(path.join(REPO_ROOT, 'fixtures', 'tables', 'playback'), copy, { recursive: true });
  });
  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test('prepare on the moved fixture directory: PyIceberg opens every file of the ICDC table', async () => {
    const state = await State.open({ driver: 'pglite', dataDir: null, loadDataDir: await pgliteTemplate() });
    const service = new IpsService(state, { warehouse: path.join(tmp, 'warehouse') });
    try {
      await service.registerTable({ name: 'playback', ref: { kind: 'directory', location: copy } });
      await service.createConsumer({ name: 'daily', tables: [{ table: 'playback', from: 'start' }] }, 'test');
      const r = await service.prepare({ consumer: 'daily', table: 'playback', instanceId: 'run-1' });
      if (r.kind !== 'batch') throw new Error('expected a batch');
      const icdc = r.batch.tables[0]!.icdc!;
      const read = await pyRead(icdc.metadataLocation);
      expect(read.rows).toBe(headTotalRecords(copy));
      expect(read.files.length).toBeGreaterThan(0);
      for (const f of read.files) expect(f.startsWith(`${copy}/data/`), f).toBe(true);
      // The same files as the batch's list, which names them as the source's metadata does.
      expect(r.batch.tables[0]!.files.added.map((f) => (f as { file_path: string }).file_path.replace(WRITTEN, copy)).sort()).toEqual(read.files);
    } finally {
      service.close();
      await state.close();
    }
  });

  test('ips changes --icdc with --map-location writes the mapped paths', async () => {
    const meta = path.join(copy, 'metadata');
    const newest = path.join(meta, readdirSync(meta).filter((f) => f.endsWith('.metadata.json')).sort().at(-1)!);
    const { stdout } = await promisify(execFile)(process.execPath, [path.join(REPO_ROOT, 'bin', 'ips.js'), 'changes', newest,
      '--map-location', `${WRITTEN}=${copy}`, '--icdc', 'icdc.daily__playback', '--icdc-location', path.join(tmp, 'cli-icdc'), '--json'], { cwd: tmp });
    const out = JSON.parse(stdout) as { icdc: { metadata_location: string } };
    const read = await pyRead(out.icdc.metadata_location);
    expect(read.rows).toBe(headTotalRecords(copy));
    for (const f of read.files) expect(f.startsWith(`${copy}/data/`), f).toBe(true);
  });

  test('a batch with position deletes of a mapped table is refused with MAPPED_POSITION_DELETES', async () => {
    const io = new RoutingFileIO({ mappings: [{ from: WRITTEN, to: copy }] });
    const file = (p: string, content: 0 | 1): FileChange => ({ entry: { status: 1, snapshotId: 1n, sequenceNumber: 1n, fileSequenceNumber: 1n, dataFile: { content, filePath: p } }, manifest: {} } as unknown as FileChange);
    const data = file(`${WRITTEN}/data/a.parquet`, 0);
    expect(mappedFiles(io, [data])[0]!.entry.dataFile.filePath).toBe(`${copy}/data/a.parquet`);
    expect(await errorCode((async () => mappedFiles(io, [data, file(`${WRITTEN}/data/a-deletes.parquet`, 1)]))())).toBe('MAPPED_POSITION_DELETES');
    // Unmapped tables keep their position deletes.
    const plain = [file('/elsewhere/a.parquet', 0), file('/elsewhere/d.parquet', 1)];
    expect(mappedFiles(io, plain)).toBe(plain);
  });
});
