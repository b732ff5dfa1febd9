// The compiled Avro decoder (src/iceberg/avro-decoder.ts) and the manifest decoder built on it,
// checked against a second implementation on PyIceberg-written files: avsc's generic decode with
// zlib's own inflate (test/setup/avsc-reference.ts), and ips's previous field-id mapping over
// avsc's records. Files: the committed playback table, and manifests written at test time by
// bench/py/generate_manifests.py (PyIceberg's writers: 10 columns of stats, bounds, nan counts),
// one entry per Avro block and 50 per block, deflate and null codecs.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bigIntToVarint, decompressAvroFile, readAvroFile } from '../../src/iceberg/avro.js';
import { readVarBig, readVarNum } from '../../src/iceberg/avro-decoder.js';
import { decodeManifestList, type ManifestFile } from '../../src/iceberg/manifest-list.js';
import { decodeManifest, type ManifestEntry } from '../../src/iceberg/manifest.js';
import { plain, readWithAvsc, referenceManifestEntries } from '../setup/avsc-reference.js';
import { REPO_ROOT, runPython } from '../setup/env.js';

const PLAYBACK = path.join(REPO_ROOT, 'fixtures/tables/playback/metadata');

interface TableFiles {
  name: string;
  lists: string[];
  /** Manifest path (local) → its manifest list row. */
  manifests: Map<string, ManifestFile>;
}

function tableFiles(name: string, metadataDir: string, toLocal: (p: string) => string): TableFiles {
  const lists = fs.readdirSync(metadataDir).filter((f) => f.startsWith('snap-') && f.endsWith('.avro')).map((f) => path.join(metadataDir, f));
  const manifests = new Map<string, ManifestFile>();
  for (const l of lists) for (const m of decodeManifestList(fs.readFileSync(l), l).manifests) manifests.set(toLocal(m.path), m);
  return { name, lists, manifests };
}

/** Entries with stats maps kept only for `keep` (null = drop the maps). */
function withStats(entries: ManifestEntry[], keep: Set<number> | null): unknown {
  const filter = <V>(m: ReadonlyMap<number, V> | null): Map<number, V> | null => (m === null || keep === null ? null : new Map([...m].filter(([k]) => keep.has(k))));
  return plain(entries.map((e) => ({
    ...e,
    dataFile: {
      ...e.dataFile,
      columnSizes: filter(e.dataFile.columnSizes), valueCounts: filter(e.dataFile.valueCounts), nullValueCounts: filter(e.dataFile.nullValueCounts),
      nanValueCounts: filter(e.dataFile.nanValueCounts), lowerBounds: filter(e.dataFile.lowerBounds), upperBounds: filter(e.dataFile.upperBounds),
    },
  })));
}

function checkTable(t: TableFiles): void {
  expect(t.manifests.size).toBeGreaterThan(0);
  for (const l of t.lists) {
    const buf = fs.readFileSync(l);
    expect(plain(readAvroFile(buf, l).records)).toEqual(plain(readWithAvsc(buf).records));
  }
  for (const [file, mf] of t.manifests) {
    const buf = fs.readFileSync(file);
    expect(plain(readAvroFile(buf, file).records)).toEqual(plain(readWithAvsc(buf).records));
    const ref = referenceManifestEntries(buf, mf);
    expect(ref.length).toBeGreaterThan(0);
    const got = decodeManifest(buf, mf, file).entries;
    expect(plain(got)).toEqual(plain(ref));
    // Column stats of two columns only, and none: the rest of each entry is unchanged.
    const some = new Set([...(ref[0]!.dataFile.valueCounts?.keys() ?? [])].slice(0, 2));
    expect(withStats(decodeManifest(buf, mf, file, { stats: some }).entries, null)).toEqual(withStats(ref, null));
    expect(plain(decodeManifest(buf, mf, file, { stats: some }).entries)).toEqual(withStats(ref, some));
    expect(plain(decodeManifest(buf, mf, file, { stats: 'none' }).entries)).toEqual(withStats(ref, null));
  }
}

