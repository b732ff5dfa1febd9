import pLimit from 'p-limit';
import { IpsError } from '../errors.js';
import type { ManifestFile } from '../iceberg/manifest-list.js';
import { CompactEntry, compactEntry, EntryInterner, type StatsWanted } from './compact-entry.js';
import type { ManifestReader } from './manifest-reader.js';
import type { FileChange } from './snapshot-changes.js';

/** What the re-read keeps of each file: every lower/upper bound, as `--json` lists them. */
const ALL_BOUNDS: StatsWanted = { fields: 'none', allBounds: true };

/**
 * Files whose bounds are fetched at once. Small, and cut where the manifest changes, so that a
 * window is about one manifest's files: its entries are garbage before the young generation
 * promotes them (windows of 20,000 files were promoted and grew the old generation by 400 MB
 * between full collections). Past MAX_WINDOW a window is cut anyway (one huge manifest).
 */
const WINDOW = 500;
const MAX_WINDOW = 20_000;
/**
 * A window of WINDOW files from more manifests than this means the files are interleaved (a
 * crafted or heavily compacted range): the window then takes MAX_WINDOW files, so that each
 * manifest is decoded at most once per 20,000 files listed rather than once per 500.
 */
const INTERLEAVED = 4;

/** Manifests read at once for one window: overlaps reading with decoding. */
const CONCURRENCY = 4;

/**
 * An entry of a manifest: its file path, and for a deletion vector its offset (the DVs of one
 * snapshot share a Puffin file), with the status and snapshot id that readSnapshotChanges keeps.
 */
function entryKey(status: number, snapshotId: bigint, path: string, contentOffset: bigint | null): string {
  return `${status}\u0000${snapshotId}\u0000${contentOffset ?? ''}\u0000${path}`;
}

/**
 * Bounds for output, read back from the manifests instead of kept through planning. A plan of a
 * long range keeps one compact entry per file; with every lower/upper bound packed in, 950,000
 * files hold ~170 MB of bounds that only the `--json` listing reads, once, at the end. So the
 * CLI plans without them and this puts them back a window of files at a time: the manifests that
 * the window's files came from are decoded again (Iceberg never rewrites a manifest in place) and
 * each compact entry is replaced by the same compact entry with all bounds (compactEntry of the
 * same manifest entry), so the output is the bytes the plan with bounds would print.
 * Each manifest is decoded once per window it has files in: once or twice for a plan's usual
 * order (snapshot by snapshot, manifest by manifest); in an interleaved order at most once per
 * MAX_WINDOW files listed.
 */
export class OutputBounds {
  /** Manifests that list one file more than once (not valid Iceberg): the first entry's bounds are shown. */
  readonly warnings: string[] = [];

  constructor(
    private readonly reader: ManifestReader,
    private readonly window = WINDOW,
    private readonly maxWindow = MAX_WINDOW,
    private readonly interleaved = INTERLEAVED,
  ) {}

  /** `files` in order, in windows, each compact entry replaced by one with every bound. */
  async *windows(files: readonly FileChange[]): AsyncGenerator<FileChange[]> {
    let i = 0;
    while (i < files.length) {
      let end = Math.min(files.length, i + this.window);
      const limit = Math.min(files.length, i + this.maxWindow);
      while (end < limit && files[end]!.manifest.path === files[end - 1]!.manifest.path) end++;
      const manifests = new Set<string>();
      for (let j = i; j < end && manifests.size <= this.interleaved; j++) manifests.add(files[j]!.manifest.path);
      if (manifests.size > this.interleaved) end = limit;
      const slice = files.slice(i, end);
      i = end;
      await this.fill(slice);
      yield slice;
    }
  }

  private async fill(slice: FileChange[]): Promise<void> {
    // Files of the window by manifest path, then by entry: positions in the window to replace.
    const byManifest = new Map<string, { mf: ManifestFile; wanted: Map<string, number[]> }>();
    for (let j = 0; j < slice.length; j++) {
      const c = slice[j]!;
      if (!(c instanceof CompactEntry)) continue; // a full entry has its bounds
      let g = byManifest.get(c.manifest.path);
      if (!g) byManifest.set(c.manifest.path, (g = { mf: c.manifest, wanted: new Map() }));
      const key = entryKey(c.status, c.snapshotId, c.filePath, c.contentOffset);
      const at = g.wanted.get(key);
      if (at) at.push(j);
      else g.wanted.set(key, [j]);
    }
    const limit = pLimit(CONCURRENCY);
    const interner = new EntryInterner();
    await Promise.all([...byManifest.values()].map((g) => limit(async () => {
      const m = await this.reader.manifest(g.mf, { cache: false, stats: 'all', inline: true });
      const seen = new Set<string>();
      for (const e of m.entries) {
        if (e.snapshotId === null) continue;
        const key = entryKey(e.status, e.snapshotId, e.dataFile.filePath, e.dataFile.contentOffset);
        const at = g.wanted.get(key);
        if (!at) {
          if (seen.has(key)) this.warnings.push(`${g.mf.path} lists ${e.dataFile.filePath} more than once; its bounds are those of the first entry`);
          continue;
        }
        g.wanted.delete(key);
        seen.add(key);
        const full = compactEntry(e, g.mf, ALL_BOUNDS, interner);
        full.footprint = (slice[at[0]!] as CompactEntry).footprint;
        for (const j of at) slice[j] = full;
      }
      if (g.wanted.size > 0) {
        const missing = [...g.wanted.keys()][0]!.split('\u0000')[3];
        throw new IpsError('INVALID_MANIFEST', `${g.mf.path} no longer lists ${missing} (and ${g.wanted.size - 1} more) as it did when the change set was planned: a manifest must not change; run the command again`);
      }
    })));
  }
}
