import fs from 'node:fs';
import { Command, Option } from 'commander';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { DEFAULT_MAX_ROWS, DEFAULT_MEMORY_LIMIT } from '../rows/net-rows.js';
import type { PairBy } from '../rows/changelog.js';
import type { RowFormat } from '../rows/output.js';
import { IpsError, isIpsError } from '../errors.js';
import type { TableMetadata } from '../iceberg/metadata.js';
import type { ChangeSet, ChangeSetOptions } from '../capture/change-set.js';
import { sequenceNumberFallback } from '../capture/sequence-fallback.js';
import { loadTable, parseTableRef } from '../catalog/load-table.js';
import { computeChangeSet } from '../capture/change-set.js';
import { ChunkedWriter, writeChangesJson, type ChangesJson, type ChunkSink } from '../capture/changes-json.js';
import { statsForRanges } from '../capture/compact-entry.js';
import { CONTENT_NAMES, FileDescriber } from '../capture/file-json.js';
import { OutputBounds } from '../capture/output-bounds.js';
import { changedPartitions, fieldRange, resolveFieldId, type FieldRange } from '../capture/ranges.js';
import { verifyFilesExist, writeIcdcSnapshot } from '../capture/icdc-table.js';
import { ManifestReader } from '../capture/manifest-reader.js';
import { parsePolicy } from '../capture/policy.js';
import { branchHead, resolveRangeWithHistory } from '../capture/range.js';
import { commitSqlTable } from '../catalog/sql-catalog.js';
import { joinLocation, parentLocation } from '../io/file-io.js';
import pg from 'pg';
import { readLimitsFromEnv } from '../service/config.js';
import { runAction } from './common.js';
import { addTableOptions, catalogOptionsFrom, fileIOFrom, type TableOptions } from './table-options.js';

interface ChangesOptions extends TableOptions {
  from?: string;
  to?: string;
  branch?: string;
  range?: string;
  policy?: string;
  icdc?: string;
  icdcLocation?: string;
  icdcCatalog?: string;
  icdcCatalogName?: string;
  fromSequenceNumber?: string;
  allowSequenceFallback?: boolean;
  rows?: boolean;
  net?: boolean;
  format?: string;
  out?: string;
  maxRows?: string;
  identifierColumns?: string;
  pairBy?: string;
  memoryLimit?: string;
}

function snapshotId(text: string | undefined, flag: string): bigint | null {
  if (text === undefined) return null;
  if (!/^\d+$/.test(text)) throw new IpsError('INVALID_ARGUMENT', `${flag} expects a snapshot id (digits), got "${text}"`);
  return BigInt(text);
}

