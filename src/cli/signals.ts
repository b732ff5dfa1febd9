import { Command } from 'commander';
import { IpsError } from '../errors.js';
import { addClientOptions, enc, IpsClient, type ClientOptions } from './client.js';
import { printJson, runAction } from './common.js';

/** `ips signals send|list` (issue 18): custom signals that subscriptions can require. */

export interface SignalJson {
  id: string;
  name: string;
  params: Record<string, string>;
  sender: string;
  consumer: string | null;
  batch_id: string | null;
  created_at: string;
}

/** `k=v` (repeatable --param): the value may contain "=" and ","; the key may not. */
export function paramArg(v: string, acc: Record<string, string>): Record<string, string> {
  const i = v.indexOf('=');
  if (i <= 0) throw new IpsError('INVALID_ARGUMENT', `--param expects KEY=VALUE, got "${v}"`);
  return { ...acc, [v.slice(0, i)]: v.slice(i + 1) };
}

/**
 * `name` or `name:k=v[,k=v…]` (--signal on `ips step commit` and `ips subscriptions create`).
 * The server checks the name and keys (INVALID_SIGNAL_NAME / INVALID_SIGNAL_PARAMS).
 */
export function parseSignalSpec(spec: string): { name: string; params: Record<string, string> } {
  const colon = spec.indexOf(':');
  const name = colon < 0 ? spec : spec.slice(0, colon);
  const params: Record<string, string> = {};
  if (colon >= 0) {
    for (const kv of spec.slice(colon + 1).split(',')) {
      if (kv === '') continue;
      const i = kv.indexOf('=');
      if (i <= 0) throw new IpsError('INVALID_ARGUMENT', `--signal expects NAME or NAME:KEY=VALUE[,KEY=VALUE…], got "${spec}"`);
      params[kv.slice(0, i)] = kv.slice(i + 1);
    }
  }
  return { name, params };
}

function render(s: SignalJson): string {
  const params = Object.entries(s.params).map(([k, v]) => `${k}=${v}`).join(',');
  const from = s.batch_id ? `${s.sender} (consumer ${s.consumer}, batch ${s.batch_id})` : s.sender;
  return `${s.id}\t${s.created_at}\t${s.name}${params ? `:${params}` : ''}\tfrom ${from}\n`;
}

export function signalsCommand(): Command {
  const cmd = new Command('signals').description('custom signals: announce one (admin), list them; subscriptions can require them (--signal)');

  cmd.addCommand(addClientOptions(new Command('send')
    .description('send a signal with parameters (admin); subscriptions requiring it may fire')
    .argument('<name>', 'a safe identifier, e.g. upstream_done')
    .option('--param <key=value>', 'a parameter (repeatable), e.g. --param date=2026-11-02', paramArg, {} as Record<string, string>))
    .action(async (name: string, opts: ClientOptions & { param: Record<string, string> }) => {
      await runAction(opts.json, async () => {
        const s = await new IpsClient(opts).post<SignalJson>(`/v1/signals/${enc(name)}`, { params: opts.param });
        if (opts.json) printJson(s);
        else process.stdout.write(`sent signal ${s.name} (${s.id})\n`);
      });
    }));

  cmd.addCommand(addClientOptions(new Command('list')
    .description('signals, newest first, with their parameters, time and sender (a consumer token sees its own output signals and those its subscriptions require)')
    .option('--name <name>', 'only this signal')
    .option('--limit <n>', 'at most this many (default 100)'))
    .action(async (opts: ClientOptions & { name?: string; limit?: string }) => {
      await runAction(opts.json, async () => {
        const q = new URLSearchParams();
        if (opts.name !== undefined) q.set('name', opts.name);
        if (opts.limit !== undefined) q.set('limit', opts.limit);
        const r = await new IpsClient(opts).get<{ signals: SignalJson[] }>(`/v1/signals${q.size ? `?${q}` : ''}`);
        if (opts.json) printJson(r);
        else process.stdout.write(r.signals.map(render).join('') || 'no signals\n');
      });
    }), { isDefault: true });
  return cmd;
}
