import { Command, Option } from 'commander';
import { IpsError, describeError } from '../errors.js';
import { DEFAULT_PORT } from '../service/defaults.js';

/**
 * The CLI's way to the service: `ips step`, `ips tables` and `ips consumers` are HTTP clients
 * of a running `ips serve` (IPS_URL, IPS_TOKEN), so a bash step in any orchestrator needs no
 * database credentials and goes through the same code paths as every other client.
 */
export interface ClientOptions {
  url: string;
  token?: string;
  json?: boolean;
}

export function addClientOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--url <url>', 'the ips service').env('IPS_URL').default(`http://127.0.0.1:${DEFAULT_PORT}`))
    .addOption(new Option('--token <token>', 'bearer token (admin, or the consumer\'s own)').env('IPS_TOKEN'))
    .option('--json', 'print JSON');
}

interface ProblemBody {
  code?: string;
  detail?: string;
  details?: Record<string, unknown>;
}

export class IpsClient {
  private readonly base: string;
  constructor(private readonly opts: ClientOptions) {
    this.base = opts.url.replace(/\/+$/, '');
  }

  async request<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(this.base + path, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause?.code;
      throw new IpsError('SERVICE_UNREACHABLE',
        `cannot reach ips at ${this.base}${cause ? ` (${cause})` : ''}: start it with \`ips serve\`, or point IPS_URL / --url at it`, { cause: e });
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? {} : JSON.parse(text);
    } catch (e) {
      throw new IpsError('BAD_RESPONSE', `ips at ${this.base} answered ${res.status} with a body that is not JSON: ${describeError(e)}`);
    }
    if (!res.ok) {
      const p = parsed as ProblemBody;
      throw new IpsError(p.code ?? `HTTP_${res.status}`, p.detail ?? `HTTP ${res.status}`, p.details ? { details: p.details } : undefined);
    }
    return { status: res.status, body: parsed as T };
  }

  async get<T = Record<string, unknown>>(path: string): Promise<T> {
    return (await this.request<T>('GET', path)).body;
  }

  async post<T = Record<string, unknown>>(path: string, body: unknown = {}): Promise<T> {
    return (await this.request<T>('POST', path, body)).body;
  }
}

export function enc(segment: string): string {
  return encodeURIComponent(segment);
}

/** Snapshot ids and "now"/"start" as the API takes them (ids stay strings: no rounding). */
export function startPositionArg(text: string, flag: string): string {
  if (text === 'now' || text === 'start' || /^\d{1,19}$/.test(text)) return text;
  throw new IpsError('INVALID_ARGUMENT', `${flag} expects "now", "start" or a snapshot id (digits), got "${text}"`);
}

export function positiveIntArg(flag: string): (v: string) => string {
  return (v: string) => {
    if (!/^[1-9]\d*$/.test(v)) throw new IpsError('INVALID_ARGUMENT', `${flag} expects a positive integer, got "${v}"`);
    return v;
  };
}
