import fs from 'node:fs';
import { Command } from 'commander';
import { IpsError, describeError } from '../errors.js';
import { parsePolicy } from '../capture/policy.js';
import { addClientOptions, enc, IpsClient, positiveIntArg, type ClientOptions } from './client.js';
import { printJson, runAction } from './common.js';
import { parseSignalSpec } from './signals.js';

interface SubscriptionJson {
  name: string;
  consumer: string;
  tables: string[];
  condition: Record<string, unknown>;
  sink: Record<string, unknown>;
  enabled: boolean;
  fired: string;
  last_fired_at: string | null;
  pending_since: string | null;
  last_error: string | null;
  undelivered?: TriggerJson[];
}

interface TriggerJson {
  id: string;
  seq: string;
  /** Null for a trigger fired by signals or a quiet partition alone. */
  batch_id: string | null;
  state: string;
  attempts: number;
  outcome: string | null;
  last_error: string | null;
  next_attempt_at: string;
  delivered_at: string | null;
}

function renderSubscription(s: SubscriptionJson): string {
  const cond = Object.entries(s.condition).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(', ') || 'on any change';
  const out = [
    `${s.name}  ${s.enabled ? 'enabled' : 'disabled'}: consumer ${s.consumer} on ${s.tables.join(', ')} → ${String(s.sink['type'])} ${String(s.sink['url'] ?? '')}`,
    `  condition: ${cond}; fired ${s.fired} time(s)${s.last_fired_at ? `, last at ${s.last_fired_at}` : ''}${s.pending_since ? `; changes waiting since ${s.pending_since}` : ''}`,
  ];
  if (s.last_error) out.push(`  last error: ${s.last_error}`);
  for (const t of s.undelivered ?? []) out.push(`  trigger ${t.id} (#${t.seq}, ${t.batch_id === null ? 'no batch' : `batch ${t.batch_id}`}) ${t.state} after ${t.attempts} attempt(s)${t.last_error ? `: ${t.last_error}` : ''}`);
  return out.join('\n') + '\n';
}

/** `--sink '{"type":…}'` or `--sink @sink.json` (keeps secrets out of the process list). */
function sinkArg(v: string): unknown {
  const text = v.startsWith('@') ? readSinkFile(v.slice(1)) : v;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new IpsError('INVALID_ARGUMENT', `--sink must be JSON (or @file.json): ${describeError(e)}`);
  }
}

function readSinkFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new IpsError('INVALID_ARGUMENT', `cannot read the sink file ${file}: ${describeError(e)}`);
  }
}

interface CreateOptions extends ClientOptions {
  consumer: string;
  table: string[];
  sink: string;
  every?: string;
  minFiles?: string;
  minBytes?: string;
  minRecords?: string;
  maxDelay?: string;
  maxFiles?: string;
  maxBytes?: string;
  maxRecords?: string;
  maxAttempts?: string;
  maxInFlight?: string;
  range?: string;
  policy?: string;
  disabled?: boolean;
  all?: string;
  partition?: string;
  quiet?: string;
  signal: string[];
  fireOnSignals?: boolean;
}

