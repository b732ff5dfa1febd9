import type { FileIO } from '../io/file-io.js';
import type { TableMetadata } from '../iceberg/metadata.js';
import type { ManifestEntry } from '../iceberg/manifest.js';

/**
 * What this process last wrote to each ICDC table: its metadata (as parsed right after writing),
 * where it is, its version, and the bytes of the current snapshot's manifest list and manifests.
 *
 * Why: every prepare writes the next snapshot on top of the previous one, and without this it
 * lists the table's metadata directory (which grows by five files a batch), reads and parses the
 * metadata back and decodes the manifests it wrote a moment ago. The cache is only a hint: the
 * next metadata file is still written if-absent, so a table another writer moved on fails the
 * write (CONFLICT; the entry is dropped and the writer reads the table from storage), and a
 * cached metadata file that no longer exists (a table dropped by hand) is never built on.
 */
export interface IcdcCached {
  md: TableMetadata;
  metadataLocation: string;
  version: number;
  /** The current snapshot's manifest list and manifests as written (empty when too large to keep). */
  files: Map<string, Buffer>;
  /**
   * The current snapshot's entries as a reader decodes them from `files`, with their spec ids:
   * the next write drops them without decoding (absent: decode `files`).
   */
  live?: { entry: ManifestEntry; specId: number }[];
}

/** Keep the files of a snapshot only up to this size: a huge batch is read back from storage. */
const MAX_FILES_BYTES_PER_TABLE = 256 * 1024;

export class IcdcWriteCache {
  private readonly tables = new Map<string, { value: IcdcCached; cost: number }>();
  private used = 0;
  hits = 0;
  misses = 0;

  /** Bounded by an estimate of what it holds (metadata JSON length × 4 plus the files' bytes). */
  constructor(private readonly budgetBytes = 32 * 1024 * 1024) {}

  get(location: string): IcdcCached | undefined {
    const hit = this.tables.get(location);
    if (!hit) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.tables.delete(location); // re-insert: Map order is recency order
    this.tables.set(location, hit);
    return hit.value;
  }

  set(location: string, value: IcdcCached, metadataBytes: number): void {
    this.delete(location);
    let filesBytes = 0;
    for (const b of value.files.values()) filesBytes += b.length;
    const kept = filesBytes <= MAX_FILES_BYTES_PER_TABLE ? value : { md: value.md, metadataLocation: value.metadataLocation, version: value.version, files: new Map<string, Buffer>() };
    const cost = metadataBytes * 4 + (kept.files.size ? filesBytes : 0);
    if (cost > this.budgetBytes) return;
    this.tables.set(location, { value: kept, cost });
    this.used += cost;
    for (const [k, v] of this.tables) {
      if (this.used <= this.budgetBytes) break;
      this.tables.delete(k);
      this.used -= v.cost;
    }
  }

  delete(location: string): void {
    const had = this.tables.get(location);
    if (!had) return;
    this.tables.delete(location);
    this.used -= had.cost;
  }
}

/** A FileIO that answers reads of the given files from memory, everything else from `io`. */
export function withFiles(io: FileIO, files: Map<string, Buffer>): FileIO {
  if (files.size === 0) return io;
  return {
    limits: io.limits,
    read: (location, kind) => {
      const b = files.get(location);
      return b ? Promise.resolve(b) : io.read(location, kind);
    },
    exists: (location) => (files.has(location) ? Promise.resolve(true) : io.exists(location)),
    list: (dir) => io.list(dir),
    write: (location, data, opts) => io.write(location, data, opts),
  };
}
