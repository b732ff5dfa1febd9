// The README's service examples and examples/ run for real: `ips serve` from the README (embedded
// state), a source table written by PyIceberg, the README's setup and step snippet, the bash step
// script, the Maestro workflow and the Airflow DAG started by ips through the Maestro and Airflow
// receivers of test/sinks (written from those services' documentation), then the retention
// output and the FILES_MISSING refusal. The examples are read from README.md and examples/, so
// an edit that breaks one breaks this test. The only changes made to them are the documented
// placeholders (hosts, the table location), each of which must still be in the example.
import { readdirSync, readFileSync, rmSync, mkdtempSync, writeFileSync, mkdirSync, chmodSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { pythonEnv, runPythonCode } from '../setup/env.js';
import { airflowReceiver, maestroReceiver, startServer } from '../sinks/receivers.js';
import { bash, example, EXAMPLES, ipsOnPath, startServeScript, substitute, waitFor, writePlaybackTable, type Served, type WrittenTable } from './helpers.js';

const ADMIN = 'docs-admin-token-0123456789abcdef';
const TABLE_PLACEHOLDER = 's3://lake/db/playback';

interface StepTotals {
  batches: string[];
  files: number;
  records: number;
  rows: number;
}

/** Sums what examples/bash/step.sh printed: "batch B: F files, R records …" and process_icdc.py's JSON. */
function stepTotals(out: string): StepTotals {
  const t: StepTotals = { batches: [], files: 0, records: 0, rows: 0 };
  for (const m of out.matchAll(/^batch (\d+): (\d+) files, (\d+) records of /gm)) {
    t.batches.push(m[1]!);
    t.files += Number(m[2]);
    t.records += Number(m[3]);
  }
  for (const line of out.split('\n').filter((l) => l.startsWith('{'))) {
    const j = JSON.parse(line) as { rows: number; days: Record<string, { rows: number }> };
    expect(Object.values(j.days).reduce((n, d) => n + d.rows, 0)).toBe(j.rows);
    t.rows += j.rows;
  }
  return t;
}

describe('README: serve, set up, the step protocol, Maestro, Airflow, retention', () => {
  let tmp: string;
  let table: WrittenTable;
  let server: Served;
  let consumerToken: string;
  let pathPrefix: string;

  /** The environment of a step: the venv's python3, `ips` and examples/bash on PATH. */
  function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    const base = pythonEnv();
    for (const k of Object.keys(base)) if (k.startsWith('IPS_') || k === 'DATABASE_URL') delete base[k];
    return { ...base, PATH: `${pathPrefix}${path.delimiter}${base.PATH}`, IPS_URL: server.url, ...extra };
  }

  function admin(args: string): { status: number | null; stdout: string; stderr: string } {
    return bash(`ips ${args}`, { cwd: tmp, env: env({ IPS_TOKEN: ADMIN }) });
  }

  async function api(p: string): Promise<Record<string, any>> {
    const r = await fetch(`${server.url}${p}`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(r.status, p).toBe(200);
    return (await r.json()) as Record<string, any>;
  }

  async function lagFiles(): Promise<string> {
    const t = await api('/v1/tables/playback');
    return (t.consumers as { consumer: string; lag: { files: string } }[]).find((c) => c.consumer === 'playback_daily')!.lag.files;
  }

  function resetToStart(): void {
    const r = admin('consumers reset playback_daily --to start');
    expect(r.status, r.stderr).toBe(0);
  }

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-docs-'));
    pathPrefix = [ipsOnPath(tmp), path.join(EXAMPLES, 'bash')].join(path.delimiter);
    const written = writePlaybackTable(path.join(tmp, 'lake'), 2);
    // README "Run the service": the embedded default, on a free port instead of 8742.
    const script = substitute(example('serve'), [['$(openssl rand -hex 24)', ADMIN]]);
    const base = pythonEnv();
    for (const k of Object.keys(base)) if (k.startsWith('IPS_') || k === 'DATABASE_URL') delete base[k];
    server = await startServeScript(script, { ...base, PATH: `${pathPrefix}${path.delimiter}${base.PATH}`, IPS_PORT: '0', IPS_TICK_MS: '200' }, tmp);
    table = await written;
    expect(table.files).toBeGreaterThan(5);
  }, 180_000);

  afterAll(async () => {
    await server?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test('the setup block registers the PyIceberg table and creates the consumer with its own token', () => {
    const script = substitute(example('setup'), [['http://127.0.0.1:8742', server.url], [TABLE_PLACEHOLDER, table.location]]);
    const r = bash(`set -euo pipefail\n${script}`, { cwd: tmp, env: env({ IPS_ADMIN_TOKEN: ADMIN }) });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('registered playback');
    expect(r.stdout).toContain(`head: ${table.head}`);
    consumerToken = /token \(shown once; store it now\): (\S+)/.exec(r.stdout)![1]!;
    expect(consumerToken).toMatch(/^ips_/);
    const c = JSON.parse(admin('consumers get playback_daily --json').stdout) as { tables: { range_fields: string[]; snapshot_id: string | null }[] };
    expect(c.tables[0]).toMatchObject({ range_fields: ['event_ts'], snapshot_id: null });
  });

  test('the step snippet, run until no changes, hands out every file once in batches of at most 5 and reads every row', () => {
    const loop = `set -euo pipefail
for i in $(seq 1 20); do
  RUN_ID=readme-run-$i
${example('step')}
  if [ "$IPS_HAS_CHANGES" != true ]; then echo "finished with $IPS_STATUS"; break; fi
  echo "batch $IPS_BATCH_ID: $IPS_FILE_COUNT files, $IPS_RECORD_COUNT records of $IPS_TABLE, $IPS_RANGE_EVENT_TS_FLAG range $IPS_RANGE_EVENT_TS_MIN"
done`;
    const r = bash(loop, { cwd: path.dirname(EXAMPLES), env: env({ IPS_TOKEN: consumerToken }), timeoutMs: 300_000 });
    expect(r.status, r.stderr).toBe(0);
    const t = stepTotals(r.stdout);
    expect(t.files).toBe(table.files);
    expect(t.batches).toHaveLength(Math.ceil(table.files / 5));
    expect(t.records).toBe(table.records);
    expect(t.rows).toBe(table.records);
    for (const b of t.batches) expect(r.stdout).toContain(`batch ${b} committed`);
    expect(r.stdout).toMatch(/records of playback, (exact|conservative) range 2026-1[01]-\d\dT/);
    expect(r.stdout).toContain('finished with no_changes');
  });

  test('examples/bash/step.sh: a run that fails before its commit gets the same batch on retry; then runs until no changes', () => {
    resetToStart();
    const failing = path.join(tmp, 'failing-python');
    mkdirSync(failing, { recursive: true });
    writeFileSync(path.join(failing, 'python3'), '#!/bin/sh\necho "processing failed" >&2\nexit 3\n');
    chmodSync(path.join(failing, 'python3'), 0o755);
    const stepEnv = (id: string, extra: Record<string, string> = {}) =>
      env({ IPS_TOKEN: consumerToken, IPS_CONSUMER: 'playback_daily', IPS_INSTANCE_ID: id, IPS_MAX_FILES: '6', ...extra });
    const script = path.join(EXAMPLES, 'bash', 'step.sh');
    expect(statSync(script).mode & 0o111, 'step.sh is executable').not.toBe(0);

    // A step started for one batch refuses another (and leaves it open: abort it).
    const wrong = bash('step.sh', { cwd: tmp, env: stepEnv('run-c', { IPS_EXPECTED_BATCH_ID: '123' }) });
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toMatch(/prepare returned batch \d+, but this run was started for batch 123/);
    const open = JSON.parse(bash('ips step prepare --consumer playback_daily --instance-id run-c --json', { cwd: tmp, env: env({ IPS_TOKEN: consumerToken }) }).stdout) as { status: string; batch: { id: string } };
    expect(open.status).toBe('existing');
    expect(admin(`step abort ${open.batch.id}`).status).toBe(0);

    const failed = bash('step.sh', { cwd: tmp, env: { ...stepEnv('run-a'), PATH: `${failing}${path.delimiter}${stepEnv('run-a').PATH}` } });
    expect(failed.status).not.toBe(0);
    expect(failed.stderr).toContain('processing failed');
    const first = stepTotals(failed.stdout).batches;
    expect(first).toHaveLength(1);

    const retried = bash('step.sh', { cwd: tmp, env: stepEnv('run-a') });
    expect(retried.status, retried.stderr).toBe(0);
    expect(stepTotals(retried.stdout).batches).toEqual(first);
    expect(retried.stdout).toContain(`batch ${first[0]} committed`);

    let out = retried.stdout;
    for (let i = 0; i < 10; i++) {
      const r = bash('step.sh', { cwd: tmp, env: stepEnv(`run-b${i}`) });
      expect(r.status, r.stderr).toBe(0);
      out += r.stdout;
      if (r.stdout.includes('no changes for playback_daily on playback')) break;
    }
    const t = stepTotals(out);
    expect(out).toContain('no changes for playback_daily on playback');
    expect(t.files).toBe(table.files);
    expect(t.batches).toHaveLength(Math.ceil(table.files / 6));
    expect(t.rows).toBe(table.records);
  });

  test('retention: ips tables get shows the oldest snapshot still needed, as the README shows it', async () => {
    expect(await lagFiles()).toBe('0');
    const [command, ...shown] = example('tables-get').trimEnd().split('\n');
    const got = bash(command!.replace(/^\$ /, ''), { cwd: tmp, env: env({ IPS_TOKEN: ADMIN }) });
    expect(got.status, got.stderr).toBe(0);
    const lines = got.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(shown[0]!.replace(TABLE_PLACEHOLDER, table.location));
    // Ids differ from run to run; everything else must read as the README shows it.
    const digitsOut = (s: string) => s.replace(/\d+/g, 'N');
    expect(lines.slice(1).map(digitsOut)).toEqual(shown.slice(1).map(digitsOut));
    expect(lines.join('\n')).toContain(`oldest needed: ${table.head} (consumer playback_daily)`);
    expect((await api('/v1/tables/playback')).oldest_needed).toMatchObject({ consumer: 'playback_daily', snapshot_id: table.head });
  });

  test('Maestro: the example workflow gets every param it declares with its type; its step, run with them, commits each batch', async () => {
    resetToStart();
    const wf = JSON.parse(readFileSync(path.join(EXAMPLES, 'maestro', 'playback_daily.json'), 'utf8')) as MaestroWorkflow;
    let subscription = '';
    const sinkText = example('maestro-sink');
    const placeholder = JSON.parse(sinkText) as { workflow_id: string; user?: string };
    expect(placeholder.workflow_id).toBe(wf.workflow.id);
    const maestro = maestroReceiver({ workflows: [wf.workflow.id], ...(placeholder.user ? { user: placeholder.user } : {}) });
    const receiver = await startServer(maestro.handler);
    try {
      const sink = JSON.parse(substitute(sinkText, [['http://maestro.internal:8080', receiver.url]])) as unknown;
      writeFileSync(path.join(tmp, 'maestro-sink.json'), JSON.stringify(sink));
      const created = bash(`set -euo pipefail\n${example('maestro-subscribe')}`, { cwd: tmp, env: env({ IPS_TOKEN: ADMIN }) });
      subscription = /ips subscriptions create (\S+)/.exec(example('maestro-subscribe'))![1]!;
      expect(created.status, created.stderr).toBe(0);

      const step = wf.workflow.steps[0]!.step;
      expect(step.type).toBe('kubernetes');
      const k8s = step.params.kubernetes.value;
      const handled = new Set<string>();
      let files = 0;
      for (;;) {
        const next = await waitFor('a Maestro start, or the consumer at the head', async () => {
          const s = maestro.starts.find((x) => !handled.has(x.request_id as string));
          if (s) return s;
          return (await lagFiles()) === '0' ? null : undefined;
        }, 90_000, () => admin(`subscriptions get ${subscription} --json`).stdout);
        if (next === null) break;
        handled.add(next.request_id as string);
        const runParams = next.run_params as Record<string, MaestroParam>;
        // Every param the workflow declares arrives, with the declared type.
        for (const [name, def] of Object.entries(wf.workflow.params)) {
          if (name === 'ips_url') continue; // the deployment's setting, not sent by ips
          expect(runParams[name], `run param ${name}`).toBeDefined();
          expect(runParams[name]!.type, `type of run param ${name}`).toBe(def.type);
        }
        expect(Object.keys(runParams.change_ranges!.value as object)).toEqual(['event_ts']);
        files += runParams.file_count!.value as number;
        // Maestro's view of the params: the workflow's defaults under the run's params; ips_url as deployed.
        const params: Record<string, MaestroParam> = { ...wf.workflow.params, ...runParams, ips_url: { type: 'STRING', value: server.url } };
        const stepEnv = Object.fromEntries(Object.entries(k8s.env.value).map(([k, v]) => [k, interpolate(v, params)]));
        expect(stepEnv).toMatchObject({ IPS_CONSUMER: 'playback_daily', IPS_INSTANCE_ID: runParams.instance_id!.value, IPS_EXPECTED_BATCH_ID: runParams.batch_id!.value });
        const r = bash(interpolate(k8s.entrypoint.value, params), { cwd: tmp, env: { ...env({ IPS_TOKEN: consumerToken }), ...stepEnv } });
        expect(r.status, r.stderr).toBe(0);
        expect(r.stdout).toContain(`batch ${String(runParams.batch_id!.value)} committed`);
        expect(stepTotals(r.stdout).files).toBe(runParams.file_count!.value);
      }
      expect(files).toBe(table.files);
      expect(handled.size).toBe(Math.ceil(table.files / 5));
    } finally {
      // Next, the consumer is reset for the next example: no subscription may prepare behind it.
      const deleted = subscription ? admin(`subscriptions delete ${subscription}`) : undefined;
      await receiver.close();
      if (deleted) expect(deleted.status, deleted.stderr).toBe(0);
    }
  });

  test('Airflow: the example DAG compiles; every conf key it reads is sent; its bash task, run with that conf, commits each batch', async () => {
    resetToStart();
    const dagFile = path.join(EXAMPLES, 'airflow', 'playback_daily_dag.py');
    await runPythonCode('import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)', [dagFile, path.join(tmp, 'dag.pyc')]);
    const dag = await loadDag(dagFile, tmp);
    expect(dag.dag).toMatchObject({ schedule: null, max_active_runs: 1 });
    expect(dag.tasks).toHaveLength(1);
    const task = dag.tasks[0]!;
    const read = new Set<string>();
    for (const v of [task.bash_command, ...Object.values(task.env)]) for (const k of confKeys(v)) read.add(k);
    expect([...read].sort()).toEqual(['batch_id', 'consumer', 'instance_id']);

    let subscription = '';
    const sinkText = example('airflow-sink');
    const placeholder = JSON.parse(sinkText) as { dag_id: string; api: 'v1' | 'v2'; username: string; password: string };
    expect(placeholder.dag_id).toBe(dag.dag.dag_id);
    const airflow = airflowReceiver({ api: placeholder.api, dags: [placeholder.dag_id], jwtFor: { username: placeholder.username, password: placeholder.password } });
    const receiver = await startServer(airflow.handler);
    try {
      const sink = JSON.parse(substitute(sinkText, [['http://airflow.internal:8080', receiver.url]])) as unknown;
      writeFileSync(path.join(tmp, 'airflow-sink.json'), JSON.stringify(sink));
      const created = bash(`set -euo pipefail\n${example('airflow-subscribe')}`, { cwd: tmp, env: env({ IPS_TOKEN: ADMIN }) });
      subscription = /ips subscriptions create (\S+)/.exec(example('airflow-subscribe'))![1]!;
      expect(created.status, created.stderr).toBe(0);

      const runs = airflow.runs.get(placeholder.dag_id)!;
      const handled = new Set<string>();
      let files = 0;
      for (;;) {
        const next = await waitFor('an Airflow DAG run, or the consumer at the head', async () => {
          const r = [...runs.entries()].find(([id]) => !handled.has(id));
          if (r) return r;
          return (await lagFiles()) === '0' ? null : undefined;
        }, 90_000, () => admin(`subscriptions get ${subscription} --json`).stdout);
        if (next === null) break;
        const [runId, conf] = next as [string, Record<string, unknown>];
        handled.add(runId);
        for (const k of read) expect(conf, `conf key ${k}`).toHaveProperty(k);
        const stepEnv = Object.fromEntries(Object.entries(task.env).map(([k, v]) => [k, render(v, conf)]));
        const r = bash(render(task.bash_command, conf), { cwd: tmp, env: { ...env({ IPS_TOKEN: consumerToken }), ...stepEnv } });
        expect(r.status, r.stderr).toBe(0);
        expect(r.stdout).toContain(`batch ${String(conf.batch_id)} committed`);
        files += (conf.tables as { file_count: number }[])[0]!.file_count;
      }
      expect(files).toBe(table.files);
      expect(handled.size).toBe(Math.ceil(table.files / 5));
      expect(airflow.tokensIssued).toBeGreaterThan(0);
    } finally {
      // Next, the consumer is reset for the next example: no subscription may prepare behind it.
      const deleted = subscription ? admin(`subscriptions delete ${subscription}`) : undefined;
      await receiver.close();
      if (deleted) expect(deleted.status, deleted.stderr).toBe(0);
    }
  });

  test('the zero-copy hazard: a deleted source file makes prepare fail with FILES_MISSING, as the README shows it', () => {
    resetToStart();
    const dataDir = path.join(table.location, 'data');
    const day = readdirSync(dataDir).sort()[0]!;
    const file = readdirSync(path.join(dataDir, day)).filter((f) => f.endsWith('.parquet'))[0]!;
    rmSync(path.join(dataDir, day, file));
    const [command, shown] = example('files-missing').trimEnd().split('\n');
    const r = bash(command!.replace(/^\$ /, ''), { cwd: tmp, env: env({ IPS_TOKEN: consumerToken }) });
    expect(r.status).toBe(1);
    const [before, after] = shown!.split(/e\.g\. \S+?; /);
    expect(r.stderr).toContain(before!);
    expect(r.stderr).toContain(`e.g. file://${path.join(dataDir, day, file)}; `);
    expect(r.stderr.trimEnd().endsWith(`; ${after!}`)).toBe(true);
  });
});

// ------------------------------------------------------------------------------------------
// Maestro: the workflow definition and Maestro's string interpolation of params.

type MaestroParam = { type: string; value?: unknown; expression?: string };

interface MaestroWorkflow {
  properties: { run_strategy: string };
  workflow: {
    id: string;
    params: Record<string, MaestroParam>;
    steps: { step: { id: string; type: string; params: { kubernetes: { value: { entrypoint: { value: string }; env: { value: Record<string, string> } } } } } }[];
  };
}

/** A param's value as plain JSON (MAP values are nested param definitions). */
function plain(p: MaestroParam): unknown {
  if (p.type === 'MAP') return Object.fromEntries(Object.entries(p.value as Record<string, MaestroParam>).map(([k, v]) => [k, plain(v)]));
  return p.value;
}

/**
 * Maestro's LiteralEvaluator: `${name}` and `$name` are replaced by the param's value (arrays
 * and maps as JSON), `$$` is a literal `$`; an unknown name is an error.
 */
function interpolate(text: string, params: Record<string, MaestroParam>): string {
  return text.replace(/\$\$|\$\{([a-zA-Z][-_./a-zA-Z0-9]*)\}|\$([a-zA-Z][_a-zA-Z0-9]*)/g, (m, a: string | undefined, b: string | undefined) => {
    if (m === '$$') return '$';
    const name = (a ?? b)!;
    const p = params[name];
    if (!p) throw new Error(`Cannot interpolate [${text}] as param [${name}] is not found`);
    const v = plain(p);
    return typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v);
  });
}

