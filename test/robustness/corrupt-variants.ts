// Corrupt and hostile variants of fixtures/tables/playback (written by PyIceberg), built at test
// time: one copy of the table per variant, each with one corruption of issue 11 or of the same
// family. test/robustness/corrupt-tables.test.ts runs `ips inspect`, `ips changes` and
// `ips serve` on them; `scripts/robustness.ts` measures them for docs/robustness.md.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { parse, stringify, type LosslessNumber } from 'lossless-json';
import snappy from 'snappyjs';
import { block, encodeRecords, header, readParts, writeContainer } from '../setup/avro-rewrite.js';

export interface Variant {
  name: string;
  /** Table directory to run ips on. */
  dir: string;
  /** What it breaks (the item, or the family). */
  covers: string;
}

const FIXTURE = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'fixtures', 'tables', 'playback');

type Json = Record<string, unknown>;
interface Snap extends Json { 'snapshot-id': LosslessNumber; 'parent-snapshot-id'?: LosslessNumber | null; 'manifest-list': string }

function newestMetadata(dir: string): string {
  const meta = path.join(dir, 'metadata');
  return path.join(meta, fs.readdirSync(meta).filter((f) => f.endsWith('.metadata.json')).sort().at(-1)!);
}

function editMetadata(dir: string, edit: (md: Json & { snapshots: Snap[] }) => void): void {
  const f = newestMetadata(dir);
  const md = parse(fs.readFileSync(f, 'utf8')) as Json & { snapshots: Snap[] };
  edit(md);
  fs.writeFileSync(f, stringify(md)!);
}

/** Manifest list of the head (overwrite) snapshot, and the first manifest it names. */
function headFiles(dir: string): { list: string; manifest: string } {
  const meta = path.join(dir, 'metadata');
  const md = parse(fs.readFileSync(newestMetadata(dir), 'utf8')) as Json & { snapshots: Snap[] };
  const head = md.snapshots.find((s) => String(s['snapshot-id']) === String(md['current-snapshot-id']))!;
  const list = path.join(meta, path.basename(head['manifest-list']));
  const first = (readParts(fs.readFileSync(list)).records[0]!['manifest_path'] as string);
  return { list, manifest: path.join(meta, path.basename(first)) };
}

function rewriteManifestList(dir: string, change: (records: Record<string, unknown>[]) => void): void {
  const { list } = headFiles(dir);
  const parts = readParts(fs.readFileSync(list));
  change(parts.records);
  fs.writeFileSync(list, writeContainer(parts, 'deflate'));
}

/** Replaces the head's first manifest with `make(parts)` (the header and sync of the real file are kept). */
function replaceManifest(dir: string, make: (parts: ReturnType<typeof readParts>) => Buffer): void {
  const { manifest } = headFiles(dir);
  fs.writeFileSync(manifest, make(readParts(fs.readFileSync(manifest))));
}

function sparse(file: string, bytes: number): void {
  fs.rmSync(file, { force: true });
  fs.writeFileSync(file, '');
  fs.truncateSync(file, bytes);
}

/** 1 GiB of zeros as one raw-deflate stream of about 1 MiB, compressed as a stream (the gigabyte is never held). */
async function deflateBomb(): Promise<Buffer> {
  const z = zlib.createDeflateRaw({ level: 9 });
  const chunks: Buffer[] = [];
  z.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<void>((resolve, reject) => {
    z.on('end', resolve);
    z.on('error', reject);
  });
  const zero = Buffer.alloc(16 * 1024 * 1024);
  for (let i = 0; i < 64; i++) {
    if (!z.write(zero)) await new Promise((r) => z.once('drain', r));
  }
  z.end();
  await done;
  return Buffer.concat(chunks);
}

