import { IpsError } from '../errors.js';
import type { DataFile, EntryStatus, FileContent, ManifestEntry } from '../iceberg/manifest.js';
import type { ManifestFile } from '../iceberg/manifest-list.js';
import type { DeleteFootprint } from './delete-footprint.js';
import { partValue } from './file-key.js';
import type { FileChange } from './snapshot-changes.js';

/**
 * Which column statistics a plan keeps per file. `fields`: the field ids whose value/null counts
 * and bounds a computation needs (change ranges; `'all'` keeps every one); `allBounds`: keep every
 * lower/upper bound as well, for output that lists them (`ips changes --json`).
 */
export interface StatsWanted {
  fields: 'all' | 'none' | ReadonlySet<number>;
  allBounds?: boolean;
}

/**
 * The statistics a manifest decoder must decode for `want` (all bounds when the output lists
 * them; otherwise only the wanted fields): what to pass as decodeManifest's stats selection
 * once it has one, so that unwanted maps are skipped instead of decoded and dropped.
 */
export function decodeStats(want: StatsWanted): 'all' | 'none' | ReadonlySet<number> {
  return want.allBounds ? 'all' : want.fields;
}

/** Field id of `file_path` in position delete files: its bounds narrow a delete's footprint. */
export const POS_FILE_PATH_ID = 2147483546;

/** The stats selection for `--range` fields (ids), plus what delete footprints read. */
export function statsForRanges(fieldIds: Iterable<number>, allBounds: boolean): StatsWanted {
  const ids = new Set(fieldIds);
  if (ids.size > 0) ids.add(POS_FILE_PATH_ID);
  return { fields: ids.size > 0 ? ids : 'none', allBounds };
}

// Packed stats: records of [kind u8][field id, unsigned LEB128][length, unsigned LEB128][bytes],
// kept as a latin1 string: one heap object per file, no Buffer view or Map per bound, and 3 bytes
// of framing for a typical bound (a 950,000-file plan keeps ~16 bounds a file). Counts are 8-byte
// little-endian longs.
const LOWER = 0;
const UPPER = 1;
const VALUES = 2;
const NULLS = 3;

/** Fields a plan rarely has: held in one optional object so the common record stays small. */
interface Rare {
  equalityIds: number[] | null;
  firstRowId: bigint | null;
  referencedDataFile: string | null;
  contentOffset: bigint | null;
  contentSizeInBytes: bigint | null;
}

/**
 * A manifest entry reduced to what change planning and its output use: path, content, format,
 * partition, record count, size, sequence numbers, snapshot id, the statistics asked for, and the
 * delete-file fields output shows (equality ids, referenced file, DV offset/size, first row id).
 * Column sizes, NaN counts, key metadata, split offsets and sort order read as null.
 * It is at once the file change, the entry and its data file (`entry` and `dataFile` return
 * itself): a 950,000-file plan keeps one object per file, not three. Netting, ranges and the
 * JSON/text output read it like a decoded entry. The dropped statistics read as null (not
 * recorded); a compact entry is therefore never written back into a manifest (ICDC tables are
 * written from full entries).
 */
export class CompactEntry implements FileChange, ManifestEntry, DataFile {
  /** Set by resolveDeleteFootprints for a delete file. */
  footprint?: DeleteFootprint;

  constructor(
    readonly status: EntryStatus,
    readonly snapshotId: bigint,
    readonly sequenceNumber: bigint | null,
    readonly fileSequenceNumber: bigint | null,
    readonly content: FileContent,
    readonly filePath: string,
    readonly fileFormat: string,
    readonly partition: Map<number, unknown>,
    // Counts as numbers while exact (almost always): a bigint is one more heap object per file.
    private readonly records: number | bigint,
    private readonly size: number | bigint,
    private readonly stats: string | null,
    private readonly rare: Rare | null,
    readonly manifest: ManifestFile,
  ) {}

  get entry(): ManifestEntry {
    return this;
  }

  get dataFile(): DataFile {
    return this;
  }

  get recordCount(): bigint {
    return typeof this.records === 'bigint' ? this.records : BigInt(this.records);
  }

  get fileSizeInBytes(): bigint {
    return typeof this.size === 'bigint' ? this.size : BigInt(this.size);
  }

