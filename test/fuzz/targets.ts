// Fuzz targets: the metadata JSON parser (with the lineage walks it feeds), the Avro manifest
// list and manifest decoders (with bound and partition decoding of every entry), bound decoding
// per primitive type, the lineage walk on random parent graphs with an oracle, and the
// deletion-vector decoder (Puffin blob, Roaring bitmap) under its manifests' bounds, and the Parquet
// footer walk of row-level changes. Seeds are the PyIceberg-written files of
// fixtures/tables/playback and re-encodings of them made here.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { parse as parseLossless, stringify as stringifyLossless, isInteger } from 'lossless-json';
import { IpsError } from '../../src/errors.js';
import { isAncestorOrSelf, snapshotIndex } from '../../src/iceberg/lineage.js';
import { decodeManifestList, type ManifestFile } from '../../src/iceberg/manifest-list.js';
import { decodeManifest } from '../../src/iceberg/manifest.js';
import { lineage, parseTableMetadata, type Snapshot, type TableMetadata } from '../../src/iceberg/metadata.js';
import { parsePrimitive, type PrimitiveType } from '../../src/iceberg/types.js';
import { compareValues, decodeBinaryValue, encodeBinaryValue, toJsonValue } from '../../src/iceberg/values.js';
import { orderedSnapshots } from '../../src/capture/inspect.js';
import { FileDescriber } from '../../src/capture/file-json.js';
import { resolveRange } from '../../src/capture/range.js';
import { consumerLag } from '../../src/service/lag.js';
import { parquetMetadata } from 'hyparquet';
import { deletionVectorChunks } from '../../src/rows/deletion-vector.js';
import { summarizeFooter } from '../../src/rows/parquet-footer.js';
import { dvBlob, roaring32, roaring64, type Container } from '../rows/roaring-builder.js';
import { readParts, writeContainer } from '../setup/avro-rewrite.js';
import type { FuzzTarget } from './engine.js';

const REPO_ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const META = path.join(REPO_ROOT, 'fixtures', 'tables', 'playback', 'metadata');
const files = (pred: (f: string) => boolean): string[] => fs.readdirSync(META).filter(pred).sort().map((f) => path.join(META, f));
const LIMITS = { maxDecompressedBytes: 16 * 1024 * 1024 };

const metadataFiles = files((f) => f.endsWith('.metadata.json'));
const fixtureMd = parseTableMetadata(fs.readFileSync(metadataFiles.at(-1)!, 'utf8'), 'fixture');
const listFiles = files((f) => f.startsWith('snap-'));
const manifestFiles = files((f) => /-m\d+\.avro$/.test(f));
const manifestsByName = new Map<string, ManifestFile>();
for (const f of listFiles) for (const m of decodeManifestList(fs.readFileSync(f), f).manifests) manifestsByName.set(path.basename(m.path), m);

/** The real file and a deflate re-encoding of it (PyIceberg writes deflate; null exercises the other path). */
function avroSeeds(paths: string[]): Buffer[] {
  const out: Buffer[] = [];
  for (const p of paths) {
    const buf = fs.readFileSync(p);
    out.push(buf);
    const parts = readParts(buf);
    out.push(writeContainer(parts, 'null'));
  }
  return out;
}

// -- metadata JSON ------------------------------------------------------------------------------

function walkAll(md: TableMetadata): void {
  for (const s of md.snapshots.slice(0, 64)) lineage(md, s.snapshotId);
  orderedSnapshots(md);
  const head = md.currentSnapshotId;
  for (const from of [null, ...md.snapshots.slice(0, 8).map((s) => s.snapshotId)]) {
    try {
      resolveRange(md, { from });
    } catch (e) {
      if (!(e instanceof IpsError)) throw e;
    }
  }
  if (head !== null) {
    consumerLag(md, { snapshotId: md.snapshots[0]?.snapshotId ?? null, partialSnapshotId: null } as never, 'main');
    isAncestorOrSelf(snapshotIndex(md.snapshots), head, -1n);
  }
  const d = new FileDescriber(md);
  for (const spec of md.specs) d.boundSpec(spec.specId);
}