export async function buildVariants(root: string): Promise<Variant[]> {
  const bomb = await deflateBomb();
  const out: Variant[] = [];
  const add = (name: string, covers: string, corrupt: (dir: string) => void): void => {
    const dir = path.join(root, name);
    fs.cpSync(FIXTURE, dir, { recursive: true });
    corrupt(dir);
    out.push({ name, dir, covers });
  };

  // 1. lineage
  add('head-is-its-own-parent', 'issue 1: a snapshot that is its own parent', (d) => editMetadata(d, (md) => {
    const head = md.snapshots.find((s) => String(s['snapshot-id']) === String(md['current-snapshot-id']))!;
    head['parent-snapshot-id'] = head['snapshot-id'];
  }));
  add('root-parent-is-head', 'issue 1: a parent cycle through the whole history', (d) => editMetadata(d, (md) => {
    md.snapshots[0]!['parent-snapshot-id'] = md['current-snapshot-id'] as LosslessNumber;
  }));
  add('two-snapshot-cycle', 'issue 1: two snapshots that are each other\'s parent', (d) => editMetadata(d, (md) => {
    const [a, b] = [md.snapshots[1]!, md.snapshots[2]!];
    a['parent-snapshot-id'] = b['snapshot-id'];
    b['parent-snapshot-id'] = a['snapshot-id'];
  }));
  // 2. Avro blocks
  add('negative-block-size', 'issue 2: an Avro block with a negative size (null codec)', (d) => replaceManifest(d, (p) => {
    const recs = Buffer.concat(encodeRecords(p));
    const h = header(p, 'null');
    return Buffer.concat([h, block(p, p.records.length, recs, -(recs.length + 40))]);
  }));
  add('negative-record-count', 'issue 2: an Avro block with a negative record count', (d) => replaceManifest(d, (p) => {
    const recs = Buffer.concat(encodeRecords(p));
    return Buffer.concat([header(p, 'null'), block(p, -3, recs)]);
  }));
  add('record-count-beyond-block', 'issue 2: more records than the block has bytes', (d) => replaceManifest(d, (p) => {
    const recs = Buffer.concat(encodeRecords(p));
    return Buffer.concat([header(p, 'null'), block(p, 1 << 30, recs)]);
  }));
  add('left-over-bytes', 'issue 4: bytes left over in a block', (d) => replaceManifest(d, (p) => {
    const recs = Buffer.concat([...encodeRecords(p), Buffer.alloc(7)]);
    return Buffer.concat([header(p, 'null'), block(p, p.records.length, recs)]);
  }));
  add('zero-filled-records', 'issue 4: zero-filled records decode as entries with an empty file_path', (d) => replaceManifest(d, (p) => {
    const raw = Buffer.alloc(p.records.length * 64);
    return Buffer.concat([header(p, 'deflate'), block(p, p.records.length, zlib.deflateRawSync(raw))]);
  }));
  add('empty-file-path', 'issue 4: an entry with an empty file_path', (d) => replaceManifest(d, (p) => {
    (p.records[0]!['data_file'] as Record<string, unknown>)['file_path'] = '';
    return writeContainer(p, 'deflate');
  }));
  add('deflate-bomb', 'issue 4: a deflate bomb, 1 MiB that inflates to 1 GiB', (d) => replaceManifest(d, (p) => Buffer.concat([header(p, 'deflate'), block(p, 5, bomb)])));
  add('snappy-bomb', 'decompression: a snappy block declaring 1 GiB', (d) => replaceManifest(d, (p) => {
    const c = Buffer.from(snappy.compress(Buffer.alloc(1024)));
    const lie = Buffer.concat([Buffer.from([0x80, 0x80, 0x80, 0x80, 0x04]), c.subarray(2)]); // varint length 1 GiB
    return Buffer.concat([header(p, 'snappy'), block(p, 1, Buffer.concat([lie, Buffer.alloc(4)]))]);
  }));
  add('zstd-huge-window', 'decompression: a zstd frame with a 2 GiB window', (d) => replaceManifest(d, (p) => Buffer.concat([header(p, 'zstandard'), block(p, 1, Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf8, 1, 0, 0]))])));
  add('unknown-codec', 'an Avro codec ips does not know', (d) => replaceManifest(d, (p) => Buffer.concat([header(p, 'xz'), block(p, 1, Buffer.alloc(8))])));
  add('header-map-count', 'found by fuzzing: a header map whose item count exceeds the file', (d) => replaceManifest(d, () => Buffer.concat([Buffer.from('Obj\x01', 'latin1'), Buffer.from([0xfe, 0xff, 0xff, 0xff, 0x0f]), Buffer.alloc(40)])));
  add('truncated-manifest', 'a manifest cut in half', (d) => {
    const { manifest } = headFiles(d);
    const b = fs.readFileSync(manifest);
    fs.writeFileSync(manifest, b.subarray(0, b.length >> 1));
  });
  add('not-avro', 'a manifest that is not an Avro file', (d) => fs.writeFileSync(headFiles(d).manifest, 'PAR1 this is not avro'));
  // 3. what a read opens
  add('manifest-list-is-dev-zero', 'issue 3: a manifest list at file:///dev/zero', (d) => editMetadata(d, (md) => {
    md.snapshots.at(-1)!['manifest-list'] = 'file:///dev/zero';
  }));
  add('manifest-entry-is-dev-zero', 'issue 3: a manifest list entry pointing at file:///dev/zero', (d) => rewriteManifestList(d, (r) => { r[0]!['manifest_path'] = 'file:///dev/zero'; }));
  add('manifest-entry-is-fifo', 'issue 3: a manifest that is a FIFO', (d) => {
    const f = path.join(d, 'fifo.avro');
    execFileSync('mkfifo', [f]);
    rewriteManifestList(d, (r) => { r[0]!['manifest_path'] = `file://${f}`; });
  });
  add('manifest-entry-is-directory', 'issue 7: a directory where a manifest should be', (d) => rewriteManifestList(d, (r) => { r[0]!['manifest_path'] = `file://${path.join(d, 'data')}`; }));
  add('metadata-is-fifo', 'issue 3: a FIFO as the metadata file', (d) => {
    const f = newestMetadata(d);
    fs.rmSync(f);
    execFileSync('mkfifo', [f]);
  });
  add('metadata-is-directory', 'issue 7: a directory as the metadata file', (d) => {
    const f = newestMetadata(d);
    fs.rmSync(f);
    fs.mkdirSync(f);
  });
  add('metadata-sparse-1gib', 'issue 3: a 1 GiB sparse metadata file', (d) => sparse(newestMetadata(d), 1024 ** 3));
  add('manifest-sparse-1gib', 'issue 3: a 1 GiB sparse manifest', (d) => sparse(headFiles(d).manifest, 1024 ** 3));
  add('metadata-symlink-dev-zero', 'issue 3: the metadata file a symlink to /dev/zero', (d) => {
    const f = newestMetadata(d);
    fs.rmSync(f);
    fs.symlinkSync('/dev/zero', f);
  });
  // 7 and 9: metadata content
  add('metadata-invalid-json', 'issue 7: invalid metadata JSON', (d) => {
    const f = newestMetadata(d);
    fs.writeFileSync(f, fs.readFileSync(f, 'utf8').slice(0, 500));
  });
  add('metadata-deep-nesting', 'metadata JSON nested 200,000 levels deep', (d) => fs.writeFileSync(newestMetadata(d), '['.repeat(200_000)));
  add('no-format-version', 'issue 9: metadata without format-version', (d) => editMetadata(d, (md) => { delete md['format-version']; }));
  add('format-version-4', 'metadata of a format version ips does not read', (d) => editMetadata(d, (md) => { md['format-version'] = parse('4') as LosslessNumber; }));
  add('current-snapshot-missing', 'a current-snapshot-id that names no snapshot', (d) => editMetadata(d, (md) => { md['current-snapshot-id'] = parse('42') as LosslessNumber; }));
  add('manifest-list-hdfs', 'issue 7: an hdfs:// manifest list', (d) => editMetadata(d, (md) => { md.snapshots.at(-1)!['manifest-list'] = 'hdfs://nn:8020/t/metadata/snap.avro'; }));
  add('manifest-list-file-host', 'issue 7: a file://host/ manifest list', (d) => editMetadata(d, (md) => { md.snapshots.at(-1)!['manifest-list'] = 'file://otherhost/t/metadata/snap.avro'; }));
  add('manifest-list-missing', 'a manifest list that does not exist', (d) => fs.rmSync(headFiles(d).list));
  return out;
}
