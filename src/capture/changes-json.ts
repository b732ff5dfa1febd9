import { stringifyJsonLossless } from '../iceberg/json.js';
import type { TableMetadata } from '../iceberg/metadata.js';
import type { ChangeSet } from './change-set.js';
import { FileDescriber, type FileJson } from './file-json.js';
import type { OutputBounds } from './output-bounds.js';
import type { FileChange } from './snapshot-changes.js';
import { changedPartitions, fieldRange, type ChangedPartition, type FieldRange } from './ranges.js';

/** The JSON form of a change set (`ips changes --json`, and later the batch API). */
export interface ChangesJson {
  from: string | null;
  to: string;
  snapshots: { snapshot_id: string; sequence_number: string; operation: string; action: string; reason: string; added_files: number; removed_files: number }[];
  added_files: FileJson[];
  removed_files: FileJson[];
  ranges: Record<string, FieldRange>;
  changed_partitions: ChangedPartition[];
  icdc?: { table: string; metadata_location: string; snapshot_id: string };
  /** Present when the lineage was broken and files were recovered from sequence numbers. */
  fallback?: { kind: 'file-sequence-number'; from_sequence_number: string };
  warnings: string[];
}

export function changesJson(md: TableMetadata, cs: ChangeSet, rangeFields: string[]): ChangesJson {
  const describer = new FileDescriber(md);
  const all = [...cs.added, ...cs.removed];
  const ranges: Record<string, FieldRange> = {};
  for (const f of rangeFields) ranges[f] = fieldRange(md, describer, all, f);
  const out: ChangesJson = {
    from: cs.range.from?.toString() ?? null,
    to: cs.range.to.toString(),
    snapshots: cs.snapshots.map(snapshotJson),
    added_files: cs.added.map((c) => describer.describe(c)),
    removed_files: cs.removed.map((c) => describer.describe(c)),
    ranges,
    changed_partitions: changedPartitions(describer, all),
    warnings: [...cs.warnings],
  };
  if (cs.fallback) out.fallback = { kind: 'file-sequence-number', from_sequence_number: cs.fallback.fromSequenceNumber.toString() };
  out.warnings.push(...describer.warnings);
  return out;
}

/** Where streamed output goes: a write that may wait (backpressure). */
export type ChunkSink = (chunk: string) => void | Promise<void>;

/**
 * Collects small strings into chunks of about `size` characters before handing them to `sink`:
 * one write per file record would cost a system call each; one string for the whole answer
 * would hold every record at once.
 */
export class ChunkedWriter {
  private parts: string[] = [];
  private length = 0;

  constructor(private readonly sink: ChunkSink, private readonly size = 256 * 1024) {}

  async write(s: string): Promise<void> {
    this.parts.push(s);
    this.length += s.length;
    if (this.length >= this.size) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.parts.length === 0) return;
    const chunk = this.parts.join('');
    this.parts = [];
    this.length = 0;
    await this.sink(chunk);
  }
}

/** `value` as `stringifyJsonLossless(value, 2)` prints it when nested `depth` levels deep. */
function nested(value: unknown, depth: number): string {
  return stringifyJsonLossless(value, 2).replaceAll('\n', `\n${'  '.repeat(depth)}`);
}

/**
 * `ips changes --json` written as it is produced: the same bytes as
 * `stringifyJsonLossless(changesJson(md, cs, rangeFields) + icdc, 2) + '\n'`, but each file is
 * described and written in turn, never the whole document as objects or as one string. Ranges
 * and changed partitions are computed first, so an unknown field fails before anything is
 * written. `opts.bounds`: the plan kept no bounds beyond the range fields' (a long range's
 * compact entries); they are read back from the manifests a window of files at a time.
 */
export async function writeChangesJson(
  md: TableMetadata, cs: ChangeSet, rangeFields: string[], sink: ChunkSink,
  extra: { icdc?: ChangesJson['icdc'] } = {}, opts: { bounds?: OutputBounds } = {},
): Promise<void> {
  const describer = new FileDescriber(md);
  const ranges: Record<string, FieldRange> = {};
  for (const f of rangeFields) ranges[f] = fieldRange(md, describer, [...cs.added, ...cs.removed], f);
  const partitions = changedPartitions(describer, [...cs.added, ...cs.removed]);
  const w = new ChunkedWriter(sink);
  const field = async (name: string, value: unknown, first = false): Promise<void> => {
    await w.write(`${first ? '' : ','}\n  ${JSON.stringify(name)}: ${nested(value, 1)}`);
  };
  const array = async <T>(name: string, items: T[], each: (item: T) => unknown): Promise<void> => {
    if (items.length === 0) return field(name, []);
    await w.write(`,\n  ${JSON.stringify(name)}: [`);
    for (let i = 0; i < items.length; i++) await w.write(`${i === 0 ? '' : ','}\n    ${nested(each(items[i]!), 2)}`);
    await w.write('\n  ]');
  };
  await w.write('{');
  await field('from', cs.range.from?.toString() ?? null, true);
  await field('to', cs.range.to.toString());
  await array('snapshots', cs.snapshots, snapshotJson);
  const files = async (name: string, list: FileChange[]): Promise<void> => {
    if (list.length === 0) return field(name, []);
    await w.write(`,\n  ${JSON.stringify(name)}: [`);
    let first = true;
    for await (const window of opts.bounds ? opts.bounds.windows(list) : [list]) {
      for (const c of window) {
        await w.write(`${first ? '' : ','}\n    ${nested(describer.describe(c), 2)}`);
        first = false;
      }
    }
    await w.write('\n  ]');
  };
  await files('added_files', cs.added);
  await files('removed_files', cs.removed);
  await field('ranges', ranges);
  await field('changed_partitions', partitions);
  const warnings = [...cs.warnings];
  const tail: { fallback?: ChangesJson['fallback']; icdc?: ChangesJson['icdc'] } = {};
  if (cs.fallback) tail.fallback = { kind: 'file-sequence-number', from_sequence_number: cs.fallback.fromSequenceNumber.toString() };
  if (extra.icdc) tail.icdc = extra.icdc;
  warnings.push(...describer.warnings, ...(opts.bounds?.warnings ?? []));
  await field('warnings', warnings);
  if (tail.fallback) await field('fallback', tail.fallback);
  if (tail.icdc) await field('icdc', tail.icdc);
  await w.write('\n}\n');
  await w.flush();
}

function snapshotJson(d: ChangeSet['snapshots'][number]): ChangesJson['snapshots'][number] {
  return {
    snapshot_id: d.snapshot.snapshotId.toString(),
    sequence_number: d.snapshot.sequenceNumber.toString(),
    operation: d.operation,
    action: d.action,
    reason: d.reason,
    added_files: d.added.length,
    removed_files: d.removed.length,
  };
}
