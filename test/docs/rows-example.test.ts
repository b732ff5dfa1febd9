// The README's "Row changes" example runs for real on a PyIceberg-written table (three appends):
// `ips changes … --rows --net --format arrow --out changes.arrows`, then its pyarrow block. The
// only change is the documented placeholder (the table path). Expected: every row PyIceberg
// appended, as INSERTs (the count from PyIceberg's snapshot summaries, never from ips).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { pythonEnv } from '../setup/env.js';
import { bash, example, ipsOnPath, substitute, writePlaybackTable, type WrittenTable } from './helpers.js';

describe('README: Row changes (ips changes --rows --format arrow, read by pyarrow)', () => {
  let tmp: string;
  let table: WrittenTable;

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-docs-rows-'));
    table = await writePlaybackTable(path.join(tmp, 'lake'), 3);
  }, 240_000);

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test('the example prints every appended row as an INSERT', () => {
    const base = pythonEnv();
    const env = { ...base, PATH: `${ipsOnPath(tmp)}${path.delimiter}${base.PATH}` };
    const script = substitute(example('rows'), [['/data/lake/demo/playback', table.location]]);
    const r = bash(`set -euo pipefail\n${script}`, { cwd: tmp, env });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(`${table.records} rows: [{'_change_type': 'INSERT', 'count_all': ${table.records}}]`);
  }, 240_000);
});
