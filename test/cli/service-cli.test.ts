// `ips serve` as a real process and `ips step` / `ips tables` / `ips consumers` as a user (or a
// bash step in an orchestrator) runs them, on the embedded default and on the real PostgreSQL.
// Expectations come from the PyIceberg-written snapshot summaries of fixtures/tables/playback.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { REPO_ROOT } from '../setup/env.js';
import { createPgDatabase } from '../state/helpers.js';

const BIN = path.join(REPO_ROOT, 'bin', 'ips.js');
const ADMIN = 'admin-token-for-the-cli-test-0123456789';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function summaries(tableDir: string): { files: number; added: number; removed: number; headId: string } {
  const metaDir = path.join(tableDir, 'metadata');
  const last = readdirSync(metaDir).filter((f) => f.endsWith('.metadata.json')).sort().at(-1)!;
  const text = readFileSync(path.join(metaDir, last), 'utf8');
  const md = JSON.parse(text) as { snapshots: { summary: Record<string, string> }[] };
  let added = 0;
  let removed = 0;
  for (const s of md.snapshots) {
    if (s.summary['operation'] === 'replace') continue;
    for (const k of ['added-data-files', 'added-delete-files']) added += Number(s.summary[k] ?? 0);
    for (const k of ['deleted-data-files', 'removed-delete-files']) removed += Number(s.summary[k] ?? 0);
  }
  const files = added + removed;
  // The id as written (a JS number would round it).
  const headId = /"current-snapshot-id"\s*:\s*(\d+)/.exec(text)![1]!;
  return { files, added, removed, headId };
}

