// Sinks against real HTTP receivers (test/sinks/receivers.ts) that check the documented request
// shapes: webhook (CloudEvents 1.0 structured mode + HMAC-SHA256), Maestro start-workflow with
// typed run_params and request_id dedup, Airflow 2/3 dagRuns with dag_run_id dedup.
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IpsError } from '../../src/errors.js';
import {
  airflowRunId,
  createSink,
  describeSinkConfig,
  MAESTRO_PARAMS_SIZE_LIMIT,
  maestroEvaluatedSize,
  maestroRequestId,
  maestroRunParams,
  maestroStartRequest,
  parseSinkConfig,
  SinkError,
  sinkConfigFromJson,
  sinkConfigToJson,
  type MaestroParam,
  type SinkConfig,
  type TriggerPayload,
} from '../../src/sinks/index.js';
import { airflowReceiver, maestroEvaluatedParamsJson, maestroReceiver, paramProblem, send, startServer, webhookReceiver, type TestServer } from './receivers.js';

const servers: TestServer[] = [];
async function serve(...args: Parameters<typeof startServer>): Promise<TestServer> {
  const s = await startServer(...args);
  servers.push(s);
  return s;
}
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

const RANGES = {
  event_day: { min: '2026-11-01', max: '2026-11-02', flag: 'exact' as const },
  amount: { min: 1.5, max: 99, flag: 'conservative' as const },
  note: { min: null, max: null, flag: 'unbounded' as const },
};

function payload(over: Partial<TriggerPayload> = {}): TriggerPayload {
  return {
    subscription: 'orders-hourly',
    consumer: 'revenue',
    batchId: '1234567890123456789',
    instanceId: 'run-2026-11-02T10',
    seq: '7',
    dedupKey: 'ips:orders:batch:1234567890123456789',
    tables: [
      {
        table: 'orders',
        fromSnapshotId: '3051729675574597004',
        toSnapshotId: '8744736658442914487',
        icdcTable: 'icdc.revenue__orders',
        icdcMetadataLocation: 's3://wh/icdc/revenue__orders/metadata/00003-a.metadata.json',
        icdcSnapshotId: '9007199254740993',
        fileCount: 3,
        recordCount: '1500',
        byteCount: '40960',
        ranges: RANGES,
        changedPartitions: ['event_day=2026-11-01', 'event_day=2026-11-02'],
      },
    ],
    ranges: RANGES,
    createdAt: '2026-11-02T10:00:00.000Z',
    ...over,
  };
}

async function rejection(p: Promise<unknown>): Promise<SinkError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(SinkError);
    return e as SinkError;
  }
  throw new Error('expected the delivery to fail');
}

function invalidSink(f: () => unknown): IpsError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(IpsError);
    expect((e as IpsError).code).toBe('INVALID_SINK');
    return e as IpsError;
  }
  throw new Error('expected INVALID_SINK');
}

// ---------------------------------------------------------------------------------------------

