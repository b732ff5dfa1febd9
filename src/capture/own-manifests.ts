import { isIpsError } from '../errors.js';
import type { ManifestFile } from '../iceberg/manifest-list.js';
import type { Snapshot } from '../iceberg/metadata.js';
import type { ManifestReader } from './manifest-reader.js';
import type { SnapshotRange } from './range.js';

/**
 * The manifests each snapshot of a range wrote, found in one manifest list: the range's newest.
 *
 * A snapshot's changes are the ADDED and DELETED entries of the manifests it wrote
 * (`added_snapshot_id`), which Iceberg Java's incremental scan finds by reading every snapshot's
 * own list. Manifests are immutable and a table's lists carry live manifests forward, so on an
 * append-only stretch the newest list still names every manifest the older snapshots wrote: one
 * list instead of one per snapshot (a 1,900-snapshot range of a fast-append table decodes 2,000
 * list records instead of 2 million).
 *
 * A manifest can also leave the lists (merged by a later append, rewritten by rewrite_manifests or
 * a delete, dropped once all its entries are deleted). So a snapshot is answered from the newest
 * list only when that list's manifests of it account for every file its summary says it added
 * and removed; otherwise (counts missing, a manifest gone, a null count) the snapshot's own list
 * is read, as before. Extra manifests cannot appear: only a snapshot's own commit writes
 * manifests with its id.
 */
export async function ownManifestsFromNewest(
  reader: ManifestReader, range: SnapshotRange, opts: { compact: boolean; limit?: <T>(fn: () => Promise<T>) => Promise<T> },
): Promise<Map<bigint, ManifestFile[]>> {
  const found = new Map<bigint, ManifestFile[]>();
  const newest = range.snapshots.at(-1);
  // One snapshot gains nothing; a v1 snapshot with inline manifests has no ids to group by.
  if (range.snapshots.length < 2 || !newest || newest.manifestList === null) return found;
  const wanted = new Map<bigint, { added: number; deleted: number }>();
  for (const s of range.snapshots) {
    const counts = expectedCounts(s);
    if (counts !== null) wanted.set(s.snapshotId, counts);
  }
  if (wanted.size === 0) return found;

  const read = () => reader.manifestList(newest, opts.compact ? { cache: false, partitions: false, inline: true } : {});
  let list;
  try {
    list = await (opts.limit ? opts.limit(read) : read());
  } catch (e) {
    // The snapshots' own lists decide (and report what is wrong, where it matters to them).
    if (isIpsError(e)) return found;
    throw e;
  }
  const byAdder = new Map<bigint, ManifestFile[]>();
  const seen = new Set<string>();
  for (const mf of list.manifests) {
    // A record without an id could be anyone's: then no snapshot can be answered from this list.
    if (mf.addedSnapshotId === null) return found;
    if (!wanted.has(mf.addedSnapshotId) || seen.has(mf.path)) continue;
    seen.add(mf.path);
    let own = byAdder.get(mf.addedSnapshotId);
    if (!own) byAdder.set(mf.addedSnapshotId, (own = []));
    own.push(mf);
  }
  for (const [id, want] of wanted) {
    const own = byAdder.get(id) ?? [];
    let added = 0;
    let deleted = 0;
    let known = true;
    for (const mf of own) {
      if (mf.addedFilesCount === null || mf.deletedFilesCount === null) known = false;
      added += mf.addedFilesCount ?? 0;
      deleted += mf.deletedFilesCount ?? 0;
    }
    if (known && added === want.added && deleted === want.deleted) found.set(id, own);
  }
  return found;
}

/**
 * Files a snapshot's summary says it added and removed (data and delete files), or null when it
 * does not say. Iceberg Java and PyIceberg write a count only when it is positive and always
 * write the totals (`total-data-files`): with the totals there, a missing count is 0. A summary
 * without them (an older or minimal writer) says nothing, and an empty answer must not be taken
 * for "changed nothing".
 */
function expectedCounts(s: Snapshot): { added: number; deleted: number } | null {
  const keys = ['added-data-files', 'added-delete-files', 'deleted-data-files', 'removed-delete-files'] as const;
  const metered = s.summary['total-data-files'] !== undefined || keys.every((k) => s.summary[k] !== undefined);
  if (!metered) return null;
  const n: Record<string, number> = {};
  for (const k of keys) {
    const v = s.summary[k] ?? '0';
    if (!/^\d{1,15}$/.test(v)) return null;
    n[k] = Number(v);
  }
  return { added: n['added-data-files']! + n['added-delete-files']!, deleted: n['deleted-data-files']! + n['removed-delete-files']! };
}
