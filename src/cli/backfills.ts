import { Command, Option } from 'commander';
import { IpsError } from '../errors.js';
import { DEFAULT_VALIDATION_TIMEOUT_SECONDS, runValidationCommand, validationEnv } from '../backfill/validation.js';
import { addClientOptions, enc, IpsClient, positiveIntArg, type ClientOptions } from './client.js';
import { printJson, runAction } from './common.js';

/**
 * `ips backfills create|list|get|pause|resume|cancel|retry` and `ips lineage`: managed
 * backfills and the pipeline graph, as clients of `ips serve`.
 */

interface ChunkJson {
  index: number;
  state: string;
  range: Record<string, unknown>;
  files: number;
  records: string;
  bytes: string;
  attempts: number;
  batch_id: string | null;
  instance_id: string | null;
  error: string | null;
  duration_seconds: number | null;
  outputs: Record<string, string>;
  outputs_in_lineage?: boolean | null;
  validation?: { passed: boolean; exit_code: number | null; output: string; by?: string | null } | null;
  trigger?: { subscription: string; state: string; run_id: string | null } | null;
}

interface StageJson {
  consumer: string;
  depth: number;
  table: string | null;
  tracked: boolean;
  blocked: string | null;
  chunks: { index: number; state: string; snapshot_id: string | null; passed_at: string | null; reason: string | null }[];
}

interface BackfillJson {
  name: string;
  consumer: string;
  table: string;
  kind: string;
  state: string;
  state_reason: string | null;
  status?: string;
  spec: Record<string, unknown>;
  concurrency: number;
  order: string;
  totals?: { chunks: number; by_state: Record<string, number>; files: number; records: string; bytes: string; committed_records: string };
  throughput?: { records_per_second: number | null; bytes_per_second: number | null; eta_seconds: number | null };
  validation?: { required: boolean; passed: number; failed: number; pending: number };
  chunks?: ChunkJson[] | number;
  by_state?: Record<string, number>;
  stages?: StageJson[];
}

interface DryRunJson {
  consumer: string;
  table: string;
  kind: string;
  spec: Record<string, unknown>;
  warnings: string[];
  live_data_files: number | null;
  candidate_files: number | null;
  chunks: { index: number; range: Record<string, unknown>; files: number; records: string; bytes: string; file_paths: string[] }[];
  totals: { chunks: number; files: number; records: string; bytes: string };
  propagates_to: { consumer: string; table: string; depth: number }[];
  outputs: string[];
}

function rangeText(r: Record<string, unknown>): string {
  if (typeof r.predicate === 'string') return r.predicate;
  if ('to_snapshot_id' in r) return `(${String(r.from_snapshot_id ?? 'start')}, ${String(r.to_snapshot_id)}]`;
  return JSON.stringify(r);
}

function bytesText(b: string | number): string {
  let n = Number(b);
  for (const u of ['B', 'KiB', 'MiB', 'GiB', 'TiB']) {
    if (n < 1024 || u === 'TiB') return `${u === 'B' ? n : n.toFixed(1)} ${u}`;
    n /= 1024;
  }
  return String(b);
}

