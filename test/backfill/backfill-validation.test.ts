// A backfill's `--validate 'COMMAND'` runs once per chunk, by whoever is allowed to run it:
// - `ips step commit --validate` in the step that committed a pulled chunk (the step opts in:
//   the command text comes from the server), on a server whose validation loop is off;
// - `ips serve` with `backfill_validation: on` (IPS_BACKFILL_VALIDATION), for every committed
//   chunk, with a minimal environment, the backfill's timeout, and the result recorded per chunk.
// A passing and a failing command each way; complete only when every chunk validated; a retried
// invalid chunk is re-run and validated again. Real `ips serve` processes, the fixture table
// fixtures/tables/playback (PyIceberg, one partition per day 2026-11-01..04).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { REPO_ROOT } from '../setup/env.js';
import { createPgDatabase } from '../state/helpers.js';

const BIN = path.join(REPO_ROOT, 'bin', 'ips.js');
const ADMIN = 'admin-token-for-the-backfill-validation-test';
const WHERE = 'event_ts >= 2026-11-01 and event_ts < 2026-11-05';
const DAYS = ['2026-11-01', '2026-11-02', '2026-11-03', '2026-11-04'];

interface Server { proc: ChildProcess; url: string; stdout: string }

async function startServe(cwd: string, env: Record<string, string | undefined>): Promise<Server> {
  const proc = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--json'], {
    cwd, env: { ...process.env, IPS_ADMIN_TOKEN: ADMIN, IPS_DATA_DIR: path.join(cwd, 'data'), DATABASE_URL: undefined, IPS_TICK_MS: '100', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      try {
        resolve((JSON.parse(out) as { url: string }).url);
      } catch { /* not complete yet */ }
    });
    proc.once('exit', (code) => reject(new Error(`ips serve exited with ${code}: ${err}`)));
  });
  return { proc, url, stdout: out };
}

async function stop(s: Server | undefined): Promise<void> {
  if (s && s.proc.exitCode === null) {
    const exited = new Promise((r) => s.proc.once('exit', r));
    s.proc.kill('SIGTERM');
    await exited;
  }
}

function cli(cwd: string, url: string) {
  const ips = (args: string[], env: Record<string, string> = {}) => {
    const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', env: { ...process.env, IPS_URL: url, IPS_TOKEN: ADMIN, ...env }, timeout: 60_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const json = (args: string[], env: Record<string, string> = {}): Record<string, any> => {
    const r = ips([...args, '--json'], env);
    expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    return JSON.parse(r.stdout);
  };
  return { ips, json };
}

/** Pulls the next chunk of `backfill` with the consumer's token and commits it (with extra commit flags). */
function pullAndCommit(c: ReturnType<typeof cli>, backfill: string, instance: string, token: string, commitArgs: string[] = []) {
  const p = c.json(['step', 'prepare', '--backfill', backfill, '--instance-id', instance], { IPS_TOKEN: token });
  expect(p.batch, JSON.stringify(p)).not.toBeNull();
  return { chunk: p.batch.backfill.chunk as number, commit: c.ips(['step', 'commit', p.batch.id, ...commitArgs], { IPS_TOKEN: token }) };
}

