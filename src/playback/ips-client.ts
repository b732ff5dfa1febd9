import { IpsError } from '../errors.js';

/**
 * The demo speaks to ips over its HTTP API, like any pipeline would (the service may be this
 * process's embedded one or a separate deployment). Problem+json errors become IpsErrors with
 * the service's code.
 */
export class IpsHttpClient {
  constructor(readonly baseUrl: string, private readonly token?: string) {}

  async call<T = Record<string, unknown>>(method: string, path: string, body?: unknown, opts: { allow?: number[] } = {}): Promise<T> {
    const res = await fetch(new URL(path, this.baseUrl), {
      method,
      headers: {
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    }).catch((e: unknown) => {
      throw new IpsError('IPS_UNREACHABLE', `cannot reach ips at ${this.baseUrl}: ${(e as Error).message}`, { cause: e });
    });
    const text = await res.text();
    const json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    if (!res.ok && !(opts.allow ?? []).includes(res.status)) {
      const code = typeof json['code'] === 'string' ? json['code'] : `HTTP_${res.status}`;
      const detail = typeof json['detail'] === 'string' ? json['detail'] : text;
      throw new IpsError(code, `ips ${method} ${path}: ${detail}`);
    }
    return json as T;
  }
}
