import type { FileIO } from '../io/file-io.js';
import { decompressAvroFile, type AvroReadOptions } from '../iceberg/avro.js';
import { decodeManifestList, type ManifestFile, type ManifestList } from '../iceberg/manifest-list.js';
import { decodeManifest, type Manifest, type StatsSelection } from '../iceberg/manifest.js';
import type { Snapshot } from '../iceberg/metadata.js';

/** `cache: false`: use a cached copy if there is one, but do not keep this one (a large plan reads each file once). */
export interface ReadOptions {
  cache?: boolean;
  /**
   * Column stats to decode (decodeManifest's selection; default all). A manifest decoded with
   * fewer than all is neither taken from nor put in the cache: the cache holds whole manifests.
   */
  stats?: StatsSelection;
  /** Manifest lists: decode the partition field summaries (default true); a list without them is not cached. */
  partitions?: boolean;
  /** Manifest lists: only the manifests this snapshot added (decodeManifestList's `addedBy`); such a list is not cached. */
  addedBy?: bigint;
  /**
   * Decode straight from the file's bytes, inflating each block on this thread (libdeflate in
   * WebAssembly, zlib past 8 MB), instead of decompressing the whole file first
   * (decompressAvroFile, which sends blocks past 8 MB to libuv's pool). Less CPU and memory for a
   * large plan; it holds the event loop for a file's decode (a deflate bomb's up to the
   * decompression limit), so it is for a CLI plan, which has nothing else to answer meanwhile:
   * honoured only by a reader made with `{ inline: true }`, and the service makes none.
   */
  inline?: boolean;
}

export interface ManifestReaderOptions {
  /** Honour ReadOptions.inline (default false: every read inflates off the event loop). */
  inline?: boolean;
}

/**
 * Reads manifest lists and manifests through a FileIO, with a cache keyed by path: Iceberg never
 * rewrites a manifest in place, so a path always has the same content. The cache is bounded
 * by an estimate of decoded size (file bytes × expansion) and evicts least recently used.
 * Change planning over a long range reads with `cache: false` and keeps compact entries instead
 * (compact-entry.ts): whole decoded manifests of a range do not fit in memory.
 */
export class ManifestReader {
  private readonly cache = new Map<string, { value: Manifest | ManifestList; cost: number }>();
  private used = 0;
  manifestsRead = 0;
  manifestListsRead = 0;

  private readonly inlineAllowed: boolean;

  constructor(private readonly io: FileIO, private readonly budgetBytes = 256 * 1024 * 1024, options: ManifestReaderOptions = {}) {
    this.inlineAllowed = options.inline ?? false;
  }

  private remember(path: string, value: Manifest | ManifestList, fileBytes: number): void {
    const cost = fileBytes * 12;
    if (cost > this.budgetBytes) return;
    this.cache.set(path, { value, cost });
    this.used += cost;
    for (const [k, v] of this.cache) {
      if (this.used <= this.budgetBytes) break;
      this.cache.delete(k);
      this.used -= v.cost;
    }
  }

  private recall<T>(path: string): T | undefined {
    const hit = this.cache.get(path);
    if (!hit) return undefined;
    this.cache.delete(path); // re-insert: Map order is recency order
    this.cache.set(path, hit);
    return hit.value as T;
  }

  private avroOptions(): AvroReadOptions {
    return { maxDecompressedBytes: this.io.limits?.avroDecompressedBytes };
  }

  async manifestList(snapshot: Snapshot, opts: ReadOptions = {}): Promise<ManifestList> {
    const path = snapshot.manifestList;
    if (path === null) {
      // v1 snapshots may list manifests inline; their entries carry explicit snapshot ids.
      return {
        meta: new Map(),
        manifests: (snapshot.v1Manifests ?? []).map((p) => ({
          path: p, length: -1n, partitionSpecId: 0, content: 0, sequenceNumber: 0n, minSequenceNumber: 0n,
          addedSnapshotId: null, addedFilesCount: null, existingFilesCount: null, deletedFilesCount: null,
          addedRowsCount: null, existingRowsCount: null, deletedRowsCount: null, partitions: null, keyMetadata: null, firstRowId: null,
        })),
      };
    }
    const cached = this.recall<ManifestList>(path);
    if (cached) return cached;
    const buf = await this.io.read(path, 'manifest-list');
    this.manifestListsRead++;
    const partitions = opts.partitions ?? true;
    const bytes = opts.inline && this.inlineAllowed ? buf : await decompressAvroFile(buf, path, this.avroOptions());
    const list = decodeManifestList(bytes, path, { ...this.avroOptions(), partitions, ...(opts.addedBy !== undefined ? { addedBy: opts.addedBy } : {}) });
    if ((opts.cache ?? true) && partitions && opts.addedBy === undefined) this.remember(path, list, buf.length);
    return list;
  }

  async manifest(mf: ManifestFile, opts: ReadOptions = {}): Promise<Manifest> {
    const partial = opts.stats !== undefined && opts.stats !== 'all';
    const cached = partial ? undefined : this.recall<Manifest>(mf.path);
    if (cached) return cached;
    const buf = await this.io.read(mf.path, 'manifest');
    this.manifestsRead++;
    const bytes = opts.inline && this.inlineAllowed ? buf : await decompressAvroFile(buf, mf.path, this.avroOptions());
    const m = decodeManifest(bytes, mf, mf.path, { ...this.avroOptions(), stats: opts.stats });
    if ((opts.cache ?? true) && !partial) this.remember(mf.path, m, buf.length);
    return m;
  }
}
