// A batch planned only as far as its limits reach takes what a plan of the whole remaining range
// takes, on every table of the shared corpus (v1 to v3, position and equality deletes, deletion
// vectors, compactions): test/interop/batch-plan-check.ts, the same check as on the tables the
// engines write at test time.
import { describe, expect, it } from 'vitest';
import { fixture, type FixtureName } from './helpers.js';
import { expectPrefixPlansMatchWholeRange } from '../interop/batch-plan-check.js';

const NAMES: FixtureName[] = ['duckdb-hive-partitioned', 'duckdb-eqdel-partitioned', 'icebird-spark-bunnies', 'impala-v3-row-lineage', 'impala-v3-deletion-vectors', 'impala-v1-bucket'];

describe('batches planned within their limits (shared corpus)', () => {
  it.each(NAMES)('%s: the same files, snapshots and cut as a plan of the whole range', async (name) => {
    const f = fixture(name);
    const md = (await f.load()).metadata;
    const c = await expectPrefixPlansMatchWholeRange(f.io, md, name);
    expect(c.cases).toBeGreaterThan(0);
  });
});