async function until<T>(what: string, probe: () => T | undefined, ms = 120_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('validation run by the step that commits a pulled chunk (ips step commit --validate)', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-backfill-validate-step-'));
  let server: Server | undefined;
  afterAll(async () => {
    await stop(server);
    rmSync(tmp, { recursive: true, force: true });
  });

  test('a passing and a failing command, recorded per chunk with the consumer token; the server runs none', async () => {
    cpSync(path.join(REPO_ROOT, 'fixtures', 'tables', 'playback'), path.join(tmp, 'playback'), { recursive: true });
    server = await startServe(tmp, {});
    expect(JSON.parse(server.stdout).backfill_validation).toBe(false);
    const c = cli(tmp, server.url);
    c.json(['tables', 'register', 'playback', path.join(tmp, 'playback')]);
    const token = c.json(['consumers', 'create', 'daily', '--table', 'playback', '--issue-token']).token.token as string;
    // The command sees the chunk's range; it writes a marker so that any run of it shows.
    const validate = 'echo "ran $IPS_BACKFILL_CHUNK" >> ran.log; echo "day $IPS_BACKFILL_RANGE_MIN"; test ! -f "bad_$IPS_BACKFILL_CHUNK"';
    c.json(['backfills', 'create', 'nov', '--consumer', 'daily', '--where', WHERE, '--validate', validate, '--validate-timeout', '60']);
    // `get --watch` redraws until the backfill is done (here: all committed, one invalid).
    const watch = spawn(process.execPath, [BIN, 'backfills', 'get', 'nov', '--watch', '1'], { cwd: tmp, env: { ...process.env, IPS_URL: server.url, IPS_TOKEN: token }, stdio: ['ignore', 'pipe', 'pipe'] });
    let watched = '';
    watch.stdout!.on('data', (d: Buffer) => { watched += d.toString(); });
    const watchExit = new Promise<number | null>((r) => watch.once('exit', r));
    await until('the first redraw', () => (watched.includes('nov  running') ? true : undefined));

    const ok = pullAndCommit(c, 'nov', 'run-0', token, ['--validate']);
    expect([ok.chunk, ok.commit.status, ok.commit.stderr]).toEqual([0, 0, '']);
    expect(ok.commit.stdout).toBe('chunk 0: valid\nbatch ' + ok.commit.stdout.split('batch ')[1]);
    writeFileSync(path.join(tmp, 'bad_1'), '');
    const bad = pullAndCommit(c, 'nov', 'run-1', token, ['--validate']);
    expect([bad.chunk, bad.commit.status]).toEqual([1, 1]);
    expect(bad.commit.stdout).toContain('chunk 1: INVALID (exit 1): day 2026-11-02T00:00:00.000000');
    expect(bad.commit.stderr).toMatch(/^error \[BACKFILL_CHUNK_INVALID\]: backfill "nov" chunk 1 is invalid \(exit 1\): fix it and run `ips backfills retry nov --chunk 1`/);
    // Two chunks committed without --validate: nothing runs their command.
    for (const i of [2, 3]) expect(pullAndCommit(c, 'nov', `run-${i}`, token).commit.status).toBe(0);

    const v = c.json(['backfills', 'get', 'nov'], { IPS_TOKEN: token });
    expect(v.chunks.map((x: any) => x.state)).toEqual(['committed', 'committed', 'committed', 'committed']);
    expect(v.chunks.map((x: any) => x.validation && [x.validation.passed, x.validation.exit_code])).toEqual([[true, 0], [false, 1], null, null]);
    expect(v.chunks[0].validation.by).toMatch(/^token:/); // recorded with the consumer's token
    expect(v.chunks[1].validation.output).toBe('day 2026-11-02T00:00:00.000000\n');
    expect(v.validation).toEqual({ required: true, passed: 1, failed: 1, pending: 2 });
    expect([v.state, v.status, v.complete]).toEqual(['committed', 'invalid', false]);
    expect(readFileSync(path.join(tmp, 'ran.log'), 'utf8')).toBe('ran 0\nran 1\n');
    expect(c.ips(['backfills', 'get', 'nov']).stdout).toContain('validation [#####...............] 1/4 valid, 1 INVALID, 2 not validated yet');
    expect(await watchExit).toBe(0);
    expect(watched).toContain('nov  running');
    expect(watched).toContain('nov  invalid');
    expect(watched.split('\n').filter((l) => /^nov {2}/.test(l)).length).toBeGreaterThanOrEqual(2);

    // The rest by hand, then the fixed chunk re-run through retry: complete.
    rmSync(path.join(tmp, 'bad_1'));
    const rest = c.ips(['backfills', 'validate', 'nov']);
    expect([rest.status, rest.stdout]).toEqual([0, 'chunk 1: valid\nchunk 2: valid\nchunk 3: valid\n']);
    expect(c.json(['backfills', 'get', 'nov']).status).toBe('complete');
    // A batch that is not a backfill chunk refuses --validate (after committing it).
    const live = c.json(['step', 'prepare', '--consumer', 'daily', '--instance-id', 'live-1'], { IPS_TOKEN: token });
    const notChunk = c.ips(['step', 'commit', live.batch.id, '--validate'], { IPS_TOKEN: token });
    expect(notChunk.stderr).toMatch(/^error \[INVALID_ARGUMENT\]: batch \d+ is not a backfill chunk/);
  }, 300_000);
});