  get lowerBounds(): Map<number, Buffer> | null {
    return unpackBuffers(this.stats, LOWER);
  }

  get upperBounds(): Map<number, Buffer> | null {
    return unpackBuffers(this.stats, UPPER);
  }

  get valueCounts(): Map<number, bigint> | null {
    return unpackCounts(this.stats, VALUES);
  }

  get nullValueCounts(): Map<number, bigint> | null {
    return unpackCounts(this.stats, NULLS);
  }

  get columnSizes(): null {
    return null;
  }

  get nanValueCounts(): null {
    return null;
  }

  get keyMetadata(): null {
    return null;
  }

  get splitOffsets(): null {
    return null;
  }

  get equalityIds(): number[] | null {
    return this.rare?.equalityIds ?? null;
  }

  get firstRowId(): bigint | null {
    return this.rare?.firstRowId ?? null;
  }

  get referencedDataFile(): string | null {
    return this.rare?.referencedDataFile ?? null;
  }

  get contentOffset(): bigint | null {
    return this.rare?.contentOffset ?? null;
  }

  get contentSizeInBytes(): bigint | null {
    return this.rare?.contentSizeInBytes ?? null;
  }

  get sortOrderId(): null {
    return null;
  }
}

function* records(stats: string): Generator<{ kind: number; id: number; bytes: Buffer }> {
  const b = Buffer.from(stats, 'latin1');
  let p = 0;
  const uleb = (): number => {
    let v = 0;
    let scale = 1;
    for (;;) {
      const x = b[p++]!;
      v += (x & 0x7f) * scale;
      if (x < 0x80) return v;
      scale *= 128;
    }
  };
  while (p < b.length) {
    const kind = b[p++]!;
    const id = uleb();
    const len = uleb();
    yield { kind, id, bytes: b.subarray(p, p + len) };
    p += len;
  }
}

// A map kind absent from the packed stats reads as null, as an entry without that map decodes.
function unpackBuffers(stats: string | null, kind: number): Map<number, Buffer> | null {
  if (stats === null) return null;
  let out: Map<number, Buffer> | null = null;
  for (const r of records(stats)) if (r.kind === kind) (out ??= new Map()).set(r.id, r.bytes);
  return out;
}

function unpackCounts(stats: string | null, kind: number): Map<number, bigint> | null {
  if (stats === null) return null;
  let out: Map<number, bigint> | null = null;
  for (const r of records(stats)) if (r.kind === kind) (out ??= new Map()).set(r.id, r.bytes.readBigInt64LE(0));
  return out;
}

/**
 * Shares equal values between the compact entries of one plan: partition tuples (a table has few
 * partitions and many files), and the snapshot ids and sequence numbers a manifest's entries
 * inherit. Bounded: past `maxPartitions` distinct tuples, new ones are kept unshared.
 */
export class EntryInterner {
  private readonly partitions = new Map<string, Map<number, unknown>>();
  private lastBig: bigint[] = [];
  private lastFormat = '';
  private lastPartition: { specId: number; tuple: Map<number, unknown> } | null = null;
  private scratch = Buffer.allocUnsafe(4096);

  constructor(private readonly maxPartitions = 100_000) {}

  big(v: bigint | null): bigint | null {
    if (v === null) return null;
    for (const b of this.lastBig) if (b === v) return b;
    if (this.lastBig.length >= 4) this.lastBig.shift();
    this.lastBig.push(v);
    return v;
  }

  /** One string for a file format every entry repeats (`PARQUET`). */
  format(f: string): string {
    if (f === this.lastFormat) return this.lastFormat;
    this.lastFormat = f;
    return f;
  }

  partition(specId: number, p: Map<number, unknown>): Map<number, unknown> {
    // Entries of one manifest mostly share one partition: the previous tuple, compared value by
    // value, spares building the key (values `===` cannot compare, such as bytes, take the key).
    const last = this.lastPartition;
    if (last !== null && last.specId === specId && sameTuple(last.tuple, p)) return last.tuple;
    let key = `${specId}`;
    for (const [id, v] of p) key += `|${id}=${partValue(v)}`;
    let tuple = this.partitions.get(key);
    if (!tuple) {
      tuple = p;
      if (this.partitions.size < this.maxPartitions) this.partitions.set(key, p);
    }
    this.lastPartition = { specId, tuple };
    return tuple;
  }

