// Location mappings (--map-location) and resolving a Hadoop-layout table directory through
// metadata/version-hint.text, on temporary directories.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IpsError } from '../../src/errors.js';
import { resolveTableDirectory } from '../../src/catalog/hadoop-catalog.js';
import { loadTable, parseTableRef } from '../../src/catalog/load-table.js';
import { LocalFileIO } from '../../src/io/local-file-io.js';
import { applyMappings, parseLocationMapping, RoutingFileIO } from '../../src/io/routing-file-io.js';

async function rejection(p: Promise<unknown>): Promise<IpsError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(IpsError);
    return e as IpsError;
  }
  throw new Error('expected a rejection');
}

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-unit-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('location mappings', () => {
  it('longest matching prefix wins, whatever the order given', () => {
    const general = { from: 's3://bucket/', to: '/data/all/' };
    const specific = { from: 's3://bucket/warehouse/t/', to: '/data/t/' };
    for (const ms of [[general, specific], [specific, general]]) {
      expect(applyMappings('s3://bucket/warehouse/t/metadata/v1.metadata.json', ms)).toBe('/data/t/metadata/v1.metadata.json');
      expect(applyMappings('s3://bucket/other/x.avro', ms)).toBe('/data/all/other/x.avro');
    }
  });

  it('leaves locations no mapping matches unchanged', () => {
    expect(applyMappings('hdfs://nn:8020/w/t/a.avro', [{ from: 's3://b/', to: '/x/' }])).toBe('hdfs://nn:8020/w/t/a.avro');
    expect(applyMappings('/local/file', [])).toBe('/local/file');
  });

  it('maps relative (scheme-less) prefixes as written in metadata', () => {
    expect(applyMappings('data/persistent/t/metadata/snap-1.avro', [{ from: 'data/persistent/t', to: '/fx/table' }]))
      .toBe('/fx/table/metadata/snap-1.avro');
  });

  it('parses FROM=TO at the first "=" and rejects malformed mappings', () => {
    expect(parseLocationMapping('hdfs://nn:8020/w=/data/w')).toEqual({ from: 'hdfs://nn:8020/w', to: '/data/w' });
    expect(parseLocationMapping('s3://b/t=/d/a=b')).toEqual({ from: 's3://b/t', to: '/d/a=b' });
    for (const bad of ['no-equals', '=/x', 's3://b/t=']) {
      let err: unknown;
      try {
        parseLocationMapping(bad);
      } catch (e) {
        err = e;
      }
      expect(err, bad).toBeInstanceOf(IpsError);
      expect((err as IpsError).code).toBe('INVALID_ARGUMENT');
    }
  });

  it('RoutingFileIO reads a mapped hdfs:// location from disk and refuses an unmapped one', async () => {
    const dir = path.join(tmp, 'routing');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'f.txt'), 'hello');
    const io = new RoutingFileIO({ mappings: [{ from: 'hdfs://nn:8020/w', to: dir }] });
    expect((await io.read('hdfs://nn:8020/w/f.txt')).toString()).toBe('hello');
    expect(await io.exists('hdfs://nn:8020/w/f.txt')).toBe(true);
    expect(await io.list('hdfs://nn:8020/w')).toEqual(['f.txt']);
    // sync throw or rejection: either way the error must say how to fix it
    const e = await rejection((async () => io.read('hdfs://other:8020/w/f.txt'))());
    expect(e.code).toBe('UNSUPPORTED_SCHEME');
    expect(e.message).toContain('--map-location');
  });

  it('FileIO errors are promise rejections, never synchronous throws (the interface returns promises)', async () => {
    const io = new RoutingFileIO({ mappings: [] });
    for (const call of [
      () => io.read('hdfs://nn:8020/w/f.txt'),
      () => io.exists('hdfs://nn:8020/w/f.txt'),
      () => io.list('hdfs://nn:8020/w'),
      () => io.write('hdfs://nn:8020/w/f.txt', Buffer.from('x')),
    ]) {
      let p: Promise<unknown> | undefined;
      expect(() => {
        p = call();
      }).not.toThrow();
      const e = await rejection(p!);
      expect(e.code).toBe('UNSUPPORTED_SCHEME');
    }
  });
});

// A minimal valid v2 metadata document; `marker` lands in a property to tell files apart.
function metadataJson(marker: string): string {
  return JSON.stringify({
    'format-version': 2,
    'table-uuid': '9c12d441-03fe-4693-9a96-a0705ddf69c1',
    location: 'file:/tmp/t',
    'last-sequence-number': 0,
    'last-updated-ms': 1602638573590,
    'last-column-id': 1,
    'current-schema-id': 0,
    schemas: [{ type: 'struct', 'schema-id': 0, fields: [{ id: 1, name: 'x', required: false, type: 'int' }] }],
    'default-spec-id': 0,
    'partition-specs': [{ 'spec-id': 0, fields: [] }],
    'last-partition-id': 999,
    'default-sort-order-id': 0,
    'sort-orders': [{ 'order-id': 0, fields: [] }],
    properties: { marker },
    'current-snapshot-id': -1,
  });
}

