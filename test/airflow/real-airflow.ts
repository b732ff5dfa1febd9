// ips against a real Apache Airflow (scripts/provision/airflow.sh and airflow2.sh;
// test/airflow/airflow-server.ts), run by airflow3-real.test.ts (Airflow 3.3, the sink's api v2)
// and airflow2-real.test.ts (Airflow 2.11, api v1): the README's Airflow sink (username/password:
// a JWT from /auth/token on Airflow 3, basic auth on Airflow 2) triggers the README's example DAG
// (examples/airflow/playback_daily_dag.py, deployed unchanged) through the REST API; its
// BashOperator runs examples/bash/step.sh, which prepares the batch by the
// trigger's instance_id, reads the ICDC table with PyIceberg (process_icdc.py on the project's
// venv python) and commits, against a real `ips serve` watching a PyIceberg-written table.
//
// Proven here, each on Airflow's own answers (its REST API's list of DAG runs, task states and
// task logs), not on a receiver's:
//   1. a trigger starts one DAG run, whose task commits the batch the trigger announced;
//   2. a redelivery of that trigger (the same request ips's delivery loop sends) starts no second run;
//   3. (Airflow 3) Airflow restarted with another jwt_secret answers 403 for ips's cached JWT:
//      the next trigger still starts its run in one delivery attempt (the sink renews it on 403);
//   4. a DAG run that fails (every try of its task) commits nothing: the next prepare hands out
//      the same batch, the same files, and clearing the run in Airflow commits it.
// Each table change is one PyIceberg append announced with `ips tables event`, so each phase has
// exactly one batch and one trigger. Nothing waits on a clock: every wait polls for a state.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createSink, parseSinkConfig, type TriggerPayload, type TriggerPayloadJson } from '../../src/sinks/index.js';
import { runPythonCode, testEnv } from '../setup/env.js';
import { bash, example, EXAMPLES, ipsOnPath, startServe, substitute, writePlaybackTable, type Served, type WrittenTable } from '../docs/helpers.js';
import { Airflow, Hopeless } from './airflow-server.js';

const ADMIN = 'airflow-real-admin-token-0123456789';
const DAG_ID = 'playback_daily';
const TASK_ID = 'icdc_step';
const SUBSCRIPTION = 'playback-daily-airflow';

interface DagRun {
  dag_run_id: string;
  state: string;
  conf: TriggerPayloadJson;
  triggering_user_name?: string | null;
}

interface Trigger {
  id: string;
  batch_id: string;
  state: string;
  attempts: number;
  outcome: string | null;
  run_id: string | null;
  last_error: string | null;
}

/** The payload back from a DAG run's conf (the conf is payloadToJson of it). */
function payloadFromConf(c: TriggerPayloadJson): TriggerPayload {
  return {
    subscription: c.subscription, consumer: c.consumer, batchId: c.batch_id, instanceId: c.instance_id, seq: c.seq, dedupKey: c.dedup_key,
    createdAt: c.created_at, ranges: c.ranges as TriggerPayload['ranges'],
    tables: c.tables.map((t) => ({
      table: t.table, fromSnapshotId: t.from_snapshot_id, toSnapshotId: t.to_snapshot_id, icdcTable: t.icdc_table,
      icdcMetadataLocation: t.icdc_metadata_location, icdcSnapshotId: t.icdc_snapshot_id, fileCount: t.file_count,
      recordCount: t.record_count, byteCount: t.byte_count, ranges: t.ranges as TriggerPayload['tables'][number]['ranges'],
      changedPartitions: t.changed_partitions,
    })),
  };
}

