// `ips serve` as a real process and `ips lineage`, `ips consumers … --output`, `ips backfills …`,
// `ips step prepare --backfill` / `ips step commit --output` as a user or a bash step runs them,
// on the embedded default and on the real PostgreSQL. The table is fixtures/tables/playback
// (written by PyIceberg, partitioned by day(event_ts)); expectations come from its partition
// directories and snapshot summaries, not from ips.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { REPO_ROOT } from '../setup/env.js';
import { createPgDatabase } from '../state/helpers.js';

const BIN = path.join(REPO_ROOT, 'bin', 'ips.js');
const ADMIN = 'admin-token-for-the-backfill-cli-test-0123';

function headTotalFiles(tableDir: string): number {
  const metaDir = path.join(tableDir, 'metadata');
  const last = readdirSync(metaDir).filter((f) => f.endsWith('.metadata.json')).sort().at(-1)!;
  const md = JSON.parse(readFileSync(path.join(metaDir, last), 'utf8')) as { snapshots: { summary: Record<string, string> }[] };
  return Number(md.snapshots.at(-1)!.summary['total-data-files']);
}

describe.each(['embedded', 'postgres'] as const)('ips backfills and lineage through ips serve (%s state)', (kind) => {
  let tmp: string;
  let tableDir: string;
  let outDir: string;
  let server: ChildProcess;
  let url: string;
  let drop: (() => Promise<void>) | undefined;

  function ips(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, [BIN, ...args], { cwd: tmp, encoding: 'utf8', env: { ...process.env, IPS_URL: url, IPS_TOKEN: ADMIN, ...env }, timeout: 60_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }
  function json(args: string[], env: Record<string, string> = {}): Record<string, any> {
    const r = ips([...args, '--json'], env);
    expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    return JSON.parse(r.stdout);
  }

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-backfill-cli-'));
    tableDir = path.join(tmp, 'playback');
    outDir = path.join(tmp, 'playback_copy');
    cpSync(path.join(REPO_ROOT, 'fixtures', 'tables', 'playback'), tableDir, { recursive: true });
    // A second copy stands in for the consumer's output table (its snapshots are real Iceberg snapshots).
    cpSync(path.join(REPO_ROOT, 'fixtures', 'tables', 'playback'), outDir, { recursive: true });
    const env: Record<string, string | undefined> = { ...process.env, IPS_ADMIN_TOKEN: ADMIN, IPS_DATA_DIR: path.join(tmp, 'data'), DATABASE_URL: undefined, IPS_TICK_MS: '100' };
    if (kind === 'postgres') {
      const db = await createPgDatabase('backfill_cli');
      drop = db.drop;
      env.DATABASE_URL = db.url;
    }
    server = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--json'], { cwd: tmp, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    server.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    url = await new Promise<string>((resolve, reject) => {
      let out = '';
      server.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        try {
          resolve((JSON.parse(out) as { url: string }).url);
        } catch { /* not complete yet */ }
      });
      server.once('exit', (code) => reject(new Error(`ips serve exited with ${code}: ${err}`)));
    });
  }, 120_000);

  afterAll(async () => {
    if (server && server.exitCode === null) {
      const exited = new Promise((r) => server.once('exit', r));
      server.kill('SIGTERM');
      await exited;
    }
    await drop?.();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test('lineage, dry run, create, a consumer token pulling its own chunks, commit with --output, monitoring, metrics, OpenAPI', async () => {
    json(['tables', 'register', 'playback', tableDir]);
    json(['tables', 'register', 'daily_out', outDir]);
    const created = json(['consumers', 'create', 'daily', '--table', 'playback', '--output', 'daily_out', '--issue-token']);
    expect(created.outputs).toEqual(['daily_out']);
    const token: string = created.token.token;
    const other = json(['consumers', 'create', 'other', '--table', 'playback', '--issue-token']).token.token as string;
    json(['consumers', 'create', 'agg', '--table', 'daily_out', '--from', 'now']);

    // Lineage, and a cycle refused with a clear error.
    expect(ips(['lineage']).stdout).toBe('playback → daily → daily_out\nplayback → other → (no declared output)\ndaily_out → agg → (no declared output)\n');
    expect(ips(['lineage'], { IPS_TOKEN: token }).stderr).toMatch(/^error \[FORBIDDEN\]/); // it names every consumer
    const cycle = ips(['consumers', 'outputs', 'agg', '--output', 'playback']);
    expect(cycle.status).toBe(1);
    expect(cycle.stderr).toMatch(/^error \[PIPELINE_CYCLE\]: the lineage would have a cycle: /);

    // Dry run: one chunk per day of the live data; every live file in the chunk of its day partition.
    const where = 'event_ts >= 2026-11-01 and event_ts < 2026-11-05';
    const dry = json(['backfills', 'create', 'nov', '--consumer', 'daily', '--where', where, '--dry-run']);
    expect(dry.chunks.map((c: any) => c.range.min.slice(0, 10))).toEqual(['2026-11-01', '2026-11-02', '2026-11-03', '2026-11-04']);
    for (const c of dry.chunks) for (const p of c.file_paths) expect(p).toContain(`/event_day=${c.range.min.slice(0, 10)}/`);
    expect(dry.totals.files).toBe(headTotalFiles(tableDir));
    expect(dry.propagates_to).toEqual([{ consumer: 'agg', table: 'daily_out', depth: 1 }]);
    expect(json(['backfills', 'list']).backfills).toEqual([]);
    const text = ips(['backfills', 'create', 'nov', '--consumer', 'daily', '--where', where, '--dry-run']);
    expect(text.stdout).toContain('chunk 0: event_ts >= \'2026-11-01T00:00:00.000000\' and event_ts < \'2026-11-02T00:00:00.000000\'');
    expect(text.stdout).toContain('nothing was created');

    // Only an admin creates.
    const denied = ips(['backfills', 'create', 'nov', '--consumer', 'daily', '--where', where], { IPS_TOKEN: token });
    expect(denied.stderr).toMatch(/^error \[FORBIDDEN\]/);
    const validate = 'test -n "$IPS_BACKFILL_RANGE_PREDICATE" && test "$IPS_BACKFILL_OUTPUT_DAILY_OUT" -gt 0 && test ! -f "bad_$IPS_BACKFILL_CHUNK"';
    const bf = json(['backfills', 'create', 'nov', '--consumer', 'daily', '--where', where, '--concurrency', '2', '--validate', validate]);
    expect([bf.state, bf.totals.chunks]).toEqual(['running', 4]);

    // A consumer's token sees and pulls only its own backfills.
    expect(json(['backfills', 'list'], { IPS_TOKEN: token }).backfills.map((b: any) => b.name)).toEqual(['nov']);
    expect(json(['backfills', 'list'], { IPS_TOKEN: other }).backfills).toEqual([]);
    expect(ips(['backfills', 'get', 'nov'], { IPS_TOKEN: other }).stderr).toMatch(/^error \[FORBIDDEN\]/);
    expect(ips(['step', 'prepare', '--backfill', 'nov', '--instance-id', 'x'], { IPS_TOKEN: other }).stderr).toMatch(/^error \[FORBIDDEN\]/);

    // A bash step pulls chunks with --env and commits naming its output snapshot.
    const outHead = /"current-snapshot-id"\s*:\s*(\d+)/.exec(readFileSync(path.join(outDir, 'metadata', readdirSync(path.join(outDir, 'metadata')).filter((f) => f.endsWith('.metadata.json')).sort().at(-1)!), 'utf8'))![1]!;
    const script = `
      set -euo pipefail
      ips() { node "${BIN}" "$@"; }
      n=0
      for i in 1 2 3 4 5; do
        env_lines=$(ips step prepare --backfill nov --instance-id "bf-$i" --env)
        eval "$env_lines"
        if [ "$IPS_HAS_CHANGES" != true ]; then break; fi
        test -f "$IPS_ICDC_METADATA_LOCATION"
        echo "chunk=$IPS_BACKFILL_CHUNK/$IPS_BACKFILL_CHUNKS min=$IPS_BACKFILL_RANGE_MIN table=$IPS_ICDC_TABLE"
        ips step commit "$IPS_BATCH_ID" --output daily_out=${outHead} > /dev/null
        n=$((n + 1))
      done
      echo "chunks=$n status=$IPS_STATUS"`;
    const r = spawnSync('bash', ['-c', script], { cwd: tmp, encoding: 'utf8', env: { ...process.env, IPS_URL: url, IPS_TOKEN: token }, timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('chunk=0/4 min=2026-11-01T00:00:00.000000 table=icdc.daily__playback__backfill__nov');
    expect(r.stdout).toContain('chunks=4 status=no_chunk');

    const v = json(['backfills', 'get', 'nov']);
    expect(v.state).toBe('committed');
    expect(v.chunks.map((c: any) => [c.state, c.outputs])).toEqual(Array.from({ length: 4 }, () => ['committed', { daily_out: outHead }]));
    // agg started "now" (at outHead): it has passed every chunk's output; validation has not run yet.
    expect(v.stages.map((s: any) => s.consumer)).toEqual(['daily', 'agg']);
    expect(v.stages[1].chunks.map((c: any) => c.state)).toEqual(['propagated', 'propagated', 'propagated', 'propagated']);
    expect(v.status).toBe('committed');

    // The validation command per chunk, with the chunk's range and outputs in its environment: chunk 2 fails, then passes.
    writeFileSync(path.join(tmp, 'bad_2'), '');
    const bad = ips(['backfills', 'validate', 'nov']);
    expect(bad.status).toBe(1);
    expect(bad.stdout).toBe('chunk 0: valid\nchunk 1: valid\nchunk 2: INVALID (exit 1)\nchunk 3: valid\n');
    expect(json(['backfills', 'get', 'nov']).status).toBe('invalid'); // every chunk committed, one invalid
    rmSync(path.join(tmp, 'bad_2'));
    const good = ips(['backfills', 'validate', 'nov']);
    expect([good.status, good.stdout]).toEqual([0, 'chunk 2: valid\n']);
    expect(json(['backfills', 'get', 'nov']).status).toBe('complete');
    const shown = ips(['backfills', 'get', 'nov']).stdout;
    expect(shown).toContain('nov  complete');
    expect(shown).toContain('[##############################] 4/4 chunks committed');

    // The live watermark of daily never moved.
    const consumer = json(['consumers', 'get', 'daily']);
    expect([consumer.tables[0].snapshot_id, consumer.tables[0].version]).toEqual([null, '1']);

    // Metrics and the OpenAPI document.
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toContain('ips_backfill_chunks{backfill="nov",state="committed"} 4');
    const doc = await (await fetch(`${url}/openapi.json`)).json() as { paths: Record<string, Record<string, unknown>> };
    for (const [method, route] of [['get', '/v1/lineage'], ['put', '/v1/consumers/{name}/outputs'], ['post', '/v1/backfills'], ['get', '/v1/backfills'],
      ['get', '/v1/backfills/{name}'], ['post', '/v1/backfills/{name}/batches'], ['post', '/v1/backfills/{name}/pause'], ['post', '/v1/backfills/{name}/resume'],
      ['post', '/v1/backfills/{name}/cancel'], ['post', '/v1/backfills/{name}/retry'], ['post', '/v1/backfills/{name}/chunks/{index}/validation']] as const) {
      expect(doc.paths[route]?.[method], `${method} ${route}`).toBeDefined();
    }
  }, 300_000); // a few dozen CLI processes and a bash step: minutes when the suite shares the cores
});