/** A table dir with metadata/ holding the given files; `null` content = a metadata JSON. */
function tableDir(name: string, files: Record<string, string | Buffer | null>): string {
  const dir = path.join(tmp, name);
  const meta = path.join(dir, 'metadata');
  fs.mkdirSync(meta, { recursive: true });
  for (const [f, content] of Object.entries(files)) fs.writeFileSync(path.join(meta, f), content ?? metadataJson(f));
  return dir;
}

describe('version-hint.text resolution', () => {
  const io = new LocalFileIO();
  const chosen = async (dir: string): Promise<string> => path.basename(await resolveTableDirectory(io, dir));

  it('a numeric hint names vN.metadata.json', async () => {
    const dir = tableDir('numeric', { 'v1.metadata.json': null, 'v2.metadata.json': null, 'version-hint.text': '2' });
    expect(await chosen(dir)).toBe('v2.metadata.json');
    const t = await loadTable(io, parseTableRef(dir));
    expect(t.metadata.properties['marker']).toBe('v2.metadata.json');
    expect(t.metadataLocation).toBe(path.join(dir, 'metadata', 'v2.metadata.json'));
  });

  it('a hint with a trailing newline (or CRLF) still names its version', async () => {
    const a = tableDir('newline', { 'v1.metadata.json': null, 'v2.metadata.json': null, 'version-hint.text': '2\n' });
    expect(await chosen(a)).toBe('v2.metadata.json');
    const b = tableDir('crlf', { 'v1.metadata.json': null, 'v2.metadata.json': null, 'version-hint.text': '2\r\n' });
    expect(await chosen(b)).toBe('v2.metadata.json');
  });

  it('an empty hint falls back to the highest vN, compared numerically (v10 > v9)', async () => {
    const dir = tableDir('empty', { 'v9.metadata.json': null, 'v10.metadata.json': null, 'v2.metadata.json': null, 'version-hint.text': '' });
    expect(await chosen(dir)).toBe('v10.metadata.json');
  });

  it('no hint file at all falls back to the highest vN', async () => {
    const dir = tableDir('nohint', { 'v1.metadata.json': null, 'v3.metadata.json': null });
    expect(await chosen(dir)).toBe('v3.metadata.json');
  });

  it('a hint older than the newest metadata file is stale: the newest file wins', async () => {
    const dir = tableDir('stale', { 'v1.metadata.json': null, 'v2.metadata.json': null, 'v3.metadata.json': null, 'version-hint.text': '1' });
    expect(await chosen(dir)).toBe('v3.metadata.json');
  });

  it('a hint naming a missing version falls back to the highest present', async () => {
    const dir = tableDir('missing', { 'v1.metadata.json': null, 'v2.metadata.json': null, 'version-hint.text': '7' });
    expect(await chosen(dir)).toBe('v2.metadata.json');
  });

  it('gzip variants count as versions and are unpacked on load', async () => {
    const dir = tableDir('gz', {
      'v1.metadata.json': null,
      'v2.gz.metadata.json': zlib.gzipSync(metadataJson('gz-v2')),
      'version-hint.text': '2',
    });
    expect(await chosen(dir)).toBe('v2.gz.metadata.json');
    const t = await loadTable(io, parseTableRef(dir));
    expect(t.metadata.properties['marker']).toBe('gz-v2');
  });

  it('a current hint is answered without listing the directory; a stale, missing or catalog-style one lists it', async () => {
    // Counts the listings a resolution makes (a listing costs a page per 1,000 objects on S3).
    let listings = 0;
    const counting = new Proxy(io, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver) as unknown;
        if (prop === 'list') return (...args: unknown[]) => { listings++; return (v as (...a: unknown[]) => unknown).apply(target, args); };
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const resolved = async (dir: string): Promise<{ file: string; listings: number }> => {
      listings = 0;
      const file = path.basename(await resolveTableDirectory(counting, dir));
      return { file, listings };
    };
    const many: Record<string, string | null> = { 'version-hint.text': '40' };
    for (let v = 1; v <= 40; v++) many[`v${v}.metadata.json`] = null;
    for (let i = 0; i < 200; i++) many[`snap-${i}.avro`] = 'x';
    const current = tableDir('probe-current', many);
    expect(await resolved(current)).toEqual({ file: 'v40.metadata.json', listings: 0 });
    // A writer died after writing v41 (or its gzip spelling), before the hint: the listing finds it.
    fs.writeFileSync(path.join(current, 'metadata', 'v41.gz.metadata.json'), zlib.gzipSync(metadataJson('gz-v41')));
    expect(await resolved(current)).toEqual({ file: 'v41.gz.metadata.json', listings: 1 });
    expect(await resolved(tableDir('probe-missing', { 'v1.metadata.json': null, 'v2.metadata.json': null, 'version-hint.text': '7' })))
      .toEqual({ file: 'v2.metadata.json', listings: 1 });
    expect(await resolved(tableDir('probe-nohint', { 'v1.metadata.json': null, 'v3.metadata.json': null })))
      .toEqual({ file: 'v3.metadata.json', listings: 1 });
    expect(await resolved(tableDir('probe-catalog', { '00001-4d1c.metadata.json': null, '00002-9a7e.metadata.json': null, 'version-hint.text': '2' })))
      .toEqual({ file: '00002-9a7e.metadata.json', listings: 1 });
    // A hint that names its file: that file, when it is there.
    expect(await resolved(tableDir('probe-named', { '00001-4d1c.metadata.json': null, '00002-9a7e.metadata.json': null, 'version-hint.text': '00001-4d1c.metadata.json' })))
      .toEqual({ file: '00001-4d1c.metadata.json', listings: 0 });
  });

  it('no metadata at all: TABLE_NOT_FOUND naming the directory', async () => {
    const onlyHint = tableDir('onlyhint', { 'version-hint.text': '3' });
    const e1 = await rejection(resolveTableDirectory(io, onlyHint));
    expect(e1.code).toBe('TABLE_NOT_FOUND');
    expect(e1.message).toContain(onlyHint);
    const absent = path.join(tmp, 'does-not-exist');
    const e2 = await rejection(loadTable(io, parseTableRef(absent)));
    expect(e2.code).toBe('TABLE_NOT_FOUND');
  });

  it('table refs: a *.metadata.json path is a metadata file, anything else a directory', () => {
    expect(parseTableRef('s3://b/t/metadata/v3.metadata.json')).toEqual({ kind: 'metadata-file', location: 's3://b/t/metadata/v3.metadata.json' });
    expect(parseTableRef('s3://b/t/metadata/v3.metadata.json.gz').kind).toBe('metadata-file');
    expect(parseTableRef('/data/t')).toEqual({ kind: 'directory', location: '/data/t' });
  });
});