describe.each(['embedded', 'postgres'] as const)('ips serve + ips step/tables/consumers (%s state)', (kind) => {
  let tmp: string;
  let tableDir: string;
  let server: ChildProcess;
  let url: string;
  let drop: (() => Promise<void>) | undefined;

  function ips(args: string[], env: Record<string, string> = {}): Run {
    const r = spawnSync(process.execPath, [BIN, ...args], {
      cwd: tmp, encoding: 'utf8', env: { ...process.env, IPS_URL: url, IPS_TOKEN: ADMIN, ...env }, timeout: 60_000,
    });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  function json(args: string[], env: Record<string, string> = {}): Record<string, any> {
    const r = ips([...args, '--json'], env);
    expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    return JSON.parse(r.stdout);
  }

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-cli-'));
    tableDir = path.join(tmp, 'playback');
    cpSync(path.join(REPO_ROOT, 'fixtures', 'tables', 'playback'), tableDir, { recursive: true });
    const env: Record<string, string | undefined> = { ...process.env, IPS_ADMIN_TOKEN: ADMIN, IPS_DATA_DIR: path.join(tmp, 'data'), DATABASE_URL: undefined, IPS_TICK_MS: '100' };
    if (kind === 'postgres') {
      const db = await createPgDatabase('cli');
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
        } catch { /* the JSON is not complete yet */ }
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

  test('a bash step consumes the table batch by batch with --env, and the lag goes from the summaries to zero', () => {
    const expected = summaries(tableDir);
    json(['tables', 'register', 'playback', tableDir]);
    const created = json(['consumers', 'create', 'daily', '--table', 'playback', '--range', 'event_ts', '--issue-token']);
    const token: string = created.token.token;
    expect(token).toMatch(/^ips_/);
    const before = json(['tables', 'get', 'playback']);
    expect(before.consumers[0].lag.files).toBe(String(expected.files));
    expect(before.consumers[0].lag).toMatchObject({ files_added: String(expected.added), files_removed: String(expected.removed) });
    const shown = ips(['tables', 'get', 'playback']);
    expect(shown.stdout).toContain(`${expected.added} files added and ${expected.removed} removed (`);
    expect(shown.stdout).toMatch(/\d+(\.\d)? (B|KiB|MiB), [\d,]+ records\) behind/);
    expect(before.head.snapshot_id).toBe(expected.headId);

    // The README's bash step, with the consumer's own token.
    const script = `
      set -euo pipefail
      ips() { node "${BIN}" "$@"; }
      total=0; batches=0
      for i in $(seq 1 50); do
        eval "$(ips step prepare --consumer daily --instance-id "run-$i" --max-files 2 --env)"
        if [ "$IPS_HAS_CHANGES" != true ]; then break; fi
        test -f "$IPS_ICDC_METADATA_LOCATION"
        total=$((total + IPS_FILE_COUNT)); batches=$((batches + 1))
        ips step commit "$IPS_BATCH_ID" > /dev/null
      done
      echo "files=$total batches=$batches last_status=$IPS_STATUS"`;
    const r = spawnSync('bash', ['-c', script], { cwd: tmp, encoding: 'utf8', env: { ...process.env, IPS_URL: url, IPS_TOKEN: token }, timeout: 300_000 });
    expect(r.status, r.stderr).toBe(0);
    const m = /files=(\d+) batches=(\d+) last_status=(\w+)/.exec(r.stdout)!;
    expect(Number(m[1])).toBe(expected.files);
    expect(Number(m[2])).toBe(Math.ceil(expected.files / 2));
    expect(m[3]).toBe('no_changes');

    const after = json(['tables', 'get', 'playback']);
    expect(after.consumers[0].lag).toMatchObject({ snapshots: 0, files: '0' });
    expect(after.consumers[0].watermark.snapshot_id).toBe(expected.headId);
    expect(after.oldest_needed).toMatchObject({ consumer: 'daily', snapshot_id: expected.headId, full_history: false });
  });

  test('prepare is idempotent on --instance-id; commit twice is a no-op; abort releases the same changes', () => {
    json(['consumers', 'create', 'weekly', '--table', 'playback']);
    const a = json(['step', 'prepare', '--consumer', 'weekly', '--instance-id', 'w-1', '--max-files', '3']);
    expect(a.status).toBe('created');
    const again = json(['step', 'prepare', '--consumer', 'weekly', '--instance-id', 'w-1', '--max-files', '3']);
    expect(again.status).toBe('existing');
    expect(again.batch).toEqual(a.batch);
    const other = ips(['step', 'prepare', '--consumer', 'weekly', '--instance-id', 'w-2', '--json']);
    expect(other.status).toBe(1);
    expect(JSON.parse(other.stderr).error.code).toBe('BATCH_IN_FLIGHT');

    expect(json(['step', 'abort', a.batch.id, '--reason', 'test']).changed).toBe(true);
    const b = json(['step', 'prepare', '--consumer', 'weekly', '--instance-id', 'w-3', '--max-files', '3']);
    expect(b.batch.tables[0].files).toEqual(a.batch.tables[0].files);
    expect(json(['step', 'commit', b.batch.id]).already_committed).toBe(false);
    expect(json(['step', 'commit', b.batch.id]).already_committed).toBe(true);
    expect(json(['step', 'get', b.batch.id]).state).toBe('committed');
    const c = json(['consumers', 'get', 'weekly']);
    expect(c.tables[0].version).toBe('2');
  });

  test('reset to now and to start; list commands; every command speaks --json', () => {
    const now = json(['consumers', 'reset', 'weekly', '--to', 'now']);
    expect(now.tables[0].snapshot_id).toBe(summaries(tableDir).headId);
    expect(json(['step', 'prepare', '--consumer', 'weekly', '--instance-id', 'w-4']).status).toBe('no_changes');
    const start = json(['consumers', 'reset', 'weekly', '--to', 'start']);
    expect(start.tables[0].snapshot_id).toBeNull();
    expect(json(['consumers', 'list']).consumers.map((c: { name: string }) => c.name).sort()).toEqual(['daily', 'weekly']);
    expect(json(['tables', 'list']).tables.map((t: { name: string }) => t.name)).toEqual(['playback']);
    const env = ips(['step', 'prepare', '--consumer', 'weekly', '--instance-id', 'w-5', '--max-files', '1', '--env']);
    expect(env.status, env.stderr).toBe(0);
    const lines = Object.fromEntries(env.stdout.trim().split('\n').map((l) => l.split(/=(.*)/s).slice(0, 2)));
    expect(lines['IPS_HAS_CHANGES']).toBe('true');
    expect(lines['IPS_FILE_COUNT']).toBe('1');
    expect(lines['IPS_BATCH_ID']).toMatch(/^\d+$/);
  });

  test('a subscription created from the CLI starts a webhook run per batch; ips subscriptions triggers shows them', async () => {
    // A real webhook receiver: records each CloudEvent and, as the "workflow", commits its batch.
    const events: { key: string | undefined; batch: string; files: number; ranged: boolean }[] = [];
    const receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => { body += d.toString(); });
      req.on('end', () => {
        const ev = JSON.parse(body) as { id: string; data: { batch_id: string; tables: { file_count: number; ranges: Record<string, unknown> }[] } };
        events.push({ key: req.headers['idempotency-key'] as string | undefined, batch: ev.data.batch_id, files: ev.data.tables[0]!.file_count, ranged: 'event_ts' in ev.data.tables[0]!.ranges });
        res.writeHead(200).end('{}');
        void fetch(`${url}/v1/batches/${ev.data.batch_id}/commit`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    try {
      const port = (receiver.address() as { port: number }).port;
      const sinkFile = path.join(tmp, 'sink.json');
      writeFileSync(sinkFile, JSON.stringify({ type: 'webhook', url: `http://127.0.0.1:${port}/hook`, secret: 'cli-test-secret' }));
      json(['consumers', 'create', 'hooked', '--table', 'playback']);
      const created = json(['subscriptions', 'create', 'hooked-sub', '--consumer', 'hooked', '--table', 'playback', '--sink', `@${sinkFile}`, '--max-files', '2',
        '--range', 'event_ts']);
      expect(created.sink).toMatchObject({ type: 'webhook', secret: '***' });
      expect(json(['consumers', 'get', 'hooked']).tables[0].range_fields).toEqual(['event_ts']);
      const typo = ips(['subscriptions', 'create', 'typo-sub', '--consumer', 'hooked', '--table', 'playback', '--sink', `@${sinkFile}`, '--range', 'event_tss', '--json']);
      expect(JSON.parse(typo.stderr).error.code).toBe('UNKNOWN_FIELD');
      const expected = summaries(tableDir).files;
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        const lag = json(['tables', 'get', 'playback']).consumers.find((c: { consumer: string }) => c.consumer === 'hooked').lag;
        if (lag.files === '0') break;
        await new Promise((r) => setTimeout(r, 250));
      }
      // Delivery is at least once with a dedup key (a request that times out on a loaded machine is
      // sent again): like an orchestrator, count one run per key, and a resend must be the same batch.
      const runs = new Map<string | undefined, (typeof events)[number]>();
      for (const e of events) {
        const first = runs.get(e.key);
        if (first) expect(e, `a redelivery of ${e.key} carries the same batch`).toEqual(first);
        else runs.set(e.key, e);
      }
      const unique = [...runs.values()];
      expect(unique.reduce((n, e) => n + e.files, 0)).toBe(expected);
      expect(unique).toHaveLength(Math.ceil(expected / 2));
      expect(unique.every((e) => e.key !== undefined && e.ranged)).toBe(true);
      const triggers = json(['subscriptions', 'triggers', 'hooked-sub']).triggers as { seq: string; state: string; batch_id: string; dedup_key: string }[];
      expect(triggers.map((t) => t.seq)).toEqual(unique.map((_, i) => String(i + 1)));
      expect(triggers.every((t) => t.state === 'delivered')).toBe(true);
      expect(triggers.map((t) => t.dedup_key)).toEqual(unique.map((e) => e.key));
      const text = ips(['subscriptions', 'get', 'hooked-sub']);
      expect(text.stdout).toMatch(/hooked-sub {2}enabled: consumer hooked on playback → webhook/);
      expect(text.stdout).not.toContain('cli-test-secret');
    } finally {
      receiver.close();
    }
  });

  test('errors are typed and actionable, in text and in --json', () => {
    const unknown = ips(['consumers', 'get', 'nobody', '--json']);
    expect(unknown.status).toBe(1);
    expect(JSON.parse(unknown.stderr).error.code).toBe('NOT_FOUND');
    const noToken = ips(['tables', 'list'], { IPS_TOKEN: '' });
    expect(noToken.status).toBe(1);
    expect(noToken.stderr).toMatch(/error \[UNAUTHORIZED\]: missing bearer token/);
    const down = ips(['tables', 'list', '--url', 'http://127.0.0.1:9']);
    expect(down.status).toBe(1);
    expect(down.stderr).toMatch(/SERVICE_UNREACHABLE.*ips serve/);
    const badFrom = ips(['consumers', 'reset', 'weekly', '--to', 'yesterday']);
    expect(badFrom.status).toBe(1);
    expect(badFrom.stderr).toMatch(/INVALID_ARGUMENT/);
  });
});
