// Real storage events (issue 18): MinIO's own bucket notifications, its webhook target set up as
// MinIO documents it (MINIO_NOTIFY_WEBHOOK_* for the target, PutBucketNotificationConfiguration
// for the bucket's events), delivered to `POST /v1/events/s3` of an `ips serve` on the real
// PostgreSQL. This file starts its own MinIO (the suite's binary, the suite's credentials): its
// notification targets are fixed at start-up and point at this file's ips.
//
// - `hourly/`: a table polled once an hour. Its PyIceberg commits reach the webhook through
//   MinIO's notification alone; the delay from the commit (the snapshot's timestamp, PyIceberg's
//   clock) to the trigger is recorded as a figure, and only checked to be far below the hour.
// - `lossy/`: MinIO notifies a relay that loses the event (it answers MinIO and forwards
//   nothing); the table's next poll finds the commit anyway.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, PutBucketNotificationConfigurationCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startServer, type RunningServer } from '../../src/api/server.js';
import { loadServiceConfig } from '../../src/service/config.js';
import { startServer as startReceiver, webhookReceiver } from '../sinks/receivers.js';
import { testEnv } from '../setup/env.js';
import { createPgDatabase } from '../state/helpers.js';
import { PyIcebergWriter, type CatalogSpec, type Row } from './trigger-pyiceberg.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Json = any;

