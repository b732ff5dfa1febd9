// `ips changes --rows` as a user runs it, on the repository's own table (fixtures/tables/playback,
// written by PyIceberg: four appends, then a copy-on-write delete). Expected counts come from
// PyIceberg's snapshot summaries; the row-level oracle (Spark) is in test/interop/icdc/rows.suite.ts.
// Here: the arguments, the row budget, the output file, and that a refusal leaves no output.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../setup/env.js';

const BIN = path.join(REPO_ROOT, 'bin', 'ips.js');
const PLAYBACK = path.join(REPO_ROOT, 'fixtures/tables/playback');

function ips(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface Snap { snapshot_id: string; operation: string; summary: Record<string, string> }

describe('ips changes --rows (CLI) on the PyIceberg-written playback table', () => {
  const snaps = (JSON.parse(ips(['inspect', PLAYBACK, '--json']).stdout) as { snapshots: Snap[] }).snapshots;
  const [s1, , , s4, s5] = snaps;

  it('an append-only range inserts exactly the added records; the delete removes exactly its net rows', () => {
    expect(snaps.map((s) => s.operation)).toEqual(['append', 'append', 'append', 'append', 'overwrite']);
    const r = ips(['changes', PLAYBACK, '--from', s1!.snapshot_id, '--to', s4!.snapshot_id, '--rows', '--net']);
    expect(r.status, r.stderr).toBe(0);
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const added = snaps.slice(1, 4).reduce((n, s) => n + Number(s.summary['added-records']), 0);
    expect(rows.length).toBe(added);
    expect(rows.every((x) => x['_change_type'] === 'INSERT' && x['_commit_snapshot_id'] === s4!.snapshot_id && x['_change_ordinal'] === 0)).toBe(true);
    expect(typeof rows[0]!['profile_id'], 'long values as strings').toBe('string');
    expect(String(rows[0]!['event_ts'])).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$/);

    // Without --from: from the beginning of the table.
    const first = ips(['changes', PLAYBACK, '--to', s1!.snapshot_id, '--rows', '--net']);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout.trim().split('\n').length).toBe(Number(s1!.summary['added-records']));

    // The copy-on-write delete rewrote files: deleted-records minus added-records rows are gone,
    // nothing is inserted (carry-over cancels).
    const d = ips(['changes', PLAYBACK, '--from', s4!.snapshot_id, '--to', s5!.snapshot_id, '--rows', '--net']);
    expect(d.status, d.stderr).toBe(0);
    const drows = d.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(drows.length).toBe(Number(s5!.summary['deleted-records']) - Number(s5!.summary['added-records']));
    expect(drows.every((x) => x['_change_type'] === 'DELETE')).toBe(true);
    expect(d.stderr).toMatch(/^rows: \(\d+, \d+\]: reading 5 data file\(s\) at \d+ and 5 at \d+/m);

    // Without --net: one ordinal per snapshot, the same rows.
    const cl = ips(['changes', PLAYBACK, '--from', s1!.snapshot_id, '--rows']);
    expect(cl.status, cl.stderr).toBe(0);
    const clRows = cl.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const perOrdinal = new Map<string, number>();
    for (const x of clRows) perOrdinal.set(`${x['_change_ordinal']}:${x['_commit_snapshot_id']}:${x['_change_type']}`, (perOrdinal.get(`${x['_change_ordinal']}:${x['_commit_snapshot_id']}:${x['_change_type']}`) ?? 0) + 1);
    expect([...perOrdinal].sort()).toEqual([
      ...snaps.slice(1, 4).map((s, i) => [`${i}:${s.snapshot_id}:INSERT`, Number(s.summary['added-records'])]),
      [`3:${s5!.snapshot_id}:DELETE`, drows.length],
    ].sort());
  });

  it('the row budget: refused before reading, raised by --max-rows or IPS_ROWS_MAX_ROWS; no output file on refusal', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-rows-cli-'));
    try {
      const out = path.join(dir, 'rows.jsonl');
      const args = ['changes', PLAYBACK, '--from', s1!.snapshot_id, '--rows', '--net', '--out', out];
      const refused = ips([...args, '--max-rows', '100']);
      expect(refused.status).toBe(1);
      expect(refused.stderr).toMatch(/error \[ROW_BUDGET_EXCEEDED\]: .* above the budget of 100; raise it with --max-rows \(or IPS_ROWS_MAX_ROWS\)/);
      expect(fs.existsSync(out), 'no output on refusal').toBe(false);
      expect(ips(args, { IPS_ROWS_MAX_ROWS: '100' }).stderr).toMatch(/ROW_BUDGET_EXCEEDED/);
      const ok = ips(args, { IPS_ROWS_MAX_ROWS: '100000' });
      expect([ok.status, ok.stdout], ok.stderr).toEqual([0, '']);
      expect(fs.readFileSync(out, 'utf8').trim().split('\n').length).toBeGreaterThan(100);
      expect(fs.readdirSync(dir)).toEqual(['rows.jsonl']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('arguments that do not combine with --rows are refused with INVALID_ARGUMENT', () => {
    const base = ['changes', PLAYBACK, '--from', s1!.snapshot_id, '--rows'];
    for (const [extra, msg] of [
      [['--net', '--format', 'csv'], /--format csv is not supported/],
      [['--net', '--icdc', 'ns.t'], /--icdc does not combine with --rows/],
      [['--net', '--range', 'event_ts'], /--range does not combine/],
      [['--net', '--json'], /--json does not combine/],
      [['--net', '--policy', 'overwrite=fail'], /--policy does not apply to --rows/],
      [['--net', '--max-rows', 'many'], /--max-rows expects a number/],
      [['--net', '--identifier-columns', 'profile_id'], /--identifier-columns pairs updates per snapshot/],
      [['--identifier-columns', 'nope'], /identifier column nope is not a top-level column/],
      [['--pair-by', 'maybe'], /--pair-by expects auto, identifier-fields, row-id or none/],
      [['--net', '--memory-limit', 'lots'], /--memory-limit expects a size such as 512MB/],
      // The playback table is format v2: no _row_id to pair by.
      [['--pair-by', 'row-id'], /error \[NO_ROW_LINEAGE\]: .*format v2/],
    ] as const) {
      const r = ips([...base, ...extra]);
      expect([r.status, r.stdout], extra.join(' ')).toEqual([1, '']);
      expect(r.stderr, extra.join(' ')).toMatch(msg);
    }
  });
});