describe('maestroRequestId', () => {
  // Expected values printed by Java 17's UUID.nameUUIDFromBytes(s.getBytes(UTF_8)) (`java U.java`
  // on this machine; Python's uuid.UUID(bytes=md5(s), version=3) agrees).
  const JAVA: Array<[string, string]> = [
    ['', 'd41d8cd9-8f00-3204-a980-0998ecf8427e'],
    ['hello', '5d41402a-bc4b-3a76-b971-9d911017c592'],
    ['ips:orders:batch:1234567890123456789', '5157d4ec-77f4-36b1-b461-db40bf86423c'],
    ['wf1:tt:1700000000', '57b417b7-9371-3273-aea6-5aadbd232dc9'],
    ['ünïcødé-✓-𝄞', 'c44b6ef0-481b-315b-b74d-7ffe5ec7e211'],
  ];
  it.each(JAVA)('matches Java UUID.nameUUIDFromBytes for %j', (name, expected) => {
    expect(maestroRequestId(name)).toBe(expected);
  });
  it('is a lower-case version 3, IETF-variant UUID', () => {
    for (const k of ['a', 'b', 'batch-42']) expect(maestroRequestId(k)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-3[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});

describe('airflowRunId', () => {
  const valid = (id: string): void => {
    expect(id).toMatch(/^[A-Za-z0-9_.~:+-]+$/);
    expect(id.length).toBeLessThanOrEqual(250);
  };
  it('is deterministic, valid, and keeps the dedup key readable', () => {
    const id = airflowRunId({ dedupKey: 'ips:orders:batch:1234567890123456789' });
    valid(id);
    expect(id).toBe(airflowRunId({ dedupKey: 'ips:orders:batch:1234567890123456789' }));
    expect(id).toContain('ips:orders:batch:1234567890123456789');
    expect(id).not.toMatch(/^(manual|scheduled|backfill|dataset_triggered|asset_triggered)__/);
  });
  it('stays valid and distinct for keys with characters Airflow forbids and for long keys', () => {
    const keys = ['a/b', 'a_b', 'a b', 'ünï/cødé', 'x'.repeat(1000), `${'x'.repeat(1000)}y`];
    const ids = keys.map((k) => airflowRunId({ dedupKey: k }));
    ids.forEach(valid);
    expect(new Set(ids).size).toBe(keys.length);
  });
});

// ---------------------------------------------------------------------------------------------

describe('parseSinkConfig', () => {
  it('accepts the three types with their defaults', () => {
    const m = parseSinkConfig({ type: 'maestro', url: 'https://maestro.example.com', workflow_id: 'revenue.orders-hourly' });
    expect(m).toMatchObject({ type: 'maestro', version: 'active' });
    const a = parseSinkConfig({ type: 'airflow', url: 'http://airflow:8080', dag_id: 'orders_incremental' });
    expect(a).toMatchObject({ type: 'airflow', api: 'v2' });
    expect(parseSinkConfig({ type: 'webhook', url: 'https://hooks.example.com/ips?team=data' }).type).toBe('webhook');
  });

  it('allows only http and https URLs', () => {
    for (const url of ['ftp://files.example.com/x', 'file:///etc/passwd', 'javascript:alert(1)', 'not a url', '/relative/path']) {
      const e = invalidSink(() => parseSinkConfig({ type: 'webhook', url }));
      expect(e.message).toContain('url');
    }
  });

  it('rejects credentials in the URL without repeating them', () => {
    const e = invalidSink(() => parseSinkConfig({ type: 'airflow', url: 'http://admin:hunter2-pw@airflow:8080', dag_id: 'd' }));
    expect(e.message).toMatch(/url: credentials/);
    expect(e.message).toMatch(/password/); // tells the user where they go instead
    expect(e.message).not.toContain('hunter2-pw');
  });

  it('checks the host allowlist: exact hosts, host:port and *.suffix wildcards', () => {
    const hosts = ['127.0.0.1', 'airflow.internal:8080', '*.hooks.example.com'];
    const ok = (url: string): SinkConfig => parseSinkConfig({ type: 'webhook', url }, { allowedHosts: hosts });
    ok('http://127.0.0.1:9999/x');
    ok('http://airflow.internal:8080/');
    ok('https://a.hooks.example.com/x');
    ok('https://b.a.HOOKS.example.com/x');
    for (const url of ['https://hooks.example.com/x', 'https://evilhooks.example.com/x', 'http://airflow.internal:9090/', 'http://127.0.0.2/', 'https://a.hooks.example.com.evil.io/']) {
      const e = invalidSink(() => ok(url));
      expect(e.message).toMatch(/url: host .* is not in the allowed sink hosts/);
    }
    invalidSink(() => parseSinkConfig({ type: 'webhook', url: 'http://127.0.0.1/' }, { allowedHosts: [] }));
    // createSink checks again (a stored config, the allowlist changed since)
    const c = parseSinkConfig({ type: 'webhook', url: 'https://c.hooks.example.com/x' });
    expect(() => createSink(c, { allowedHosts: ['127.0.0.1'] })).toThrow(/not in the allowed sink hosts/);
    expect(createSink(c, { allowedHosts: hosts }).type).toBe('webhook');
  });

  it('names the field in INVALID_SINK errors', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ type: 'kafka' }, /type: expected one of webhook, maestro, airflow/],
      [{ url: 'http://x' }, /type/],
      [{ type: 'maestro', url: 'http://m' }, /workflow_id: required/],
      [{ type: 'maestro', url: 'http://m', workflow_id: 'a/b' }, /workflow_id:/],
      [{ type: 'maestro', url: 'http://m', workflow_id: 'wf', version: 'newest' }, /version:/],
      [{ type: 'maestro', url: 'http://m?x=1', workflow_id: 'wf' }, /url: a base URL must not have a \?query/],
      [{ type: 'webhook', url: 'http://x', retries: 3 }, /retries: unknown field/],
      [{ type: 'webhook', url: 'http://x', secret: '' }, /secret: must not be empty/],
      [{ type: 'webhook', url: 'http://x', headers: { 'Bad Name': 'v' } }, /headers\.Bad Name: not a valid HTTP header name/],
      [{ type: 'webhook', url: 'http://x', headers: { 'X-A': 'a\r\nInjected: 1' } }, /headers\.X-A:/],
      [{ type: 'webhook', url: 'http://x', headers: { 'Idempotency-Key': 'k' } }, /headers\.Idempotency-Key: .* set by the sink itself/],
      [{ type: 'maestro', url: 'http://m', workflow_id: 'wf', token: 't', headers: { Authorization: 'x' } }, /headers\.Authorization/],
      [{ type: 'airflow', url: 'http://a', dag_id: 'bad dag' }, /dag_id:/],
      [{ type: 'airflow', url: 'http://a', dag_id: 'd', api: 'v3' }, /api:/],
      [{ type: 'airflow', url: 'http://a', dag_id: 'd', username: 'u' }, /password: username and password go together/],
      [{ type: 'airflow', url: 'http://a', dag_id: 'd', username: 'u', password: 'p', token: 't' }, /token: give either token or username\/password/],
    ];
    for (const [input, re] of cases) expect(invalidSink(() => parseSinkConfig(input)).message).toMatch(re);
  });
});