/** Appends day `k` (120 rows, a few late ones) to the table writePlaybackTable made; prints added files and records. */
const APPEND = String.raw`
import datetime as dt, json, random, sys
import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
root, k = sys.argv[1], int(sys.argv[2])
cat = SqlCatalog("docs", uri=f"sqlite:///{root}/catalog.db", warehouse=f"file://{root}")
tbl = cat.load_table("demo.playback")
arrow = pa.schema([pa.field("event_ts", pa.timestamp("us"), nullable=False), pa.field("profile_id", pa.int64(), nullable=False),
                   pa.field("title", pa.string(), nullable=False), pa.field("watch_seconds", pa.int32(), nullable=False)])
rng = random.Random(1000 + k)
day = dt.date(2026, 11, 1) + dt.timedelta(days=k)
rows = []
for i in range(120):
    d = day - dt.timedelta(days=rng.randint(1, 3)) if rng.random() < 0.05 else day
    rows.append({"event_ts": dt.datetime.combine(d, dt.time()) + dt.timedelta(seconds=rng.randint(0, 86399)),
                 "profile_id": rng.randint(1, 500), "title": rng.choice(["Arcane", "Dark", "Ozark"]), "watch_seconds": rng.randint(60, 7200)})
tbl.append(pa.Table.from_pylist(rows, schema=arrow))
s = cat.load_table("demo.playback").current_snapshot()
print(json.dumps({"files": int(s.summary.additional_properties.get("added-data-files", 0)), "records": int(s.summary.additional_properties.get("added-records", 0)), "snapshot": str(s.snapshot_id)}))
`;

