// Manifest entries that decode but cannot be real: an empty file_path (what a zero-filled record
// decodes to), an unknown status or content, negative counts. Built at test time from the
// PyIceberg-written manifests of fixtures/tables/playback.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeManifestList } from '../../src/iceberg/manifest-list.js';
import { decodeManifest } from '../../src/iceberg/manifest.js';
import { readParts, writeContainer } from '../setup/avro-rewrite.js';
import { REPO_ROOT } from '../setup/env.js';
import { thrown } from '../setup/errors.js';

const META = path.join(REPO_ROOT, 'fixtures/tables/playback/metadata');
const listFile = fs.readdirSync(META).find((f) => f.startsWith('snap-'))!;
const listBuf = fs.readFileSync(path.join(META, listFile));
const list = decodeManifestList(listBuf, listFile);
const mf = list.manifests[0]!;
const manifestBuf = fs.readFileSync(path.join(META, path.basename(mf.path)));

function manifestWith(change: (entry: Record<string, unknown>, dataFile: Record<string, unknown>) => void): Buffer {
  const parts = readParts(manifestBuf);
  const e = parts.records[0]!;
  change(e, e['data_file'] as Record<string, unknown>);
  return writeContainer(parts);
}

describe('manifest entries that cannot be real', () => {
  it('the unchanged rewrite decodes as the original', () => {
    const a = decodeManifest(manifestBuf, mf, 'm.avro').entries.map((x) => x.dataFile.filePath);
    const b = decodeManifest(manifestWith(() => {}), mf, 'm.avro').entries.map((x) => x.dataFile.filePath);
    expect(b).toEqual(a);
    expect(a[0]).toMatch(/\.parquet$/);
  });

  it.each([
    ['an empty file_path', (_e: Record<string, unknown>, d: Record<string, unknown>) => { d['file_path'] = ''; }, /empty file_path/],
    ['status 7', (e: Record<string, unknown>) => { e['status'] = 7; }, /status 7/],
    ['content 9', (_e: Record<string, unknown>, d: Record<string, unknown>) => { d['content'] = 9; }, /content 9/],
    ['a negative record count', (_e: Record<string, unknown>, d: Record<string, unknown>) => { d['record_count'] = -1n; }, /negative record count/],
  ])('%s is INVALID_MANIFEST', (_name, change, message) => {
    const e = thrown(() => decodeManifest(manifestWith(change), mf, 'm.avro'));
    expect(e.code).toBe('INVALID_MANIFEST');
    expect(e.message).toMatch(message);
  });

  it('a manifest list entry with an empty manifest_path is INVALID_MANIFEST_LIST', () => {
    const parts = readParts(listBuf);
    parts.records[0]!['manifest_path'] = '';
    const e = thrown(() => decodeManifestList(writeContainer(parts), 'snap.avro'));
    expect(e.code).toBe('INVALID_MANIFEST_LIST');
  });
});