  /** Packs the wanted statistics of `df` (see CompactEntry), or null when none are wanted. */
  pack(df: DataFile, want: StatsWanted): string | null {
    const fields = want.fields;
    if (fields === 'none' && !want.allBounds) return null;
    const keep = (id: number): boolean => fields === 'all' || (fields !== 'none' && fields.has(id));
    let n = 0;
    const uleb = (v: number): void => {
      while (v >= 0x80) {
        this.scratch[n++] = (v % 128) | 0x80;
        v = Math.floor(v / 128);
      }
      this.scratch[n++] = v;
    };
    const put = (kind: number, id: number, bytes: Buffer | bigint): void => {
      if (!Number.isSafeInteger(id) || id < 0) return; // not a field id Iceberg assigns: nothing reads it
      const len = typeof bytes === 'bigint' ? 8 : bytes.length;
      if (n + 21 + len > this.scratch.length) {
        const bigger = Buffer.allocUnsafe(Math.max(this.scratch.length * 2, n + 21 + len));
        this.scratch.copy(bigger, 0, 0, n);
        this.scratch = bigger;
      }
      this.scratch[n++] = kind;
      uleb(id);
      uleb(len);
      if (typeof bytes === 'bigint') this.scratch.writeBigInt64LE(BigInt.asIntN(64, bytes), n);
      else bytes.copy(this.scratch, n);
      n += len;
    };
    const bounds = (kind: number, m: ReadonlyMap<number, Buffer> | null): void => {
      if (m === null) return;
      for (const [id, b] of m) if (want.allBounds || keep(id)) put(kind, id, b);
    };
    const counts = (kind: number, m: ReadonlyMap<number, bigint> | null): void => {
      if (m === null) return;
      for (const [id, c] of m) if (keep(id)) put(kind, id, c);
    };
    bounds(LOWER, df.lowerBounds);
    bounds(UPPER, df.upperBounds);
    counts(VALUES, df.valueCounts);
    counts(NULLS, df.nullValueCounts);
    return this.scratch.toString('latin1', 0, n);
  }
}

/**
 * The compact form of a decoded entry, made right after decode so the full entry (every stats
 * map) is garbage at once. `want` says which statistics stay; when the manifest decoder can skip
 * statistics itself, the same selection is what it is asked to decode.
 */
export function compactEntry(entry: ManifestEntry, manifest: ManifestFile, want: StatsWanted, interner: EntryInterner): CompactEntry {
  const df = entry.dataFile;
  if (df.filePath.length > 64 * 1024) throw new IpsError('INVALID_MANIFEST', `a file path of ${df.filePath.length} characters is not plausible (limit 65536)`);
  const rare = df.equalityIds !== null || df.firstRowId !== null || df.referencedDataFile !== null || df.contentOffset !== null || df.contentSizeInBytes !== null
    ? { equalityIds: df.equalityIds, firstRowId: df.firstRowId, referencedDataFile: df.referencedDataFile, contentOffset: df.contentOffset, contentSizeInBytes: df.contentSizeInBytes }
    : null;
  return new CompactEntry(
    entry.status,
    interner.big(entry.snapshotId)!,
    interner.big(entry.sequenceNumber),
    interner.big(entry.fileSequenceNumber),
    df.content,
    df.filePath,
    interner.format(df.fileFormat),
    interner.partition(manifest.partitionSpecId, df.partition),
    exactNumber(df.recordCount),
    exactNumber(df.fileSizeInBytes),
    interner.pack(df, want),
    rare,
    manifest,
  );
}

/** `v` as a number when that is exact, else the bigint itself. */
function exactNumber(v: bigint): number | bigint {
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : v;
}

/** Same field ids in the same order with `===` values (then partValue keys would be equal too). */
function sameTuple(a: Map<number, unknown>, b: Map<number, unknown>): boolean {
  if (a.size !== b.size) return false;
  const ia = a.entries();
  for (const [id, v] of b) {
    const x = ia.next().value as [number, unknown];
    if (x[0] !== id || x[1] !== v) return false;
  }
  return true;
}