export function describeRealAirflow(major: 2 | 3): void {
  describe(`a real Airflow ${major}: the README sink (api ${major === 3 ? 'v2' : 'v1'}) triggers the example DAG, whose task runs step.sh against ips serve`, () => {
    const api = major === 3 ? 'v2' : 'v1';
    let day = 0;
    let tmp: string;
    let table: WrittenTable;
    let server: Served;
    let airflow: Airflow;
    let consumerToken: string;
    let pathPrefix: string;
    let failSwitch: string;
    let sinkJson: Record<string, unknown>;

    function cleanEnv(): NodeJS.ProcessEnv {
      const base = { ...process.env };
      for (const k of Object.keys(base)) if (k.startsWith('IPS_') || k.startsWith('AIRFLOW') || k === 'DATABASE_URL' || k === 'VIRTUAL_ENV' || k === 'PYTHONPATH' || k === 'PYTHONHOME') delete base[k];
      return { ...base, PATH: `${pathPrefix}${path.delimiter}${base.PATH ?? ''}` };
    }

    function ips(args: string, token = ADMIN): { status: number | null; stdout: string; stderr: string } {
      return bash(`ips ${args}`, { cwd: tmp, env: { ...cleanEnv(), IPS_URL: server.url, IPS_TOKEN: token } });
    }

    function ipsOk(args: string, token = ADMIN): string {
      const r = ips(args, token);
      expect(r.status, `ips ${args}: ${r.stderr}`).toBe(0);
      return r.stdout;
    }

    async function ipsApi(p: string): Promise<Record<string, any>> {
      const r = await fetch(`${server.url}${p}`, { headers: { authorization: `Bearer ${ADMIN}` } });
      expect(r.status, p).toBe(200);
      return (await r.json()) as Record<string, any>;
    }

    async function lagFiles(): Promise<string> {
      const t = await ipsApi('/v1/tables/playback');
      return (t.consumers as { consumer: string; lag: { files: string } }[]).find((c) => c.consumer === 'playback_daily')!.lag.files;
    }

    async function triggers(): Promise<Trigger[]> {
      return (await ipsApi(`/v1/subscriptions/${SUBSCRIPTION}/triggers`)).triggers as Trigger[];
    }

    async function dagRuns(): Promise<DagRun[]> {
      const r = await airflow.api<{ dag_runs: DagRun[]; total_entries: number }>('GET', `/dags/${DAG_ID}/dagRuns?limit=100&order_by=${major === 3 ? 'run_after' : 'execution_date'}`);
      expect(r.status).toBe(200);
      expect(r.json.dag_runs).toHaveLength(r.json.total_entries);
      return r.json.dag_runs;
    }

    /** The text of one try's task log, from Airflow's REST API. */
    async function taskLog(runId: string, tryNumber: number): Promise<string> {
      const r = await airflow.api<{ content: unknown }>('GET', `/dags/${DAG_ID}/dagRuns/${encodeURIComponent(runId)}/taskInstances/${TASK_ID}/logs/${tryNumber}?full_content=true`);
      expect(r.status).toBe(200);
      const c = r.json.content;
      return Array.isArray(c) ? c.map((e) => (typeof e === 'object' && e && 'event' in e ? String((e as { event: unknown }).event) : String(e))).join('\n') : String(c);
    }

    async function taskInstance(runId: string): Promise<{ state: string | null; try_number: number }> {
      const r = await airflow.api<{ state: string | null; try_number: number }>('GET', `/dags/${DAG_ID}/dagRuns/${encodeURIComponent(runId)}/taskInstances/${TASK_ID}`);
      expect(r.status).toBe(200);
      return r.json;
    }

    /** Appends the next day and tells ips the table changed; returns the new snapshot's counts. */
    async function appendDay(): Promise<{ files: number; records: number }> {
      const out = await runPythonCode(APPEND, [path.join(tmp, 'lake'), String(++day)], { timeoutMs: 120_000 });
      ipsOk('tables event playback');
      return JSON.parse(out.trim().split('\n').at(-1)!) as { files: number; records: number };
    }

    /** Waits for a DAG run beyond the `known` ones, then for it to reach one of `states`. */
    async function nextRun(known: number, states: string[], what: string): Promise<DagRun> {
      const run = await airflow.waitUntil(`DAG run #${known + 1} (${what})`, async () => {
        // A trigger that ips gave up on will start no run: fail at once with its error.
        const dead = (await triggers()).find((t) => t.state === 'dead');
        if (dead) throw new Hopeless(`ips marked trigger ${dead.id} (batch ${dead.batch_id}) dead after ${dead.attempts} attempt(s): ${dead.last_error}`);
        const runs = await dagRuns();
        if (runs.length > known + 1) throw new Hopeless(`expected one new DAG run, Airflow has ${runs.length - known}: ${runs.map((r) => r.dag_run_id).join(', ')}`);
        return runs.length === known + 1 ? runs.at(-1)! : undefined;
      }, 120_000);
      return waitRunState(run.dag_run_id, states, what);
    }

    async function waitRunState(runId: string, states: string[], what: string): Promise<DagRun> {
      const done = ['success', 'failed'];
      return airflow.waitUntil(`DAG run ${runId} to be ${states.join('/')} (${what})`, async () => {
        const r = await airflow.api<DagRun>('GET', `/dags/${DAG_ID}/dagRuns/${encodeURIComponent(runId)}`);
        if (r.status !== 200) return undefined;
        if (states.includes(r.json.state)) return r.json;
        if (done.includes(r.json.state)) {
          const ti = await taskInstance(runId);
          throw new Hopeless(`DAG run ${runId} ended ${r.json.state}, expected ${states.join('/')}; task log of try ${ti.try_number}:\n${await taskLog(runId, ti.try_number)}`);
        }
        return undefined;
      }, 300_000);
    }

    beforeAll(async () => {
      const env = testEnv();
      tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-airflow-'));
      // The tasks' PATH: `ips`, a python3 that is the project's venv python (unless the test's
      // failure switch is on), and examples/bash (step.sh, process_icdc.py), as the DAG documents.
      const py = path.join(tmp, 'python-bin');
      mkdirSync(py, { recursive: true });
      failSwitch = path.join(tmp, 'fail-processing');
      writeFileSync(path.join(py, 'python3'), `#!/bin/sh\nif [ -e '${failSwitch}' ]; then echo "processing failed (test switch ${failSwitch})" >&2; exit 3; fi\nexec '${env.python}' "$@"\n`);
      chmodSync(path.join(py, 'python3'), 0o755);
      pathPrefix = [ipsOnPath(tmp), py, path.join(EXAMPLES, 'bash')].join(path.delimiter);

      const written = writePlaybackTable(path.join(tmp, 'lake'), 1);
      server = await startServe([], { ...cleanEnv(), IPS_ADMIN_TOKEN: ADMIN, IPS_PORT: '0', IPS_TICK_MS: '200' }, tmp);
      // The README's sink (api v1 for Airflow 2); its username and password are Airflow's user.
      sinkJson = JSON.parse(sinkText('http://airflow.internal:8080')) as Record<string, unknown>;
      expect(sinkJson).toMatchObject({ type: 'airflow', dag_id: DAG_ID, api });
      const airflowPromise = Airflow.create({
        major,
        cacheDir: env.cacheDir,
        home: path.join(tmp, 'airflow'),
        dagFiles: [path.join(EXAMPLES, 'airflow', 'playback_daily_dag.py')],
        users: [
          { username: String(sinkJson.username), role: 'user', password: String(sinkJson.password) },
          { username: 'admin', role: 'admin', password: 'airflow-admin-password-9f8e7d' },
        ],
        admin: 'admin',
        env: {}, // setProcessEnv() below, once the consumer's token exists
        jwtSecret: 'airflow-real-jwt-secret-one-0123456789abcdef',
      });
      table = await written;
      ipsOk(`tables register playback ${table.location}`);
      const created = ipsOk('consumers create playback_daily --table playback --range event_ts --issue-token');
      consumerToken = /token \(shown once; store it now\): (\S+)/.exec(created)![1]!;

      airflow = await airflowPromise;
      // The workers' environment: IPS_URL and the consumer's token, as the DAG's docstring says.
      airflow.setProcessEnv({ ...cleanEnv(), IPS_URL: server.url, IPS_TOKEN: consumerToken });
      await airflow.start();
      await airflow.waitUntil(`DAG ${DAG_ID} parsed`, async () => {
        const r = await airflow.api<{ is_paused: boolean }>('GET', `/dags/${DAG_ID}`);
        return r.status === 200 && r.json.is_paused === false ? true : undefined;
      }, 120_000);
    }, 420_000);

    afterAll(async () => {
      await airflow?.stop();
      await server?.stop();
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    }, 60_000);

    /** The README's sink example with the Airflow URL (and api "v1" for Airflow 2). */
    function sinkText(url: string): string {
      const pairs: [string, string][] = [['http://airflow.internal:8080', url]];
      if (major === 2) pairs.push(['"api": "v2"', '"api": "v1"']);
      return substitute(example('airflow-sink'), pairs);
    }

    test('the subscription triggers one DAG run; its task commits the batch; a redelivery starts no second run', async () => {
      const sink = JSON.parse(sinkText(airflow.url)) as Record<string, unknown>;
      writeFileSync(path.join(tmp, 'airflow-sink.json'), JSON.stringify(sink));
      // The README's subscribe command, as written.
      const sub = bash(`set -euo pipefail\n${example('airflow-subscribe')}`, { cwd: tmp, env: { ...cleanEnv(), IPS_URL: server.url, IPS_TOKEN: ADMIN } });
      expect(sub.status, sub.stderr).toBe(0);
      expect(example('airflow-subscribe')).toContain(`ips subscriptions create ${SUBSCRIPTION} `);
      ipsOk('tables event playback');

      const run = await nextRun(0, ['success'], 'the first batch');
      if (major === 3) expect(run.triggering_user_name).toBe(sinkJson.username);
      expect(run.conf).toMatchObject({ subscription: SUBSCRIPTION, consumer: 'playback_daily', tables: [{ table: 'playback', file_count: table.files }] });
      const log = await taskLog(run.dag_run_id, 1);
      expect(log).toMatch(new RegExp(`batch ${run.conf.batch_id}: ${table.files} files, ${table.records} records of playback`));
      expect(log).toContain(`batch ${run.conf.batch_id} committed`);
      // process_icdc.py read every changed row from the ICDC table.
      const rows = /\{"days": .*?"rows": (\d+)\}/.exec(log);
      expect(Number(rows?.[1])).toBe(table.records);
      expect(await lagFiles()).toBe('0');
      const [t] = await triggers().then((ts) => ts.filter((x) => x.batch_id === run.conf.batch_id));
      expect(t).toMatchObject({ state: 'delivered', outcome: 'started', run_id: run.dag_run_id, attempts: 1 });

      // A redelivery: the same trigger sent again through the same sink (what a replica that died
      // before recording the delivery sends). Airflow answers 409 and the sink reads the run back.
      const again = await createSink(parseSinkConfig(sink)).deliver(payloadFromConf(run.conf));
      expect(again).toMatchObject({ outcome: 'duplicate', status: 409, runId: run.dag_run_id });
      const runs = await dagRuns();
      expect(runs.map((r) => r.dag_run_id)).toEqual([run.dag_run_id]);
    }, 420_000);

    // Airflow 3 only: Airflow 2's API takes basic auth, no JWTs.
    if (major === 3) test('Airflow restarted with another jwt_secret answers 403 for the cached JWT; the next trigger still starts its run in one attempt', async () => {
      const before = await dagRuns();
      expect(before).toHaveLength(1);
      // The token ips holds was signed with the old secret: after the restart Airflow refuses it with 403.
      const old = await airflow.token(String(sinkJson.username));
      expect(old.token).toBeDefined();
      await airflow.restartWithJwtSecret('airflow-real-jwt-secret-two-fedcba9876543210');
      const refused = await fetch(`${airflow.url}/api/v2/dags/${DAG_ID}/dagRuns`, { headers: { authorization: `Bearer ${old.token}` } });
      expect(refused.status).toBe(403);
      expect(await refused.json()).toEqual({ detail: 'Invalid JWT token' });

      const added = await appendDay();
      const run = await nextRun(before.length, ['success'], 'the batch after the restart');
      expect(run.conf.tables[0]!.file_count).toBe(added.files);
      expect(await taskLog(run.dag_run_id, 1)).toContain(`batch ${run.conf.batch_id} committed`);
      const t = (await triggers()).find((x) => x.batch_id === run.conf.batch_id);
      // One attempt: the 403 was answered by renewing the JWT inside the same delivery.
      expect(t).toMatchObject({ state: 'delivered', outcome: 'started', run_id: run.dag_run_id, attempts: 1 });
      expect(await lagFiles()).toBe('0');
    }, 420_000);

    test('a DAG run whose task fails commits nothing: the next prepare hands out the same batch; clearing the run commits it', async () => {
      const known = (await dagRuns()).length;
      writeFileSync(failSwitch, '');
      const added = await appendDay();
      const failed = await nextRun(known, ['failed'], 'processing fails on every try');
      const batchId = failed.conf.batch_id;
      const ti = await taskInstance(failed.dag_run_id);
      expect(ti.state).toBe('failed');
      expect(ti.try_number).toBe(4); // the DAG's retries=3: every try prepared the same batch and failed before its commit
      for (const n of [1, ti.try_number]) {
        const log = await taskLog(failed.dag_run_id, n);
        expect(log).toContain(`batch ${batchId}: ${added.files} files, ${added.records} records of playback`);
        expect(log).toContain('processing failed (test switch');
        expect(log).not.toContain('committed');
      }
      expect(await lagFiles()).toBe(String(added.files));

      // The next prepare of the run's instance hands out the same batch (same files), still open.
      const again = JSON.parse(ipsOk(`step prepare --consumer playback_daily --instance-id ${failed.conf.instance_id} --json`, consumerToken)) as { status: string; batch: { id: string; tables: { files: unknown[] }[] } };
      expect(again.status).toBe('existing');
      expect(again.batch.id).toBe(batchId);
      // Another run of the consumer is held off while that batch is open.
      const other = ips('step prepare --consumer playback_daily --instance-id someone-else --json', consumerToken);
      expect(other.status).not.toBe(0);
      expect(other.stderr).toMatch(/BATCH_IN_FLIGHT|in flight/i);

      // Fix the processing and clear the run in Airflow: the task runs again and commits that batch.
      rmSync(failSwitch);
      const cleared = await airflow.api('POST', `/dags/${DAG_ID}/dagRuns/${encodeURIComponent(failed.dag_run_id)}/clear`, { dry_run: false });
      expect(cleared.status).toBe(200);
      await airflow.waitUntil('the cleared run to start again', async () => {
        const r = await airflow.api<DagRun>('GET', `/dags/${DAG_ID}/dagRuns/${encodeURIComponent(failed.dag_run_id)}`);
        return r.json.state !== 'failed' ? true : undefined;
      }, 60_000);
      await waitRunState(failed.dag_run_id, ['success'], 'the cleared run');
      const retried = await taskInstance(failed.dag_run_id);
      const log = await taskLog(failed.dag_run_id, retried.try_number);
      expect(log).toContain(`batch ${batchId}: ${added.files} files, ${added.records} records of playback`);
      expect(log).toContain(`batch ${batchId} committed`);
      expect(await lagFiles()).toBe('0');

      // Over the whole test: one DAG run per batch, each trigger delivered in one attempt, all committed.
      const runs = await dagRuns();
      expect(runs).toHaveLength(day + 1);
      expect(runs.map((r) => r.state)).toEqual(runs.map(() => 'success'));
      const ts = await triggers();
      expect(ts.map((t) => [t.state, t.outcome, t.attempts])).toEqual(runs.map(() => ['delivered', 'started', 1]));
      expect(new Set(ts.map((t) => t.run_id))).toEqual(new Set(runs.map((r) => r.dag_run_id)));
    }, 420_000);
  });
}