export function changesCommand(): Command {
  const cmd = new Command('changes')
    .description('what changed in (from, to]: files added and removed per snapshot, ranges, changed partitions; optionally written as an ICDC table')
    .argument('<table>', 'metadata file, table directory, or ns.table with --catalog')
    .option('--from <snapshot-id>', 'exclusive start snapshot (omit: from the beginning of the table)')
    .option('--to <snapshot-id>', 'inclusive end snapshot (default: the branch head)')
    .option('--branch <name>', 'branch to follow', 'main')
    .option('--range <fields>', 'comma-separated columns to compute change ranges for')
    .option('--policy <policy>', 'overwrite=include|added-only|fail,delete=include|skip|fail', 'overwrite=include,delete=include')
    .option('--from-sequence-number <n>', 'sequence number of --from, for the fallback when --from has expired')
    .option('--allow-sequence-fallback', 'when expiry broke the lineage, recover added files from file sequence numbers (reported, with its gaps)')
    .option('--icdc <namespace.name>', 'write the change set as a zero-copy ICDC table with this name')
    .option('--icdc-location <uri>', 'directory of the ICDC table (default: <warehouse>/<namespace>/<name> beside the source)')
    .option('--icdc-catalog <uri>', 'also register the ICDC table in this JDBC/SQL catalog (postgresql://…)')
    .option('--icdc-catalog-name <name>', 'catalog_name for the registration', 'ips')
    .option('--rows', 'row-level changes instead of files: the changelog per snapshot, or with --net the net inserted and deleted rows of the range')
    .option('--net', 'with --rows: the net change of the whole range')
    .option('--identifier-columns <columns>', 'with --rows (without --net): pair a DELETE and an INSERT of one snapshot with equal values in these columns as UPDATE_BEFORE / UPDATE_AFTER')
    .option('--pair-by <how>', 'with --rows (without --net): auto (the table\'s identifier fields, else _row_id on v3), identifier-fields, row-id or none', 'auto')
    .addOption(new Option('--memory-limit <size>', `with --rows: the embedded engine's memory budget (e.g. 512MB); larger work spills to disk (default ${DEFAULT_MEMORY_LIMIT})`).env('IPS_ROWS_MEMORY_LIMIT'))
    .option('--format <format>', 'with --rows: jsonl (one JSON object per row), arrow (Arrow IPC stream) or parquet', 'jsonl')
    .option('--out <path>', 'with --rows: write the rows to this file instead of stdout')
    .addOption(new Option('--max-rows <n>', `with --rows: refuse when the data files to read hold more rows than this (default ${DEFAULT_MAX_ROWS})`).env('IPS_ROWS_MAX_ROWS'));
  addTableOptions(cmd).action(async (ref: string, opts: ChangesOptions) => {
    await runAction(opts.json, async () => {
      if (opts.rows) return rowChanges(ref, opts);
      const io = fileIOFrom(opts);
      try {
        const table = await loadTable(io, parseTableRef(ref, catalogOptionsFrom(opts)));
        const md = table.metadata;
        // A plan reads each manifest once: a small cache serves the few reads twice (footprints).
        const reader = new ManifestReader(io, 32 * 1024 * 1024, { inline: true });
        const fields = (opts.range ?? '').split(',').map((s) => s.trim()).filter(Boolean);
        const fieldIds = fields.map((f) => resolveFieldId(md, f).id); // an unknown field fails before any reading
        // Files are kept as compact entries with the bounds and counts of the range fields only;
        // --json reads every file's bounds back from its manifest as it lists the file
        // (OutputBounds), so a long range never holds them all. An ICDC table is written from full entries.
        const compact = opts.icdc ? undefined : { stats: statsForRanges(fieldIds, false), concurrency: PLAN_CONCURRENCY };
        const cs = await changeSetWithFallback(reader, md, opts, fields.length > 0, compact);
        let icdc: ChangesJson['icdc'];
        if (opts.icdc) {
          const name = opts.icdc;
          if (!/^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)+$/.test(name)) throw new IpsError('INVALID_ARGUMENT', `--icdc expects namespace.name (letters, digits, _), got "${name}"`);
          // Default: beside the source in its warehouse (<warehouse>/<namespace>/<table> layout).
          const location = opts.icdcLocation ?? joinLocation(parentLocation(parentLocation(md.location.replace(/\/+$/, ''))), name.split('.').join('/'));
          await verifyFilesExist(io, cs.added);
          const w = await writeIcdcSnapshot({
            io, source: md, location, files: cs.added,
            summary: { 'ips.source-from': cs.range.from?.toString() ?? 'start', 'ips.source-to': cs.range.to.toString() },
          });
          if (opts.icdcCatalog) {
            const ms = readLimitsFromEnv(process.env).remoteTimeoutMs;
            const pool = new pg.Pool({ connectionString: opts.icdcCatalog.replace(/^jdbc:/, ''), max: 2, connectionTimeoutMillis: ms, query_timeout: ms, statement_timeout: ms });
            pool.on('error', () => {});
            try {
              await commitSqlTable(pool, opts.icdcCatalogName ?? 'ips', name, w.metadataLocation, w.previousMetadataLocation);
            } finally {
              await pool.end();
            }
          }
          icdc = { table: name, metadata_location: w.metadataLocation, snapshot_id: w.snapshotId.toString() };
        }
        const extra = icdc ? { icdc } : {};
        if (opts.json) await writeChangesJson(md, cs, fields, stdoutSink, extra, compact ? { bounds: new OutputBounds(reader) } : {});
        else await writeChangesText(md, cs, fields, stdoutSink, extra);
      } finally {
        io.close();
      }
    });
  });
  return cmd;
}

