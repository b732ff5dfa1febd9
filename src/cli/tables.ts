import { Command } from "commander";
import { addClientOptions, enc, IpsClient, positiveIntArg, type ClientOptions } from './client.js';
import { printJson, runAction } from './common.js';
import { fmtBytes } from './format.js';

interface LagJson {
  snapshots: number;
  files: string;
  files_added?: string;
  files_removed?: string;
  bytes: string;
  records: string;
  estimated: boolean;
}

interface TableJson {
  name: string;
  ref: Record<string, string>;
  branch: string;
  head?: { snapshot_id: string; sequence_number: string } | null;
  load_error?: { code: string; message: string } | null;
  oldest_needed?: { consumer: string; snapshot_id: string | null; full_history: boolean } | null;
  consumers?: { consumer: string; state: string; watermark: { snapshot_id: string | null; version: string }; lag: LagJson | null; lag_error: { code: string; message: string } | null }[];
}

function where(t: TableJson): string {
  return t.ref.location ?? `${t.ref.identifier} in ${t.ref.uri}`;
}

function renderTable(t: TableJson): string {
  const out = [`${t.name}  (${t.ref.kind}) ${where(t)}  branch ${t.branch}`];
  if (t.load_error) out.push(`  cannot load: [${t.load_error.code}] ${t.load_error.message}`);
  out.push(`  head: ${t.head ? `${t.head.snapshot_id} (seq ${t.head.sequence_number})` : 'no snapshots'}`);
  if (t.oldest_needed) {
    out.push(`  oldest needed: ${t.oldest_needed.full_history ? 'the whole history' : t.oldest_needed.snapshot_id} (consumer ${t.oldest_needed.consumer}): expire only snapshots before it`);
  }
  for (const c of t.consumers ?? []) {
    const lag = c.lag
      ? `${c.lag.snapshots} snapshots, ${c.lag.files_added ?? '?'} files added and ${c.lag.files_removed ?? '?'} removed (${fmtBytes(c.lag.bytes)}, ${BigInt(c.lag.records).toLocaleString('en-US')} records) behind${c.lag.estimated ? ' (estimated)' : ''}`
      : `lag unknown: [${c.lag_error?.code}] ${c.lag_error?.message}`;
    out.push(`  consumer ${c.consumer} (${c.state}) at ${c.watermark.snapshot_id ?? 'start'}: ${lag}`);
  }
  return out.join('\n') + '\n';
}

interface RegisterOptions extends ClientOptions {
  catalog?: string;
  catalogName?: string;
  catalogToken?: string;
  branch?: string;
  s3Endpoint?: string;
  s3Region?: string;
  s3PathStyle?: boolean;
  verify?: boolean;
  pollInterval?: string;
}

export function tablesCommand(): Command {
  const tables = new Command('tables').description('source tables registered with the service');

  tables.addCommand(addClientOptions(new Command("list").description("list source tables (admin)"))
    .action(async (opts: ClientOptions) => {
      await runAction(opts.json, async () => {
        const r = await new IpsClient(opts).get<{ tables: TableJson[] }>('/v1/tables');
        if (opts.json) printJson(r);
        else process.stdout.write(r.tables.length ? r.tables.map((t) => `${t.name}\t${t.ref.kind}\t${where(t)}\n`).join('') : 'no tables registered: see `ips tables register --help`\n');
      });
    }), { isDefault: true });

  tables.addCommand(addClientOptions(new Command('get')
    .description('a table: head, oldest snapshot still needed, each consumer\'s watermark and lag')
    .argument('<name>'))
    .action(async (name: string, opts: ClientOptions) => {
      await runAction(opts.json, async () => {
        const t = await new IpsClient(opts).get<TableJson>(`/v1/tables/${enc(name)}`);
        if (opts.json) printJson(t);
        else process.stdout.write(renderTable(t));
      });
    }));

  tables.addCommand(addClientOptions(new Command('register')
    .description('register a source table (admin); it is loaded once to check it can be reached')
    .argument('<name>', 'the name consumers use')
    .argument('<table>', 'metadata file, table directory, or ns.table with --catalog')
    .option('--catalog <uri>', 'postgresql://… (JDBC/SQL catalog) or http(s)://… (REST)')
    .option('--catalog-name <name>', 'catalog_name in the SQL catalog, or the REST warehouse')
    .option('--catalog-token <token>', 'bearer token for a REST catalog')
    .option('--branch <name>', 'branch to follow', 'main')
    .option('--s3-endpoint <url>', 'S3 endpoint of the table\'s storage, e.g. http://127.0.0.1:9000')
    .option('--s3-region <region>', 'S3 region')
    .option('--no-s3-path-style', 'virtual-hosted-style addressing')
    .option('--poll-interval <seconds>', 'how often its metadata pointer is polled for subscriptions (default 30)', positiveIntArg('--poll-interval'))
    .option('--no-verify', 'register without loading the table'))
    .action(async (name: string, ref: string, opts: RegisterOptions) => {
      await runAction(opts.json, async () => {
        const { parseTableRef } = await import('../catalog/load-table.js');
        const r = parseTableRef(ref, { catalogUri: opts.catalog, catalogName: opts.catalogName, catalogToken: opts.catalogToken });
        const body: Record<string, unknown> = {
          name,
          branch: opts.branch,
          verify: opts.verify !== false,
          ...(opts.pollInterval ? { poll_interval_seconds: Number(opts.pollInterval) } : {}),
          ref: r.kind === 'sql'
            ? { kind: 'sql', uri: r.uri, identifier: r.identifier, ...(r.catalogName ? { catalog_name: r.catalogName } : {}) }
            : r.kind === 'rest'
              ? { kind: 'rest', uri: r.uri, identifier: r.identifier, ...(r.warehouse ? { warehouse: r.warehouse } : {}), ...(r.token ? { token: r.token } : {}) }
              : { kind: r.kind, location: /^[a-z][a-z0-9+.-]*:\/\//i.test(r.location) ? r.location : (await import('node:path')).resolve(r.location) },
        };
        if (opts.s3Endpoint || opts.s3Region) {
          body.s3 = {
            ...(opts.s3Endpoint ? { endpoint: opts.s3Endpoint, path_style: opts.s3PathStyle !== false } : {}),
            ...(opts.s3Region ? { region: opts.s3Region } : {}),
          };
        }
        const t = await new IpsClient(opts).post<TableJson>('/v1/tables', body);
        if (opts.json) printJson(t);
        else process.stdout.write(`registered ${t.name}\n` + renderTable(t));
      });
    }));
  tables.addCommand(addClientOptions(new Command('event')
    .description('tell the service the table changed: it is polled now, and its subscriptions fire without waiting for the poll interval (admin)')
    .argument('<name>'))
    .action(async (name: string, opts: ClientOptions) => {
      await runAction(opts.json, async () => {
        const r = await new IpsClient(opts).post<{ woken: string[] }>(`/v1/tables/${enc(name)}/events`);
        if (opts.json) printJson(r);
        else process.stdout.write(`${name}: polled now\n`);
      });
    }));
  return tables;
}

