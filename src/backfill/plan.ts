import { IpsError, isIpsError } from '../errors.js';
import { computeChangeSet, decisionEvents } from '../capture/change-set.js';
import { compactEntry, decodeStats, EntryInterner, type StatsWanted } from '../capture/compact-entry.js';
import { FileDescriber } from '../capture/file-json.js';
import { changeKey, fileKey, partitionKey } from '../capture/file-key.js';
import type { ManifestReader } from '../capture/manifest-reader.js';
import { netEvents, type FileEvent } from '../capture/netting.js';
import type { CapturePolicy } from '../capture/policy.js';
import { branchHead, resolveRangeWithHistory } from '../capture/range.js';
import { partitionInterval } from '../capture/ranges.js';
import type { FileChange } from '../capture/snapshot-changes.js';
import { EntryStatus } from '../iceberg/manifest.js';
import { snapshotById, type Snapshot, type TableMetadata } from '../iceberg/metadata.js';
import { partitionValueFromAvro } from '../iceberg/partition-values.js';
import { decodeBinaryValue } from '../iceberg/values.js';
import type { ChunkFileRef } from '../state/backfills.js';
import { asBig, formatValue, parseWhere, type WhereRange } from './predicate.js';

/**
 * Planning a backfill: which files each chunk hands out.
 *
 * `--where` (a field range over the table's current data): the live data files of the current
 * snapshot whose column bounds or partition values can hold a value in the range, cut into
 * chunks by the field's value (day, hour, month) or by file count. A file whose values span
 * several chunks goes into each chunk it can hold rows of: the chunk's `range` (half-open
 * `[lower, upper)`, and `min`/`max` inclusive) is the filter the consumer applies to the rows
 * it reads, so no row is processed twice and none is missed. Live delete files go with every
 * chunk holding a data file of their partition (deletion vectors only with their data file).
 * It needs no history: expired snapshots do not matter.
 *
 * `--snapshots FROM..TO` replays the change sets of (FROM, TO] with the consumer's policy,
 * whole snapshots per chunk (`snapshots:N`, `files:N` = at least N files, or the snapshots'
 * commit day/hour/month); it needs that history, and says to use --where when it expired.
 */

export type ChunkUnit =
  | { kind: 'day' | 'hour' | 'month' }
  | { kind: 'files'; n: number }
  | { kind: 'snapshots'; n: number };

export function parseChunk(text: string): ChunkUnit {
  if (text === 'day' || text === 'hour' || text === 'month') return { kind: text };
  const m = /^(files|snapshots):([1-9]\d{0,6})$/.exec(text);
  if (m) return { kind: m[1] as 'files' | 'snapshots', n: Number(m[2]) };
  throw new IpsError('INVALID_ARGUMENT', `--chunk "${text}": use day, hour, month, files:N or snapshots:N`);
}

export function chunkText(u: ChunkUnit): string {
  return u.kind === 'files' || u.kind === 'snapshots' ? `${u.kind}:${u.n}` : u.kind;
}

export interface PlannedChunk {
  range: Record<string, unknown>;
  added: FileChange[];
  removed: FileChange[];
  fromSnapshotId: bigint | null;
  toSnapshotId: bigint | null;
}

export interface Plan {
  kind: 'where' | 'snapshots';
  chunks: PlannedChunk[];
  pinned: Snapshot | null;
  /** Range fields of the request, for the spec JSON. */
  spec: Record<string, unknown>;
  warnings: string[];
  /** --where: the live data files of the pinned snapshot and how many can hold rows of the range. */
  liveDataFiles: number;
  candidateFiles: number;
}

// -- --where --------------------------------------------------------------------------------