export function subscriptionsCommand(): Command {
  const subs = new Command('subscriptions').description('subscriptions: when a consumer\'s tables change, prepare a batch and start its workflow (webhook, Maestro, Airflow)');

  subs.addCommand(addClientOptions(new Command('create')
    .description('create a subscription (admin)')
    .argument('<name>')
    .requiredOption('--consumer <name>', 'the consumer (already subscribed to the tables)')
    .requiredOption('--table <name>', 'source table (repeat for a multi-table subscription: one batch over all)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .requiredOption('--sink <json|@file>', 'sink config, e.g. \'{"type":"webhook","url":"https://…","secret":"…"}\' or @sink.json')
    .option('--every <seconds>', 'fire at most once per interval (micro-batches)', positiveIntArg('--every'))
    .option('--min-files <n>', 'wait until this many files changed', positiveIntArg('--min-files'))
    .option('--min-bytes <n>', 'wait until this many bytes changed', positiveIntArg('--min-bytes'))
    .option('--min-records <n>', 'wait until this many records changed', positiveIntArg('--min-records'))
    .option('--max-delay <seconds>', 'fire anyway once the oldest waiting change is this old', positiveIntArg('--max-delay'))
    .option('--max-files <n>', 'batch limit: files per batch', positiveIntArg('--max-files'))
    .option('--max-bytes <n>', 'batch limit: bytes per batch', positiveIntArg('--max-bytes'))
    .option('--max-records <n>', 'batch limit: records per batch', positiveIntArg('--max-records'))
    .option('--max-attempts <n>', 'deliveries before a trigger is dead-lettered (default 8)', positiveIntArg('--max-attempts'))
    .option('--max-in-flight <n>', 'batches (runs) that may be open at once (default 1: each waits for the previous commit)', positiveIntArg('--max-in-flight'))
    .option('--range <fields>', 'comma-separated fields its batches get change ranges for (set on the consumer)')
    .option('--policy <policy>', 'overwrite=include|added-only|fail,delete=include|skip|fail (set on the consumer)')
    .option('--all <tables>', 'an all-of group (comma-separated tables of the subscription): fire only when every one has changes')
    .option('--partition <field>', 'partition-complete: fire once per value of this time-transform partition field (e.g. ts_day) when every table of the group has data for it')
    .option('--quiet <seconds>', 'with --partition: fire a value anyway once no commit wrote it for this long', positiveIntArg('--quiet'))
    .option('--signal <name[:k=v,…]>', 'require a signal (repeatable), matched on these params, e.g. upstream_done:date=2026-11-02; each firing consumes one', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--fire-on-signals', 'with --signal: fire on the signals alone when the tables have no changes (that trigger has no batch)')
    .option('--disabled', 'create it disabled'))
    .action(async (name: string, opts: CreateOptions) => {
      await runAction(opts.json, async () => {
        const condition: Record<string, unknown> = {};
        if (opts.every) condition.interval_seconds = Number(opts.every);
        if (opts.minFiles) condition.min_files = Number(opts.minFiles);
        if (opts.minBytes) condition.min_bytes = opts.minBytes;
        if (opts.minRecords) condition.min_records = opts.minRecords;
        if (opts.maxDelay) condition.max_delay_seconds = Number(opts.maxDelay);
        if (opts.all) condition.all = opts.all.split(',').map((x) => x.trim()).filter(Boolean);
        if (opts.quiet && !opts.partition) throw new IpsError('INVALID_ARGUMENT', '--quiet goes with --partition FIELD');
        if (opts.partition) condition.partition = { field: opts.partition, ...(opts.quiet ? { quiet_seconds: Number(opts.quiet) } : {}) };
        if (opts.signal.length) condition.signals = opts.signal.map(parseSignalSpec);
        if (opts.fireOnSignals) condition.fire_on_signals = true;
        const limits: Record<string, unknown> = {};
        if (opts.maxFiles) limits.max_files = Number(opts.maxFiles);
        if (opts.maxBytes) limits.max_bytes = opts.maxBytes;
        if (opts.maxRecords) limits.max_records = opts.maxRecords;
        const body = {
          name, consumer: opts.consumer, tables: opts.table, sink: sinkArg(opts.sink),
          ...(Object.keys(condition).length ? { condition } : {}),
          ...(Object.keys(limits).length ? { limits } : {}),
          ...(opts.maxAttempts ? { max_attempts: Number(opts.maxAttempts) } : {}),
          ...(opts.maxInFlight ? { max_in_flight: Number(opts.maxInFlight) } : {}),
          ...(opts.disabled ? { enabled: false } : {}),
          ...(opts.range ? { range_fields: opts.range.split(',').map((x) => x.trim()).filter(Boolean) } : {}),
          ...(opts.policy ? { policy: parsePolicy(opts.policy) } : {}),
        };
        const s = await new IpsClient(opts).post<SubscriptionJson>('/v1/subscriptions', body);
        if (opts.json) printJson(s);
        else process.stdout.write(`created subscription ${s.name}\n` + renderSubscription(s));
      });
    }));

  subs.addCommand(addClientOptions(new Command('list').description('list subscriptions'))
    .action(async (opts: ClientOptions) => {
      await runAction(opts.json, async () => {
        const r = await new IpsClient(opts).get<{ subscriptions: SubscriptionJson[] }>('/v1/subscriptions');
        if (opts.json) printJson(r);
        else process.stdout.write(r.subscriptions.length ? r.subscriptions.map(renderSubscription).join('') : 'no subscriptions: see `ips subscriptions create --help`\n');
      });
    }), { isDefault: true });

  subs.addCommand(addClientOptions(new Command('get').description('a subscription and its undelivered triggers').argument('<name>'))
    .action(async (name: string, opts: ClientOptions) => {
      await runAction(opts.json, async () => {
        const s = await new IpsClient(opts).get<SubscriptionJson>(`/v1/subscriptions/${enc(name)}`);
        if (opts.json) printJson(s);
        else process.stdout.write(renderSubscription(s));
      });
    }));

  for (const action of ['enable', 'disable'] as const) {
    subs.addCommand(addClientOptions(new Command(action).description(`${action} a subscription (admin)`).argument('<name>'))
      .action(async (name: string, opts: ClientOptions) => {
        await runAction(opts.json, async () => {
          const s = await new IpsClient(opts).post<SubscriptionJson>(`/v1/subscriptions/${enc(name)}/${action}`);
          if (opts.json) printJson(s);
          else process.stdout.write(renderSubscription(s));
        });
      }));
  }

  subs.addCommand(addClientOptions(new Command('delete').description('delete a subscription (admin)').argument('<name>'))
    .action(async (name: string, opts: ClientOptions) => {
      await runAction(opts.json, async () => {
        const r = await new IpsClient(opts).request('DELETE', `/v1/subscriptions/${enc(name)}`);
        if (opts.json) printJson(r.body);
        else process.stdout.write(`deleted subscription ${name}\n`);
      });
    }));

  subs.addCommand(addClientOptions(new Command('triggers')
    .description('the triggers of a subscription, in order')
    .argument('<name>')
    .option('--state <state>', 'pending, delivered, dead or cancelled'))
    .action(async (name: string, opts: ClientOptions & { state?: string }) => {
      await runAction(opts.json, async () => {
        const q = opts.state ? `?state=${enc(opts.state)}` : '';
        const r = await new IpsClient(opts).get<{ triggers: TriggerJson[] }>(`/v1/subscriptions/${enc(name)}/triggers${q}`);
        if (opts.json) printJson(r);
        else {
          process.stdout.write(r.triggers.map((t) =>
            `${t.id}\t#${t.seq}\t${t.batch_id === null ? 'no batch' : `batch ${t.batch_id}`}\t${t.state}${t.outcome ? ` (${t.outcome})` : ''}\t${t.attempts} attempt(s)${t.last_error ? `\t${t.last_error}` : ''}\n`).join('') || 'no triggers\n');
        }
      });
    }));

  subs.addCommand(addClientOptions(new Command('partitions')
    .description('a partition-complete subscription: the values fired and those waiting, with the tables that have data for them')
    .argument('<name>'))
    .action(async (name: string, opts: ClientOptions) => {
      await runAction(opts.json, async () => {
        const r = await new IpsClient(opts).get<{ field: string | null; fired: { value: string; reason: string; trigger_id: string; fired_at: string }[]; waiting: { value: string; tables: string[]; last_commit_at: string }[] }>(
          `/v1/subscriptions/${enc(name)}/partitions`);
        if (opts.json) printJson(r);
        else if (r.field === null) process.stdout.write(`subscription ${name} has no partition condition\n`);
        else {
          process.stdout.write([
            ...r.fired.map((f) => `${r.field}=${f.value}\tfired (${f.reason}) by trigger ${f.trigger_id} at ${f.fired_at}\n`),
            ...r.waiting.map((w) => `${r.field}=${w.value}\twaiting: data in ${w.tables.join(', ')}, last commit ${w.last_commit_at}\n`),
          ].join('') || `no values of ${r.field} seen yet\n`);
        }
      });
    }));

  subs.addCommand(addClientOptions(new Command('retry').description('retry a dead trigger (admin)').argument('<trigger-id>'))
    .action(async (id: string, opts: ClientOptions) => {
      await runAction(opts.json, async () => {
        if (!/^\d{1,19}$/.test(id)) throw new IpsError('INVALID_ARGUMENT', `a trigger id is digits, got "${id}"`);
        const t = await new IpsClient(opts).post<TriggerJson>(`/v1/triggers/${id}/retry`);
        if (opts.json) printJson(t);
        else process.stdout.write(`trigger ${t.id} is ${t.state} again\n`);
      });
    }));
  return subs;
}
