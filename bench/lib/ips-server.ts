// ips servers in child processes for the benchmarks (`node --import tsx bench/lib/http-step-server.ts`),
// with an admin-token JSON client.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { REPO_ROOT } from './common.js';
import { JsonChild } from './json-child.js';
import { processCpuSeconds } from './proc-cpu.js';
import type { DatabaseStats } from '../../src/state/database.js';

/**
 * `node --import tsx bench/lib/http-step-server.ts`: startServer(loadServiceConfig(env)) in its own
 * process; `ready` answers its url and database. Commands: see bench/lib/http-step-server.ts.
 */
export class IpsServerProcess extends JsonChild {
  constructor(name: string, env: NodeJS.ProcessEnv, nodeArgs: string[] = []) {
    super(name, process.execPath, [...nodeArgs, '--import', 'tsx', path.join(REPO_ROOT, 'bench', 'lib', 'http-step-server.ts')], {
      what: 'server', env, stderr: 'chunks',
    });
  }

  /** This process's CPU seconds (utime + stime from /proc). */
  cpuSeconds(): number {
    return processCpuSeconds(this.pid);
  }

  /** This process's CPU seconds as it reports them itself (`{"op":"cpu"}`: process.cpuUsage()). */
  async reportedCpuSeconds(): Promise<number> {
    return (await this.reportedUsage()).cpuSeconds;
  }

  /** reportedCpuSeconds and the state database's counts so far (statements, waits for an answer, transactions). */
  async reportedUsage(): Promise<{ cpuSeconds: number; db: DatabaseStats }> {
    const c = await this.request<{ user_us: number; system_us: number; db: DatabaseStats }>({ op: 'cpu' });
    return { cpuSeconds: (c.user_us + c.system_us) / 1e6, db: c.db };
  }
}

export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** An ips server started for a benchmark, with an admin-token JSON client. */
export class Ips {
  private constructor(readonly proc: IpsServerProcess, readonly url: string, readonly adminToken: string, readonly database: string) {}

  static async start(name: string, opts: { databaseUrl: string; warehouse: string; env?: Record<string, string>; nodeArgs?: string[] }): Promise<Ips> {
    const adminToken = randomBytes(24).toString('hex');
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const k of Object.keys(env)) if (k.startsWith('IPS_') || k === 'DATABASE_URL') delete env[k];
    Object.assign(env, {
      DATABASE_URL: opts.databaseUrl,
      IPS_WAREHOUSE: opts.warehouse,
      IPS_ADMIN_TOKEN: adminToken,
      IPS_HOST: '127.0.0.1',
      IPS_PORT: '0',
      IPS_LOG_LEVEL: 'silent',
      ...(opts.env ?? {}),
    });
    const proc = new IpsServerProcess(name, env, opts.nodeArgs);
    try {
      const hello = await proc.ready;
      return new Ips(proc, String(hello['url']), adminToken, String(hello['database']));
    } catch (e) {
      await proc.close().catch(() => {});
      throw e;
    }
  }

  async api<T = Record<string, unknown>>(method: string, p: string, body?: unknown): Promise<T> {
    const res = await fetch(this.url + p, {
      method,
      headers: { authorization: `Bearer ${this.adminToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    if (!res.ok) throw new ApiError(res.status, `${method} ${p}: ${res.status} ${text.slice(0, 500)}`);
    return JSON.parse(text) as T;
  }

  /** ips_trigger_events_total by event, from /metrics. */
  async triggerCounters(): Promise<Map<string, number>> {
    const res = await fetch(this.url + '/metrics', { headers: { authorization: `Bearer ${this.adminToken}` } });
    const text = await res.text();
    const out = new Map<string, number>();
    for (const m of text.matchAll(/^ips_trigger_events_total\{event="([^"]+)"\} (\S+)$/gm)) out.set(m[1]!, Number(m[2]));
    return out;
  }

  close(): Promise<void> {
    return this.proc.close();
  }
}
