import { Command, Option } from 'commander';
import { IpsError } from '../errors.js';
import { addClientOptions, enc, IpsClient, positiveIntArg, type ClientOptions } from './client.js';
import { printJson, runAction } from './common.js';
import { validateChunks } from './backfills.js';
import { parseSignalSpec } from './signals.js';

/**
 * `ips step prepare|commit|abort`: the ICDC step protocol for a bash step in any orchestrator.
 *
 *   eval "$(ips step prepare --consumer daily --instance-id "$RUN_ID" --env)"
 *   [ "$IPS_HAS_CHANGES" = true ] && spark-sql … "$IPS_ICDC_METADATA_LOCATION" …
 *   ips step commit "$IPS_BATCH_ID"
 */

interface BatchTableJson {
  table: string;
  from_snapshot_id: string | null;
  to_snapshot_id: string;
  file_count: number;
  byte_count: string;
  record_count: string;
  icdc: { table: string; snapshot_id: string; metadata_location: string } | null;
  row_changelog?: { table: string; snapshot_id: string; metadata_location: string; record_count: string } | null;
  ranges: Record<string, { min: unknown; max: unknown; flag: string }>;
  changed_partitions: { name: string }[];
  files?: { added: { file_path: string; content: string; record_count: string }[]; removed: { file_path: string; content: string; record_count: string }[] };
  files_pruned_at?: string | null;
}

interface BatchJson {
  id: string;
  consumer: string;
  instance_id: string;
  state: string;
  lease_expires_at: string;
  tables: BatchTableJson[];
  backfill?: { name: string; chunk: number; chunks?: number; range?: Record<string, unknown> } | null;
}

interface PrepareJson {
  status: 'created' | 'existing' | 'no_changes';
  batch: BatchJson | null;
  consumer?: string;
  table?: string;
}

