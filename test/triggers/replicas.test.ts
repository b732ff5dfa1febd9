// Stateless replicas (DESIGN.md "Runtime shape", "Triggers"): three `ips serve` processes share
// one PostgreSQL database and deliver triggers to a Maestro-like orchestrator whose workflows
// commit their batches through the replicas, while the test SIGKILLs replicas — one while it
// waits for the answer to a start request, one under a commit, others at random — and restarts
// them. Over more than 500 batches: every batch is delivered and committed, no batch runs twice
// (a redelivery gets DUPLICATED and starts nothing), nothing is lost.
//
// Expected values come from the PyIceberg writer, not from ips: the data files each append
// added (PyIceberg's own file listing, cross-checked with its snapshot summaries) and the head
// snapshot id.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runPythonCode } from '../setup/env.js';
import { createPgDatabase } from '../state/helpers.js';
import {
  nameUuidFromBytes, Orchestrator, randomInt, sleep, startReplica, type KillRecord, type Replica,
} from './replica-harness.js';

const ADMIN = 'admin-token-for-the-replica-test-0123456789';
const REPLICAS = 3;
const CONSUMERS = 4;
const SNAPSHOTS = 42; // 131 files with this seed: 524 batches for 4 consumers
const SEED = 20261205;
const CLAIM_SECONDS = 3;

// Appends of 1–5 files each (one per partition written) to an identity-partitioned table; for
// each snapshot, the files it added according to PyIceberg (its file listing before and after).
const GENERATOR = String.raw`
import json, os, random, sys
import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import IntegerType, LongType, NestedField, StringType

root, snapshots, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(root, exist_ok=True)
cat = SqlCatalog("gen", uri=f"sqlite:///{root}/catalog.db", warehouse=f"file://{root}/warehouse")
cat.create_namespace("db")
schema = Schema(NestedField(1, "part", IntegerType(), required=True), NestedField(2, "id", LongType(), required=True),
                NestedField(3, "note", StringType(), required=False))
spec = PartitionSpec(PartitionField(source_id=1, field_id=1000, transform=IdentityTransform(), name="part"))
tbl = cat.create_table("db.events", schema=schema, partition_spec=spec, properties={"format-version": "2"})
arrow = pa.schema([pa.field("part", pa.int32(), nullable=False), pa.field("id", pa.int64(), nullable=False), pa.field("note", pa.string())])
rng = random.Random(seed)
seen, out, nid = set(), [], 0
for s in range(snapshots):
    rows = []
    for p in rng.sample(range(8), rng.randint(1, 5)):
        for _ in range(rng.randint(1, 4)):
            rows.append({"part": p, "id": nid, "note": f"s{s}"})
            nid += 1
    tbl.append(pa.Table.from_pylist(rows, schema=arrow))
    files = set(tbl.inspect.files().column("file_path").to_pylist())
    added, seen = sorted(files - seen), files
    snap = tbl.current_snapshot()
    out.append({"snapshot_id": str(snap.snapshot_id), "added": added, "added_data_files": int(snap.summary["added-data-files"])})
print(json.dumps({"location": tbl.location(), "snapshots": out}))
`;

interface Generated {
  location: string;
  snapshots: { snapshot_id: string; added: string[]; added_data_files: number }[];
}

type Json = Record<string, any>;

