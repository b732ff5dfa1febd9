import { Command, Option } from 'commander';
import { parsePolicy } from '../capture/policy.js';
import { addClientOptions, enc, IpsClient, positiveIntArg, startPositionArg, type ClientOptions } from './client.js';
import { printJson, runAction } from './common.js';

interface ConsumerJson {
  name: string;
  state: string;
  state_reason: string | null;
  policy: { overwrite: string; delete: string };
  lease_seconds: number;
  mode?: string;
  tables?: { table: string; snapshot_id: string | null; partial_snapshot_id: string | null; processed_files: string[]; version: string; range_fields: string[] }[];
  open_batches?: { id: string; instance_id: string; lease_expires_at: string; backfill?: string }[];
  outputs?: string[];
  token?: { token: string; prefix: string };
}

function renderConsumer(c: ConsumerJson): string {
  const out = [`${c.name}  ${c.state}${c.state_reason ? `: ${c.state_reason}` : ''}`,
    `  policy overwrite=${c.policy.overwrite},delete=${c.policy.delete}; batch lease ${c.lease_seconds} s${c.mode === 'rows' ? '; mode rows (each batch writes a changelog table)' : ''}`];
  for (const t of c.tables ?? []) {
    const partial = t.partial_snapshot_id ? `, and ${t.processed_files.length} files of ${t.partial_snapshot_id}` : '';
    out.push(`  ${t.table}: processed up to ${t.snapshot_id ?? 'nothing yet'}${partial} (watermark version ${t.version})${t.range_fields.length ? `; ranges of ${t.range_fields.join(', ')}` : ''}`);
  }
  if (c.outputs?.length) out.push(`  writes ${c.outputs.join(', ')}`);
  for (const b of c.open_batches ?? []) out.push(`  open batch ${b.id} (instance ${b.instance_id})${b.backfill ? ` of backfill ${b.backfill}` : ''} until ${b.lease_expires_at}`);
  if (c.token) out.push(`  token (shown once; store it now): ${c.token.token}`);
  return out.join('\n') + '\n';
}

function list(v: string): string[] {
  return v.split(',').map((s) => s.trim()).filter(Boolean);
}

interface CreateOptions extends ClientOptions {
  table: string[];
  from: string;
  range?: string;
  policy?: string;
  leaseSeconds?: string;
  mode?: string;
  description?: string;
  issueToken?: boolean;
  output: string[];
}

