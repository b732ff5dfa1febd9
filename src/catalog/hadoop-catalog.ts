import { IpsError } from '../errors.js';
import { joinLocation, type FileIO } from '../io/file-io.js';

// Hadoop tables name versions vN.metadata.json; catalogs (Java, PyIceberg) write NNNNN-<uuid>.metadata.json.
const VERSIONED = /^(?:v(\d+)|(\d+)-[0-9a-fA-F-]+)(\.gz)?\.metadata\.json(\.gz)?$/;

/**
 * The current metadata file of a table directory in the Hadoop layout: `metadata/version-hint.text`
 * holds the version N of `vN.metadata.json`. Like Java's HadoopTableOperations, an empty,
 * unreadable or stale hint falls back to the highest `vN` present.
 */
export async function resolveTableDirectory(io: FileIO, tableDir: string): Promise<string> {
  const metaDir = joinLocation(tableDir.replace(/\/+$/, ''), 'metadata');
  const names = await io.list(metaDir);
  const versions = new Map<number, string>();
  for (const n of names) {
    const m = VERSIONED.exec(n);
    if (m) versions.set(Number(m[1] ?? m[2]), n);
  }
  let hinted: number | null = null;
  if (names.includes('version-hint.text')) {
    const text = (await io.read(joinLocation(metaDir, 'version-hint.text'), 'version-hint')).toString('utf8').trim();
    if (/^\d+$/.test(text)) hinted = Number(text);
    else if (text.endsWith('.metadata.json') && names.includes(text)) return joinLocation(metaDir, text);
  }
  // A hint older than the newest file means a writer died after the rename, before the hint.
  const highest = versions.size > 0 ? Math.max(...versions.keys()) : null;
  const chosen = hinted !== null && versions.has(hinted) && (highest === null || hinted >= highest) ? hinted : highest;
  if (chosen === null) {
    throw new IpsError('TABLE_NOT_FOUND', `no Iceberg table at ${tableDir}: ${metaDir} has no version-hint.text, vN.metadata.json or NNNNN-<uuid>.metadata.json`);
  }
  return joinLocation(metaDir, versions.get(chosen)!);
}