/** A structure-aware mutation of metadata JSON: one node deleted, replaced, or a parent pointer rewired. */
function mutateJson(data: Buffer, rnd: () => number): Buffer | null {
  let doc: unknown;
  try {
    doc = parseLossless(data.toString('utf8'), null, (v: string) => (isInteger(v) ? BigInt(v) : Number(v)));
  } catch {
    return null;
  }
  const nodes: { parent: Record<string, unknown> | unknown[]; key: string | number }[] = [];
  const visit = (v: unknown, depth: number): void => {
    if (depth > 12 || v === null || typeof v !== 'object') return;
    for (const [k, c] of Object.entries(v)) {
      nodes.push({ parent: v as Record<string, unknown>, key: Array.isArray(v) ? Number(k) : k });
      visit(c, depth + 1);
    }
  };
  visit(doc, 0);
  if (!nodes.length) return null;
  const n = nodes[Math.floor(rnd() * nodes.length)]!;
  const rawSnaps = (doc as { snapshots?: unknown } | null)?.snapshots;
  const snaps = (Array.isArray(rawSnaps) ? rawSnaps : []).filter((x): x is { 'snapshot-id': bigint } => x !== null && typeof x === 'object' && !Array.isArray(x));
  const someId = snaps.length ? snaps[Math.floor(rnd() * snaps.length)]!['snapshot-id'] : 1n;
  const values: unknown[] = [null, -1n, 0n, 2n ** 63n - 1n, -(2n ** 63n), '', 'x', [], {}, true, 1.5, someId, 'hdfs://nn/x', '/dev/zero', 'file://host/x'];
  const r = rnd();
  const p = n.parent as Record<string | number, unknown>;
  if (r < 0.25) {
    if (Array.isArray(n.parent)) n.parent.splice(n.key as number, 1);
    else delete p[n.key];
  } else if (r < 0.5 && snaps.length) {
    // Rewire a parent: self-parents and loops are the interesting corruption.
    const s = snaps[Math.floor(rnd() * snaps.length)] as Record<string, unknown>;
    s['parent-snapshot-id'] = rnd() < 0.5 ? s['snapshot-id'] : someId;
  } else if (r < 0.6 && Array.isArray(n.parent)) {
    n.parent.push(structuredClone(n.parent[n.key as number]));
  } else {
    p[n.key] = values[Math.floor(rnd() * values.length)];
  }
  return Buffer.from(stringifyLossless(doc) ?? '', 'utf8');
}

const metadataTarget: FuzzTarget = {
  seeds: () => metadataFiles.map((f) => fs.readFileSync(f)),
  run(data) {
    const md = parseTableMetadata(data.toString('utf8'), 'fuzz.metadata.json');
    walkAll(md);
  },
  mutators: [mutateJson],
  maxLen: 1 << 18,
};

// -- manifest list and manifest ------------------------------------------------------------------

const manifestListTarget: FuzzTarget = {
  seeds: () => avroSeeds(listFiles),
  run(data) {
    const list = decodeManifestList(data, 'fuzz-list.avro', LIMITS);
    for (const m of list.manifests) if (m.partitions) for (const p of m.partitions) void p.lowerBound;
  },
  maxLen: 1 << 18,
};

const manifestTarget: FuzzTarget = {
  seeds: () => avroSeeds(manifestFiles),
  run(data) {
    const mf = manifestsByName.get('2eee5d0d-7cfb-41ff-8610-58ad41f76551-m0.avro') ?? [...manifestsByName.values()][0]!;
    const m = decodeManifest(data, { ...mf, partitionSpecId: Number(readHeaderSpecId(data) ?? mf.partitionSpecId) }, 'fuzz-manifest.avro', LIMITS);
    const d = new FileDescriber(fixtureMd);
    for (const entry of m.entries) d.describe({ entry, manifest: mf });
  },
  maxLen: 1 << 18,
};

/** The manifest's own partition-spec-id header, so that mutations get past the spec check to the entries. */
function readHeaderSpecId(data: Buffer): string | null {
  const i = data.indexOf('partition-spec-id');
  if (i < 0) return null;
  const v = data[i + 'partition-spec-id'.length];
  if (v === undefined) return null;
  const len = (v >> 1) & 0x3f;
  const s = data.subarray(i + 'partition-spec-id'.length + 1, i + 'partition-spec-id'.length + 1 + len).toString('latin1');
  return /^\d{1,6}$/.test(s) ? s : null;
}

// -- bounds ---------------------------------------------------------------------------------------

const TYPES: PrimitiveType[] = ['boolean', 'int', 'long', 'float', 'double', 'date', 'time', 'timestamp', 'timestamptz', 'timestamp_ns', 'timestamptz_ns',
  'string', 'uuid', 'binary', 'fixed[4]', 'fixed[16]', 'decimal(9,2)', 'decimal(38,10)', 'decimal(18,0)'].map(parsePrimitive);