/** The interval [lo, hi] (inclusive) of a data file's values of the field; 'none' when it has only nulls; null when unbounded. */
function fileInterval(describer: FileDescriber, fc: FileChange, w: WhereRange): { lo: bigint; hi: bigint } | 'none' | null {
  const df = fc.entry.dataFile;
  const nulls = df.nullValueCounts?.get(w.fieldId);
  const values = df.valueCounts?.get(w.fieldId);
  if (values !== undefined && nulls !== undefined && values === nulls) return 'none';
  let lo: bigint | null = null;
  let hi: bigint | null = null;
  const lb = df.lowerBounds?.get(w.fieldId);
  const ub = df.upperBounds?.get(w.fieldId);
  try {
    if (lb !== undefined) lo = asBig(decodeBinaryValue(w.type, lb));
    if (ub !== undefined) hi = asBig(decodeBinaryValue(w.type, ub));
  } catch {
    lo = hi = null; // an unreadable bound bounds nothing
  }
  for (const pf of describer.boundSpec(fc.manifest.partitionSpecId)) {
    if (pf.field.sourceId !== w.fieldId || pf.sourceType === null) continue;
    const iv = partitionInterval(pf.transform, w.type, partitionValueFromAvro(pf.resultType, df.partition.get(pf.field.fieldId)));
    if (!iv) continue;
    const plo = asBig(iv.lo);
    const phi = asBig(iv.hi);
    lo = lo === null || plo > lo ? plo : lo;
    hi = hi === null || phi < hi ? phi : hi;
  }
  return lo === null || hi === null ? null : { lo, hi };
}

function perDay(w: WhereRange): bigint | null {
  switch (w.type.kind) {
    case 'date': return 1n;
    case 'timestamp': case 'timestamptz': return 86_400_000_000n;
    case 'timestamp_ns': case 'timestamptz_ns': return 86_400_000_000_000n;
    default: return null;
  }
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && (a < 0n) !== (b < 0n) ? q - 1n : q;
}

/** The first chunk boundary after v. */
function nextBoundary(w: WhereRange, unit: 'day' | 'hour' | 'month', v: bigint): bigint {
  const day = perDay(w);
  if (day === null) throw new IpsError('INVALID_ARGUMENT', `--chunk ${unit} needs a date or timestamp column; ${w.field} is a ${w.type.kind}: use --chunk files:N`);
  if (unit === 'hour') {
    if (day === 1n) throw new IpsError('INVALID_ARGUMENT', `--chunk hour needs a timestamp column; ${w.field} is a date: use day or month`);
    const h = day / 24n;
    return (floorDiv(v, h) + 1n) * h;
  }
  if (unit === 'day') return (floorDiv(v, day) + 1n) * day;
  const d = new Date(Number(floorDiv(v, day)) * 86_400_000);
  return BigInt(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) / 86_400_000) * day;
}

function rangeJson(w: WhereRange, lo: bigint, hi: bigint): Record<string, unknown> {
  const lower = formatValue(w.type, lo);
  const upper = formatValue(w.type, hi);
  const quote = w.type.kind === 'int' || w.type.kind === 'long' ? (s: string) => s : (s: string) => `'${s}'`;
  return {
    field: w.field,
    lower, upper,
    min: lower, max: formatValue(w.type, hi - 1n),
    predicate: `${w.field} >= ${quote(lower)} and ${w.field} < ${quote(upper)}`,
  };
}

/**
 * Live data and delete files of a snapshot, as FileChanges (entry + manifest). `compact`: as
 * compact entries keeping only those statistics (compact-entry.ts), for a plan that holds every
 * live file of the table at once; `keep`: which files to keep, so that a chunk's files are found
 * in full without holding every other live file.
 */
export async function liveFiles(reader: ManifestReader, snapshot: Snapshot, opts: { compact?: StatsWanted; keep?: (f: FileChange) => boolean; manifests?: ReadonlySet<string> } = {}): Promise<FileChange[]> {
  const interner = opts.compact ? new EntryInterner() : null;
  const list = await reader.manifestList(snapshot);
  const out: FileChange[] = [];
  const seen = new Set<string>();
  for (const mf of list.manifests) {
    if (seen.has(mf.path)) continue;
    seen.add(mf.path);
    if (mf.addedFilesCount === 0 && mf.existingFilesCount === 0) continue;
    if (opts.manifests !== undefined && !opts.manifests.has(mf.path)) continue;
    const m = await reader.manifest(mf, opts.compact ? { stats: decodeStats(opts.compact), cache: false } : {});
    for (const entry of m.entries) {
      if (entry.status === EntryStatus.DELETED) continue;
      const f: FileChange = interner ? compactEntry(entry, mf, opts.compact!, interner) : { entry, manifest: mf };
      if (opts.keep === undefined || opts.keep(f)) out.push(f);
    }
  }
  return out;
}

/** What a chunk stores of a planned file: what names it in the table (file-key.ts), not its description. */
export function chunkFileRef(f: FileChange): ChunkFileRef {
  const df = f.entry.dataFile;
  return df.contentOffset === null ? { file_path: df.filePath } : { file_path: df.filePath, content_offset: df.contentOffset.toString() };
}