describe('validation run by ips serve (backfill_validation on), on PostgreSQL', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-backfill-validate-serve-'));
  let server: Server | undefined;
  let drop: (() => Promise<void>) | undefined;
  afterAll(async () => {
    await stop(server);
    await drop?.();
    rmSync(tmp, { recursive: true, force: true });
  });

  test('every committed chunk is validated by the service with a minimal environment; a failure, a timeout, a retry', async () => {
    cpSync(path.join(REPO_ROOT, 'fixtures', 'tables', 'playback'), path.join(tmp, 'playback'), { recursive: true });
    const db = await createPgDatabase('backfill_validation');
    drop = db.drop;
    server = await startServe(tmp, {
      DATABASE_URL: db.url, IPS_BACKFILL_VALIDATION: 'on', IPS_BACKFILL_VALIDATION_ENV: 'MARKS', MARKS: tmp, NOT_PASSED: 'secret-value',
    });
    expect(JSON.parse(server.stdout).backfill_validation).toBe(true);
    const c = cli(tmp, server.url);
    c.json(['tables', 'register', 'playback', path.join(tmp, 'playback')]);
    const token = c.json(['consumers', 'create', 'daily', '--table', 'playback', '--issue-token']).token.token as string;
    const other = c.json(['consumers', 'create', 'other', '--table', 'playback', '--issue-token']).token.token as string;
    const validate = 'env > "$MARKS/env_$IPS_BACKFILL_CHUNK"; echo "checked $IPS_BACKFILL_RANGE_MIN"; test ! -f "$MARKS/bad_$IPS_BACKFILL_CHUNK"';
    c.json(['backfills', 'create', 'nov', '--consumer', 'daily', '--where', WHERE, '--validate', validate, '--concurrency', '2']);
    writeFileSync(path.join(tmp, 'bad_2'), '');
    for (let i = 0; i < 4; i++) expect(pullAndCommit(c, 'nov', `run-${i}`, token).commit.status).toBe(0);

    const v = await until('every chunk validated', () => {
      const x = c.json(['backfills', 'get', 'nov']);
      return x.validation.pending === 0 ? x : undefined;
    });
    expect(v.chunks.map((x: any) => [x.validation.passed, x.validation.exit_code])).toEqual([[true, 0], [true, 0], [false, 1], [true, 0]]);
    expect(v.chunks.map((x: any) => x.validation.output)).toEqual(DAYS.map((d) => expect.stringContaining(`checked ${d}`)));
    for (const x of v.chunks) expect(x.validation.by).toMatch(/^ips serve /);
    expect([v.status, v.complete]).toEqual(['invalid', false]);
    // The command's environment: the chunk's variables and the names passed through, not the service's own.
    const env = readFileSync(path.join(tmp, 'env_0'), 'utf8');
    expect(env).toContain(`IPS_BACKFILL_RANGE_MIN=${DAYS[0]}T00:00:00.000000\n`);
    expect(env).toContain('IPS_BACKFILL=nov\n');
    expect(env).toContain(`MARKS=${tmp}\n`);
    expect(env).not.toContain('secret-value');
    expect(env).not.toContain(ADMIN);
    expect(env).not.toContain('DATABASE_URL');

    // Fixed: the invalid chunk is retried, re-run, validated again by the service; complete.
    rmSync(path.join(tmp, 'bad_2'));
    expect(c.json(['backfills', 'retry', 'nov', '--chunk', '2']).state).toBe('running');
    const again = pullAndCommit(c, 'nov', 'run-2-again', token);
    expect([again.chunk, again.commit.status]).toEqual([2, 0]);
    const done = await until('complete', () => {
      const x = c.json(['backfills', 'get', 'nov']);
      return x.status === 'complete' ? x : undefined;
    });
    expect(done.chunks[2].validation.passed).toBe(true);
    expect(done.chunks[2].attempts).toBe(1);

    // A command that outlives its timeout is killed and the chunk is invalid.
    c.json(['backfills', 'create', 'slow', '--consumer', 'other', '--where', 'event_ts >= 2026-11-01 and event_ts < 2026-11-02', '--validate', 'sleep 60', '--validate-timeout', '1']);
    expect(pullAndCommit(c, 'slow', 'slow-0', other).commit.status).toBe(0);
    const slow = await until('the slow chunk validated', () => {
      const x = c.json(['backfills', 'get', 'slow']);
      return x.chunks[0].validation ? x : undefined;
    });
    expect(slow.chunks[0].validation).toMatchObject({ passed: false, exit_code: null, output: expect.stringContaining('validation timed out after 1 s and was killed') });
    expect(slow.status).toBe('invalid');

    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toContain('ips_backfill_validations_total{result="passed"} 4');
    expect(metrics).toContain('ips_backfill_validations_total{result="failed"} 2');
    expect(existsSync(path.join(tmp, 'env_3'))).toBe(true);
  }, 300_000);
});
