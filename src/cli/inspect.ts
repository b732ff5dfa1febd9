import { Command } from 'commander';
import { loadTable, parseTableRef } from '../catalog/load-table.js';
import { inspectTable, type InspectJson, type InspectSelection } from '../capture/inspect.js';
import { IpsError } from '../errors.js';
import { ManifestReader } from '../capture/manifest-reader.js';
import type { FileJson } from '../capture/file-json.js';
import { currentSchema } from '../iceberg/metadata.js';
import { indexById } from '../iceberg/types.js';
import { printJson, progress, runAction } from './common.js';
import { fmtBytes } from './format.js';
import { addTableOptions, catalogOptionsFrom, fileIOFrom, type TableOptions } from './table-options.js';

export function inspectCommand(): Command {
  const cmd = new Command('inspect')
    .description('show a table\'s snapshots in lineage order and the files each added and removed')
    .argument('<table>', 'metadata file (…/vN.metadata.json), table directory, or ns.table with --catalog')
    .option('--snapshot <id>', 'only this snapshot, with its files')
    .option('--limit <n>', 'only the newest N snapshots')
    .option('--files', 'list every file with its partition and bounds (the default for --snapshot and --json)');
  addTableOptions(cmd).action(async (ref: string, opts: InspectOptions) => {
    await runAction(opts.json, async () => {
      const select = selection(opts);
      const io = fileIOFrom(opts);
      try {
        const table = await loadTable(io, parseTableRef(ref, catalogOptionsFrom(opts)));
        const result = await inspectTable(table, new ManifestReader(io), opts.json ? undefined : progress('reading snapshots'), select);
        if (opts.json) printJson(result);
        else process.stdout.write(renderInspect(result, columnNames(table.metadata), { files: opts.files === true || select.snapshot !== undefined }));
      } finally {
        io.close();
      }
    });
  });
  return cmd;
}

interface InspectOptions extends TableOptions {
  snapshot?: string;
  limit?: string;
  files?: boolean;
}

function selection(opts: InspectOptions): InspectSelection {
  const out: InspectSelection = {};
  if (opts.snapshot !== undefined) {
    if (!/^-?\d{1,20}$/.test(opts.snapshot)) throw new IpsError('INVALID_ARGUMENT', `--snapshot expects a snapshot id (digits), got "${opts.snapshot}"`);
    out.snapshot = BigInt(opts.snapshot);
  }
  if (opts.limit !== undefined) {
    if (!/^\d{1,9}$/.test(opts.limit) || Number(opts.limit) < 1) throw new IpsError('INVALID_ARGUMENT', `--limit expects a positive number of snapshots, got "${opts.limit}"`);
    out.limit = Number(opts.limit);
  }
  return out;
}

function columnNames(md: Parameters<typeof currentSchema>[0]): Map<string, string> {
  const out = new Map<string, string>();
  for (const s of md.schemas) for (const [id, f] of indexById(s.struct)) out.set(String(id), f.path);
  for (const [id, f] of indexById(currentSchema(md).struct)) out.set(String(id), f.path);
  return out;
}

function fmtValue(v: unknown): string {
  return v === null ? 'null' : typeof v === 'string' ? v : JSON.stringify(v);
}


function renderFile(sign: string, f: FileJson, names: Map<string, string>): string[] {
  const part = Object.entries(f.partition).map(([k, v]) => `${k}=${fmtValue(v)}`).join(', ');
  const kind = f.content_offset !== undefined ? 'deletion_vector' : f.content;
  const blob = f.content_offset !== undefined ? ` @${f.content_offset}+${f.content_size_in_bytes ?? '?'}` : '';
  const lines = [`  ${sign} ${kind.padEnd(16)} ${f.record_count.padStart(9)} rows ${fmtBytes(f.file_size_in_bytes).padStart(10)}  ${part ? `[${part}] ` : ''}${f.file_path}${blob}`];
  if (f.referenced_data_file !== undefined) lines.push(`      for ${f.referenced_data_file}`);
  const ids = new Set([...Object.keys(f.lower_bounds), ...Object.keys(f.upper_bounds)]);
  for (const id of [...ids].sort((a, b) => Number(a) - Number(b))) {
    const lo = id in f.lower_bounds ? fmtValue(f.lower_bounds[id]) : '?';
    const hi = id in f.upper_bounds ? fmtValue(f.upper_bounds[id]) : '?';
    lines.push(`      ${(names.get(id) ?? `#${id}`).padEnd(20)} ${lo} .. ${hi}`);
  }
  return lines;
}

function sumRecords(files: FileJson[], content: FileJson['content']): bigint {
  return files.filter((f) => f.content === content).reduce((n, f) => n + BigInt(f.record_count), 0n);
}

/** One line per snapshot (the default view), or each snapshot with its files (`files`). */
export function renderInspect(r: InspectJson, names: Map<string, string>, view: { files: boolean } = { files: true }): string {
  const out: string[] = [];
  out.push(`table            ${r.table}`);
  out.push(`metadata         ${r.metadata_location}`);
  out.push(`format version   v${r.format_version}`);
  out.push(`location         ${r.location}`);
  out.push(`current snapshot ${r.current_snapshot_id ?? '(none)'}`);
  out.push(`snapshots        ${r.snapshot_count}${r.snapshots.length < r.snapshot_count ? ` (showing ${r.snapshots.length})` : ''}`);
  if (!view.files) {
    out.push('');
    out.push(`${'snapshot'.padEnd(20)} ${'seq'.padStart(5)}  ${'committed'.padEnd(24)} ${'operation'.padEnd(10)} ${'+files'.padStart(7)} ${'-files'.padStart(7)} ${'+rows'.padStart(11)} ${'-rows'.padStart(11)} ${'+deletes'.padStart(9)}`);
    for (const s of r.snapshots) {
      const deletes = s.added_files.filter((f) => f.content !== 'data').length;
      out.push(`${s.snapshot_id.padEnd(20)} ${s.sequence_number.padStart(5)}  ${s.timestamp.padEnd(24)} ${(s.operation ?? '-').padEnd(10)} ${String(s.added_files.length).padStart(7)} ${String(s.removed_files.length).padStart(7)} ` +
        `${sumRecords(s.added_files, 'data').toLocaleString('en-US').padStart(11)} ${sumRecords(s.removed_files, 'data').toLocaleString('en-US').padStart(11)} ${String(deletes).padStart(9)}${s.on_main ? '' : '  (not on main)'}`);
    }
    out.push('');
    out.push('--files lists every file with its partition and bounds; --snapshot ID shows one snapshot; --json has everything');
  } else {
    for (const s of r.snapshots) {
      out.push('');
      out.push(`snapshot ${s.snapshot_id}  seq ${s.sequence_number}  ${s.timestamp}  ${s.operation ?? '(no operation)'}${s.on_main ? '' : '  (not on main)'}`);
      out.push(`  parent ${s.parent_snapshot_id ?? '(none)'}; added ${s.added_files.length} files, removed ${s.removed_files.length}`);
      for (const f of s.added_files) out.push(...renderFile('+', f, names));
      for (const f of s.removed_files) out.push(...renderFile('-', f, names));
    }
  }
  for (const w of r.warnings) out.push(`warning: ${w}`);
  return out.join('\n') + '\n';
}
