import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../setup/env.js';

const BIN = path.join(REPO_ROOT, 'bin', 'ips.js');

function ips(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('ips inspect (the CLI as a user runs it)', () => {
  // The repository's own table (fixtures/tables/playback, written by PyIceberg with
  // fixtures/make_playback_table.py); the shared corpus has its own inspect tests.
  const PLAYBACK = path.join(REPO_ROOT, 'fixtures/tables/playback');
  const metadataText = (): string => {
    const dir = path.join(PLAYBACK, 'metadata');
    const last = fs.readdirSync(dir).filter((f) => f.endsWith('.metadata.json')).sort().pop()!;
    return fs.readFileSync(path.join(dir, last), 'utf8');
  };

  it('prints the JSON shape the issue specifies, with 64-bit ids as exact strings', () => {
    const r = ips('inspect', PLAYBACK, '--json');
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(Object.keys(out)).toEqual(expect.arrayContaining(['format_version', 'location', 'current_snapshot_id', 'snapshots']));
    // Read from the metadata text itself: a JS number would have rounded these ids.
    const text = metadataText();
    const current = /"current-snapshot-id"\s*:\s*(\d+)/.exec(text)![1]!;
    expect(out.current_snapshot_id).toBe(current);
    expect(out.location).toBe(/"location"\s*:\s*"([^"]+)"/.exec(text)![1]);
    const ids = [...text.matchAll(/"snapshot-id"\s*:\s*(\d+)/g)].map((m) => m[1]);
    expect(out.snapshots.map((s: { snapshot_id: string }) => s.snapshot_id).sort()).toEqual([...new Set(ids)].sort());
    expect(ids.some((id) => BigInt(id!) > BigInt(Number.MAX_SAFE_INTEGER)), 'the table has ids above 2^53').toBe(true);
    const last = out.snapshots[out.snapshots.length - 1];
    for (const f of [...last.added_files, ...last.removed_files]) {
      expect(Object.keys(f)).toEqual(expect.arrayContaining(['file_path', 'content', 'record_count', 'file_size_in_bytes', 'partition', 'lower_bounds', 'upper_bounds']));
      expect(typeof f.record_count).toBe('string');
    }
  });

  it('prints a readable table of files with --files', () => {
    const r = ips('inspect', PLAYBACK, '--files');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/format version\s+v2/);
    expect(r.stdout).toMatch(/\[event_day=\d{4}-\d{2}-\d{2}/);
  });

  it('runs on the demo table that npm start shows', () => {
    const r = ips('inspect', 'fixtures/tables/playback', '--json');
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.snapshots.map((s: { operation: string }) => s.operation)).toEqual(['append', 'append', 'append', 'append', 'overwrite']);
  });

  it('fails with a code and an actionable message on a missing table', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-empty-'));
    try {
      const r = ips('inspect', dir);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/^error \[TABLE_NOT_FOUND\]: no Iceberg table at /);
      const j = ips('inspect', dir, '--json');
      expect(JSON.parse(j.stderr).error.code).toBe('TABLE_NOT_FOUND');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses an unmapped hdfs:// metadata file with advice to map it', () => {
    const r = ips('inspect', 'hdfs://nn:8020/warehouse/t/metadata/v1.metadata.json');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('error [UNSUPPORTED_SCHEME]');
    expect(r.stderr).toContain('--map-location');
  });

  it('reads a metadata file through --map-location', () => {
    const file = fs.readdirSync(path.join(PLAYBACK, 'metadata')).filter((f) => f.endsWith('.metadata.json')).sort().pop()!;
    const original = /"location"\s*:\s*"([^"]+)"/.exec(metadataText())![1]!;
    const prefix = 'hdfs://nn:8020/warehouse/playback';
    // The metadata file by an hdfs:// name, and the files it names under its original location.
    const r = ips('inspect', `${prefix}/metadata/${file}`, '--map-location', `${prefix}=${PLAYBACK}`, '--map-location', `${original}=${PLAYBACK}`, '--json');
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).format_version).toBe(2);
    expect(JSON.parse(r.stdout).snapshots.length).toBe(5);
  });

  it('summarises one line per snapshot by default; --snapshot and --limit narrow, --files details', () => {
    const text = metadataText();
    const ids = [...new Set([...text.matchAll(/"snapshot-id"\s*:\s*(\d+)/g)].map((m) => m[1]!))];
    const summary = ips('inspect', PLAYBACK);
    expect(summary.status, summary.stderr).toBe(0);
    const rows = summary.stdout.split('\n').filter((l) => /^\d{6,}\s/.test(l));
    expect(rows.map((l) => l.split(/\s+/)[0]).sort()).toEqual([...ids].sort());
    expect(summary.stdout).not.toMatch(/^\s+\+ data/m); // no per-file lines
    const detail = ips('inspect', PLAYBACK, '--files');
    expect(detail.stdout.split('\n').length).toBeGreaterThan(summary.stdout.split('\n').length);
    const current = /"current-snapshot-id"\s*:\s*(\d+)/.exec(text)![1]!;
    const one = JSON.parse(ips('inspect', PLAYBACK, '--snapshot', current, '--json').stdout);
    expect(one.snapshots.map((s: { snapshot_id: string }) => s.snapshot_id)).toEqual([current]);
    expect(one.snapshot_count).toBe(ids.length);
    const last2 = JSON.parse(ips('inspect', PLAYBACK, '--limit', '2', '--json').stdout);
    expect(last2.snapshots.length).toBe(2);
    expect(last2.snapshots[1].snapshot_id).toBe(current);
    const bad = ips('inspect', PLAYBACK, '--snapshot', '12', '--json');
    expect(bad.status).toBe(1);
    expect(JSON.parse(bad.stderr).error.code).toBe('UNKNOWN_SNAPSHOT');
  });

  it('a usage error is JSON with --json, ending in a newline', () => {
    const r = ips('inspect', '--bogus', '--json');
    expect(r.status).toBe(1);
    expect(r.stderr.endsWith('\n')).toBe(true);
    expect(JSON.parse(r.stderr).error).toEqual({ code: 'USAGE', message: "unknown option '--bogus'" });
  });
});