/** `ips changes --rows [--net]`: the row changes of (from, to] as JSON lines, per snapshot or net. */
async function rowChanges(ref: string, opts: ChangesOptions): Promise<void> {
  const identifierColumns = (opts.identifierColumns ?? '').split(',').map((c) => c.trim()).filter(Boolean);
  if (opts.net && identifierColumns.length > 0) {
    throw new IpsError('INVALID_ARGUMENT', '--identifier-columns pairs updates per snapshot and does not combine with --net (net changes have no update images, as in Spark); leave out --net for the changelog per snapshot');
  }
  // The row writers (Apache Arrow and the like) load only for --rows: a file plan does not pay for them.
  const { ROW_FORMATS, writeRowsFile } = await import('../rows/output.js');
  const format = (opts.format ?? 'jsonl') as RowFormat;
  if (!ROW_FORMATS.includes(format)) throw new IpsError('INVALID_ARGUMENT', `--format ${opts.format} is not supported with --rows; use one of ${ROW_FORMATS.join(', ')}`);
  for (const [flag, set] of [['--icdc', opts.icdc], ['--range', opts.range], ['--allow-sequence-fallback', opts.allowSequenceFallback], ['--json', opts.json]] as const) {
    if (set) throw new IpsError('INVALID_ARGUMENT', `${flag} does not combine with --rows (row changes are rows; run ips changes without --rows for files, ranges and ICDC tables)`);
  }
  if (opts.policy !== undefined && opts.policy !== 'overwrite=include,delete=include') {
    throw new IpsError('INVALID_ARGUMENT', '--policy does not apply to --rows: the net row changes always include every operation');
  }
  const pairBy = opts.pairBy ?? 'auto';
  if (!['auto', 'identifier-fields', 'row-id', 'none'].includes(pairBy)) throw new IpsError('INVALID_ARGUMENT', `--pair-by expects auto, identifier-fields, row-id or none, got "${pairBy}"`);
  if (opts.net && pairBy !== 'auto') throw new IpsError('INVALID_ARGUMENT', '--pair-by pairs updates per snapshot and does not combine with --net; leave out --net for the changelog per snapshot');
  if (opts.memoryLimit !== undefined && !/^\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)$/i.test(opts.memoryLimit)) {
    throw new IpsError('INVALID_ARGUMENT', `--memory-limit expects a size such as 512MB or 2GB, got "${opts.memoryLimit}"`);
  }
  let maxRows: bigint | undefined;
  if (opts.maxRows !== undefined) {
    if (!/^\d+$/.test(opts.maxRows)) throw new IpsError('INVALID_ARGUMENT', `--max-rows expects a number of rows, got "${opts.maxRows}"`);
    maxRows = BigInt(opts.maxRows);
  }
  const io = fileIOFrom(opts);
  try {
    const table = await loadTable(io, parseTableRef(ref, catalogOptionsFrom(opts)));
    const md = table.metadata;
    const reader = new ManifestReader(io);
    const range = await resolveRangeWithHistory(md, { from: snapshotId(opts.from, '--from'), to: snapshotId(opts.to, '--to'), branch: opts.branch }, reader);
    const stderr = (line: string) => process.stderr.write(`${line}\n`);
    const q = {
      io, md, reader, range, net: opts.net === true, identifierColumns, pairBy: pairBy as PairBy,
      ...(maxRows !== undefined ? { maxRows } : {}),
      ...(opts.memoryLimit !== undefined ? { memoryLimit: opts.memoryLimit } : {}),
      progress: stderr,
      note: (line: string) => stderr(`note: ${line}`),
    };
    if (opts.out) {
      await writeRowsFile(q, format, opts.out);
    } else {
      // Standard output gets the answer only once it is whole (spooled to a scratch file): never a partial answer.
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-rows-stdout-'));
      try {
        const file = path.join(dir, `rows.${format}`);
        await writeRowsFile(q, format, file);
        await pipeline(fs.createReadStream(file), process.stdout, { end: false });
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
  } finally {
    io.close();
  }
}

/** Manifests decoded at once by `ips changes`: enough to overlap reads and inflate with decoding. */
const PLAN_CONCURRENCY = 4;

/** stdout, waiting for it to drain when it is a slow pipe, so output never piles up in memory. */
const stdoutSink: ChunkSink = (chunk) => new Promise<void>((resolve, reject) => {
  if (process.stdout.write(chunk)) resolve();
  else {
    const done = (e?: Error | null): void => {
      process.stdout.off('drain', onDrain);
      process.stdout.off('error', done);
      if (e) reject(e);
      else resolve();
    };
    const onDrain = (): void => done();
    process.stdout.once('drain', onDrain);
    process.stdout.once('error', done);
  }
});

const FALLBACK_CODES = new Set(['FROM_EXPIRED', 'LINEAGE_BROKEN']);

async function changeSetWithFallback(reader: ManifestReader, md: TableMetadata, opts: ChangesOptions, deleteFootprints: boolean, compact?: ChangeSetOptions['compact']): Promise<ChangeSet> {
  const from = snapshotId(opts.from, '--from');
  const to = snapshotId(opts.to, '--to');
  try {
    const range = await resolveRangeWithHistory(md, { from, to, branch: opts.branch }, reader);
    return await computeChangeSet(reader, range, parsePolicy(opts.policy), md, { deleteFootprints, ...(compact ? { compact } : {}) });
  } catch (e) {
    if (!isIpsError(e) || !FALLBACK_CODES.has(e.code)) throw e;
    const known = from === null ? undefined : md.snapshots.find((s) => s.snapshotId === from)?.sequenceNumber;
    const seqText = opts.fromSequenceNumber ?? known?.toString();
    if (!opts.allowSequenceFallback || seqText === undefined) {
      const hint = md.formatVersion >= 2
        ? ' To recover the added files from file sequence numbers instead, pass --allow-sequence-fallback' + (seqText === undefined ? ' and --from-sequence-number <sequence number of --from>' : '') + '.'
        : '';
      throw new IpsError(e.code, e.message + hint, { cause: e, details: e.details });
    }
    if (!/^\d+$/.test(seqText)) throw new IpsError('INVALID_ARGUMENT', `--from-sequence-number expects digits, got "${seqText}"`);
    const head = to ?? branchHead(md, opts.branch ?? 'main');
    if (head === null) throw new IpsError('EMPTY_TABLE', 'the table has no snapshots');
    return sequenceNumberFallback(reader, md, head, BigInt(seqText));
  }
}

/**
 * The text form, written as it is produced: the same bytes as `renderChanges(changesJson(…))`
 * except that it lists no bounds and so has no warnings about bounds that do not decode (--json,
 * which lists them, has). Each file is one line of fixed-width columns made from the file
 * itself: no row is formatted before it is written.
 */
export async function writeChangesText(md: TableMetadata, cs: ChangeSet, rangeFields: string[], sink: ChunkSink, extra: { icdc?: ChangesJson['icdc'] } = {}): Promise<void> {
  const describer = new FileDescriber(md);
  const all = [...cs.added, ...cs.removed];
  const ranges: Record<string, FieldRange> = {};
  for (const f of rangeFields) ranges[f] = fieldRange(md, describer, all, f);
  const partitions = changedPartitions(describer, all);
  all.length = 0;
  const w = new ChunkedWriter(sink);
  await w.write(cs.fallback ? `changes after sequence number ${cs.fallback.fromSequenceNumber} up to ${cs.range.to}` + ' (sequence-number fallback)\n' : `changes in (${cs.range.from ?? 'start'}, ${cs.range.to}]\n`);
  for (const d of cs.snapshots) {
    await w.write(`  ${d.snapshot.snapshotId}  seq ${d.snapshot.sequenceNumber}  ${d.operation.padEnd(9)} ${d.action.padEnd(10)} +${d.added.length} -${d.removed.length}  ${d.reason}\n`);
  }
  await w.write(`added files: ${cs.added.length}, removed files: ${cs.removed.length}\n`);
  for (const [sign, files] of [['+', cs.added], ['-', cs.removed]] as const) {
    for (const c of files) {
      const df = c.entry.dataFile;
      await w.write(`  ${sign} ${CONTENT_NAMES[df.content].padEnd(16)} ${df.recordCount.toString().padStart(9)} rows  ${df.filePath}\n`);
    }
  }
  for (const [name, r] of Object.entries(ranges)) {
    await w.write((r.flag === 'unbounded' ? `range ${name}: unbounded (no bound in ${r.missing_in?.length} file(s))` : `range ${name}: ${String(r.min)} .. ${String(r.max)} (${r.flag})`) + '\n');
  }
  if (partitions.length) await w.write(`changed partitions: ${partitions.map((p) => p.name).join(', ')}\n`);
  if (extra.icdc) await w.write(`ICDC table ${extra.icdc.table}: ${extra.icdc.metadata_location}\n`);
  for (const warning of cs.warnings) await w.write(`warning: ${warning}\n`);
  await w.flush();
}

/** The text form of a whole ChangesJson (what writeChangesText streams). */
export function renderChanges(c: ChangesJson): string {
  const lines = [c.fallback ? `changes after sequence number ${c.fallback.from_sequence_number} up to ${c.to} (sequence-number fallback)` : `changes in (${c.from ?? 'start'}, ${c.to}]`];
  for (const s of c.snapshots) {
    lines.push(`  ${s.snapshot_id}  seq ${s.sequence_number}  ${s.operation.padEnd(9)} ${s.action.padEnd(10)} +${s.added_files} -${s.removed_files}  ${s.reason}`);
  }
  lines.push(`added files: ${c.added_files.length}, removed files: ${c.removed_files.length}`);
  for (const f of c.added_files) lines.push(`  + ${f.content.padEnd(16)} ${f.record_count.padStart(9)} rows  ${f.file_path}`);
  for (const f of c.removed_files) lines.push(`  - ${f.content.padEnd(16)} ${f.record_count.padStart(9)} rows  ${f.file_path}`);
  for (const [name, r] of Object.entries(c.ranges)) {
    lines.push(r.flag === 'unbounded' ? `range ${name}: unbounded (no bound in ${r.missing_in?.length} file(s))` : `range ${name}: ${String(r.min)} .. ${String(r.max)} (${r.flag})`);
  }
  if (c.changed_partitions.length) lines.push(`changed partitions: ${c.changed_partitions.map((p) => p.name).join(', ')}`);
  if (c.icdc) lines.push(`ICDC table ${c.icdc.table}: ${c.icdc.metadata_location}`);
  for (const w of c.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n') + '\n';
}