// The suite's S3 credentials: PyIceberg's S3 settings (ips_test_env) use them for this MinIO too.
const env = testEnv();
const ADMIN = `admin-${crypto.randomBytes(12).toString('hex')}`;
const BUCKET = 'ips-events';
const HAS_SETPRIV = spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status === 0;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let nextId = 1;
function rows(n = 3): Row[] {
  return Array.from({ length: n }, () => {
    const id = nextId++;
    return { id, name: `r${id}`, ts_us: 1_793_000_000_000_000 + id * 1_000_003 };
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = http.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

describe('S3 bucket notifications from MinIO wake tables polled hourly (PostgreSQL)', () => {
  let tmp: string;
  let writer: PyIcebergWriter;
  let catalogDb: { url: string; drop: () => Promise<void> };
  let stateDb: { url: string; drop: () => Promise<void> };
  let server: RunningServer;
  let minio: ChildProcess | undefined;
  let minioLog = '';
  let endpoint: string;
  let relay: http.Server;
  /** What MinIO sent to the relay (lost on the way to ips). */
  const lost: { at: number; keys: string[]; authorization: string | undefined }[] = [];
  const closers: (() => Promise<void>)[] = [];
  const logs: string[] = [];

  async function call(method: string, p: string, body?: unknown): Promise<{ status: number; body: Json; text: string }> {
    const headers: Record<string, string> = { authorization: `Bearer ${ADMIN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) };
    const r = await fetch(server.url + p, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : undefined, text };
  }

  async function ok(method: string, p: string, body?: unknown, status = 200): Promise<Json> {
    const r = await call(method, p, body);
    expect(r.status, `${method} ${p}: ${r.text}`).toBe(status);
    return r.body;
  }

  async function waitFor<T>(label: string, fn: () => T | undefined | null | false | Promise<T | undefined | null | false>, timeoutMs = 60_000): Promise<T> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = await fn();
      if (v) return v;
      if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${label}; ips log:\n${logs.slice(-10).join('\n')}\nMinIO log:\n${minioLog.slice(-3000)}`);
      await sleep(20);
    }
  }

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-s3ev-'));
    writer = PyIcebergWriter.start();
    [catalogDb, stateDb] = await Promise.all([createPgDatabase('s3ev_catalog'), createPgDatabase('s3ev')]);
    const config = loadServiceConfig({
      env: {
        DATABASE_URL: stateDb.url, IPS_ADMIN_TOKEN: ADMIN, IPS_PORT: '0', IPS_WAREHOUSE: path.join(tmp, 'icdc'), IPS_LOG_LEVEL: 'silent',
        IPS_TICK_MS: '100', IPS_RETRY_BASE_MS: '200', IPS_SINK_ALLOWED_HOSTS: '127.0.0.1',
      },
    });
    server = await startServer(config, { log: (l) => logs.push(`${new Date().toISOString()} ${l}`) });

    // The relay that loses what MinIO sends it.
    relay = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Json;
        lost.push({ at: Date.now(), keys: (body.Records ?? []).map((r: Json) => decodeURIComponent(r.s3.object.key)), authorization: req.headers.authorization });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));

    // MinIO with two webhook targets: IPS (the service itself) and LOST (the relay).
    const bin = readFileSync(path.join(env.cacheDir, 'env', 'minio'), 'utf8').trim();
    const [port, consolePort] = [await freePort(), await freePort()];
    endpoint = `http://127.0.0.1:${port}`;
    const argv = [bin, 'server', '--quiet', '--address', `127.0.0.1:${port}`, '--console-address', `127.0.0.1:${consolePort}`, path.join(tmp, 'minio')];
    const [cmd, args] = HAS_SETPRIV ? ['setpriv', ['--pdeathsig', 'KILL', '--', ...argv]] : [argv[0]!, argv.slice(1)];
    minio = spawn(cmd, args, {
      env: {
        ...process.env, HOME: tmp, MINIO_ROOT_USER: env.s3AccessKey, MINIO_ROOT_PASSWORD: env.s3SecretKey,
        MINIO_REGION: env.s3Region, MINIO_BROWSER: 'off', MINIO_UPDATE: 'off', MINIO_CI_CD: 'on',
        MINIO_NOTIFY_WEBHOOK_ENABLE_IPS: 'on',
        MINIO_NOTIFY_WEBHOOK_ENDPOINT_IPS: `${server.url}/v1/events/s3`,
        // A single word is sent as "Authorization: Bearer <token>" (MinIO's webhook target).
        MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_IPS: ADMIN,
        MINIO_NOTIFY_WEBHOOK_ENABLE_LOST: 'on',
        MINIO_NOTIFY_WEBHOOK_ENDPOINT_LOST: `http://127.0.0.1:${(relay.address() as AddressInfo).port}/relay`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    minio.stdout!.on('data', (d: Buffer) => { minioLog = (minioLog + d.toString()).slice(-20_000); });
    minio.stderr!.on('data', (d: Buffer) => { minioLog = (minioLog + d.toString()).slice(-20_000); });
    await waitFor('MinIO to start', async () => {
      try {
        return (await fetch(`${endpoint}/minio/health/live`, { signal: AbortSignal.timeout(1000) })).ok;
      } catch {
        return false;
      }
    });
    const s3 = new S3Client({
      endpoint, region: env.s3Region, forcePathStyle: true,
      credentials: { accessKeyId: env.s3AccessKey, secretAccessKey: env.s3SecretKey },
    });
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    // New metadata files (one per Iceberg commit) under each prefix go to one target.
    const arn = (id: string): string => `arn:minio:sqs:${env.s3Region}:${id}:webhook`;
    const rule = (prefix: string) => ({ Key: { FilterRules: [{ Name: 'prefix' as const, Value: prefix }, { Name: 'suffix' as const, Value: '.metadata.json' }] } });
    await s3.send(new PutBucketNotificationConfigurationCommand({
      Bucket: BUCKET,
      NotificationConfiguration: {
        QueueConfigurations: [
          { Id: 'ips', QueueArn: arn('IPS'), Events: ['s3:ObjectCreated:*'], Filter: rule('hourly/') },
          { Id: 'lost', QueueArn: arn('LOST'), Events: ['s3:ObjectCreated:*'], Filter: rule('lossy/') },
        ],
      },
    }));
    s3.destroy();
  }, 180_000);

  afterAll(async () => {
    await Promise.allSettled(closers.map((c) => c()));
    if (minio && minio.exitCode === null && minio.signalCode === null) {
      const gone = new Promise<void>((r) => minio!.once('exit', () => r()));
      minio.kill('SIGKILL');
      await gone;
    }
    await new Promise<void>((r) => (relay ? relay.close(() => r()) : r()));
    await server?.close();
    await writer?.close();
    await stateDb?.drop();
    await catalogDb?.drop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }, 60_000);

  async function table(prefix: string, poll: number): Promise<{ name: string; catalog: CatalogSpec; identifier: string }> {
    const catalog: CatalogSpec = {
      name: `s3ev_${prefix}`, uri: catalogDb.url.replace(/^postgres(ql)?:/, 'postgresql+psycopg2:'), warehouse: `s3://${BUCKET}/${prefix}`, s3_endpoint: endpoint,
    };
    const identifier = `ev.${prefix}_events`;
    await writer.createTable(catalog, identifier);
    const name = `${prefix}-events`;
    await ok('POST', '/v1/tables', {
      name, ref: { kind: 'sql', uri: catalogDb.url, catalog_name: catalog.name, identifier }, poll_interval_seconds: poll,
      s3: { endpoint, region: env.s3Region, path_style: true, access_key_id: env.s3AccessKey, secret_access_key: env.s3SecretKey },
    }, 201);
    await waitFor(`the first poll of ${name}`, async () => (await server.state.repos.watch.get(name))?.metadataLocation);
    return { name, catalog, identifier };
  }

  test('polled hourly: every commit triggers through MinIO\'s notification alone, far sooner than the poll interval (delay recorded)', async () => {
    const t = await table('hourly', 3600);
    const b = await ok('POST', '/v1/consumers', { name: 'hourly-con', tables: [{ table: t.name }], issue_token: true }, 201);
    const token = b.token.token as string;
    const secret = 'whsec-s3-events';
    const recv = webhookReceiver(secret);
    const arrivals: { at: number; ev: Json }[] = [];
    const hook = await startReceiver((req, res) => {
      const before = recv.events.length;
      recv.handler(req, res);
      if (recv.events.length > before) arrivals.push({ at: Date.now(), ev: recv.events.at(-1) });
    });
    closers.push(() => hook.close());
    await ok('POST', '/v1/subscriptions', { name: 'hourly-sub', consumer: 'hourly-con', tables: [t.name], sink: { type: 'webhook', url: `${hook.url}/hook`, secret } }, 201);
    const firstPoll = (await server.state.repos.watch.get(t.name))!;

    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      const a = await writer.append(t.catalog, t.identifier, rows());
      expect(a.metadata_location.startsWith(`s3://${BUCKET}/hourly/`)).toBe(true);
      const ev = await waitFor(`the trigger of commit ${i + 1}`, () => arrivals[i]);
      expect(ev.ev.data.tables[0]).toMatchObject({ table: t.name, to_snapshot_id: a.snapshot.snapshot_id, record_count: a.snapshot.summary['added-records'] });
      delays.push(ev.at - Number(a.snapshot.timestamp_ms));
      const c = await fetch(`${server.url}/v1/batches/${ev.ev.data.batch_id}/commit`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
      expect(c.status).toBe(200);
    }
    // No poll was due (the next one is an hour after the first): the notifications woke the table.
    const w = (await server.state.repos.watch.get(t.name))!;
    expect(w.nextPollAt.getTime() - firstPoll.polledAt!.getTime()).toBeGreaterThan(3000_000);
    expect(Math.max(...delays)).toBeLessThan(60_000); // "well before the poll interval"; the figure itself is printed
    const sorted = [...delays].sort((x, y) => x - y);
    console.info(`[figure] commit → trigger through MinIO notifications (poll interval 3600 s): ${delays.map((d) => `${d} ms`).join(', ')}; median ${sorted[2]} ms, max ${sorted[4]} ms`);
  });

  test('a lost notification: the commit is found by the table\'s next poll', async () => {
    const t = await table('lossy', 4);
    await ok('POST', '/v1/consumers', { name: 'lossy-con', tables: [{ table: t.name }] }, 201);
    const recv = webhookReceiver(undefined);
    const hook = await startReceiver(recv.handler);
    closers.push(() => hook.close());
    await ok('POST', '/v1/subscriptions', { name: 'lossy-sub', consumer: 'lossy-con', tables: [t.name], sink: { type: 'webhook', url: `${hook.url}/hook` } }, 201);

    const before = lost.length;
    const a = await writer.append(t.catalog, t.identifier, rows());
    // MinIO sent the notification for the new metadata file; the relay lost it.
    const key = a.metadata_location.slice(`s3://${BUCKET}/`.length);
    const dropped = await waitFor('MinIO\'s notification to the relay', () => lost.slice(before).find((l) => l.keys.includes(key)));
    expect(dropped.authorization).toBeUndefined();
    const ev = await waitFor('the trigger found by polling', () => recv.events[0] as Json);
    expect(ev.data.tables[0]).toMatchObject({ table: t.name, to_snapshot_id: a.snapshot.snapshot_id });
    // Found by a poll after the lost event.
    const w = (await server.state.repos.watch.get(t.name))!;
    expect(w.polledAt!.getTime()).toBeGreaterThanOrEqual(dropped.at - 1000);
    expect(w.metadataLocation).toBe(a.metadata_location);
  });
});
