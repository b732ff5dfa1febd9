// The README's configuration and replica examples, run for real on the test PostgreSQL: `ips
// serve` with the README's ips.yaml (and the environment over it), the documented refusal of a
// bad value and of a misspelled key, and two replicas started with the README's commands that
// share the work: both serve, and a subscription starts one run for one batch.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { REPO_ROOT } from '../setup/env.js';
import { webhookReceiver, startServer } from '../sinks/receivers.js';
import { createPgDatabase } from '../state/helpers.js';
import { bash, example, ipsOnPath, startServeScript, substitute, waitFor, type Served } from './helpers.js';

describe('README: configuration and replicas', () => {
  let tmp: string;
  let bin: string;
  const drops: (() => Promise<void>)[] = [];
  const servers: Served[] = [];

  /** A clean environment: nothing of this process's IPS_* or DATABASE_URL leaks into the examples. */
  function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    const e: NodeJS.ProcessEnv = { ...process.env };
    for (const k of Object.keys(e)) if (k.startsWith('IPS_') || k === 'DATABASE_URL') delete e[k];
    return { ...e, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}`, ...extra };
  }

  beforeAll(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-docs-config-'));
    bin = ipsOnPath(tmp);
  });

  afterAll(async () => {
    for (const s of servers) await s.stop();
    for (const d of drops) await d();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test('ips serve starts with the README ips.yaml (the environment over it) and refuses a bad value and a misspelled key as documented', async () => {
    const db = await createPgDatabase('docs_config');
    drops.push(db.drop);
    const yaml = example('ips.yaml');
    const file = path.join(tmp, 'ips.yaml');
    writeFileSync(file, yaml);
    const fileToken = /admin_tokens:\s*\n\s*-\s*(\S+)/.exec(yaml)![1]!;

    // The file's database and warehouse are overridden from the environment, which wins over the
    // file as documented; host, admin tokens, sink hosts and log level come from the file.
    const server = await startServeScript(example('serve-config'), env({
      DATABASE_URL: db.url, IPS_PORT: '0', IPS_WAREHOUSE: path.join(tmp, 'warehouse'), IPS_DATA_DIR: path.join(tmp, 'data'),
    }), tmp);
    servers.push(server);
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    expect((await fetch(`${server.url}/v1/tables`)).status).toBe(401);
    expect((await fetch(`${server.url}/v1/tables`, { headers: { authorization: `Bearer ${fileToken}` } })).status).toBe(200);
    await server.stop();

    const [command, message] = example('config-error').trimEnd().split('\n');
    const cmd = command!.replace(/^\$ /, '').replace(/\s+#.*$/, '');
    const bad = /# with (\w+): (\S+)/.exec(command!)!;
    writeFileSync(file, yaml.replace(new RegExp(`^${bad[1]}: .*$`, 'm'), `${bad[1]}: ${bad[2]}`));
    const refused = bash(cmd, { cwd: tmp, env: env() });
    expect(refused.status).toBe(1);
    expect(refused.stderr.trim()).toBe(message);

    const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const typo = /a misspelled key is reported as `([^`]+)`/.exec(readme)!;
    const key = /: (\w+): unknown setting/.exec(typo[1]!)![1]!; // "prot" for port
    writeFileSync(file, yaml.replace(/^port:/m, `${key}:`));
    const misspelled = bash(cmd, { cwd: tmp, env: env() });
    expect(misspelled.status).toBe(1);
    expect(misspelled.stderr).toMatch(/^error \[INVALID_CONFIG\]: invalid configuration: /);
    expect(misspelled.stderr).toContain(typo[1]!);
  });

  test('two replicas started with the README commands on one PostgreSQL both serve, and a subscription starts one run for one batch', async () => {
    const db = await createPgDatabase('docs_replicas');
    drops.push(db.drop);
    const token = 'replica-admin-token-0123456789abcdef';
    const secret = path.join(tmp, 'ips_admin_token');
    writeFileSync(secret, `${token}\n`);
    const script = substitute(example('replica'), [
      ['postgres://ips:secret@db.internal:5432/ips', db.url],
      ['/run/secrets/ips_admin_token', secret],
    ]);
    // Both on this machine: a free port each (IPS_PORT, under the README's flags), a fast trigger loop.
    const replicaEnv = env({ IPS_PORT: '0', IPS_TICK_MS: '200' });
    const [a, b] = await Promise.all([startServeScript(script, replicaEnv, tmp), startServeScript(script, replicaEnv, tmp)]);
    servers.push(a!, b!);
    expect(a!.url).not.toBe(b!.url);
    for (const r of [a!, b!]) expect((await fetch(`${r.url}/readyz`)).status).toBe(200);

    const table = path.join(tmp, 'playback');
    cpSync(path.join(REPO_ROOT, 'fixtures', 'tables', 'playback'), table, { recursive: true });
    const ips = (url: string, args: string) => {
      const r = bash(`ips ${args}`, { cwd: tmp, env: env({ IPS_URL: url, IPS_TOKEN: token }) });
      expect(r.status, `ips ${args}: ${r.stderr}`).toBe(0);
      return r.stdout;
    };
    // The workflow: a webhook receiver that commits each batch it is sent, through replica A.
    const hook = webhookReceiver('replica-hook-secret');
    const receiver = await startServer(async (req, res) => {
      await hook.handler(req, res);
      const ev = hook.events.at(-1) as { data: { batch_id: string } } | undefined;
      if (res.statusCode === 202 && ev) await fetch(`${a!.url}/v1/batches/${ev.data.batch_id}/commit`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    });
    try {
      ips(a!.url, `tables register playback ${table}`);
      ips(b!.url, 'consumers create replicated --table playback');
      writeFileSync(path.join(tmp, 'hook.json'), JSON.stringify({ type: 'webhook', url: `${receiver.url}/hook`, secret: 'replica-hook-secret' }));
      ips(b!.url, 'subscriptions create replicated-run --consumer replicated --table playback --sink @hook.json');
      // Either replica may fire; both see the consumer reach the head.
      for (const r of [b!, a!]) {
        await waitFor(`the consumer at the head, seen through ${r.url}`, () => {
          const t = JSON.parse(ips(r.url, 'tables get playback --json')) as { consumers: { lag: { files: string } }[] };
          return t.consumers[0]!.lag.files === '0' ? true : undefined;
        }, 90_000);
      }
      const triggers = JSON.parse(ips(a!.url, 'subscriptions triggers replicated-run --json')) as { triggers: { state: string; batch_id: string }[] };
      expect(triggers.triggers).toHaveLength(1);
      expect(triggers.triggers[0]!.state).toBe('delivered');
      expect(hook.events).toHaveLength(1);
      expect((hook.events[0] as { data: { batch_id: string } }).data.batch_id).toBe(triggers.triggers[0]!.batch_id);
      const batch = JSON.parse(ips(b!.url, `step get ${triggers.triggers[0]!.batch_id} --json`)) as { state: string };
      expect(batch.state).toBe('committed');
    } finally {
      await receiver.close();
    }
  });
});