const boundsTarget: FuzzTarget = {
  seeds: () => {
    const out: Buffer[] = [];
    const samples: [number, Buffer][] = [[0, Buffer.from([1])], [1, Buffer.from([1, 0, 0, 0])], [2, Buffer.from([1, 0, 0, 0, 0, 0, 0, 0])], [3, Buffer.from([0, 0, 0x80, 0x3f])],
      [4, Buffer.alloc(8)], [11, Buffer.from('héllo')], [12, Buffer.alloc(16, 7)], [16, Buffer.from([0x01, 0x00])], [17, Buffer.from([0xff, 0x38])]];
    for (const [t, b] of samples) out.push(Buffer.concat([Buffer.from([t]), b]));
    return out;
  },
  run(data) {
    if (data.length === 0) return;
    const type = TYPES[data[0]! % TYPES.length]!;
    const v = decodeBinaryValue(type, data.subarray(1));
    toJsonValue(type, v);
    compareValues(type, v, v);
    const again = encodeBinaryValue(type, v);
    if (type.kind !== 'string' && decodeBinaryValue(type, again) === undefined) throw new Error('round trip lost the value');
  },
  maxLen: 256,
};

// -- lineage walk on random parent graphs, with an oracle ------------------------------------------

function graph(data: Buffer): TableMetadata {
  const n = 1 + (data[0] ?? 0) % 24;
  const snapshots: Snapshot[] = [];
  for (let i = 0; i < n; i++) {
    const p = data[1 + i] ?? 255;
    const parent = p === 255 ? null : BigInt(p % (n + 3)); // ids n..n+2 are missing snapshots (expired)
    snapshots.push({
      snapshotId: BigInt(i), parentSnapshotId: parent, sequenceNumber: BigInt(i + 1), timestampMs: BigInt(i), manifestList: `m${i}`, v1Manifests: null,
      operation: 'append', summary: { operation: 'append', 'added-data-files': '1' }, schemaId: 0, firstRowId: null, addedRows: null,
    });
  }
  const head = BigInt((data[1 + n] ?? 0) % n);
  return {
    formatVersion: 2, tableUuid: null, location: '/t', lastSequenceNumber: BigInt(n), lastUpdatedMs: 0n, lastColumnId: 0,
    schemas: [{ schemaId: 0, struct: { kind: 'struct', fields: [] } } as never], currentSchemaId: 0, specs: [{ specId: 0, fields: [] }], defaultSpecId: 0,
    lastPartitionId: null, properties: {}, currentSnapshotId: head, snapshots, refs: { main: { snapshotId: head, type: 'branch' } },
    sortOrders: [], defaultSortOrderId: null, nextRowId: null, raw: {},
  };
}

/** The naive walk, bounded by the snapshot count: its chain, or 'cycle'. */
function oracle(md: TableMetadata, head: bigint): bigint[] | 'cycle' {
  const byId = new Map(md.snapshots.map((s) => [s.snapshotId, s] as const));
  const out: bigint[] = [];
  let cur = byId.get(head);
  while (cur) {
    if (out.includes(cur.snapshotId)) return 'cycle';
    out.push(cur.snapshotId);
    cur = cur.parentSnapshotId === null ? undefined : byId.get(cur.parentSnapshotId);
  }
  return out;
}

const lineageTarget: FuzzTarget = {
  seeds: () => [Buffer.from([3, 255, 0, 1, 2]), Buffer.from([1, 0, 0]), Buffer.from([5, 4, 0, 1, 2, 3, 4]), Buffer.from([6, 255, 0, 1, 7, 3, 4, 5])],
  run(data) {
    const md = graph(data);
    for (const s of md.snapshots) {
      const want = oracle(md, s.snapshotId);
      let got: bigint[] | 'cycle';
      try {
        got = lineage(md, s.snapshotId).chain.map((x) => x.snapshotId);
      } catch (e) {
        if (e instanceof IpsError && e.code === 'LINEAGE_CYCLE') got = 'cycle';
        else throw e;
      }
      if (JSON.stringify(got, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) !== JSON.stringify(want, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))) {
        throw new Error(`oracle mismatch from ${s.snapshotId}: lineage ${String(got)} vs ${String(want)}`);
      }
    }
    walkAll(md);
  },
  maxLen: 64,
};

// -- deletion vectors ------------------------------------------------------------------------------

/**
 * The input is a Roaring portable 64-bit bitmap; the target frames it as a Puffin blob with the
 * right length and CRC (or mutations would stop at the checksum) and decodes it under bounds
 * taken from its first byte, as the data file's and the vector's record counts would give them.
 * Oracle: what comes out is strictly ascending, below the row count, within the record count,
 * and never more than a container (65,536 positions) at a time.
 */
const DV_SEEDS: Container[][] = [
  [{ key: 0, kind: 'array', values: [0, 3, 4095] }],
  [{ key: 0, kind: 'run', runs: [[0, 9], [20, 0]] }, { key: 3, kind: 'array', values: [7] }],
  [{ key: 1, kind: 'bitmap', values: Array.from({ length: 4200 }, (_, i) => i * 3) }],
  [0, 1, 2, 5, 9].map((key) => ({ key, kind: 'run' as const, runs: [[0, 65535]] as [number, number][] })),
];