describe('secrets', () => {
  const SECRETS = { secret: 'whsec-9f8e7d6c', token: 'maestro-tok-5a4b3c', password: 'af-pass-1q2w3e', header: 'hdr-key-7u8i9o' };
  const configs = (): SinkConfig[] => [
    parseSinkConfig({ type: 'webhook', url: 'https://h.example.com/x?key=url-key-0p0p', secret: SECRETS.secret, headers: { 'X-Api-Key': SECRETS.header } }),
    parseSinkConfig({ type: 'maestro', url: 'https://m.example.com', workflow_id: 'wf', user: 'ips-bot', token: SECRETS.token }),
    parseSinkConfig({ type: 'airflow', url: 'https://a.example.com', dag_id: 'd', api: 'v1', username: 'ips', password: SECRETS.password }),
  ];
  const leaks = (text: string): string[] => Object.values(SECRETS).filter((s) => text.includes(s));

  it('never show in describe(), JSON.stringify or inspect of a parsed config', () => {
    for (const c of configs()) {
      expect(leaks(JSON.stringify(describeSinkConfig(c)))).toEqual([]);
      expect(leaks(JSON.stringify(createSink(c).describe()))).toEqual([]);
      expect(leaks(JSON.stringify(c))).toEqual([]);
      expect(leaks(inspect(c, { depth: 5 }))).toEqual([]);
    }
    const [w, m, a] = configs().map(describeSinkConfig);
    expect(w).toEqual({ type: 'webhook', url: 'https://h.example.com/x?key=***', secret: '***', headers: { 'X-Api-Key': '***' } });
    expect(m).toEqual({ type: 'maestro', url: 'https://m.example.com', workflow_id: 'wf', version: 'active', user: 'ips-bot', token: '***' });
    expect(a).toEqual({ type: 'airflow', url: 'https://a.example.com', dag_id: 'd', api: 'v1', username: 'ips', password: '***' });
  });

  it('round-trip through sinkConfigToJson / sinkConfigFromJson', () => {
    for (const c of configs()) {
      const stored = JSON.stringify(sinkConfigToJson(c));
      const back = sinkConfigFromJson(stored);
      expect(sinkConfigToJson(back)).toEqual(sinkConfigToJson(c));
      expect(describeSinkConfig(back)).toEqual(describeSinkConfig(c));
      expect(sinkConfigToJson(parseSinkConfig(c))).toEqual(sinkConfigToJson(c)); // a parsed config parses again
    }
    expect(sinkConfigToJson(configs()[1]!)).toMatchObject({ token: SECRETS.token });
  });

  it('a config stored with JSON.stringify (masked secrets) is rejected, not used', () => {
    for (const c of configs()) {
      const e = invalidSink(() => sinkConfigFromJson(JSON.stringify(c)));
      expect(e.message).toContain('sinkConfigToJson');
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('webhook sink', () => {
  const SECRET = 'whsec-test-0123456789';
  let recv: ReturnType<typeof webhookReceiver>;
  let srv: TestServer;
  beforeAll(async () => {
    recv = webhookReceiver(SECRET);
    srv = await serve(recv.handler);
  });

  it('POSTs a signed CloudEvent; a redelivery is a duplicate', async () => {
    const sink = createSink(parseSinkConfig({ type: 'webhook', url: `${srv.url}/hooks/ips`, secret: SECRET, headers: { 'X-Team': 'data' } }));
    const p = payload();
    const r1 = await sink.deliver(p, { attempt: 1 });
    expect(r1).toMatchObject({ outcome: 'started', status: 202 });
    const req = srv.requests.at(-1)!;
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/hooks/ips');
    expect(req.headers['content-type']).toBe('application/cloudevents+json; charset=utf-8');
    expect(req.headers['idempotency-key']).toBe(p.dedupKey);
    expect(req.headers['x-team']).toBe('data');
    // independent HMAC over the raw bytes received
    expect(req.headers['x-ips-signature-256']).toBe(`sha256=${crypto.createHmac('sha256', SECRET).update(req.body).digest('hex')}`);
    const ev = JSON.parse(req.body.toString('utf8')) as Record<string, unknown>;
    expect(ev).toEqual({
      specversion: '1.0',
      id: p.dedupKey,
      source: 'ips/subscriptions/orders-hourly',
      type: 'dev.ips.batch.ready',
      subject: 'revenue',
      time: '2026-11-02T10:00:00.000Z',
      datacontenttype: 'application/json',
      data: {
        subscription: 'orders-hourly',
        consumer: 'revenue',
        batch_id: '1234567890123456789',
        instance_id: 'run-2026-11-02T10',
        seq: '7',
        dedup_key: p.dedupKey,
        created_at: '2026-11-02T10:00:00.000Z',
        tables: [
          {
            table: 'orders',
            from_snapshot_id: '3051729675574597004',
            to_snapshot_id: '8744736658442914487',
            icdc_table: 'icdc.revenue__orders',
            icdc_metadata_location: 's3://wh/icdc/revenue__orders/metadata/00003-a.metadata.json',
            icdc_snapshot_id: '9007199254740993',
            file_count: 3,
            record_count: '1500',
            byte_count: '40960',
            ranges: RANGES,
            changed_partitions: ['event_day=2026-11-01', 'event_day=2026-11-02'],
          },
        ],
        ranges: RANGES,
      },
    });

    const r2 = await sink.deliver(p, { attempt: 2 });
    expect(r2).toMatchObject({ outcome: 'duplicate', status: 409 });
    expect(recv.events).toHaveLength(1);
  });

  it('a wrong secret is refused by the receiver: non-retryable 401, secret not in the message', async () => {
    const sink = createSink(parseSinkConfig({ type: 'webhook', url: `${srv.url}/hooks/ips`, secret: 'not-the-right-secret' }));
    const e = await rejection(sink.deliver(payload({ dedupKey: 'k-wrong-secret' })));
    expect(e).toMatchObject({ retryable: false, status: 401 });
    expect(e.message).toMatch(/401/);
    expect(e.message).not.toContain('not-the-right-secret');
  });

  it('without a secret sends no signature header', async () => {
    const plain = await serve((req, res) => send(res, 200, { ok: true }));
    await createSink(parseSinkConfig({ type: 'webhook', url: plain.url })).deliver(payload());
    expect(plain.requests[0]!.headers['x-ips-signature-256']).toBeUndefined();
    expect(plain.requests[0]!.headers['idempotency-key']).toBe(payload().dedupKey);
  });
});

// ---------------------------------------------------------------------------------------------

describe('status classification (webhook)', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await serve((req, res) => {
      const m = /^\/status\/(\d+)/.exec(req.url);
      const status = Number(m?.[1] ?? 500);
      const headers: Record<string, string> = {};
      if (status === 503) headers['retry-after'] = '2';
      if (status === 302) headers.location = 'https://elsewhere.example.com/hook?token=abc';
      send(res, status, { error: `status ${status}`, pad: 'x'.repeat(2000) }, headers);
    });
  });
  const deliver = (status: number): Promise<SinkError> =>
    rejection(createSink(parseSinkConfig({ type: 'webhook', url: `${srv.url}/status/${status}?sig=q-secret` })).deliver(payload()));

  it.each([500, 502, 503, 429, 408, 425])('%i is retryable', async (status) => {
    const e = await deliver(status);
    expect(e).toMatchObject({ retryable: true, status });
    expect(e.message).toContain(String(status));
    if (status === 503) expect(e.retryAfterMs).toBe(2000);
  });

  it.each([400, 401, 403, 404, 410, 422])('%i is not retryable', async (status) => {
    const e = await deliver(status);
    expect(e).toMatchObject({ retryable: false, status });
    expect(e.message).toContain(`answered ${status}`);
    expect(e.message).toContain(`status ${status}`); // a body excerpt
    expect(e.message.length).toBeLessThan(1000); // excerpt, not the whole body
    expect(e.message).not.toContain('q-secret'); // no query strings in messages
  });

  it('a redirect is not followed and not retried', async () => {
    const e = await deliver(302);
    expect(e).toMatchObject({ retryable: false, status: 302 });
    expect(e.message).toMatch(/redirect/);
    expect(e.message).not.toContain('token=abc');
    expect(srv.requests.filter((r) => r.url.startsWith('/status/302'))).toHaveLength(1);
  });

  it('connection refused is retryable', async () => {
    const tmp = http.createServer();
    await new Promise<void>((resolve) => tmp.listen(0, '127.0.0.1', resolve));
    const port = (tmp.address() as AddressInfo).port;
    await new Promise<void>((resolve) => tmp.close(() => resolve()));
    const e = await rejection(createSink(parseSinkConfig({ type: 'webhook', url: `http://127.0.0.1:${port}/x` })).deliver(payload()));
    expect(e.retryable).toBe(true);
    expect(e.status).toBeUndefined();
    expect(e.message).toMatch(/could not reach .*ECONNREFUSED/);
  });

  it('a receiver that never answers times out (retryable), and the caller can abort', async () => {
    const hang = await serve(() => {
      /* never answers */
    });
    const sink = createSink(parseSinkConfig({ type: 'webhook', url: hang.url }), { timeoutMs: 300 });
    const t0 = Date.now();
    const e = await rejection(sink.deliver(payload()));
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(e.retryable).toBe(true);
    expect(e.message).toMatch(/timed out after 300 ms/);

    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const slow = createSink(parseSinkConfig({ type: 'webhook', url: hang.url }), { timeoutMs: 10_000 });
    const t1 = Date.now();
    const e2 = await rejection(slow.deliver(payload(), { signal: ac.signal }));
    expect(Date.now() - t1).toBeLessThan(3000);
    expect(e2.retryable).toBe(true);
    expect(e2.message).toMatch(/aborted/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('maestro sink', () => {
  const TOKEN = 'maestro-token-xyz-789';
  let recv: ReturnType<typeof maestroReceiver>;
  let srv: TestServer;
  beforeAll(async () => {
    recv = maestroReceiver({ workflows: ['revenue.orders-hourly', 'multi_wf'], token: TOKEN, user: 'ips-bot', inactive: ['old_wf'] });
    recv.uuids.set('old_wf', new Set());
    srv = await serve(recv.handler);
  });
  const sinkFor = (over: Record<string, unknown> = {}) =>
    createSink(parseSinkConfig({ type: 'maestro', url: `${srv.url}/`, workflow_id: 'revenue.orders-hourly', user: 'ips-bot', token: TOKEN, ...over }));

  it('starts the workflow with typed run_params; a redelivery answers DUPLICATED', async () => {
    const sink = sinkFor();
    const r1 = await sink.deliver(payload());
    expect(r1.outcome).toBe('started');
    expect(r1.status).toBe(200);
    expect(r1.runId).toMatch(/^[1-9]\d*$/);
    const req = srv.requests.at(-1)!;
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/api/v3/workflows/revenue.orders-hourly/versions/active/actions/start');
    expect(req.headers.user).toBe('ips-bot');
    expect(req.headers.authorization).toBe(`Bearer ${TOKEN}`);
    const body = JSON.parse(req.body.toString('utf8')) as { initiator: unknown; request_id: string; run_params: Record<string, unknown> };
    expect(body.initiator).toEqual({ type: 'manual' });
    expect(body.request_id).toBe('5157d4ec-77f4-36b1-b461-db40bf86423c'); // Java's nameUUIDFromBytes of the dedup key
    const rp = body.run_params;
    expect(rp.icdc_table).toEqual({ type: 'STRING', value: 'icdc.revenue__orders' });
    expect(rp.icdc_metadata_location).toEqual({ type: 'STRING', value: 's3://wh/icdc/revenue__orders/metadata/00003-a.metadata.json' });
    expect(rp.batch_id).toEqual({ type: 'STRING', value: '1234567890123456789' });
    expect(rp.instance_id).toEqual({ type: 'STRING', value: 'run-2026-11-02T10' });
    expect(rp.consumer).toEqual({ type: 'STRING', value: 'revenue' });
    expect(rp.subscription).toEqual({ type: 'STRING', value: 'orders-hourly' });
    expect(rp.from_snapshot_id).toEqual({ type: 'STRING', value: '3051729675574597004' });
    expect(rp.to_snapshot_id).toEqual({ type: 'STRING', value: '8744736658442914487' });
    expect(rp.record_count).toEqual({ type: 'LONG', value: 1500 });
    expect(rp.file_count).toEqual({ type: 'LONG', value: 3 });
    expect(rp.changed_partitions).toEqual({ type: 'STRING_ARRAY', value: ['event_day=2026-11-01', 'event_day=2026-11-02'] });
    expect(rp.change_ranges).toEqual({
      type: 'MAP',
      value: {
        event_day: { type: 'MAP', value: { min: { type: 'STRING', value: '2026-11-01' }, max: { type: 'STRING', value: '2026-11-02' }, flag: { type: 'STRING', value: 'exact' } } },
        amount: { type: 'MAP', value: { min: { type: 'STRING', value: '1.5' }, max: { type: 'STRING', value: '99' }, flag: { type: 'STRING', value: 'conservative' } } },
        note: { type: 'MAP', value: { min: { type: 'STRING', value: '' }, max: { type: 'STRING', value: '' }, flag: { type: 'STRING', value: 'unbounded' } } },
      },
    });
    expect(rp.icdc_tables).toBeUndefined(); // single table

    const r2 = await sink.deliver(payload());
    expect(r2.outcome).toBe('duplicate');
    expect(r2.status).toBe(200);
    expect(recv.uuids.get('revenue.orders-hourly')!.size).toBe(1);
  });

  it('several tables: STRING_MAPs keyed by source table; counts beyond 2^53 go as STRING', async () => {
    const base = payload().tables[0]!;
    const p = payload({
      dedupKey: 'ips:multi:batch:2',
      tables: [
        { ...base, recordCount: '9007199254740993' },
        { ...base, table: 'customers', icdcTable: 'icdc.revenue__customers', icdcMetadataLocation: 's3://wh/icdc/revenue__customers/metadata/1.json', fromSnapshotId: null, ranges: { id: { min: { a: 1 }, max: [1, 2], flag: 'conservative' } }, changedPartitions: ['event_day=2026-11-02', 'region=eu'] },
      ],
      ranges: { ...RANGES, id: { min: { a: 1 }, max: [1, 2], flag: 'conservative' } },
    });
    const r = await sinkFor({ workflow_id: 'multi_wf' }).deliver(p);
    expect(r.outcome).toBe('started');
    const rp = (JSON.parse(srv.requests.at(-1)!.body.toString('utf8')) as { run_params: Record<string, { type: string; value: unknown }> }).run_params;
    expect(rp.icdc_table).toEqual({ type: 'STRING', value: 'icdc.revenue__orders' });
    expect(rp.icdc_tables).toEqual({ type: 'STRING_MAP', value: { orders: 'icdc.revenue__orders', customers: 'icdc.revenue__customers' } });
    expect(rp.icdc_metadata_locations).toEqual({ type: 'STRING_MAP', value: { orders: base.icdcMetadataLocation, customers: 's3://wh/icdc/revenue__customers/metadata/1.json' } });
    expect(rp.record_count).toEqual({ type: 'STRING', value: '9007199254742493' }); // 9007199254740993 + 1500
    expect(rp.file_count).toEqual({ type: 'LONG', value: 6 });
    expect(rp.changed_partitions!.value).toEqual(expect.arrayContaining(['event_day=2026-11-01', 'event_day=2026-11-02', 'region=eu']));
    expect((rp.changed_partitions!.value as string[]).length).toBe(3);
    const id = (rp.change_ranges!.value as Record<string, { value: Record<string, { value: string }> }>).id!;
    expect(JSON.parse(id.value.min!.value)).toEqual({ a: 1 });
    expect(JSON.parse(id.value.max!.value)).toEqual([1, 2]);
    expect(Object.keys(rp).length).toBeLessThanOrEqual(128);
  });

  it('the Maestro-like receiver really rejects invalid ParamDefinitions', () => {
    // guards the receiver: the assertions above would pass vacuously if it accepted anything
    expect(paramProblem('x', { type: 'LONG', value: '12' })).not.toBeNull();
    expect(paramProblem('x', { type: 'STRING_MAP', value: { a: 1 } })).not.toBeNull();
    expect(paramProblem('x', { type: 'MAP', value: { a: { type: 'STRING' } } })).not.toBeNull();
    expect(paramProblem('x', { type: 'STRING', value: 'a', expression: 'b' })).not.toBeNull();
    expect(paramProblem('x', { type: 'MAP', value: { a: { type: 'STRING', value: 'b' } } })).toBeNull();
  });

  it('an exact version and path segments are URL-encoded', async () => {
    recv.uuids.set('wf_v', new Set());
    await sinkFor({ workflow_id: 'wf_v', version: '12' }).deliver(payload({ dedupKey: 'v12' }));
    expect(srv.requests.at(-1)!.url).toBe('/api/v3/workflows/wf_v/versions/12/actions/start');
  });

  it('STOPPED is not retryable and says what to do; INTERNAL_ERROR is retryable', async () => {
    recv.forceStatus = 'STOPPED';
    try {
      const e = await rejection(sinkFor().deliver(payload({ dedupKey: 'stopped-1' })));
      expect(e).toMatchObject({ retryable: false, status: 200 });
      expect(e.message).toMatch(/STOPPED.*run strategy/);
      recv.forceStatus = 'INTERNAL_ERROR';
      const e2 = await rejection(sinkFor().deliver(payload({ dedupKey: 'internal-1' })));
      expect(e2.retryable).toBe(true);
    } finally {
      recv.forceStatus = null;
    }
  });

  it('errors say what to fix: unknown workflow (404), inactive (404 for versions/active), bad token (401); none leak the token', async () => {
    const e404 = await rejection(sinkFor({ workflow_id: 'no_such_wf' }).deliver(payload()));
    expect(e404).toMatchObject({ retryable: false, status: 404 });
    expect(e404.message).toMatch(/no_such_wf/);
    expect(e404.message).toMatch(/workflow_id/);
    // Maestro answers 404 "Cannot find an active version" for an inactive workflow (not 409).
    const inactive = await rejection(sinkFor({ workflow_id: 'old_wf' }).deliver(payload()));
    expect(inactive).toMatchObject({ retryable: false, status: 404 });
    expect(inactive.message).toMatch(/inactive/);
    expect(inactive.message).toContain('/api/v3/workflows/old_wf/versions/{version}/actions/activate');
    // The receiver starts an inactive workflow's exact version (Maestro does too).
    expect(await sinkFor({ workflow_id: 'old_wf', version: '1' }).deliver(payload({ dedupKey: 'old-v1' }))).toMatchObject({ outcome: 'started' });
    const e401 = await rejection(sinkFor({ token: 'wrong-token-abc123' }).deliver(payload()));
    expect(e401).toMatchObject({ retryable: false, status: 401 });
    expect(e401.message).toMatch(/token/);
    for (const e of [e404, inactive, e401]) {
      expect(e.message).not.toContain(TOKEN);
      expect(e.message).not.toContain('wrong-token-abc123');
    }
  });

  it('sends the caller "ips" in the user header when none is configured (Maestro answers 400 without one)', async () => {
    const open = maestroReceiver({ workflows: ['wf_user'] });
    const s2 = await serve(open.handler);
    const r = await createSink(parseSinkConfig({ type: 'maestro', url: s2.url, workflow_id: 'wf_user' })).deliver(payload({ dedupKey: 'user-default' }));
    expect(r.outcome).toBe('started');
    expect(s2.requests.at(-1)!.headers.user).toBe('ips');
    // a user given as a plain header is kept
    await createSink(parseSinkConfig({ type: 'maestro', url: s2.url, workflow_id: 'wf_user', headers: { User: 'etl-bot' } })).deliver(payload({ dedupKey: 'user-header' }));
    expect(s2.requests.at(-1)!.headers.user).toBe('etl-bot');
    // the receiver answers as Maestro does without the header
    const raw = await fetch(`${s2.url}/api/v3/workflows/wf_user/versions/active/actions/start`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(maestroStartRequest(payload({ dedupKey: 'user-none' }))),
    });
    expect(raw.status).toBe(400);
    expect(await raw.text()).toContain('the user name cannot be null');
  });

  it('sizes the params by Maestro\'s rule (750,000 characters of evaluated params): a batch under 512 KiB as sent but over it evaluated goes without partition lists', async () => {
    // ~470 KB of partition names as sent: under the old 512 KiB budget, about 950,000 characters
    // once Maestro holds each one as value and evaluated_result.
    const parts = Array.from({ length: 9000 }, (_, i) => `event_day=2026-11-01/bucket=${String(i).padStart(5, '0')}/region=eu-west-${i % 7}`);
    const base = payload().tables[0]!;
    const p = payload({ dedupKey: 'big-partitions', tables: [{ ...base, changedPartitions: parts }] });
    const full = { ...maestroRunParams(payload({ dedupKey: 'x', tables: [base] })), changed_partitions: { type: 'STRING_ARRAY', value: parts } } as Record<string, MaestroParam>;
    expect(JSON.stringify(full).length).toBeLessThan(512 * 1024);
    expect(maestroEvaluatedParamsJson(full).length).toBeGreaterThan(MAESTRO_PARAMS_SIZE_LIMIT);
    const r = await sinkFor({ workflow_id: 'multi_wf' }).deliver(p);
    expect(r.outcome).toBe('started');
    const rp = (JSON.parse(srv.requests.at(-1)!.body.toString('utf8')) as { run_params: Record<string, MaestroParam> }).run_params;
    expect(rp.changed_partitions).toBeUndefined();
    expect(rp.changed_partitions_truncated).toEqual({ type: 'BOOLEAN', value: true });
    // A batch that fits keeps its lists, and ips's estimate is never below what Maestro measures.
    const fits = Array.from({ length: 2000 }, (_, i) => `event_day=2026-11-01/bucket=${String(i).padStart(5, '0')}`);
    const small = maestroRunParams(payload({ dedupKey: 'fits', tables: [{ ...base, changedPartitions: fits }] }));
    expect(small.changed_partitions).toEqual({ type: 'STRING_ARRAY', value: fits });
    for (const params of [small, full]) expect(maestroEvaluatedSize(params)).toBeGreaterThanOrEqual(maestroEvaluatedParamsJson(params).length);
  });

  it('5xx and 429 are retryable; 422 is not', async () => {
    const flaky = await serve((req, res) => {
      const status = req.headers['x-want'] ? Number(req.headers['x-want']) : 500;
      send(res, status, { status, message: 'x' });
    });
    for (const [status, retryable] of [[500, true], [503, true], [429, true], [422, false], [400, false]] as const) {
      const sink = createSink(parseSinkConfig({ type: 'maestro', url: flaky.url, workflow_id: 'wf', headers: { 'X-Want': String(status) } }));
      const e = await rejection(sink.deliver(payload()));
      expect(e).toMatchObject({ retryable, status });
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('airflow sink', () => {
  it('v2 (Airflow 3): dag_run_id + logical_date null + conf; a redelivery is a duplicate (409 confirmed by GET)', async () => {
    const recv = airflowReceiver({ api: 'v2', dags: ['orders_incremental'], bearer: 'af3-token-qwe' });
    const srv = await serve(recv.handler);
    const sink = createSink(parseSinkConfig({ type: 'airflow', url: srv.url, dag_id: 'orders_incremental', token: 'af3-token-qwe' }));
    const p = payload();
    const r1 = await sink.deliver(p);
    expect(r1).toMatchObject({ outcome: 'started', status: 200, runId: airflowRunId(p) });
    const req = srv.requests.at(-1)!;
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/api/v2/dags/orders_incremental/dagRuns');
    expect(req.headers.authorization).toBe('Bearer af3-token-qwe');
    const body = JSON.parse(req.body.toString('utf8')) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(['conf', 'dag_run_id', 'logical_date']);
    expect(body.logical_date).toBeNull();
    expect(body.dag_run_id).toBe(airflowRunId(p));
    expect(body.conf).toMatchObject({ batch_id: '1234567890123456789', instance_id: 'run-2026-11-02T10', dedup_key: p.dedupKey, tables: [{ table: 'orders', icdc_table: 'icdc.revenue__orders' }] });

    const r2 = await sink.deliver(p);
    expect(r2).toMatchObject({ outcome: 'duplicate', status: 409, runId: airflowRunId(p) });
    expect(recv.runs.get('orders_incremental')!.size).toBe(1);
    expect(srv.requests.at(-1)!.method).toBe('GET');
    expect(srv.requests.at(-1)!.url).toBe(`/api/v2/dags/orders_incremental/dagRuns/${encodeURIComponent(airflowRunId(p))}`);
  });

  it('a backfill chunk goes through dagRuns like any trigger, its backfill block in conf (never /api/v2/backfills)', async () => {
    const recv = airflowReceiver({ api: 'v2', dags: ['orders_incremental'] });
    const srv = await serve(recv.handler);
    const sink = createSink(parseSinkConfig({ type: 'airflow', url: srv.url, dag_id: 'orders_incremental' }));
    const range = { field: 'event_day', lower: '2026-11-02', upper: '2026-11-03', min: '2026-11-02', max: '2026-11-02', predicate: "event_day >= '2026-11-02' and event_day < '2026-11-03'" };
    const p = payload({ backfill: { name: 'nov_fix', chunk: 1, chunks: 4, range } });
    expect(await sink.deliver(p)).toMatchObject({ outcome: 'started', status: 200, runId: airflowRunId(p) });
    expect(srv.requests.map((r) => `${r.method} ${r.url}`)).toEqual(['POST /api/v2/dags/orders_incremental/dagRuns']);
    const body = JSON.parse(srv.requests.at(-1)!.body.toString('utf8')) as { conf: Record<string, unknown>; dag_run_id: string };
    expect(body.conf.backfill).toEqual({ name: 'nov_fix', chunk: 1, chunks: 4, range });
    expect(body.dag_run_id).not.toMatch(/^backfill__/); // Airflow's own backfill runs have that prefix
  });

  it('the Airflow 3-like receiver rejects a body without logical_date or with extra keys (422)', async () => {
    const srv = await serve(airflowReceiver({ api: 'v2', dags: ['d'] }).handler);
    const post = (b: unknown) => fetch(`${srv.url}/api/v2/dags/d/dagRuns`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) });
    expect((await post({ dag_run_id: 'x', conf: {} })).status).toBe(422);
    expect((await post({ dag_run_id: 'x', logical_date: null, conf: {}, execution_date: null })).status).toBe(422);
    expect((await post({ dag_run_id: 'x', logical_date: null, conf: {} })).status).toBe(200);
    // and v1 bodies sent to an Airflow 3 server fail as not retryable, with the api hint
    const e = await rejection(createSink(parseSinkConfig({ type: 'airflow', url: srv.url, dag_id: 'd', api: 'v1' })).deliver(payload()));
    expect(e).toMatchObject({ retryable: false, status: 404 });
    expect(e.message).toMatch(/api/);
  });

  it('v1 (Airflow 2): basic auth, no logical_date key; 409 is a duplicate', async () => {
    const recv = airflowReceiver({ api: 'v1', dags: ['orders_incremental'], basic: { username: 'ips', password: 'af2-pass-zxc' } });
    const srv = await serve(recv.handler);
    // through storage: the password survives sinkConfigToJson → JSON → sinkConfigFromJson
    const stored = JSON.stringify(sinkConfigToJson(parseSinkConfig({ type: 'airflow', url: srv.url, dag_id: 'orders_incremental', api: 'v1', username: 'ips', password: 'af2-pass-zxc' })));
    const sink = createSink(sinkConfigFromJson(stored));
    expect(await sink.deliver(payload())).toMatchObject({ outcome: 'started' });
    const req = srv.requests.at(-1)!;
    expect(req.url).toBe('/api/v1/dags/orders_incremental/dagRuns');
    expect(req.headers.authorization).toBe(`Basic ${Buffer.from('ips:af2-pass-zxc').toString('base64')}`);
    const body = JSON.parse(req.body.toString('utf8')) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(['conf', 'dag_run_id']);
    expect(await sink.deliver(payload())).toMatchObject({ outcome: 'duplicate', status: 409 });
  });

  it('v2 with username/password gets a JWT from /auth/token and renews it on 401', async () => {
    const recv = airflowReceiver({ api: 'v2', dags: ['d'], jwtFor: { username: 'ips', password: 'af3-pw-jwt' } });
    const srv = await serve(recv.handler);
    const sink = createSink(parseSinkConfig({ type: 'airflow', url: srv.url, dag_id: 'd', username: 'ips', password: 'af3-pw-jwt' }));
    expect(await sink.deliver(payload({ dedupKey: 'jwt-1' }))).toMatchObject({ outcome: 'started' });
    expect(await sink.deliver(payload({ dedupKey: 'jwt-2' }))).toMatchObject({ outcome: 'started' });
    expect(recv.tokensIssued).toBe(1); // reused
    recv.expireTokens();
    expect(await sink.deliver(payload({ dedupKey: 'jwt-3' }))).toMatchObject({ outcome: 'started' });
    expect(recv.tokensIssued).toBe(2);
    const tokenReq = srv.requests.find((r) => r.url === '/auth/token')!;
    expect(JSON.parse(tokenReq.body.toString('utf8'))).toEqual({ username: 'ips', password: 'af3-pw-jwt' });

    const bad = createSink(parseSinkConfig({ type: 'airflow', url: srv.url, dag_id: 'd', username: 'ips', password: 'wrong-pw-9z9' }));
    const e = await rejection(bad.deliver(payload({ dedupKey: 'jwt-4' })));
    expect(e).toMatchObject({ retryable: false, status: 401 });
    expect(e.message).not.toContain('wrong-pw-9z9');
  });

  it('v2 renews the JWT once on 403: Airflow 3 answers 403 for a JWT signed with another jwt_secret (api-server restarted)', async () => {
    const recv = airflowReceiver({ api: 'v2', dags: ['d'], jwtFor: { username: 'ips', password: 'af3-pw-403' } });
    const srv = await serve(recv.handler);
    const sink = createSink(parseSinkConfig({ type: 'airflow', url: srv.url, dag_id: 'd', username: 'ips', password: 'af3-pw-403' }));
    expect(await sink.deliver(payload({ dedupKey: 'rot-1' }))).toMatchObject({ outcome: 'started' });
    recv.rotateJwtSecret();
    // the receiver answers as Airflow 3 does for the old token
    const stale = srv.requests.at(-1)!.headers.authorization!;
    const raw = await fetch(`${srv.url}/api/v2/dags/d/dagRuns/x`, { headers: { authorization: stale } });
    expect(raw.status).toBe(403);
    expect(await raw.json()).toEqual({ detail: 'Invalid JWT token' });
    expect(await sink.deliver(payload({ dedupKey: 'rot-2' }))).toMatchObject({ outcome: 'started' });
    expect(await sink.deliver(payload({ dedupKey: 'rot-3' }))).toMatchObject({ outcome: 'started' });
    expect(recv.tokensIssued).toBe(2);
    expect(recv.runs.get('d')!.size).toBe(3);
  });

  it('v2: a 403 that a fresh JWT does not cure (no permission) fails after one renewal, saying so', async () => {
    let tokens = 0;
    const srv = await serve((req, res) => {
      if (req.url === '/auth/token') return send(res, 201, { access_token: `jwt-${++tokens}` });
      return send(res, 403, { detail: 'Forbidden' });
    });
    const sink = createSink(parseSinkConfig({ type: 'airflow', url: srv.url, dag_id: 'd', username: 'ips', password: 'af3-pw-perm' }));
    const e = await rejection(sink.deliver(payload()));
    expect(e).toMatchObject({ retryable: false, status: 403 });
    expect(e.message).toMatch(/permission/);
    expect(e.message).toMatch(/jwt_secret/);
    expect(tokens).toBe(2);
    expect(srv.requests.filter((r) => r.url.includes('/dagRuns')).length).toBe(2);
  });

  it('v2 with a static token: a 401 says an Airflow 3 token expires and steers to username/password', async () => {
    const recv = airflowReceiver({ api: 'v2', dags: ['d'], jwtFor: { username: 'ips', password: 'af3-pw-static' } });
    const srv = await serve(recv.handler);
    const tok = ((await (await fetch(`${srv.url}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'ips', password: 'af3-pw-static' }) })).json()) as { access_token: string }).access_token;
    const sink = createSink(parseSinkConfig({ type: 'airflow', url: srv.url, dag_id: 'd', token: tok }));
    expect(await sink.deliver(payload({ dedupKey: 'static-1' }))).toMatchObject({ outcome: 'started' });
    recv.expireTokens();
    const e = await rejection(sink.deliver(payload({ dedupKey: 'static-2' })));
    expect(e).toMatchObject({ retryable: false, status: 401 });
    expect(e.message).toMatch(/expires/);
    expect(e.message).toMatch(/"username"\/"password"/);
    expect(e.message).not.toContain(tok);
  });

  it('a 409 without the run (another unique key clashed) is retryable', async () => {
    const recv = airflowReceiver({ api: 'v1', dags: ['d'] });
    recv.clashAlways = true;
    const srv = await serve(recv.handler);
    const e = await rejection(createSink(parseSinkConfig({ type: 'airflow', url: srv.url, dag_id: 'd', api: 'v1' })).deliver(payload()));
    expect(e).toMatchObject({ retryable: true, status: 409 });
    expect(e.message).toMatch(/logical date/);
  });

  it('classifies 400/401/403/404/422 as not retryable and 500/429 as retryable, without leaking credentials', async () => {
    // echoes the request headers back, like a careless proxy
    const srv = await serve((req, res) => send(res, Number(/\/dags\/s(\d+)\//.exec(req.url)?.[1] ?? 500), { detail: 'nope', echo: req.headers }));
    const expectations: Array<[number, boolean]> = [[400, false], [401, false], [403, false], [404, false], [422, false], [500, true], [429, true]];
    for (const [status, retryable] of expectations) {
      for (const auth of [{ token: 'af-token-leak-1' }, { api: 'v1', username: 'u', password: 'af-pass-leak-2' }]) {
        const sink = createSink(parseSinkConfig({ type: 'airflow', url: srv.url, dag_id: `s${status}`, ...auth }));
        const e = await rejection(sink.deliver(payload()));
        expect(e).toMatchObject({ retryable, status });
        expect(e.message).not.toContain('af-token-leak-1');
        expect(e.message).not.toContain('af-pass-leak-2');
        expect(e.message).not.toContain(Buffer.from('u:af-pass-leak-2').toString('base64'));
        if (!retryable) expect(e.message).toMatch(/dag_id|credentials|permission|Params|api/);
      }
    }
  });
});

describe('webhook errors never echo secrets', () => {
  it('scrubs the secret and header values from a body that echoes the request', async () => {
    const srv = await serve((req, res) => send(res, 400, { echo: req.headers, body: req.body.toString('utf8') }));
    const sink = createSink(parseSinkConfig({ type: 'webhook', url: srv.url, secret: 'whsec-echo-1', headers: { 'X-Api-Key': 'hdr-echo-secret-2' } }));
    const e = await rejection(sink.deliver(payload()));
    expect(e.retryable).toBe(false);
    expect(e.message).toContain('400');
    expect(e.message).not.toContain('hdr-echo-secret-2');
    expect(e.message).not.toContain('whsec-echo-1');
    expect(String(e)).not.toContain('hdr-echo-secret-2');
  });
});
