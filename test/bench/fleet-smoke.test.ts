// The fleet simulation of `npm run bench -- --only fleet` (bench/lib/fleet-sim.ts) at a tiny scale:
// one real ips replica on the test PostgreSQL, 10 tables (copies of the PyIceberg-written trigger
// table), 5 consumers each with a webhook subscription, one compressed day of appends, half of the
// tables announced by events. Nothing is timed: the test checks the accounting — what the
// simulation appended against what the receiver got and what the database holds.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { venvPython, type BenchContext } from '../../bench/lib/common.js';
import { FleetSim } from '../../bench/lib/fleet-sim.js';
import { triggerTable, workDir, type TriggerTable } from '../../bench/lib/trigger-common.js';
import { createPgDatabase } from '../state/helpers.js';

const TABLES = 10;
const PER_TABLE = 5;
const COMMITS = 3;

describe('fleet simulation (tiny)', () => {
  let sim: FleetSim;
  let t: TriggerTable;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    const ctx: BenchContext = { python: venvPython(), options: new Map(), log: (m) => process.stderr.write(`[fleet-smoke] ${m}\n`), result: () => {}, command: 'npm run bench -- --only fleet' };
    t = await triggerTable(ctx, 60);
    const db = await createPgDatabase('fleet_smoke');
    cleanups.push(db.drop);
    const work = workDir(t, 'fleet-smoke');
    cleanups.push(work.remove);
    sim = new FleetSim(t, { tables: TABLES, consumersPerTable: PER_TABLE, pollSeconds: 2, eventsShare: 0.5, registerConcurrency: 4, commitConcurrency: 8 },
      db.url, work.dir, ctx.log);
    cleanups.push(() => sim.close());
    await sim.startReplica();
    await sim.register('http');
  });
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  });

  test('every append reaches each consumer of its table once, in order; each batch is committed once; watermarks end at the tables\' heads', async () => {
    // The whole day (00:00–24:00) compressed into 24 s.
    const day = await sim.runWindow({ fromHour: 0, hours: 24, compression: 3600, commitsPerTableDay: COMMITS, seed: 7, probePerSecond: 2, drainSeconds: 120, postmaster: null });
    // What was appended, from the table copies (the PyIceberg-written metadata the copies now show).
    expect(day.appends.length).toBe(TABLES * COMMITS);
    for (let i = 0; i < TABLES; i++) {
      const copy = sim.copies[i]!;
      expect(copy.version).toBe(1 + COMMITS);
      expect(sim.appended[i]).toEqual(t.metadata_files.slice(2, 2 + COMMITS).map((f) => f.snapshot_id));
    }
    expect(day.missing).toBe(0);
    expect(day.deliveries.length).toBe(TABLES * COMMITS * PER_TABLE);
    expect(day.absorbed).toBe(TABLES * COMMITS); // in commits' worth: every consumer of every commit
    expect(day.latency.event.length + day.latency.poll.length).toBe(TABLES * COMMITS * PER_TABLE);
    expect(day.latency.event.length).toBe((TABLES / 2) * COMMITS * PER_TABLE);
    expect(day.problems).toEqual([]);
    expect(await sim.verify()).toEqual({ problems: [], missing: 0 });
  }, 600_000); // a bound, not a measurement: the shared machine may be slow
});