/** The key file-key.ts gives the file a ref names. */
function refKey(r: ChunkFileRef): string {
  return fileKey({ filePath: r.file_path, contentOffset: r.content_offset === undefined ? null : BigInt(r.content_offset) });
}

export async function planWhere(md: TableMetadata, reader: ManifestReader, branch: string, whereText: string, unit: ChunkUnit): Promise<Plan> {
  const w = parseWhere(md, whereText);
  if (unit.kind === 'snapshots') throw new IpsError('INVALID_ARGUMENT', '--chunk snapshots:N goes with --snapshots; with --where use day, hour, month or files:N');
  const head = branchHead(md, branch);
  if (head === null) throw new IpsError('EMPTY_RANGE', 'the table has no snapshot yet: there is nothing to backfill');
  const pinned = snapshotById(md, head)!;
  const describer = new FileDescriber(md);
  // Compact, with the field's statistics only: the plan holds every live file of the table at once.
  const live = await liveFiles(reader, pinned, { compact: { fields: new Set([w.fieldId]) } });
  const data = live.filter((f) => f.entry.dataFile.content === 0);
  const deletes = live.filter((f) => f.entry.dataFile.content !== 0);
  const warnings: string[] = [];

  const intervals = new Map<FileChange, { lo: bigint; hi: bigint } | null>();
  for (const f of data) {
    const iv = fileInterval(describer, f, w);
    if (iv === 'none') continue; // only nulls: no row of it is in any range
    if (iv !== null && ((w.lo !== null && iv.hi < w.lo) || (w.hi !== null && iv.lo >= w.hi))) continue;
    intervals.set(f, iv);
  }
  const candidates = [...intervals.keys()];
  const unbounded = candidates.filter((f) => intervals.get(f) === null);
  if (candidates.length === 0) {
    throw new IpsError('EMPTY_RANGE', `--where ${whereText}: no live data file of the table's current snapshot (${data.length} files) can hold rows in that range; check the bounds and the column`);
  }
  if (unbounded.length === candidates.length) {
    throw new IpsError('RANGE_NOT_PRUNABLE',
      `--where on ${w.field}: no partition value or column bound of the table bounds ${w.field}, so every chunk would read all ${candidates.length} live data files; backfill a partition column or a column with metrics, or use --snapshots`,
      { details: { field: w.field, files_per_chunk: candidates.length } });
  }
  if (unbounded.length > 0) warnings.push(`${unbounded.length} file(s) have no bound on ${w.field} and go into every chunk (e.g. ${unbounded[0]!.entry.dataFile.filePath})`);

  // The range's open sides close at the files' bounds.
  const bounded = candidates.map((f) => intervals.get(f)).filter((x): x is { lo: bigint; hi: bigint } => x !== null && x !== undefined);
  const lo = w.lo ?? bounded.reduce((m, x) => (x.lo < m ? x.lo : m), bounded[0]!.lo);
  const hi = w.hi ?? bounded.reduce((m, x) => (x.hi + 1n > m ? x.hi + 1n : m), bounded[0]!.hi + 1n);

  const byPartition = new Map<string, FileChange[]>();
  for (const d of deletes) {
    const k = partitionKey(d);
    let l = byPartition.get(k);
    if (!l) byPartition.set(k, (l = []));
    l.push(d);
  }
  const globalDeletes = deletes.filter((d) => describer.boundSpec(d.manifest.partitionSpecId).length === 0);
  const withDeletes = (files: FileChange[]): FileChange[] => {
    const paths = new Set(files.map((f) => f.entry.dataFile.filePath));
    const out = new Map<string, FileChange>();
    for (const f of files) {
      for (const d of byPartition.get(partitionKey(f)) ?? []) {
        const ref = d.entry.dataFile.referencedDataFile;
        if (ref !== null && !paths.has(ref)) continue;
        out.set(changeKey(d), d);
      }
    }
    for (const d of globalDeletes) if (d.entry.dataFile.referencedDataFile === null || paths.has(d.entry.dataFile.referencedDataFile)) out.set(changeKey(d), d);
    return [...files, ...out.values()];
  };

  const chunks: PlannedChunk[] = [];
  const chunk = (clo: bigint, chi: bigint, files: FileChange[], range?: Record<string, unknown>): void => {
    if (files.length === 0) return; // nothing of the table lies there
    chunks.push({ range: range ?? rangeJson(w, clo, chi), added: withDeletes(files), removed: [], fromSnapshotId: null, toSnapshotId: pinned.snapshotId });
  };
  if (unit.kind === 'files') {
    const sorted = [...candidates].sort((a, b) => {
      const x = intervals.get(a)?.lo ?? lo;
      const y = intervals.get(b)?.lo ?? lo;
      return x < y ? -1 : x > y ? 1 : a.entry.dataFile.filePath < b.entry.dataFile.filePath ? -1 : 1;
    });
    for (let i = 0; i < sorted.length; i += unit.n) chunk(lo, hi, sorted.slice(i, i + unit.n));
  } else {
    for (let clo = lo; clo < hi;) {
      const b = nextBoundary(w, unit.kind, clo);
      const chi = b < hi ? b : hi;
      chunk(clo, chi, candidates.filter((f) => {
        const iv = intervals.get(f);
        return iv === null || iv === undefined || (iv.lo < chi && iv.hi >= clo);
      }));
      clo = chi;
    }
  }
  return {
    kind: 'where', chunks, pinned, warnings, liveDataFiles: data.length, candidateFiles: candidates.length,
    spec: { where: whereText, field: w.field, lower: formatValue(w.type, lo), upper: formatValue(w.type, hi), chunk: chunkText(unit), planned_on_snapshot_id: pinned.snapshotId.toString() },
  };
}

