// Three `ips serve` replicas on one PostgreSQL hand a backfill's chunks to a Maestro-like
// orchestrator through the consumer's subscription, while the test SIGKILLs replicas (one
// waiting for a start answer, others at random) and restarts them. Every chunk must be run once
// and committed: no chunk lost (the backfill ends committed), none duplicated (one run per batch,
// one batch per chunk, first attempt each). Harness: test/triggers/replica-harness.ts.
import type { ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { REPO_ROOT } from '../setup/env.js';
import { createPgDatabase } from '../state/helpers.js';
import { Orchestrator, randomInt, sleep, startReplica, type KillRecord, type Replica } from '../triggers/replica-harness.js';

const ADMIN = 'admin-token-for-the-backfill-replica-test-01';
const REPLICAS = 3;

type Json = Record<string, any>;

describe('backfill chunks through three `ips serve` replicas, SIGKILLed while delivering', () => {
  let tmp: string;
  let dbUrl: string;
  let dropDb: (() => Promise<void>) | undefined;
  let orch: Orchestrator;
  const current: Replica[] = [];
  const everyProcess: ChildProcess[] = [];
  const killedByTest = new Set<number>();
  let tearingDown = false;

  const live = (): Replica[] => current.filter((r) => r.alive);

  async function start(slot: number, generation: number): Promise<Replica> {
    const env: NodeJS.ProcessEnv = {
      ...process.env, DATABASE_URL: dbUrl, IPS_ADMIN_TOKEN: ADMIN, IPS_WAREHOUSE: path.join(tmp, 'icdc'), IPS_DATA_DIR: path.join(tmp, `data-${slot}`),
      IPS_TICK_MS: '100', IPS_CLAIM_SECONDS: '3', IPS_RETRY_BASE_MS: '100', IPS_REPLICA_ID: `replica-${slot}`, IPS_LOG_LEVEL: 'silent',
    };
    for (const k of ['IPS_CONFIG', 'IPS_SINK_ALLOWED_HOSTS', 'IPS_TRIGGERS', 'IPS_HOST', 'IPS_PORT', 'IPS_AUTH']) delete env[k];
    const r = await startReplica(slot, generation, env, tmp);
    everyProcess.push(r.proc);
    current[slot] = r;
    return r;
  }

  async function api(method: string, p: string, body?: unknown): Promise<{ status: number; body: Json }> {
    let lastError: unknown;
    for (let i = 0; i < 60; i++) {
      const alive = live();
      const r = alive[randomInt(0, alive.length - 1)];
      if (!r) {
        await sleep(100);
        continue;
      }
      try {
        const res = await fetch(r.url + p, {
          method, headers: { authorization: `Bearer ${ADMIN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}), signal: AbortSignal.timeout(20_000),
        });
        return { status: res.status, body: (await res.json()) as Json };
      } catch (e) {
        lastError = e;
        await sleep(100);
      }
    }
    throw new Error(`${method} ${p}: no replica answered: ${String(lastError)}`);
  }

  async function ok(method: string, p: string, body?: unknown): Promise<Json> {
    const r = await api(method, p, body);
    expect(r.status, `${method} ${p}: ${JSON.stringify(r.body)}`).toBeLessThan(300);
    return r.body;
  }

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-backfill-replicas-'));
    cpSync(path.join(REPO_ROOT, 'fixtures', 'tables', 'playback'), path.join(tmp, 'playback'), { recursive: true });
    const db = await createPgDatabase('backfill_replicas');
    dropDb = db.drop;
    dbUrl = db.url;
  });

  afterAll(async () => {
    tearingDown = true;
    orch?.disarmDeliveryKill();
    for (const p of everyProcess) {
      if (p.exitCode === null && p.signalCode === null) {
        if (p.pid !== undefined) killedByTest.add(p.pid);
        p.kill('SIGKILL');
      }
    }
    await Promise.all(everyProcess.map((p) => (p.exitCode !== null || p.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => p.once('exit', () => r())))));
    await orch?.close();
    await dropDb?.();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }, 60_000);

  test('every chunk is run once and committed; none lost, none run twice', async () => {
    const kills: KillRecord[] = [];
    const kill = async (r: Replica, rec: Omit<KillRecord, 'slot' | 'pid' | 'atMs'>): Promise<KillRecord> => {
      const full: KillRecord = { ...rec, slot: r.slot, pid: r.pid, atMs: Date.now() };
      kills.push(full);
      killedByTest.add(r.pid);
      r.alive = false;
      r.proc.kill('SIGKILL');
      expect(await r.exited).toBe('SIGKILL');
      return full;
    };
    orch = new Orchestrator({ workflows: ['wf-daily'], adminToken: ADMIN, live, kill });
    await orch.listen();
    await Promise.all(Array.from({ length: REPLICAS }, (_, slot) => start(slot, 0)));

    await ok('POST', '/v1/tables', { name: 'playback', ref: { kind: 'directory', location: path.join(tmp, 'playback') } });
    await ok('POST', '/v1/consumers', { name: 'daily', tables: [{ table: 'playback', from: 'now' }] });
    await ok('POST', '/v1/subscriptions', { name: 'sub-daily', consumer: 'daily', tables: ['playback'], sink: { type: 'maestro', url: orch.url, workflow_id: 'wf-daily' } });
    // One chunk per hour of event_ts: many chunks, four in flight.
    const bf = await ok('POST', '/v1/backfills', { name: 'hours', consumer: 'daily', where: 'event_ts >= 2026-11-01 and event_ts < 2026-11-05', chunk: 'hour', concurrency: 4 });
    const chunks: number = bf.totals.chunks;
    expect(chunks).toBeGreaterThanOrEqual(20);

    let finished = false;
    const generation = new Map<number, number>();
    const killer = (async () => {
      for (let k = 0; !finished && !tearingDown; k++) {
        await sleep(randomInt(1500, 2500));
        if (finished || tearingDown) break;
        let victim: Replica | undefined;
        if (k % 2 === 0) {
          // The replica sending a start request dies before it hears the answer.
          const done = await Promise.race([orch.armDeliveryKill().then(() => true), sleep(4000).then(() => false)]);
          if (!done) orch.disarmDeliveryKill();
          victim = current.find((r) => !r.alive);
        } else {
          const alive = live();
          victim = alive[randomInt(0, alive.length - 1)];
          if (victim) await kill(victim, { mode: 'random', detail: '' });
        }
        if (victim && !victim.alive && !tearingDown) {
          const g = (generation.get(victim.slot) ?? 0) + 1;
          generation.set(victim.slot, g);
          await start(victim.slot, g);
        }
      }
    })();

    const deadline = Date.now() + 150_000;
    let v: Json = {};
    while (Date.now() < deadline) {
      v = await ok('GET', '/v1/backfills/hours');
      // Committed, and every trigger marked delivered (a run may commit before its start answer is recorded).
      if (v.state === 'committed' && v.chunks.every((c: Json) => c.trigger?.state === 'delivered')) break;
      await sleep(300);
    }
    finished = true;
    await killer;

    expect(v.state, JSON.stringify(v.totals)).toBe('committed');
    expect(kills.length).toBeGreaterThanOrEqual(2);
    expect(orch.problems).toEqual([]);
    // None lost: every chunk committed at its first attempt (no batch was abandoned to expire).
    expect(v.chunks.map((c: Json) => [c.state, c.attempts])).toEqual(Array.from({ length: chunks }, () => ['committed', 1]));
    // None duplicated: one run per batch, and the batches run are exactly the chunks' batches.
    const runBatches = [...orch.runsByBatch.keys()].sort();
    expect(runBatches).toEqual(v.chunks.map((c: Json) => c.batch_id).sort());
    for (const [batch, runs] of orch.runsByBatch) expect(runs, batch).toHaveLength(1);
    // Each chunk shows its trigger delivered; the run ids Maestro answered (a DUPLICATED answer to a redelivery has none) are distinct.
    expect(v.chunks.map((c: Json) => c.trigger?.state)).toEqual(Array.from({ length: chunks }, () => 'delivered'));
    const runIds = v.chunks.map((c: Json) => c.trigger.run_id).filter((r: unknown) => typeof r === 'string');
    expect(new Set(runIds).size).toBe(runIds.length);
    const outbox = await ok('GET', '/v1/subscriptions/sub-daily/triggers');
    const triggers = (outbox.triggers ?? outbox.entries ?? []) as Json[];
    expect(triggers.filter((t) => t.state === 'delivered')).toHaveLength(chunks);
  });
});