// ------------------------------------------------------------------------------------------
// Airflow, without Airflow: the DAG file is imported with stand-ins for DAG and BashOperator
// that record their arguments; templates are rendered for the one form the DAG may use.

interface LoadedDag {
  dag: { dag_id: string; schedule: unknown; max_active_runs: number };
  tasks: { task_id: string; bash_command: string; env: Record<string, string> }[];
}

async function loadDag(file: string, tmp: string): Promise<LoadedDag> {
  const stubs = path.join(tmp, 'airflow-stubs');
  const pkg = (p: string, text = '') => {
    mkdirSync(path.join(stubs, ...p.split('/').slice(0, -1)), { recursive: true });
    writeFileSync(path.join(stubs, p), text);
  };
  pkg('airflow/__init__.py', `
DAGS = []
class DAG:
    def __init__(self, dag_id, **kwargs):
        self.dag_id, self.kwargs, self.tasks = dag_id, kwargs, []
    def __enter__(self):
        DAGS.append(self)
        return self
    def __exit__(self, *exc):
        return False
`);
  pkg('airflow/providers/__init__.py');
  pkg('airflow/providers/standard/__init__.py');
  pkg('airflow/providers/standard/operators/__init__.py');
  pkg('airflow/providers/standard/operators/bash.py', `
import airflow
class BashOperator:
    def __init__(self, task_id, bash_command, env=None, append_env=False, **kwargs):
        self.task_id, self.bash_command, self.env, self.append_env = task_id, bash_command, env or {}, append_env
        airflow.DAGS[-1].tasks.append(self)
`);
  const out = await runPythonCode(`
import json, runpy, sys
import airflow
runpy.run_path(sys.argv[1])
d = airflow.DAGS[0]
print(json.dumps({"dag": {"dag_id": d.dag_id, "schedule": d.kwargs.get("schedule"), "max_active_runs": d.kwargs.get("max_active_runs")},
                  "tasks": [{"task_id": t.task_id, "bash_command": t.bash_command, "env": t.env, "append_env": t.append_env} for t in d.tasks]}))
`, [file], { env: { PYTHONPATH: stubs } });
  const dag = JSON.parse(out.trim().split('\n').at(-1)!) as LoadedDag & { tasks: { append_env: boolean }[] };
  for (const t of dag.tasks) expect(t.append_env, 'the task keeps the worker environment (IPS_URL, IPS_TOKEN)').toBe(true);
  return dag;
}

const CONF_REF = /\{\{\s*dag_run\.conf\[(['"])([A-Za-z_][A-Za-z0-9_]*)\1\]\s*\}\}/g;

/** The conf keys a templated string reads; any other template syntax fails the test. */
function confKeys(s: string): string[] {
  const rest = s.replace(CONF_REF, '');
  expect(rest, 'the test renders only {{ dag_run.conf[\'key\'] }}').not.toMatch(/\{\{|\{%/);
  return [...s.matchAll(CONF_REF)].map((m) => m[2]!);
}

function render(s: string, conf: Record<string, unknown>): string {
  confKeys(s);
  return s.replace(CONF_REF, (_m, _q, key: string) => String(conf[key]));
}