describe('LocalFileIO writes', () => {
  const io = new LocalFileIO();
  const read = (p: string): string => fs.readFileSync(p, 'utf8');
  const leftovers = (dir: string): string[] => fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'));

  it.each<[string, { ifAbsent: boolean; unpublished?: boolean }]>([
    ['if absent', { ifAbsent: true }],
    ['if absent, unpublished (in place)', { ifAbsent: true, unpublished: true }],
  ])('%s: creates a file (and its directory), never replaces one, leaves no temp file', async (_name, opts) => {
    const dir = path.join(tmp, `writes-${opts.unpublished === true ? 'in-place' : 'aside'}`, 'metadata');
    const f = path.join(dir, 'a.avro');
    await io.write(f, Buffer.from('first'), opts);
    expect(read(f)).toBe('first');
    await expect(io.write(f, Buffer.from('second'), opts)).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    expect(read(f)).toBe('first');
    // Large enough for the threadpool path (over 1 MiB), then small again: both refuse to replace.
    const big = Buffer.alloc(1024 * 1024 + 1, 7);
    const g = path.join(dir, 'big.avro');
    await io.write(g, big, opts);
    expect(fs.readFileSync(g).equals(big)).toBe(true);
    await expect(io.write(g, Buffer.from('x'), opts)).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    expect(leftovers(dir)).toEqual([]);
  });

  it('a replacing write (the version hint) replaces, small and large, and leaves no temp file', async () => {
    const dir = path.join(tmp, 'writes-replace');
    const f = path.join(dir, 'version-hint.text');
    await io.write(f, Buffer.from('1'));
    await io.write(f, Buffer.from('2'));
    expect(read(f)).toBe('2');
    const big = Buffer.alloc(1024 * 1024 + 1, 8);
    await io.write(f, big);
    expect(fs.readFileSync(f).equals(big)).toBe(true);
    expect(leftovers(dir)).toEqual([]);
  });

  it('small reads, exists and list: contents, FILE_NOT_FOUND, a directory refused', async () => {
    const dir = path.join(tmp, 'reads');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'small'), 'hello');
    expect((await io.read(path.join(dir, 'small'), 'version-hint')).toString()).toBe('hello');
    await expect(io.read(path.join(dir, 'missing'))).rejects.toMatchObject({ code: 'FILE_NOT_FOUND' });
    await expect(io.read(dir)).rejects.toMatchObject({ code: 'NOT_A_FILE' });
    expect(await io.exists(path.join(dir, 'small'))).toBe(true);
    expect(await io.exists(path.join(dir, 'missing'))).toBe(false);
    expect((await io.list(dir)).sort()).toEqual(['small']);
    expect(await io.list(path.join(dir, 'no-such-dir'))).toEqual([]);
  });
});