export function progressBar(done: number, total: number, width = 30): string {
  const filled = total === 0 ? width : Math.round((done / total) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`;
}

export function renderDryRun(d: DryRunJson): string {
  const out = [`dry run: ${d.kind === 'where' ? `--where ${String(d.spec.where)}` : `--snapshots ${String(d.spec.snapshots)}`} for consumer ${d.consumer} on ${d.table}, chunk ${String(d.spec.chunk)}`];
  if (d.live_data_files !== null) out.push(`  ${d.candidate_files} of the ${d.live_data_files} live data files can hold rows of the range`);
  for (const w of d.warnings) out.push(`  warning: ${w}`);
  for (const c of d.chunks) {
    out.push(`  chunk ${c.index}: ${rangeText(c.range)}  ${c.files} files, ${c.records} records, ${bytesText(c.bytes)}`);
    for (const p of c.file_paths) out.push(`      ${p}`);
  }
  out.push(`  total: ${d.totals.chunks} chunks, ${d.totals.files} files, ${d.totals.records} records, ${bytesText(d.totals.bytes)}`);
  out.push(d.outputs.length ? `  writes: ${d.outputs.join(', ')}` : '  writes: no declared output table (declare it with `ips consumers outputs`): nothing is followed downstream');
  for (const s of d.propagates_to) out.push(`  then: ${s.consumer} (reads ${s.table}, stage ${s.depth})`);
  out.push('  nothing was created');
  return out.join('\n') + '\n';
}

export function renderBackfill(b: BackfillJson): string {
  const chunks = Array.isArray(b.chunks) ? b.chunks : [];
  const t = b.totals;
  const committed = t?.by_state.committed ?? 0;
  const out = [`${b.name}  ${b.status ?? b.state}${b.state_reason ? `: ${b.state_reason}` : ''}`,
    `  consumer ${b.consumer} on ${b.table}: ${b.kind === 'where' ? `--where ${String(b.spec.where)}` : `--snapshots ${String(b.spec.snapshots)}`}, chunk ${String(b.spec.chunk)}, concurrency ${b.concurrency}, ${b.order}`];
  if (t) {
    out.push(`  ${progressBar(committed, t.chunks)} chunks committed; ${t.committed_records}/${t.records} records, ${t.files} files, ${bytesText(t.bytes)}`);
    const tp = b.throughput;
    if (tp?.records_per_second != null) out.push(`  throughput ${tp.records_per_second.toFixed(1)} records/s${tp.eta_seconds != null && tp.eta_seconds > 0 ? `, about ${Math.ceil(tp.eta_seconds)} s left` : ''}`);
  }
  const v = b.validation;
  if (v?.required) out.push(`  validation ${progressBar(v.passed, t?.chunks ?? 0, 20)} valid${v.failed ? `, ${v.failed} INVALID` : ''}${v.pending ? `, ${v.pending} not validated yet` : ''}`);
  for (const s of b.stages ?? []) {
    const done = s.chunks.filter((c) => c.state === (s.depth === 0 ? 'committed' : 'propagated')).length;
    out.push(`  stage ${s.depth} ${s.consumer}${s.table ? ` (${s.depth === 0 ? 'backfilling' : 'reads'} ${s.table})` : ''}: ${s.tracked ? progressBar(done, s.chunks.length, 20) : 'not tracked'}${s.blocked ? `  BLOCKED: ${s.blocked}` : ''}`);
  }
  for (const c of chunks) {
    const downstream = (b.stages ?? []).filter((s) => s.depth > 0 && s.tracked).map((s) => `${s.consumer}=${s.chunks[c.index]?.state ?? '?'}`);
    out.push(`  chunk ${c.index} ${c.state.padEnd(9)} ${rangeText(c.range)}  ${c.files} files, ${c.records} records, ${bytesText(c.bytes)}` +
      `${c.attempts ? `, attempt ${c.attempts}` : ''}${c.batch_id ? `, batch ${c.batch_id}` : ''}${c.instance_id ? ` (${c.instance_id})` : ''}` +
      `${c.trigger ? `, trigger ${c.trigger.state}${c.trigger.run_id ? ` run ${c.trigger.run_id}` : ''}` : ''}` +
      `${c.duration_seconds != null ? `, ${c.duration_seconds.toFixed(1)} s` : ''}${Object.keys(c.outputs).length ? `, output ${Object.entries(c.outputs).map(([k, v]) => `${k}@${v}`).join(',')}` : ''}` +
      `${downstream.length ? `; ${downstream.join(' ')}` : ''}${c.validation ? (c.validation.passed ? '; valid' : `; INVALID (exit ${c.validation.exit_code ?? 'none: killed'})`) : v?.required && c.state === 'committed' ? '; not validated yet' : ''}` +
      `${c.error ? `\n      error: ${c.error}` : ''}`);
  }
  return out.join('\n') + '\n';
}

export interface ValidationResult { chunk: number; passed: boolean; exit_code: number | null }

/**
 * Runs a backfill's validation command here, on this machine, for the chunks `pick` selects,
 * with this process's environment plus the chunk's IPS_BACKFILL_* variables, and records each
 * result on the chunk (`POST /v1/backfills/{name}/chunks/{i}/validation`).
 */
export async function validateChunks(client: IpsClient, name: string, pick: (c: ChunkJson) => boolean,
  o: { timeoutSeconds?: number; print?: (line: string) => void } = {}): Promise<ValidationResult[]> {
  const b = await client.get<BackfillJson & { spec: { validate?: unknown; validate_timeout_seconds?: unknown } }>(`/v1/backfills/${enc(name)}`);
  const command = b.spec.validate;
  if (typeof command !== 'string') throw new IpsError('INVALID_ARGUMENT', `backfill "${name}" has no validation command (create it with --validate)`);
  const timeout = o.timeoutSeconds ?? (typeof b.spec.validate_timeout_seconds === 'number' ? b.spec.validate_timeout_seconds : DEFAULT_VALIDATION_TIMEOUT_SECONDS);
  const chunks = Array.isArray(b.chunks) ? b.chunks : [];
  const results: ValidationResult[] = [];
  for (const c of chunks.filter(pick)) {
    const env = validationEnv(name, { index: c.index, range: c.range, outputs: c.outputs, batchId: c.batch_id }, chunks.length);
    const r = await runValidationCommand(command, { ...process.env, ...env }, timeout);
    await client.post(`/v1/backfills/${enc(name)}/chunks/${c.index}/validation`, { passed: r.passed, exit_code: r.exitCode, output: r.output });
    results.push({ chunk: c.index, passed: r.passed, exit_code: r.exitCode });
    o.print?.(`chunk ${c.index}: ${r.passed ? 'valid' : `INVALID (exit ${r.exitCode ?? 'none: killed'})${r.output.trim() ? `: ${r.output.trim().split('\n').slice(-3).join(' | ')}` : ''}`}`);
  }
  return results;
}

function chunkIndexArg(v: string): number {
  if (!/^\d{1,9}$/.test(v)) throw new IpsError('INVALID_ARGUMENT', `--chunk expects a chunk index (0, 1, …), got "${v}"`);
  return Number(v);
}

interface CreateOptions extends ClientOptions {
  consumer: string;
  table?: string;
  where?: string;
  snapshots?: string;
  chunk?: string;
  concurrency?: string;
  order?: 'oldest-first' | 'newest-first';
  maxAttempts?: string;
  dryRun?: boolean;
  validate?: string;
  validateTimeout?: string;
}

export function backfillsCommand(): Command {
  const cmd = new Command('backfills').description('managed backfills: re-process a range for a consumer in chunks, followed downstream');

  cmd.addCommand(addClientOptions(new Command('create')
    .description('plan and create a backfill (admin); --dry-run only prints the plan')
    .argument('<name>')
    .requiredOption('--consumer <name>', 'the consumer that re-processes the range')
    .option('--table <name>', 'the source table (default: the consumer\'s only one)')
    .option('--where <predicate>', "a field range over the table's current data, e.g. 'event_date >= 2026-10-01 and event_date < 2026-10-15'")
    .option('--snapshots <from..to>', 'replay the change sets of (FROM, TO] with the consumer\'s policy')
    .option('--chunk <unit>', 'day|hour|month|files:N (by value, with --where) or snapshots:N|files:N|day|hour|month (with --snapshots)')
    .option('--concurrency <n>', 'chunks in flight (default 1)', positiveIntArg('--concurrency'))
    .addOption(new Option('--order <order>', 'which chunks first').choices(['oldest-first', 'newest-first']))
    .option('--max-attempts <n>', 'attempts per chunk before the backfill stops in failed (default 3)', positiveIntArg('--max-attempts'))
    .option('--validate <command>', 'a shell command run once per committed chunk with its range in the environment (exit 0 = valid): by `ips step commit --validate`, `ips backfills validate`, or `ips serve` with backfill_validation on')
    .option('--validate-timeout <seconds>', 'longest a validation run may take per chunk (default 600)', positiveIntArg('--validate-timeout'))
    .option('--dry-run', 'print the chunks, their files, records and bytes, and what would propagate; create nothing'))
    .action(async (name: string, opts: CreateOptions) => {
      await runAction(opts.json, async () => {
        const body: Record<string, unknown> = { name, consumer: opts.consumer };
        if (opts.table) body.table = opts.table;
        if (opts.where) body.where = opts.where;
        if (opts.snapshots) body.snapshots = opts.snapshots;
        if (opts.chunk) body.chunk = opts.chunk;
        if (opts.concurrency) body.concurrency = Number(opts.concurrency);
        if (opts.order) body.order = opts.order;
        if (opts.maxAttempts) body.max_attempts = Number(opts.maxAttempts);
        if (opts.dryRun) body.dry_run = true;
        if (opts.validate) body.validate = opts.validate;
        if (opts.validateTimeout) body.validate_timeout_seconds = Number(opts.validateTimeout);
        const r = await new IpsClient(opts).post<DryRunJson & BackfillJson>('/v1/backfills', body);
        if (opts.json) printJson(r);
        else process.stdout.write(opts.dryRun ? renderDryRun(r) : `created backfill ${name}\n${renderBackfill(r)}`);
      });
    }));

  cmd.addCommand(addClientOptions(new Command('list').description('backfills, newest first').option('--consumer <name>', 'only this consumer\'s'))
    .action(async (opts: ClientOptions & { consumer?: string }) => {
      await runAction(opts.json, async () => {
        const r = await new IpsClient(opts).get<{ backfills: BackfillJson[] }>(`/v1/backfills${opts.consumer ? `?consumer=${enc(opts.consumer)}` : ''}`);
        if (opts.json) printJson(r);
        else {
          process.stdout.write(r.backfills.length === 0 ? 'no backfills: see `ips backfills create --help`\n' : r.backfills.map((b) =>
            `${b.name}\t${b.state}\t${b.consumer} on ${b.table}\t${progressBar(b.by_state?.committed ?? 0, typeof b.chunks === 'number' ? b.chunks : 0, 20)}${b.state_reason ? `\t${b.state_reason}` : ''}\n`).join(''));
        }
      });
    }), { isDefault: true });

  cmd.addCommand(addClientOptions(new Command('get').description('a backfill per stage and per chunk').argument('<name>')
    .option('--watch [seconds]', 'redraw every few seconds (default 2) until it is complete, failed or cancelled'))
    .action(async (name: string, opts: ClientOptions & { watch?: boolean | string }) => {
      await runAction(opts.json, async () => {
        const client = new IpsClient(opts);
        const interval = opts.watch === undefined ? 0 : opts.watch === true ? 2 : Number(opts.watch);
        if (opts.watch !== undefined && !(interval > 0)) throw new IpsError('INVALID_ARGUMENT', `--watch expects seconds, got "${String(opts.watch)}"`);
        for (;;) {
          const b = await client.get<BackfillJson>(`/v1/backfills/${enc(name)}`);
          if (opts.json) printJson(b);
          else process.stdout.write((interval && process.stdout.isTTY ? '\x1b[2J\x1b[H' : '') + renderBackfill(b));
          const done = ['complete', 'invalid', 'failed', 'cancelled'].includes(b.status ?? b.state);
          if (!interval || done) return;
          await new Promise((r) => setTimeout(r, interval * 1000));
        }
      });
    }));

  for (const action of ['pause', 'resume', 'cancel'] as const) {
    cmd.addCommand(addClientOptions(new Command(action).description(`${action} a backfill (admin)`).argument('<name>'))
      .action(async (name: string, opts: ClientOptions) => {
        await runAction(opts.json, async () => {
          const b = await new IpsClient(opts).post<BackfillJson>(`/v1/backfills/${enc(name)}/${action}`);
          if (opts.json) printJson(b);
          else process.stdout.write(`backfill ${b.name} is ${b.state}\n`);
        });
      }));
  }

  cmd.addCommand(addClientOptions(new Command('validate')
    .description('run the backfill\'s --validate command here for each committed chunk not yet valid (or --all), and record each result')
    .argument('<name>')
    .option('--all', 'validate every committed chunk again')
    .option('--timeout-seconds <n>', 'per chunk (default: the backfill\'s --validate-timeout)', positiveIntArg('--timeout-seconds')))
    .action(async (name: string, opts: ClientOptions & { all?: boolean; timeoutSeconds?: string }) => {
      await runAction(opts.json, async () => {
        const results = await validateChunks(new IpsClient(opts), name, (c) => c.state === 'committed' && (opts.all === true || c.validation?.passed !== true),
          { ...(opts.timeoutSeconds ? { timeoutSeconds: Number(opts.timeoutSeconds) } : {}), ...(opts.json ? {} : { print: (l) => process.stdout.write(`${l}\n`) }) });
        if (opts.json) printJson({ backfill: name, results });
        else if (results.length === 0) process.stdout.write('no committed chunk left to validate\n');
        if (results.some((r) => !r.passed)) process.exitCode = 1;
      });
    }));

  cmd.addCommand(addClientOptions(new Command('retry').description('fresh attempts for the failed (and cancelled) chunks, or one chunk; the backfill runs again (admin)')
    .argument('<name>').option('--chunk <index>', 'only this chunk', chunkIndexArg))
    .action(async (name: string, opts: ClientOptions & { chunk?: number }) => {
      await runAction(opts.json, async () => {
        const b = await new IpsClient(opts).post<BackfillJson>(`/v1/backfills/${enc(name)}/retry`, opts.chunk === undefined ? {} : { chunk: opts.chunk });
        if (opts.json) printJson(b);
        else process.stdout.write(`backfill ${b.name} is ${b.state}\n`);
      });
    }));
  return cmd;
}

interface LineageJson {
  tables: string[];
  consumers: { name: string; inputs: string[]; outputs: string[] }[];
  order: string[];
}

export function renderLineage(g: LineageJson): string {
  if (g.consumers.length === 0) return 'no consumers\n';
  const byName = new Map(g.consumers.map((c) => [c.name, c] as const));
  return g.order.map((n) => {
    const c = byName.get(n)!;
    return `${c.inputs.join(', ') || '(no table)'} → ${c.name} → ${c.outputs.join(', ') || '(no declared output)'}`;
  }).join('\n') + '\n';
}

export function lineageCommand(): Command {
  return addClientOptions(new Command('lineage').description('the pipeline graph: table → consumer → table, consumers in dependency order'))
    .action(async (opts: ClientOptions) => {
      await runAction(opts.json, async () => {
        const g = await new IpsClient(opts).get<LineageJson>('/v1/lineage');
        if (opts.json) printJson(g);
        else process.stdout.write(renderLineage(g));
      });
    });
}