describe('compiled decoder = avsc on PyIceberg-written files', () => {
  it('the playback table (manifest lists and manifests)', () => {
    const t = tableFiles('playback', PLAYBACK, (p) => path.join(PLAYBACK, path.basename(p)));
    checkTable(t);
  });

  describe('manifests written by PyIceberg at test time', () => {
    let root: string;
    const tables: TableFiles[] = [];
    beforeAll(async () => {
      root = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-decoder-'));
      for (const [perBlock, codec] of [[1, 'deflate'], [50, 'deflate'], [50, 'null']] as const) {
        const out = await runPython('bench/py/generate_manifests.py', ['--manifests', '2', '--entries-per-manifest', '120', '--entries-per-block', String(perBlock), '--codec', codec, '--workers', '1', '--root', root]);
        const info = JSON.parse(out.trim().split('\n').pop()!) as { table_dir: string; entries: number };
        const t = tableFiles(`b${perBlock}-${codec}`, path.join(info.table_dir, 'metadata'), (p) => p.replace(/^file:\/\//, ''));
        expect([...t.manifests.values()].reduce((s, m) => s + (m.addedFilesCount ?? 0) + (m.existingFilesCount ?? 0), 0)).toBe(info.entries);
        tables.push(t);
      }
    }, 300_000);
    afterAll(() => {
      if (root) fs.rmSync(root, { recursive: true, force: true });
    });

    it('one entry per block and 50 per block, deflate and null codecs', () => {
      expect(tables).toHaveLength(3);
      for (const t of tables) checkTable(t);
    });

    it('the same entries after decompressAvroFile (the service path)', async () => {
      for (const t of tables) {
        for (const [file, mf] of t.manifests) {
          const buf = fs.readFileSync(file);
          expect(plain(decodeManifest(await decompressAvroFile(buf, file), mf, file).entries)).toEqual(plain(referenceManifestEntries(buf, mf)));
        }
      }
    });
  });
});

describe('varints', () => {
  const values = [0n, 1n, -1n, 63n, -64n, 64n, 2n ** 31n - 1n, -(2n ** 31n), 2n ** 47n, 2n ** 48n - 1n, -(2n ** 48n), 2n ** 48n, 2n ** 53n + 1n,
    -(2n ** 53n) - 1n, 7505300640432048841n, 2n ** 63n - 1n, -(2n ** 63n)];
  it('decode as exact bigints across the 7-byte (double) boundary', () => {
    for (const v of values) {
      const enc = bigIntToVarint(v);
      const c = { buf: enc, pos: 0, end: enc.length };
      expect(readVarBig(c)).toBe(v);
      expect(c.pos).toBe(enc.length);
      const c2 = { buf: enc, pos: 0, end: enc.length };
      expect(readVarNum(c2)).toBe(Number(v));
    }
  });

  it('large longs stay exact when many distinct ones are read interleaved (the decoder caches recent ones)', () => {
    // 40 distinct snapshot-id-like values of both signs, some sharing their low bits, read three times in rotating order.
    const big: bigint[] = [];
    for (let i = 0; i < 40; i++) big.push((i % 2 ? -1n : 1n) * (2n ** 62n - BigInt(i) * 2n ** 53n - BigInt(i % 4) * 16n));
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < big.length; i++) {
        const v = big[(i * 7 + round) % big.length]!;
        const enc = bigIntToVarint(v);
        expect(readVarBig({ buf: enc, pos: 0, end: enc.length })).toBe(v);
      }
    }
  });

  it('refuse a varint cut short or longer than 10 bytes', () => {
    expect(() => readVarBig({ buf: Buffer.from([0x80, 0x80]), pos: 0, end: 2 })).toThrow(/truncated/);
    expect(() => readVarNum({ buf: Buffer.alloc(11, 0x80), pos: 0, end: 11 })).toThrow(/longer than 10 bytes/);
  });
});
