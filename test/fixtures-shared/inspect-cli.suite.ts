// `ips inspect` as a process on the shared corpus: tables written by Spark (icebird), Impala (v1
// bucket, v3 row lineage), checked against their expected.json.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FIXTURES, REPO_ROOT } from './helpers.js';

const BIN = path.join(REPO_ROOT, 'bin', 'ips.js');

function ips(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('ips inspect on the shared corpus', () => {
  it('prints the JSON shape the issue specifies, with 64-bit ids as exact strings', () => {
    const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'icebird-spark-bunnies/expected.json'), 'utf8'));
    const r = ips('inspect', path.join(FIXTURES, 'icebird-spark-bunnies/table'), '--json');
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(Object.keys(out)).toEqual(expect.arrayContaining(['format_version', 'location', 'current_snapshot_id', 'snapshots']));
    expect(out.location).toBe(expected.location_prefix);
    // The current snapshot id exceeds 2^53: a JS number would have rounded it.
    const ids: string[] = out.snapshots.map((s: { snapshot_id: string }) => s.snapshot_id);
    expect(ids).toContain(out.current_snapshot_id);
    expect(BigInt(out.current_snapshot_id) > BigInt(Number.MAX_SAFE_INTEGER)).toBe(true);
    const last = out.snapshots[out.snapshots.length - 1];
    for (const f of [...last.added_files, ...last.removed_files]) {
      expect(Object.keys(f)).toEqual(expect.arrayContaining(['file_path', 'content', 'record_count', 'file_size_in_bytes', 'partition', 'lower_bounds', 'upper_bounds']));
      expect(typeof f.record_count).toBe('string');
    }
  });

  it('prints a readable table by default', () => {
    const r = ips('inspect', path.join(FIXTURES, 'impala-v1-bucket/table'), '--files');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/format version\s+v1/);
    expect(r.stdout).toMatch(/\[ID_bucket=3\]/);
  });

  it('reads a metadata file through --map-location', () => {
    const table = path.join(FIXTURES, 'impala-v3-row-lineage/table');
    const prefix = 'hdfs://localhost:20500/test-warehouse/iceberg_v3_row_lineage';
    const r = ips('inspect', `${prefix}/metadata/v5.metadata.json`, '--map-location', `${prefix}=${table}`, '--json');
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).format_version).toBe(3);
  });
});
