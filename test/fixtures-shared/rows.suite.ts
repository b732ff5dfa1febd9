// Row-level changes (`ips changes --rows`) on the engine-written shared tables: for every pair of
// states expected.json gives rows for, the net INSERT rows must be rows(to) minus rows(from) and
// the DELETE rows the reverse, as multisets; the changelog per snapshot must be each snapshot's
// own difference. The expected rows are the writing engine's (restated in expected.json), not
// ips's. impala-v3-row-lineage also pairs by _row_id (v3 lineage, across its compaction).
import { describe, expect, it } from 'vitest';
import { resolveRangeWithHistory } from '../../src/capture/range.js';
import { snapshotById } from '../../src/iceberg/metadata.js';
import { rowChangelog } from '../../src/rows/changelog.js';
import { netRowChanges, type RowChange } from '../../src/rows/net-rows.js';
import { fixture, type FixtureName, type Json } from './helpers.js';

interface State { snapshot_id: string; rows: Record<string, unknown>[] }

const key = (r: Record<string, unknown>, cols: string[]): string => JSON.stringify(cols.map((c) => (r[c] === null || r[c] === undefined ? null : String(r[c]))));
/** a − b as multisets of keys. */
function minus(a: string[], b: string[]): string[] {
  const left = [...b];
  const out: string[] = [];
  for (const x of a) {
    const i = left.indexOf(x);
    if (i >= 0) left.splice(i, 1);
    else out.push(x);
  }
  return out.sort();
}

function statesOf(name: FixtureName): State[] {
  const e: Json = fixture(name).expected;
  return ((e.snapshots?.states ?? e.scan?.states) as State[]);
}

async function rangeOf(name: FixtureName, from: string | null, to: string) {
  const f = fixture(name);
  const md = (await f.load()).metadata;
  const range = await resolveRangeWithHistory(md, { from: from === null ? null : BigInt(from), to: BigInt(to) }, f.reader);
  return { f, md, range };
}

const cases: { name: FixtureName; cols: string[] }[] = [
  { name: 'impala-v3-row-lineage', cols: ['i'] },
  { name: 'impala-v3-deletion-vectors', cols: ['i'] },
  { name: 'duckdb-eqdel-partitioned', cols: ['id', 'name', 'bir'] },
];

for (const { name, cols } of cases) {
  describe(`${name}: row-level changes equal the differences of the engine's states`, () => {
    it('net INSERT and DELETE rows of every pair of states', async () => {
      const f = fixture(name);
      const md = (await f.load()).metadata;
      // States in commit order (by sequence number).
      const states = statesOf(name).slice().sort((a, b) => Number(snapshotById(md, BigInt(a.snapshot_id))!.sequenceNumber - snapshotById(md, BigInt(b.snapshot_id))!.sequenceNumber));
      expect(states.length).toBeGreaterThan(1);
      let pairs = 0;
      for (let i = 0; i < states.length; i++) {
        for (let j = i + 1; j < states.length; j++) {
          const a = states[i]!;
          const b = states[j]!;
          const { range } = await rangeOf(name, a.snapshot_id, b.snapshot_id);
          const got: RowChange[] = [];
          await netRowChanges(f.io, md, f.reader, range, (r) => got.push(r));
          const want = { INSERT: minus(b.rows.map((r) => key(r, cols)), a.rows.map((r) => key(r, cols))), DELETE: minus(a.rows.map((r) => key(r, cols)), b.rows.map((r) => key(r, cols))) };
          for (const kind of ['INSERT', 'DELETE'] as const) {
            expect(got.filter((r) => r['_change_type'] === kind).map((r) => key(r, cols)).sort(), `${name} (${a.snapshot_id}, ${b.snapshot_id}] ${kind}`).toEqual(want[kind]);
          }
          pairs++;
        }
      }
      expect(pairs).toBeGreaterThan(0);
    });
  });
}

describe('impala-v3-row-lineage: the changelog pairs by _row_id and skips the compaction', () => {
  it('three appends are three INSERTs with ordinals 0..2; the compaction has no ordinal; its carry-over rows are skipped by lineage', async () => {
    const states = statesOf('impala-v3-row-lineage');
    const last = states[states.length - 1]!;
    expect(last.rows.length).toBe(3);
    const { f, md, range } = await rangeOf('impala-v3-row-lineage', null, last.snapshot_id);
    expect(range.snapshots.map((s) => s.operation)).toEqual(['append', 'append', 'append', 'replace']);
    const got: RowChange[] = [];
    const r = await rowChangelog(f.io, md, f.reader, range, (x) => got.push(x));
    expect(r.pairing.kind, 'v3 without identifier fields: pairing by _row_id').toBe('row-id');
    // Expected: each append's own row (the one row each state adds, from expected.json).
    const want = states.slice(0, 3).map((s, i) => JSON.stringify([String(minus(s.rows.map((x) => key(x, ['i'])), i === 0 ? [] : states[i - 1]!.rows.map((x) => key(x, ['i'])))[0]), 'INSERT', i, s.snapshot_id]));
    expect(got.map((x) => JSON.stringify([key(x, ['i']), x['_change_type'], x['_change_ordinal'], x['_commit_snapshot_id']])).sort()).toEqual(want.sort());
    // Net over the compaction from the first append: the compacted file's row 1 is carry-over.
    const net = await rangeOf('impala-v3-row-lineage', states[0]!.snapshot_id, last.snapshot_id);
    const rows: RowChange[] = [];
    const res = await netRowChanges(f.io, md, f.reader, net.range, (x) => rows.push(x));
    expect(res.lineage).toBe(true);
    expect(rows.map((x) => x['i']).sort()).toEqual([2, 3]);
  });
});
