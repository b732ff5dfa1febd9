import { IpsError } from '../errors.js';
import { joinLocation, type FileIO } from '../io/file-io.js';

// Hadoop tables name versions vN.metadata.json; catalogs (Java, PyIceberg) write NNNNN-<uuid>.metadata.json.
const VERSIONED = /^(?:v(\d+)|(\d+)-[0-9a-fA-F-]+)(\.gz)?\.metadata\.json(\.gz)?$/;

/** The spellings of version N a writer may leave (plain and gzip variants). */
const PLAIN = 'vN.metadata.json';
const SPELLINGS = [PLAIN, 'vN.gz.metadata.json', 'vN.metadata.json.gz'];

/**
 * The current metadata file of a table directory in the Hadoop layout: `metadata/version-hint.text`
 * holds the version N of `vN.metadata.json`. Like Java's HadoopTableOperations, an empty,
 * unreadable or stale hint falls back to the highest `vN` present.
 *
 * What watching a table costs per poll: with a hint naming a `vN.metadata.json` that exists and
 * no version after it (the usual case), the hint and a few existence checks, as Java's
 * HadoopTableOperations probes the next version; the directory is listed only otherwise. A
 * metadata directory also holds every manifest and manifest list, so a listing grows with the
 * table's history (on S3 a page per 1,000 objects).
 */
export async function resolveTableDirectory(io: FileIO, tableDir: string): Promise<string> {
  const metaDir = joinLocation(tableDir.replace(/\/+$/, ''), 'metadata');
  const hint = await io.read(joinLocation(metaDir, 'version-hint.text'), 'version-hint').then((b) => b.toString('utf8').trim(), () => null);
  if (hint !== null && /^\d+$/.test(hint)) {
    const n = Number(hint);
    const at = (v: number, name: string): string => joinLocation(metaDir, name.replace('N', String(v)));
    const [here, ...next] = await Promise.all([at(n, PLAIN), ...SPELLINGS.map((name) => at(n + 1, name))].map((l) => io.exists(l).catch(() => null)));
    if (here === true && next.every((x) => x === false)) return at(n, PLAIN);
  } else if (hint !== null && hint.endsWith('.metadata.json') && !hint.includes('/')) {
    if ((await io.exists(joinLocation(metaDir, hint)).catch(() => false)) === true) return joinLocation(metaDir, hint);
  }
  return resolveByListing(io, tableDir, metaDir);
}

async function resolveByListing(io: FileIO, tableDir: string, metaDir: string): Promise<string> {
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