export function consumersCommand(): Command {
  const consumers = new Command('consumers').description('consumers: their subscriptions, watermarks, resets and tokens');

  consumers.addCommand(addClientOptions(new Command('list').description('list consumers (admin)'))
    .action(async (opts: ClientOptions) => {
      await runAction(opts.json, async () => {
        const r = await new IpsClient(opts).get<{ consumers: ConsumerJson[] }>('/v1/consumers');
        if (opts.json) printJson(r);
        else process.stdout.write(r.consumers.length ? r.consumers.map((c) => `${c.name}\t${c.state}${c.state_reason ? `\t${c.state_reason}` : ''}\n`).join('') : 'no consumers: see `ips consumers create --help`\n');
      });
    }), { isDefault: true });

  consumers.addCommand(addClientOptions(new Command('get').description('a consumer: state, watermark per table, open batches').argument('<name>'))
    .action(async (name: string, opts: ClientOptions) => {
      await runAction(opts.json, async () => {
        const c = await new IpsClient(opts).get<ConsumerJson>(`/v1/consumers/${enc(name)}`);
        if (opts.json) printJson(c);
        else process.stdout.write(renderConsumer(c));
      });
    }));

  consumers.addCommand(addClientOptions(new Command('create')
    .description('create a consumer subscribed to one or more tables (admin)')
    .argument('<name>')
    .requiredOption('--table <names>', 'source table(s) to subscribe to (comma-separated or repeated)', (v: string, acc: string[]) => [...acc, ...list(v)], [] as string[])
    .option('--from <position>', '"start" (the whole history), "now" (only what comes next) or a snapshot id', 'start')
    .option('--range <fields>', 'comma-separated fields to get change ranges for')
    .option('--policy <policy>', 'overwrite=include|added-only|fail,delete=include|skip|fail')
    .option('--lease-seconds <n>', 'how long a prepared batch stays open', positiveIntArg('--lease-seconds'))
    .addOption(new Option('--mode <mode>', 'files (default): batches are ICDC table snapshots; rows: each batch also writes a changelog table of its rows').choices(['files', 'rows']))
    .option('--description <text>')
    .option('--issue-token', 'also issue a token for this consumer (printed once)')
    .option('--output <tables>', 'table(s) this consumer writes (lineage; comma-separated or repeated; registered tables)', (v: string, acc: string[]) => [...acc, ...list(v)], [] as string[]))
    .action(async (name: string, opts: CreateOptions) => {
      await runAction(opts.json, async () => {
        const from = startPositionArg(opts.from, '--from');
        const body: Record<string, unknown> = {
          name,
          tables: opts.table.map((table) => ({ table, from, ...(opts.range ? { range_fields: list(opts.range) } : {}) })),
        };
        if (opts.policy) body.policy = parsePolicy(opts.policy);
        if (opts.leaseSeconds) body.lease_seconds = Number(opts.leaseSeconds);
        if (opts.mode) body.mode = opts.mode;
        if (opts.description) body.description = opts.description;
        if (opts.issueToken) body.issue_token = true;
        if (opts.output.length) body.outputs = opts.output;
        const c = await new IpsClient(opts).post<ConsumerJson>('/v1/consumers', body);
        if (opts.json) printJson(c);
        else process.stdout.write(`created consumer ${c.name}\n` + renderConsumer(c));
      });
    }));

  consumers.addCommand(addClientOptions(new Command('reset')
    .description('move the watermark to "now", "start" or a snapshot id; aborts open batches and clears a stale state (admin)')
    .argument('<name>')
    .requiredOption('--to <position>', '"now", "start" or a snapshot id')
    .option('--table <name>', 'only this table (needed with a snapshot id when the consumer has several)'))
    .action(async (name: string, opts: ClientOptions & { to: string; table?: string }) => {
      await runAction(opts.json, async () => {
        const to = startPositionArg(opts.to, '--to');
        const c = await new IpsClient(opts).post<ConsumerJson>(`/v1/consumers/${enc(name)}/reset`, { to, ...(opts.table ? { table: opts.table } : {}) });
        if (opts.json) printJson(c);
        else process.stdout.write(`reset consumer ${c.name}\n` + renderConsumer(c));
      });
    }));

  consumers.addCommand(addClientOptions(new Command('subscribe')
    .description('subscribe a consumer to one more table (admin)')
    .argument('<name>')
    .requiredOption('--table <name>', 'source table')
    .option('--from <position>', '"start", "now" or a snapshot id', 'start')
    .option('--range <fields>', 'comma-separated fields to get change ranges for'))
    .action(async (name: string, opts: ClientOptions & { table: string; from: string; range?: string }) => {
      await runAction(opts.json, async () => {
        const body = { table: opts.table, from: startPositionArg(opts.from, '--from'), ...(opts.range ? { range_fields: list(opts.range) } : {}) };
        const c = await new IpsClient(opts).post<ConsumerJson>(`/v1/consumers/${enc(name)}/subscriptions`, body);
        if (opts.json) printJson(c);
        else process.stdout.write(renderConsumer(c));
      });
    }));

  consumers.addCommand(addClientOptions(new Command('outputs')
    .description('declare the tables a consumer writes (replaces the list; none clears it) (admin)')
    .argument('<name>')
    .option('--output <tables>', 'table(s) it writes (comma-separated or repeated)', (v: string, acc: string[]) => [...acc, ...list(v)], [] as string[]))
    .action(async (name: string, opts: ClientOptions & { output: string[] }) => {
      await runAction(opts.json, async () => {
        const r = await new IpsClient(opts).request<{ consumer: string; outputs: string[] }>('PUT', `/v1/consumers/${enc(name)}/outputs`, { outputs: opts.output });
        if (opts.json) printJson(r.body);
        else process.stdout.write(`${name} writes ${r.body.outputs.join(', ') || 'no declared table'}\n`);
      });
    }));

  consumers.addCommand(addClientOptions(new Command('token')
    .description('issue a token that acts for this consumer only (admin); printed once')
    .argument('<name>')
    .option('--description <text>'))
    .action(async (name: string, opts: ClientOptions & { description?: string }) => {
      await runAction(opts.json, async () => {
        const t = await new IpsClient(opts).post<{ id: string; token: string }>(`/v1/consumers/${enc(name)}/tokens`, opts.description ? { description: opts.description } : {});
        if (opts.json) printJson(t);
        else process.stdout.write(`${t.token}\n`);
      });
    }));
  return consumers;
}
