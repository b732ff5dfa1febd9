// FOR UPDATE SKIP LOCKED claims between two service replicas (two pools on a real PostgreSQL):
// every open batch goes to exactly one claimer, and a claimer never waits for the other.
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { migrate, repositories, type Batch, type Database } from '../../src/state/index.js';
import { freshDatabase, type TestDatabase } from './helpers.js';

describe('batch claims with FOR UPDATE SKIP LOCKED (postgres, two pools)', () => {
  let t: TestDatabase;
  let a: Database;
  let b: Database;

  beforeAll(async () => {
    t = await freshDatabase('postgres', 'leases');
    a = t.db;
    b = await t.openAnother();
    await migrate(a);
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  async function openBatches(n: number): Promise<bigint[]> {
    const r = repositories(a);
    const suffix = crypto.randomBytes(3).toString('hex');
    const table = `t-${suffix}`;
    const consumer = `c-${suffix}`;
    await r.sourceTables.create({ name: table, ref: { kind: 'directory', location: `/w/${table}` } });
    await r.consumers.create({ name: consumer });
    await r.watermarks.create({ consumer, sourceTable: table }, { actor: 'test', reason: 'subscribe' });
    const ids: bigint[] = [];
    for (let i = 0; i < n; i++) {
      const { batch } = await r.batches.create({
        consumer, instanceId: `run-${i}`, leaseSeconds: 600,
        tables: [{
          sourceTable: table, fromSnapshotId: null, fromSequenceNumber: null, toSnapshotId: 1n, toSequenceNumber: 1n,
          files: { added: [], removed: [] }, baseWatermarkVersion: 1n,
          next: { snapshotId: 1n, sequenceNumber: 1n, partialSnapshotId: null, partialSequenceNumber: null, processedFiles: [] },
        }],
      });
      ids.push(batch.id);
    }
    return ids;
  }

  test('a claimer skips the rows another holds, without waiting, and gets the rest', async () => {
    const ids = await openBatches(6);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let claimedByA!: Batch[];
    let aHolds!: () => void;
    const aHolding = new Promise<void>((r) => (aHolds = r));
    // Replica A claims 3 inside a transaction that it keeps open (its row locks stay held).
    const aDone = a.withTransaction(async (tx) => {
      claimedByA = await repositories(tx).batches.claimOpen({ owner: 'replica-a', limit: 3, claimSeconds: 60 });
      aHolds();
      await gate;
    });
    await aHolding;
    // Safety valve: a claimer that blocks on A's locks would otherwise wait forever.
    const valve = setTimeout(release, 6_000);
    // Replica B, meanwhile: it must not block on A's locks, and gets exactly the other 3.
    const started = Date.now();
    const claimedByB = await repositories(b).batches.claimOpen({ owner: 'replica-b', limit: 100, claimSeconds: 60 });
    const tookMs = Date.now() - started;
    release();
    clearTimeout(valve);
    await aDone;
    expect(tookMs).toBeLessThan(5_000); // a claim that waited for A's locks takes 6 s
    const aIds = claimedByA.map((x) => x.id);
    const bIds = claimedByB.map((x) => x.id);
    expect(aIds.length).toBe(3);
    expect(bIds.length).toBe(3);
    expect([...aIds, ...bIds].sort()).toEqual([...ids].sort());
    // What the database says after both committed.
    const after = await repositories(a).batches.load(ids);
    expect(after.filter((x) => x.claimedBy === 'replica-a').map((x) => x.id).sort()).toEqual([...aIds].sort());
    expect(after.filter((x) => x.claimedBy === 'replica-b').map((x) => x.id).sort()).toEqual([...bIds].sort());
  });

  test('two replicas racing in a loop: each open batch is claimed exactly once', async () => {
    const ids = await openBatches(60);
    const claims = new Map<bigint, string[]>();
    async function worker(db: Database, owner: string): Promise<void> {
      const repo = repositories(db).batches;
      for (let round = 0; round < 200; round++) {
        const got = await repo.claimOpen({ owner, limit: 1 + (round % 3), claimSeconds: 600 });
        if (got.length === 0) return;
        for (const x of got) claims.set(x.id, [...(claims.get(x.id) ?? []), owner]);
      }
    }
    await Promise.all([worker(a, 'replica-a'), worker(b, 'replica-b'), worker(a, 'replica-a2'), worker(b, 'replica-b2')]);
    expect([...claims.keys()].sort()).toEqual([...ids].sort());
    for (const [id, owners] of claims) expect(owners, `batch ${id}`).toHaveLength(1);
    expect(new Set([...claims.values()].flat()).size).toBeGreaterThan(1); // both replicas did work
  });
});