describe('three `ips serve` replicas on one PostgreSQL, SIGKILLed during deliveries and commits', () => {
  let tmp: string;
  let gen: Generated;
  let dropDb: (() => Promise<void>) | undefined;
  let dbUrl: string;
  let orch: Orchestrator;
  const current: Replica[] = [];
  const everyProcess: ChildProcess[] = [];
  const killedByTest = new Set<number>();
  const strayExits: string[] = [];
  /** Set in afterAll: no more kills or restarts. */
  let tearingDown = false;
  let killer: Promise<void> | undefined;

  function envFor(slot: number): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      DATABASE_URL: dbUrl,
      IPS_ADMIN_TOKEN: ADMIN,
      IPS_WAREHOUSE: path.join(tmp, 'icdc'),
      IPS_DATA_DIR: path.join(tmp, `data-${slot}`),
      IPS_TICK_MS: '100',
      IPS_CLAIM_SECONDS: String(CLAIM_SECONDS),
      IPS_RETRY_BASE_MS: '100',
      IPS_REPLICA_ID: `replica-${slot}`,
      IPS_LOG_LEVEL: 'silent',
    };
    for (const k of ['IPS_CONFIG', 'IPS_SINK_ALLOWED_HOSTS', 'IPS_TRIGGERS', 'IPS_HOST', 'IPS_PORT', 'IPS_AUTH']) delete env[k];
    return env;
  }

  async function start(slot: number, generation: number): Promise<Replica> {
    if (tearingDown) throw new Error('tearing down: no restarts');
    const r = await startReplica(slot, generation, envFor(slot), tmp);
    everyProcess.push(r.proc);
    void r.exited.then((how) => {
      if (!killedByTest.has(r.pid)) strayExits.push(`replica ${slot} (pid ${r.pid}) exited by itself (${String(how)}): ${r.stderr()}`);
    });
    current[slot] = r;
    return r;
  }

  const live = (): Replica[] => current.filter((r) => r.alive);

  /** An API call through a live replica, moving on to another one when the connection fails. */
  async function api(method: string, p: string, body?: unknown, via?: Replica): Promise<{ status: number; body: Json }> {
    let lastError: unknown;
    for (let i = 0; i < 60; i++) {
      const candidates = via ? [via] : live();
      const r = candidates[randomInt(0, candidates.length - 1)];
      if (!r) {
        await sleep(100);
        continue;
      }
      try {
        const res = await fetch(r.url + p, {
          method,
          headers: { authorization: `Bearer ${ADMIN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
          signal: AbortSignal.timeout(20_000),
        });
        return { status: res.status, body: (await res.json()) as Json };
      } catch (e) {
        lastError = e;
        await sleep(100);
      }
    }
    throw new Error(`${method} ${p}: no replica answered: ${String(lastError)}`);
  }

  async function ok(method: string, p: string, body?: unknown, via?: Replica): Promise<Json> {
    const r = await api(method, p, body, via);
    expect(r.status, `${method} ${p}: ${JSON.stringify(r.body)}`).toBeLessThan(300);
    return r.body;
  }

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-replicas-'));
    const [out, db] = await Promise.all([
      runPythonCode(GENERATOR, [path.join(tmp, 'source'), String(SNAPSHOTS), String(SEED)], { timeoutMs: 120_000 }),
      createPgDatabase('replicas'),
    ]);
    gen = JSON.parse(out) as Generated;
    dropDb = db.drop;
    dbUrl = db.url;
  }, 180_000);

  afterAll(async () => {
    tearingDown = true;
    orch?.disarmDeliveryKill();
    orch?.disarmCommitKill();
    await killer?.catch(() => {});
    for (const p of everyProcess) {
      if (p.exitCode === null && p.signalCode === null) {
        if (p.pid !== undefined) killedByTest.add(p.pid);
        p.kill('SIGKILL');
      }
    }
    await Promise.all(everyProcess.map((p) => (p.exitCode !== null || p.signalCode !== null
      ? Promise.resolve()
      : new Promise<void>((resolve) => p.once('exit', () => resolve())))));
    await orch?.close();
    await dropDb?.();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }, 60_000);

  test('≥ 500 batches: every batch delivered and committed once, no second run of any batch, every watermark at the head', async () => {
    // Ground truth from the writer.
    const expectedFiles = gen.snapshots.flatMap((s) => s.added).sort();
    expect(new Set(expectedFiles).size).toBe(expectedFiles.length);
    for (const s of gen.snapshots) expect(s.added.length).toBe(s.added_data_files);
    expect(expectedFiles.length * CONSUMERS).toBeGreaterThanOrEqual(500);
    const head = gen.snapshots.at(-1)!.snapshot_id;

    const kills: KillRecord[] = [];
    const t0 = Date.now();
    const consumers = Array.from({ length: CONSUMERS }, (_, i) => `c${i}`);
    orch = new Orchestrator({
      workflows: consumers.map((c) => `wf-${c}`),
      adminToken: ADMIN,
      live,
      kill: async (r, rec) => {
        const full: KillRecord = { ...rec, slot: r.slot, pid: r.pid, atMs: Date.now() - t0 };
        kills.push(full);
        killedByTest.add(r.pid);
        r.alive = false;
        r.proc.kill('SIGKILL');
        expect(await r.exited).toBe('SIGKILL');
        return full;
      },
    });
    await orch.listen();

    // Three replicas start at once on the empty database (they race for the migrations too).
    await Promise.all(Array.from({ length: REPLICAS }, (_, slot) => start(slot, 0)));
    const first = current[0]!;
    await ok('POST', '/v1/tables', { name: 'events', ref: { kind: 'directory', location: gen.location.replace(/^file:\/\//, '') }, poll_interval_seconds: 1 }, first);
    for (const c of consumers) {
      await ok('POST', '/v1/consumers', { name: c, tables: [{ table: 'events' }] }, first);
    }
    for (const c of consumers) {
      await ok('POST', '/v1/subscriptions', {
        name: `sub-${c}`, consumer: c, tables: ['events'], limits: { max_files: 1 },
        sink: { type: 'maestro', url: orch.url, workflow_id: `wf-${c}` },
      }, first);
    }

    // Until every consumer's watermark is at the head: kill a replica every 3–4.5 s (after nine
    // kills every 8–10 s, to bound the run on a busy machine), cycling through the three ways,
    // and restart it (same environment, a new port).
    let finished = false;
    const monitor = (async () => {
      const deadline = Date.now() + 190_000;
      while (Date.now() < deadline) {
        const t = await ok('GET', '/v1/tables/events');
        if (t.consumers.length === CONSUMERS && t.consumers.every((c: Json) => c.lag?.snapshots === 0)) return;
        await sleep(300);
      }
      throw new Error(`the consumers did not reach the head in time: ${orch.runs.size} runs so far`);
    })().finally(() => { finished = true; });

    killer = (async () => {
      const modes = ['delivery', 'commit', 'random'] as const;
      for (let k = 0; !finished && !tearingDown; k++) {
        await sleep(k < 9 ? randomInt(3000, 4500) : randomInt(8000, 10_000));
        if (finished || tearingDown) break;
        const mode = modes[k % modes.length]!;
        let done = false;
        if (mode === 'delivery') {
          done = await Promise.race([orch.armDeliveryKill().then(() => true), sleep(5000).then(() => false)]);
          if (!done) orch.disarmDeliveryKill();
        } else if (mode === 'commit') {
          done = await Promise.race([orch.armCommitKill().then(() => true), sleep(5000).then(() => false)]);
          if (!done) orch.disarmCommitKill();
        }
        const alive = live();
        if (!done && alive.length === REPLICAS) {
          const r = alive[randomInt(0, alive.length - 1)]!;
          const full: KillRecord = { mode: 'random', slot: r.slot, pid: r.pid, atMs: Date.now() - t0, detail: mode === 'random' ? 'at random' : `no ${mode} in flight within 5 s` };
          kills.push(full);
          killedByTest.add(r.pid);
          r.alive = false;
          r.proc.kill('SIGKILL');
          await r.exited;
        }
        // Restart whatever is down (a late-firing arm may have killed one more).
        for (const r of [...current]) if (!r.alive) await start(r.slot, r.generation + 1);
      }
    })();

    await monitor;
    await killer;
    const flowMs = Date.now() - t0;

    // A trigger whose sender died before it heard the answer is redelivered once its claim
    // expires (DUPLICATED): wait for every trigger to be delivered and every run to finish.
    let triggers: Json[] = [];
    const settle = Date.now() + 30_000; // claims last 3 s
    for (;;) {
      triggers = [];
      for (const c of consumers) triggers.push(...(await ok('GET', `/v1/subscriptions/sub-${c}/triggers?limit=10000`)).triggers);
      if (orch.inProgress === 0 && triggers.every((t) => t.state !== 'pending')) break;
      if (Date.now() > settle) break;
      await sleep(250);
    }
    const table = await ok('GET', '/v1/tables/events');
    const batchesByConsumer = new Map<string, Json[]>();
    for (const c of consumers) batchesByConsumer.set(c, (await ok('GET', `/v1/consumers/${c}/batches?limit=1000&include_files=true`)).batches);

    // Stop the replicas (gracefully) so that nothing more reaches the orchestrator.
    await Promise.all(live().map(async (r) => {
      killedByTest.add(r.pid);
      r.proc.kill('SIGTERM');
      await r.exited;
    }));
    const durationMs = Date.now() - t0;

    const batches = [...batchesByConsumer.values()].flat();
    const redeliveries = [...orch.duplicates.values()].reduce((a, b) => a + b, 0);
    const byMode = (m: KillRecord['mode']) => kills.filter((k) => k.mode === m);
    // A cut commit may have gone through before the replica died: the retry then answers already_committed.
    const committedBeforeCut = [...orch.runs.values()].filter((r) => r.commitAnswers.includes(true)).length;
    console.log(`replicas: ${batches.length} batches over ${REPLICAS} replicas, ${kills.length} kills `
      + `(${byMode('delivery').length} awaiting a start answer, ${byMode('commit').length} under a commit `
      + `[${byMode('commit').filter((k) => k.cut).length} cut, ${committedBeforeCut} had committed], ${byMode('random').length} at random), `
      + `${redeliveries} redeliveries answered DUPLICATED, ${orch.startRequests} start requests, `
      + `flow ${(flowMs / 1000).toFixed(1)} s, total ${(durationMs / 1000).toFixed(1)} s`);

    expect(orch.problems).toEqual([]);
    expect(strayExits).toEqual([]);

    // The kills happened, in each of the ways.
    expect(kills.length).toBeGreaterThanOrEqual(3);
    expect(byMode('delivery').length, JSON.stringify(kills)).toBeGreaterThanOrEqual(1);
    expect(byMode('commit').length, JSON.stringify(kills)).toBeGreaterThanOrEqual(1);

    // Every consumer is at the head with nothing left.
    expect(table.head.snapshot_id).toBe(head);
    expect(table.consumers.map((c: Json) => c.consumer).sort()).toEqual(consumers);
    for (const c of table.consumers) {
      expect(c.watermark.snapshot_id, c.consumer).toBe(head);
      expect(c.lag, c.consumer).toMatchObject({ snapshots: 0, files: '0', records: '0', bytes: '0' });
    }

    // Per consumer: one committed batch per file (max_files 1), together each file exactly once.
    expect(batches.length).toBeGreaterThanOrEqual(500);
    expect(batches.length).toBe(expectedFiles.length * CONSUMERS);
    for (const c of consumers) {
      const bs = batchesByConsumer.get(c)!;
      expect(bs.filter((b) => b.state !== 'committed').map((b) => `${b.id}: ${b.state}`), c).toEqual([]);
      const files = bs.flatMap((b) => b.tables.flatMap((t: Json) => t.files.added.map((f: Json) => f.file_path as string)));
      const removed = bs.flatMap((b) => b.tables.flatMap((t: Json) => t.files.removed));
      expect(removed, c).toEqual([]);
      expect(files.sort(), c).toEqual(expectedFiles);
    }

    // Every trigger delivered, one per batch; its dedup key is the request id of the one run of its batch.
    expect(triggers.filter((t) => t.state !== 'delivered').map((t) => `${t.subscription}#${t.seq} ${t.state}: ${t.last_error}`)).toEqual([]);
    expect(triggers.length).toBe(batches.length);
    expect(new Set(triggers.map((t) => t.batch_id))).toEqual(new Set(batches.map((b) => b.id as string)));
    for (const t of triggers) {
      const run = orch.runs.get(nameUuidFromBytes(t.dedup_key));
      expect(run, `trigger ${t.subscription}#${t.seq} (batch ${t.batch_id}) started no run`).toBeDefined();
      expect(run!.batchId).toBe(t.batch_id);
      expect(run!.subscription).toBe(t.subscription);
    }

    // The orchestrator: one run per batch (distinct request ids == batches == triggers), none
    // ran twice, each committed; duplicates only for request ids it had run.
    expect(orch.runs.size).toBe(batches.length);
    expect([...orch.runsByBatch.entries()].filter(([, ids]) => ids.length !== 1)).toEqual([]);
    expect(new Set(orch.runsByBatch.keys())).toEqual(new Set(batches.map((b) => b.id as string)));
    expect([...orch.runs.values()].filter((r) => !r.committed).map((r) => r.batchId)).toEqual([]);
    // Only a commit retried after its replica died under it can find its batch committed already.
    expect([...orch.runs.values()].filter((r) => r.commitAnswers.includes(true) && r.commitAttempts < 2).map((r) => r.batchId)).toEqual([]);
    expect([...orch.duplicates.keys()].filter((id) => !orch.runs.has(id))).toEqual([]);
    // A trigger whose first answer was lost is recorded as a duplicate, which the orchestrator answered.
    expect(triggers.filter((t) => t.outcome === 'duplicate').length).toBeLessThanOrEqual(redeliveries);
    // The replica killed while awaiting a start answer never recorded it: that trigger was redelivered.
    for (const k of byMode('delivery')) expect(orch.duplicates.get(k.detail) ?? 0, `request ${k.detail}`).toBeGreaterThanOrEqual(1);
  }, 240_000);
});
