// The compiled Avro decoder on manifests written by other engines (Spark and Impala through
// Iceberg Java, DuckDB): every manifest list and manifest of the shared corpus decodes to what avsc
// decodes (test/setup/avsc-reference.ts: avsc + zlib's own inflate), and every manifest's entries
// equal ips's previous field-id mapping over avsc's records, with all column stats, two columns'
// stats and none. Files are read in place.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readAvroFile } from '../../src/iceberg/avro.js';
import { decodeManifestList, type ManifestFile } from '../../src/iceberg/manifest-list.js';
import { decodeManifest, type ManifestEntry } from '../../src/iceberg/manifest.js';
import { plain, readWithAvsc, referenceManifestEntries } from '../setup/avsc-reference.js';
import { FIXTURES, type FixtureName } from './helpers.js';

const NAMES: FixtureName[] = ['icebird-spark-bunnies', 'impala-v3-row-lineage', 'impala-v3-deletion-vectors', 'impala-v1-bucket', 'duckdb-hive-partitioned', 'duckdb-eqdel-partitioned'];

function avroFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...avroFiles(p));
    else if (e.name.endsWith('.avro')) out.push(p);
  }
  return out;
}

function dropStats(entries: ManifestEntry[], keep: Set<number> | null): unknown {
  const f = <V>(m: ReadonlyMap<number, V> | null): Map<number, V> | null => (m === null || keep === null ? null : new Map([...m].filter(([k]) => keep.has(k))));
  return plain(entries.map((e) => ({
    ...e,
    dataFile: { ...e.dataFile, columnSizes: f(e.dataFile.columnSizes), valueCounts: f(e.dataFile.valueCounts), nullValueCounts: f(e.dataFile.nullValueCounts),
      nanValueCounts: f(e.dataFile.nanValueCounts), lowerBounds: f(e.dataFile.lowerBounds), upperBounds: f(e.dataFile.upperBounds) },
  })));
}

describe('compiled decoder = avsc on the shared corpus (Spark, Impala, DuckDB)', () => {
  it.each(NAMES)('%s', (name) => {
    const files = avroFiles(path.join(FIXTURES, name, 'table'));
    const byBase = new Map(files.map((f) => [path.basename(f), f]));
    const rows = new Map<string, ManifestFile>();
    for (const f of files.filter((x) => path.basename(x).startsWith('snap-'))) {
      for (const m of decodeManifestList(fs.readFileSync(f), f).manifests) {
        const local = byBase.get(path.basename(m.path));
        if (local) rows.set(local, m);
      }
    }
    expect(rows.size).toBeGreaterThan(0);
    for (const f of files) {
      const buf = fs.readFileSync(f);
      expect(plain(readAvroFile(buf, f).records)).toEqual(plain(readWithAvsc(buf).records));
    }
    let entries = 0;
    for (const [f, mf] of rows) {
      const buf = fs.readFileSync(f);
      const ref = referenceManifestEntries(buf, mf);
      entries += ref.length;
      expect(plain(decodeManifest(buf, mf, f).entries)).toEqual(plain(ref));
      const some = new Set([...(ref[0]?.dataFile.valueCounts?.keys() ?? [])].slice(0, 2));
      expect(plain(decodeManifest(buf, mf, f, { stats: some }).entries)).toEqual(dropStats(ref, some));
      expect(plain(decodeManifest(buf, mf, f, { stats: 'none' }).entries)).toEqual(dropStats(ref, null));
    }
    expect(entries).toBeGreaterThan(0);
  });
});