/** A value as the shell reads it back: bare when safe, otherwise single-quoted. */
export function shellValue(v: string): string {
  return /^[A-Za-z0-9_./:=,+@%-]*$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`;
}

function envKey(field: string): string {
  return field.toUpperCase().replace(/[^A-Z0-9]+/g, '_');
}

function scalar(v: unknown): string {
  if (v === null || v === undefined) return '';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

/** The KEY=value lines of `--env`: one batch table (the step protocol prepares one table). */
export function prepareEnvLines(r: PrepareJson): string[] {
  const lines: [string, string][] = [['IPS_STATUS', r.status], ['IPS_HAS_CHANGES', r.batch ? 'true' : 'false']];
  const b = r.batch;
  if (b) {
    const t = b.tables[0];
    lines.push(['IPS_BATCH_ID', b.id], ['IPS_CONSUMER', b.consumer], ['IPS_INSTANCE_ID', b.instance_id], ['IPS_LEASE_EXPIRES_AT', b.lease_expires_at],
      ['IPS_TABLES', b.tables.map((x) => x.table).join(',')]);
    if (b.backfill) {
      // A backfill chunk: which one, and the range its rows are filtered by.
      lines.push(['IPS_BACKFILL', b.backfill.name], ['IPS_BACKFILL_CHUNK', String(b.backfill.chunk)], ['IPS_BACKFILL_CHUNKS', String(b.backfill.chunks ?? '')]);
      for (const [k, v] of Object.entries(b.backfill.range ?? {})) lines.push([`IPS_BACKFILL_RANGE_${envKey(k)}`, scalar(v)]);
    }
    // Several tables: the first one below; every table's ICDC table as IPS_ICDC_TABLE__<TABLE>.
    if (b.tables.length > 1) {
      for (const x of b.tables) {
        lines.push([`IPS_ICDC_TABLE__${envKey(x.table)}`, x.icdc?.table ?? ''], [`IPS_ICDC_METADATA_LOCATION__${envKey(x.table)}`, x.icdc?.metadata_location ?? '']);
      }
    }
    if (t) {
      lines.push(
        ['IPS_TABLE', t.table],
        ['IPS_FROM_SNAPSHOT_ID', t.from_snapshot_id ?? ''],
        ['IPS_TO_SNAPSHOT_ID', t.to_snapshot_id],
        ['IPS_FILE_COUNT', String(t.file_count)],
        ['IPS_RECORD_COUNT', t.record_count],
        ['IPS_BYTE_COUNT', t.byte_count],
        ['IPS_ICDC_TABLE', t.icdc?.table ?? ''],
        ['IPS_ICDC_SNAPSHOT_ID', t.icdc?.snapshot_id ?? ''],
        ['IPS_ICDC_METADATA_LOCATION', t.icdc?.metadata_location ?? ''],
        // A mode-rows consumer: the batch's rows as a changelog table (empty otherwise).
        ['IPS_ROW_CHANGELOG_TABLE', t.row_changelog?.table ?? ''],
        ['IPS_ROW_CHANGELOG_METADATA_LOCATION', t.row_changelog?.metadata_location ?? ''],
        ['IPS_ROW_CHANGELOG_RECORD_COUNT', t.row_changelog?.record_count ?? ''],
        ['IPS_CHANGED_PARTITIONS', t.changed_partitions.map((p) => p.name).join(',')],
      );
      for (const [field, range] of Object.entries(t.ranges)) {
        lines.push([`IPS_RANGE_${envKey(field)}_MIN`, scalar(range.min)], [`IPS_RANGE_${envKey(field)}_MAX`, scalar(range.max)], [`IPS_RANGE_${envKey(field)}_FLAG`, range.flag]);
      }
    }
  } else {
    lines.push(['IPS_CONSUMER', r.consumer ?? ''], ['IPS_TABLE', r.table ?? '']);
  }
  return lines.map(([k, v]) => `${k}=${shellValue(v)}`);
}

function renderBatch(b: BatchJson, withFiles = false): string {
  const out = [`batch ${b.id} (${b.state}) for consumer ${b.consumer}, instance ${b.instance_id}`];
  for (const t of b.tables) {
    out.push(`  ${t.table}: (${t.from_snapshot_id ?? 'start'}, ${t.to_snapshot_id}]  ${t.file_count} files, ${t.record_count} records, ${t.byte_count} bytes`);
    if (t.icdc) out.push(`  ICDC table ${t.icdc.table}: ${t.icdc.metadata_location}`);
    if (t.row_changelog) out.push(`  changelog table ${t.row_changelog.table} (${t.row_changelog.record_count} rows): ${t.row_changelog.metadata_location}`);
    for (const [f, r] of Object.entries(t.ranges)) out.push(`  range ${f}: ${scalar(r.min)} .. ${scalar(r.max)} (${r.flag})`);
    if (!withFiles) continue;
    if (t.files_pruned_at) {
      out.push(`  files: dropped by retention at ${t.files_pruned_at} (the counts above stay; see docs/retention.md)`);
      continue;
    }
    for (const f of t.files?.added ?? []) out.push(`  + ${f.content} ${f.file_path} (${f.record_count} records)`);
    for (const f of t.files?.removed ?? []) out.push(`  - ${f.content} ${f.file_path} (${f.record_count} records)`);
  }
  return out.join('\n') + '\n';
}

interface PrepareOptions extends ClientOptions {
  consumer?: string;
  backfill?: string;
  table: string[];
  instanceId: string;
  maxFiles?: string;
  maxBytes?: string;
  maxRecords?: string;
  env?: boolean;
}

function batchIdArg(v: string): string {
  if (!/^\d{1,19}$/.test(v)) throw new IpsError('INVALID_ARGUMENT', `a batch id is digits, got "${v}"`);
  return v;
}

export function stepCommand(): Command {
  const step = new Command('step').description('the ICDC step protocol for a workflow step: prepare → (process the ICDC table) → commit, or abort');

  step.addCommand(addClientOptions(new Command('prepare')
    .description('prepare the consumer\'s next batch (a retried step with the same --instance-id gets the same batch)')
    .addOption(new Option('--consumer <name>', 'the consumer').env('IPS_CONSUMER'))
    .option('--backfill <name>', 'hand out the next chunk of this backfill instead (its own batch series; the live watermark stays)')
    .option('--table <name>', 'source table (needed when the consumer subscribes to several; repeat it for one batch over several tables)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .addOption(new Option('--instance-id <id>', 'the orchestrator\'s step instance / run id').env('IPS_INSTANCE_ID').makeOptionMandatory())
    .option('--max-files <n>', 'at most this many files (splits a snapshot when needed)', positiveIntArg('--max-files'))
    .option('--max-bytes <n>', 'at most this many bytes', positiveIntArg('--max-bytes'))
    .option('--max-records <n>', 'at most this many records', positiveIntArg('--max-records'))
    .option('--env', 'print KEY=value lines (for eval, or $GITHUB_OUTPUT-style files) instead of text'))
    .action(async (opts: PrepareOptions) => {
      await runAction(opts.json, async () => {
        if (opts.backfill !== undefined) {
          const r = await new IpsClient(opts).post<PrepareJson & { reason?: string }>(`/v1/backfills/${enc(opts.backfill)}/batches`, { instance_id: opts.instanceId });
          if (opts.json) printJson(r);
          else if (opts.env) process.stdout.write(prepareEnvLines(r).join('\n') + '\n');
          else if (!r.batch) process.stdout.write(`no chunk of backfill ${opts.backfill} to hand out (${r.reason ?? 'none'})\n`);
          else process.stdout.write((r.status === 'existing' ? '(the batch this instance prepared before)\n' : '') + renderBatch(r.batch));
          return;
        }
        if (!opts.consumer) throw new IpsError('INVALID_ARGUMENT', 'name the consumer (--consumer or IPS_CONSUMER), or a backfill (--backfill)');
        const limits: Record<string, unknown> = {};
        if (opts.maxFiles) limits.max_files = Number(opts.maxFiles);
        if (opts.maxBytes) limits.max_bytes = opts.maxBytes;
        if (opts.maxRecords) limits.max_records = opts.maxRecords;
        const tables = opts.table;
        const body = {
          instance_id: opts.instanceId,
          ...(tables.length === 1 ? { table: tables[0] } : tables.length > 1 ? { tables } : {}),
          ...(Object.keys(limits).length ? { limits } : {}),
        };
        const consumer = opts.consumer;
        const r = await new IpsClient(opts).post<PrepareJson>(`/v1/consumers/${enc(consumer)}/batches`, body);
        if (opts.json) printJson(r);
        else if (opts.env) process.stdout.write(prepareEnvLines(r).join('\n') + '\n');
        else if (!r.batch) process.stdout.write(`no changes for consumer ${opts.consumer} on ${r.table ?? '?'}: nothing to do\n`);
        else process.stdout.write((r.status === 'existing' ? '(the batch this instance prepared before)\n' : '') + renderBatch(r.batch));
      });
    }));

  step.addCommand(addClientOptions(new Command('commit')
    .description('commit a batch: the consumer\'s watermark moves past it (repeating it is a no-op)')
    .argument('<batch-id>', 'from prepare (IPS_BATCH_ID)', batchIdArg)
    .option('--output <table=snapshot>', 'a backfill chunk: the snapshot this run committed to an output table (repeatable; default: found on the declared outputs)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--validate', 'a backfill chunk: then run the backfill\'s --validate command here, with the chunk\'s range in its environment, and record the result (exit 1 when invalid)')
    .option('--signal <name[:k=v,…]>', 'announce an output signal with this commit (repeatable), e.g. daily_done:date=2026-11-02', (v: string, acc: string[]) => [...acc, v], [] as string[]))
    .action(async (id: string, opts: ClientOptions & { output: string[]; validate?: boolean; signal: string[] }) => {
      await runAction(opts.json, async () => {
        const outputs: Record<string, string> = {};
        for (const o of opts.output) {
          const m = /^([^=]+)=(\d{1,19})$/.exec(o);
          if (!m) throw new IpsError('INVALID_ARGUMENT', `--output expects TABLE=SNAPSHOT_ID, got "${o}"`);
          outputs[m[1]!] = m[2]!;
        }
        const signals = opts.signal.map(parseSignalSpec);
        const client = new IpsClient(opts);
        const r = await client.post<{ batch: BatchJson; already_committed: boolean; signals?: { name: string; id: string }[] }>(`/v1/batches/${id}/commit`, {
          ...(Object.keys(outputs).length ? { outputs } : {}), ...(signals.length ? { signals } : {}),
        });
        // The validation command comes from the server: it runs here only when the step asks (--validate).
        const chunk = opts.validate ? r.batch.backfill ?? null : null;
        if (opts.validate && !chunk) throw new IpsError('INVALID_ARGUMENT', `batch ${id} is not a backfill chunk: --validate applies to backfill chunks only (it was committed)`);
        const validation = chunk
          ? (await validateChunks(client, chunk.name, (c) => c.index === chunk.chunk, opts.json ? {} : { print: (l) => process.stdout.write(`${l}\n`) }))[0] ?? null
          : null;
        if (opts.json) printJson({ ...r, ...(chunk ? { validation } : {}) });
        else {
          process.stdout.write(r.already_committed ? `batch ${id} was already committed: nothing changed\n` : `batch ${id} committed\n`);
          for (const sg of r.signals ?? []) process.stdout.write(`announced signal ${sg.name} (${sg.id})\n`);
        }
        if (validation && !validation.passed) {
          throw new IpsError('BACKFILL_CHUNK_INVALID', `backfill "${chunk!.name}" chunk ${chunk!.chunk} is invalid (exit ${validation.exit_code ?? 'none: killed'}): fix it and run \`ips backfills retry ${chunk!.name} --chunk ${chunk!.chunk}\``);
        }
      });
    }));

  step.addCommand(addClientOptions(new Command('abort')
    .description('abort a batch: the next prepare hands out the same changes')
    .argument('<batch-id>', 'from prepare (IPS_BATCH_ID)', batchIdArg)
    .option('--reason <text>', 'recorded with the batch'))
    .action(async (id: string, opts: ClientOptions & { reason?: string }) => {
      await runAction(opts.json, async () => {
        const r = await new IpsClient(opts).post<{ batch: BatchJson; changed: boolean }>(`/v1/batches/${id}/abort`, opts.reason ? { reason: opts.reason } : {});
        if (opts.json) printJson(r);
        else process.stdout.write(r.changed ? `batch ${id} aborted\n` : `batch ${id} was already aborted\n`);
      });
    }));

  step.addCommand(addClientOptions(new Command('get')
    .description('show a batch (--files: with its file list; --json always has it)')
    .argument('<batch-id>', 'batch id', batchIdArg)
    .option('--files', 'list the files added and removed'))
    .action(async (id: string, opts: ClientOptions & { files?: boolean }) => {
      await runAction(opts.json, async () => {
        const b = await new IpsClient(opts).get<BatchJson>(`/v1/batches/${id}`);
        if (opts.json) printJson(b);
        else process.stdout.write(renderBatch(b, opts.files === true));
      });
    }));
  return step;
}