/**
 * The files of a --where chunk again, from the snapshot it was planned on (at prepare time), in
 * full; only from `manifests` when the plan stored which of the snapshot's manifests hold them.
 */
export async function whereChunkFiles(md: TableMetadata, reader: ManifestReader, pinnedId: bigint, files: ChunkFileRef[], manifests?: string[]): Promise<FileChange[]> {
  const pinned = snapshotById(md, pinnedId);
  if (!pinned) {
    throw new IpsError('BACKFILL_SNAPSHOT_EXPIRED',
      `snapshot ${pinnedId}, which the backfill was planned on, has expired from the table; keep the table's oldest needed snapshot (\`ips tables get\`) while backfills run, and create a new backfill`,
      { details: { snapshot_id: pinnedId.toString() } });
  }
  const want = new Set(files.map(refKey));
  const found = await liveFiles(reader, pinned, { keep: (f) => want.has(fileKey(f.entry.dataFile)), ...(manifests ? { manifests: new Set(manifests) } : {}) });
  if (found.length !== want.size) throw new IpsError('STATE_CORRUPT', `chunk files: ${want.size} planned, ${found.length} found in snapshot ${pinnedId}`);
  return found;
}

// -- --snapshots ----------------------------------------------------------------------------

const HISTORY_CODES = new Set(['FROM_NOT_ANCESTOR', 'LINEAGE_BROKEN', 'FROM_EXPIRED', 'HISTORY_TRUNCATED', 'UNKNOWN_SNAPSHOT', 'NOT_ON_BRANCH']);

export function parseSnapshots(text: string): { from: bigint | null; to: bigint | null } {
  const m = /^(\d{1,19}|start)?\.\.(\d{1,19}|head)?$/.exec(text);
  if (!m) throw new IpsError('INVALID_ARGUMENT', `--snapshots "${text}": write FROM..TO with snapshot ids (FROM exclusive; "start" or empty for the first snapshot, "head" or empty for the current one)`);
  return {
    from: m[1] === undefined || m[1] === 'start' ? null : BigInt(m[1]),
    to: m[2] === undefined || m[2] === 'head' ? null : BigInt(m[2]),
  };
}

/** Manifests a compact plan reads at once. */
const PLAN_CONCURRENCY = 4;

/**
 * The change set of (from, to] with the consumer's policy, per snapshot; history errors name
 * --where. `compact`: files as compact entries without statistics, for planning a whole range
 * (what a chunk holds, counted); a chunk's prepare reads its own range in full.
 */
