import type { DataFile } from '../iceberg/manifest.js';
import type { FileChange } from './snapshot-changes.js';

/**
 * The identity of a data or delete file inside a table. A path alone is not enough: Spark
 * writes several deletion vectors into one Puffin file, each a blob at its own
 * `content_offset`, so two DVs (for two data files) share a path. Netting, batch watermarks and
 * the ICDC writer key files by this, never by path. A plain file's key is its path, so keys
 * stored before DVs were told apart still match.
 */
export function fileKey(df: Pick<DataFile, 'filePath' | 'contentOffset'>): string {
  return df.contentOffset === null ? df.filePath : `${df.filePath}#content_offset=${df.contentOffset}`;
}

export function changeKey(fc: FileChange): string {
  return fileKey(fc.entry.dataFile);
}

export function partValue(v: unknown): string {
  if (v === null || v === undefined) return '∅';
  if (Buffer.isBuffer(v)) return `x${v.toString('hex')}`;
  if (typeof v === 'bigint') return `${v}n`;
  return JSON.stringify(v);
}

/**
 * A file's partition as a comparable key: spec id plus the raw tuple by partition field id.
 * Files of one partition have equal keys; position deletes apply only within their partition.
 */
export function partitionKey(fc: FileChange): string {
  const p = fc.entry.dataFile.partition;
  const ids = [...p.keys()].sort((a, b) => a - b);
  return `${fc.manifest.partitionSpecId}|${ids.map((id) => `${id}=${partValue(p.get(id))}`).join(',')}`;
}