const deletionVectorTarget: FuzzTarget = {
  seeds: () => [
    ...DV_SEEDS.flatMap((cs) => [Buffer.concat([Buffer.from([0]), roaring64([[0, roaring32(cs, true)]])]),
      Buffer.concat([Buffer.from([3]), roaring64([[0, roaring32(cs, true)], [2, roaring32(cs, true)]])])]),
    Buffer.concat([Buffer.from([1]), roaring64([[0, roaring32(DV_SEEDS[0]!, false)], [7, roaring32(DV_SEEDS[2]!, false)]])]),
  ],
  run(data) {
    if (data.length === 0) return;
    // Row counts from 2^8 to 2^38, cardinalities at or below them.
    const rowCount = 1n << BigInt(8 + (data[0]! % 31));
    const cardinality = (data[0]! & 0x80) ? rowCount : rowCount >> 4n;
    let last = -1;
    let count = 0n;
    for (const chunk of deletionVectorChunks(dvBlob(data.subarray(1)), 'fuzz.puffin at offset 4', { rowCount, cardinality })) {
      if (chunk.length > 65536) throw new Error(`a chunk of ${chunk.length} positions`);
      for (const p of chunk) {
        if (!(p > last)) throw new Error(`position ${p} after ${last}`);
        last = p;
      }
      if (BigInt(last) >= rowCount) throw new Error(`position ${last} handed out for a file of ${rowCount} rows`);
      count += BigInt(chunk.length);
      if (count > cardinality) throw new Error(`${count} positions handed out, record count ${cardinality}`);
    }
  },
  maxLen: 1 << 16,
};

// -- Parquet footers ------------------------------------------------------------------------------

/**
 * The input is a Parquet footer (FileMetaData, Thrift compact), seeded with the footers of the
 * playback fixture's PyIceberg-written data files. Oracle: when hyparquet (which builds the whole
 * structure) also reads the footer, its row count, schema, row group and column chunk counts are
 * the walk's. Inputs stay small, so hyparquet's allocations stay small too.
 */
const DATA = path.join(REPO_ROOT, 'fixtures', 'tables', 'playback', 'data');
const footerTarget: FuzzTarget = {
  seeds: () => fs.readdirSync(DATA, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.parquet')).sort().slice(0, 6).map((f) => {
    const b = fs.readFileSync(path.join(DATA, f));
    const n = b.readUInt32LE(b.length - 8);
    return b.subarray(b.length - 8 - n, b.length - 8);
  }),
  run(data) {
    const got = summarizeFooter(data, 'fuzz.parquet');
    let md;
    try {
      const tail = Buffer.alloc(8);
      tail.writeUInt32LE(data.length, 0);
      tail.write('PAR1', 4);
      md = parquetMetadata(Buffer.concat([data, tail]), { geoparquet: false });
    } catch {
      return; // hyparquet refuses what the walk accepts (it checks more than the counts): no oracle
    }
    // hyparquet takes a field by its id whatever its wire type (a string where a list belongs has
    // a length too); the walk, like Thrift's generated readers, skips a field of the wrong type.
    // Only footers whose fields have the types parquet.thrift gives them are compared.
    const kv: unknown = md.key_value_metadata;
    if (typeof md.num_rows !== 'bigint' || !Array.isArray(md.schema) || !Array.isArray(md.row_groups) ||
      !md.row_groups.every((g) => g !== null && typeof g === 'object' && Array.isArray(g.columns)) || !(kv === undefined || Array.isArray(kv))) return;
    const theirs = { numRows: md.num_rows, schemaElements: md.schema.length, rowGroups: md.row_groups.length, columnChunks: md.row_groups.reduce((n, g) => n + g.columns.length, 0), keyValues: md.key_value_metadata?.length ?? 0 };
    if (stringifyLossless(theirs) !== stringifyLossless({ ...got })) throw new Error(`walk ${stringifyLossless({ ...got })}, hyparquet ${stringifyLossless(theirs)}`);
  },
  maxLen: 1 << 16,
};

export const TARGETS: Record<string, FuzzTarget> = {
  'metadata-json': metadataTarget,
  'manifest-list': manifestListTarget,
  manifest: manifestTarget,
  bounds: boundsTarget,
  lineage: lineageTarget,
  'deletion-vector': deletionVectorTarget,
  'parquet-footer': footerTarget,
};

// Deflate is how PyIceberg writes these files; keep zlib referenced for seeds made elsewhere.
void zlib;