export async function snapshotEvents(md: TableMetadata, reader: ManifestReader, branch: string, from: bigint | null, to: bigint | null, policy: CapturePolicy, compact = false):
  Promise<{ snapshot: Snapshot; events: FileEvent[] }[]> {
  try {
    const range = await resolveRangeWithHistory(md, { from, to, branch }, reader);
    const cs = await computeChangeSet(reader, range, policy, md, compact ? { compact: { stats: { fields: 'none' }, concurrency: PLAN_CONCURRENCY } } : {});
    return cs.snapshots.map((d) => ({ snapshot: d.snapshot, events: decisionEvents(d) }));
  } catch (e) {
    if (isIpsError(e) && HISTORY_CODES.has(e.code)) {
      throw new IpsError(e.code,
        `--snapshots ${from ?? 'start'}..${to ?? 'head'}: ${e.message}. That history is gone, but the data it wrote may still be live: backfill it by value with --where (e.g. --where 'event_date >= … and event_date < …'), which reads the current snapshot only`,
        { cause: e, details: { ...(e.details ?? {}), use: '--where' } });
    }
    throw e;
  }
}

function timeBucket(ms: bigint, unit: 'day' | 'hour' | 'month'): string {
  const d = new Date(Number(ms));
  const iso = d.toISOString();
  return unit === 'month' ? iso.slice(0, 7) : unit === 'day' ? iso.slice(0, 10) : iso.slice(0, 13);
}

export async function planSnapshots(md: TableMetadata, reader: ManifestReader, branch: string, text: string, unit: ChunkUnit, policy: CapturePolicy): Promise<Plan> {
  const { from, to } = parseSnapshots(text);
  const per = await snapshotEvents(md, reader, branch, from, to, policy, true);
  if (per.length === 0) throw new IpsError('EMPTY_RANGE', `--snapshots ${text}: no snapshot in that range; check the ids with \`ips inspect\``);
  const groups: { snapshot: Snapshot; events: FileEvent[] }[][] = [];
  let cur: { snapshot: Snapshot; events: FileEvent[] }[] = [];
  let files = 0;
  let bucket: string | null = null;
  for (const s of per) {
    if (unit.kind === 'day' || unit.kind === 'hour' || unit.kind === 'month') {
      const b = timeBucket(s.snapshot.timestampMs, unit.kind);
      if (bucket !== null && b !== bucket) { groups.push(cur); cur = []; }
      bucket = b;
      cur.push(s);
      continue;
    }
    cur.push(s);
    files += s.events.filter((e) => !e.rewrite).length;
    if ((unit.kind === 'snapshots' && cur.length >= unit.n) || (unit.kind === 'files' && files >= unit.n)) {
      groups.push(cur);
      cur = [];
      files = 0;
    }
  }
  if (cur.length) groups.push(cur);
  const chunks: PlannedChunk[] = [];
  let prev: bigint | null = from;
  for (const g of groups.filter((x) => x.length > 0)) {
    const net = netEvents(g.flatMap((s) => s.events));
    const first = g[0]!.snapshot;
    const last = g.at(-1)!.snapshot;
    chunks.push({
      range: {
        from_snapshot_id: prev?.toString() ?? null, to_snapshot_id: last.snapshotId.toString(), snapshots: g.length,
        from_time: new Date(Number(first.timestampMs)).toISOString(), to_time: new Date(Number(last.timestampMs)).toISOString(),
      },
      added: net.added, removed: net.removed, fromSnapshotId: prev, toSnapshotId: last.snapshotId,
    });
    prev = last.snapshotId;
  }
  const nonEmpty = chunks.filter((c) => c.added.length + c.removed.length > 0);
  if (nonEmpty.length === 0) throw new IpsError('EMPTY_RANGE', `--snapshots ${text}: the range changes no file under the consumer's policy`);
  return {
    kind: 'snapshots', chunks, pinned: from === null ? null : snapshotById(md, from) ?? null, warnings: [], liveDataFiles: 0, candidateFiles: 0,
    spec: { snapshots: text, from_snapshot_id: from?.toString() ?? null, to_snapshot_id: chunks.at(-1)!.toSnapshotId!.toString(), chunk: chunkText(unit) },
  };
}

/** The files of a --snapshots chunk again, from its (from, to] change set (at prepare time). */
export async function snapshotChunkFiles(md: TableMetadata, reader: ManifestReader, branch: string, from: bigint | null, to: bigint, policy: CapturePolicy): Promise<{ added: FileChange[]; removed: FileChange[] }> {
  const net = netEvents((await snapshotEvents(md, reader, branch, from, to, policy)).flatMap((s) => s.events));
  return { added: net.added, removed: net.removed };
}
