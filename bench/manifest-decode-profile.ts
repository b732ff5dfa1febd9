// Where ips's manifest decoding spends its time, on the same generated table as manifest-decode:
//  1. phase timers over in-memory manifest bytes, each phase adding one layer of the real path:
//     container framing → + block inflate → decodeManifest (the compiled manifest decoder, from
//     the bytes), with two references beside it: avsc's generic decode (longs as plain numbers) and
//     the compiled generic decode (readAvroFile: records by name, longs as bigint);
//     with the GC time inside each phase;
//  2. a V8 CPU profile (node:inspector) of the real path (ipsDecodeAll), self time by category and
//     the top functions.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Session } from 'node:inspector/promises';
import { PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import avro from 'avsc';
import { HEADER_TYPE, PLAIN_LONG, readAvroFile } from '../src/iceberg/avro.js';
import { inflateEngine, inflateRawBlock } from '../src/iceberg/inflate.js';
import { readIntKeyedMap } from '../src/iceberg/avro-fields.js';
import { decodeManifestList, type ManifestFile } from '../src/iceberg/manifest-list.js';
import { decodeManifest } from '../src/iceberg/manifest.js';
import { LocalFileIO } from '../src/io/local-file-io.js';
import { cacheDir, fmtInt, fmtMiB, fmtRatio, intOption, median, table, type Benchmark } from './lib/common.js';
import { ensureTable } from './lib/manifest-table.js';
import { ipsDecodeAll } from './manifest-decode.js';

// ---- container framing, as src/iceberg/avro.ts does it (deflate / null codecs only) ----

interface Framed {
  schemaText: string;
  blocks: { count: number; data: Buffer }[];
}

function frame(buf: Buffer, inflate: boolean): Framed {
  const { value: header, offset } = HEADER_TYPE.decode(buf, 0) as { value: { meta: Record<string, Buffer>; sync: Buffer }; offset: number };
  const codec = header.meta['avro.codec']?.toString() ?? 'null';
  if (codec !== 'null' && codec !== 'deflate') throw new Error(`profile supports deflate/null manifests, not ${codec}`);
  const blocks: Framed['blocks'] = [];
  let pos = offset;
  while (pos < buf.length) {
    const count = PLAIN_LONG.decode(buf, pos);
    const size = PLAIN_LONG.decode(buf, count.offset);
    const start = size.offset;
    const end = start + (size.value as number);
    if (!buf.subarray(end, end + 16).equals(header.sync)) throw new Error('sync marker mismatch');
    const raw = buf.subarray(start, end);
    blocks.push({ count: count.value as number, data: inflate && codec === 'deflate' ? Buffer.from(inflateRawBlock(raw, 2 ** 30)) : raw });
    pos = end + 16;
  }
  return { schemaText: header.meta['avro.schema']!.toString(), blocks };
}

/**
 * avsc type for a schema with longs read as plain JS numbers (avsc's own LongType: no slicing, no
 * BigInt). Decode with it inside `uncheckedLongs`, which lifts avsc's precision check (snapshot ids
 * exceed 2^53; the values are not used). avsc types are frozen, so the check is lifted on the
 * prototype for the duration of the call.
 */
const numberTypes = new Map<string, avro.Type>();
function numberLongType(schemaText: string): avro.Type {
  let t = numberTypes.get(schemaText);
  if (!t) {
    t = avro.Type.forSchema(JSON.parse(schemaText), { wrapUnions: false });
    numberTypes.set(schemaText, t);
  }
  return t;
}

type Readable = { _read(tap: { readLong(): number }): number };
const longProto = (avro.types.LongType as unknown as { prototype: Readable }).prototype;
function uncheckedLongs<T>(fn: () => T): T {
  const checked = longProto._read;
  longProto._read = function (tap) {
    return tap.readLong();
  };
  try {
    return fn();
  } finally {
    longProto._read = checked;
  }
}

/** Decode every record, keeping one manifest's records alive at a time, as readAvroFile does. */
function decodeRecords(f: Framed, type: avro.Type): number {
  const records: unknown[] = [];
  for (const b of f.blocks) {
    let p = 0;
    for (let i = 0; i < b.count; i++) {
      const r = type.decode(b.data, p);
      records.push(r.value);
      p = r.offset;
    }
  }
  return records.length;
}

// ---- timing with GC accounting ----

let gcMs = 0;
const gcObserver = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMs += e.duration;
});

// A full GC before each phase, so that a phase pays for its own garbage rather than the previous one's.
v8.setFlagsFromString('--expose-gc');
const fullGc = runInNewContext('gc') as () => void;

async function timed(fn: () => number | Promise<number>): Promise<{ ms: number; cpuMs: number; gcMs: number }> {
  fullGc();
  await new Promise((r) => setTimeout(r, 20)); // deliver pending GC entries (they arrive on a timer)
  const gc0 = gcMs;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  fullGc(); // collect this phase's garbage inside its own measurement
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  await new Promise((r) => setTimeout(r, 20));
  return { ms, cpuMs: (cpu.user + cpu.system) / 1000, gcMs: gcMs - gc0 };
}

// ---- CPU profile summary ----

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface CpuProfile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

function category(fn: string, url: string): string {
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(program)' || fn === '(idle)' || fn === '(root)') return 'V8/native other (program, idle)';
  if (url.includes('/src/iceberg/avro-decoder.ts')) return 'ips compiled decoder (avro-decoder.ts)';
  if (url.includes('/src/iceberg/inflate.ts') || url.includes('/src/iceberg/inflate-wasm.ts')) return 'inflate (driver: inflate.ts, inflate-wasm.ts)';
  if (url.startsWith('wasm://')) return 'inflate (libdeflate, WebAssembly)';
  if (url.includes('/src/iceberg/avro.ts')) return fn === 'varintToBigInt' || fn === 'fromBuffer' ? 'bigint longs: varintToBigInt' : 'ips container framing (avro.ts)';
  if (url.includes('/node_modules/avsc/')) {
    if (fn.startsWith('AbstractLongType') || fn === 'Tap.skipLong') return 'bigint longs: avsc AbstractLongType (slice per long)';
    if (fn === 'Tap.readFixed' || fn === 'Tap.readBytes' || fn.startsWith('BufferPool')) return 'avsc bytes fields (copy per bounds value)';
    return 'avsc record decode (lib)';
  }
  if (url === '' && (fn === 'writeSync' || fn === 'init')) return 'inflate (native zlib writeSync)'; // zlib binding: the reused handle's inflate
  if (url === '' && /^(read)?[A-Z][A-Za-z0-9]*(_[A-Za-z0-9]+)*$/.test(fn) && !/^(BigInt|Number|String|Map|Set|Array|Object|Buffer|Uint8Array|Function|Error|Symbol)$/.test(fn)) {
    return 'avsc record decode (generated readers/constructors)';
  }
  if (/\/src\/iceberg\/(manifest|manifest-list|avro-fields)\.ts/.test(url)) return 'ips field mapping (manifest.ts, avro-fields.ts)';
  if (url.includes('zlib') || url.includes('streams/')) return 'inflate (node:zlib stream per block)';
  if (url.includes('buffer')) return 'Buffer allocation/copy (node:buffer)';
  if (url.includes('fs') || url.includes('/src/io/')) return 'file reads';
  if (url.includes('/bench/')) return 'bench harness (counting; with --read 1 the read-back callbacks)';
  if (url.includes('/src/iceberg/packed-stats.ts')) return 'packed stats (decode into slabs; forEach/get when read back)';
  return url === '' ? 'V8 builtins / other' : 'other';
}

function summarize(p: CpuProfile): { cats: [string, number][]; top: [string, number][]; totalMs: number } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  // Drop the inspector's own work (Profiler.stop serializing the profile is sampled too).
  const excluded = new Set<number>();
  const exclude = (n: ProfileNode): void => {
    excluded.add(n.id);
    for (const c of n.children ?? []) exclude(byId.get(c)!);
  };
  for (const n of p.nodes) if (n.callFrame.url === 'node:inspector' && !excluded.has(n.id)) exclude(n);
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  const cats = new Map<string, number>();
  const fns = new Map<string, number>();
  let total = 0;
  for (const [id, us] of self) {
    const cf = byId.get(id)!.callFrame;
    if (cf.functionName === '(idle)' || excluded.has(id)) continue;
    total += us;
    const c = category(cf.functionName, cf.url);
    cats.set(c, (cats.get(c) ?? 0) + us);
    const short = cf.url ? cf.url.replace(/^.*\/(node_modules\/|src\/|bench\/)/, '$1').replace(/^file:\/\//, '') : '';
    const key = `${cf.functionName || '(anonymous)'}  ${short}${cf.url ? `:${cf.lineNumber + 1}` : ''}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
  }
  const sorted = (m: Map<string, number>): [string, number][] => [...m].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, v / 1000]);
  return { cats: sorted(cats), top: sorted(fns).slice(0, 20), totalMs: total / 1000 };
}

export const manifestDecodeProfile: Benchmark = {
  name: 'manifest-decode-profile',
  description: 'where ips manifest decoding spends time: phase timers (framing, inflate, compiled decode; avsc for reference) and a CPU profile',
  byDefault: false,
  options: {
    'profile-manifests': 'manifests to use (default 40)', rounds: 'passes per phase, median (default 5)',
    read: '1: the profiled pass also reads every stat back through the public maps, as manifest-decode\'s "read" side (default 0)',
  },
  async run(ctx) {
    const rounds = intOption(ctx, 'rounds', 5);
    const t = await ensureTable(ctx);
    const io = new LocalFileIO();
    const list = decodeManifestList(await io.read(t.manifest_list), t.manifest_list);
    const mfs: ManifestFile[] = list.manifests.slice(0, intOption(ctx, 'profile-manifests', 40));
    const bufs = await Promise.all(mfs.map((m) => io.read(m.path)));
    const bytes = bufs.reduce((s, b) => s + b.length, 0);
    let entries = 0;
    let blocks = 0;
    let inflated = 0;
    for (const b of bufs) {
      for (const blk of frame(b, true).blocks) {
        entries += blk.count;
        blocks++;
        inflated += blk.data.length;
      }
    }
    ctx.log(`${mfs.length} manifests, ${fmtInt(entries)} entries in ${fmtInt(blocks)} Avro blocks, ${(bytes / 1e6).toFixed(1)} MB on disk, ${(inflated / 1e6).toFixed(1)} MB inflated`);

    // readIntKeyedMap is timed alone on avsc's output for a few manifests (kept small: a large live
    // heap would make the full GCs around each phase slow).
    const mapSample = bufs.slice(0, 4).flatMap((b, i) => readAvroFile(b, mfs[i]!.path).records);
    const dfName = 'data_file';
    const phases: [string, () => number | Promise<number>, number?][] = [
      ['read files (LocalFileIO)', async () => {
        let n = 0;
        for (const m of mfs) n += (await io.read(m.path)).length;
        return n;
      }],
      ['A  framing only (no inflate)', () => bufs.reduce((s, b) => s + frame(b, false).blocks.length, 0)],
      ['B  framing + inflate', () => bufs.reduce((s, b) => s + frame(b, true).blocks.length, 0)],
      ['C  B + avsc decode, longs as numbers', () => uncheckedLongs(() => bufs.reduce((s, b) => {
        const f = frame(b, true);
        return s + decodeRecords(f, numberLongType(f.schemaText));
      }, 0))],
      ['D  B + compiled generic decode (readAvroFile)', () => bufs.reduce((s, b, i) => s + readAvroFile(b, mfs[i]!.path).records.length, 0)],
      ['E  B + compiled manifest decode (decodeManifest)', () => bufs.reduce((s, b, i) => s + decodeManifest(b, mfs[i]!, mfs[i]!.path).entries.length, 0)],
      ['   readIntKeyedMap alone (6 maps/entry, on D output)', () => {
        let n = 0;
        for (const r of mapSample) {
          const d = (r as Record<string, Record<string, unknown>>)[dfName]!;
          for (const k of ['column_sizes', 'value_counts', 'null_value_counts', 'nan_value_counts', 'lower_bounds', 'upper_bounds']) {
            n += readIntKeyedMap(d[k])?.size ?? 0;
          }
        }
        return n;
      }, mapSample.length],
    ];

    gcObserver.observe({ entryTypes: ['gc'] });
    for (const [, fn] of phases) await fn(); // warm-up
    const results = new Map<string, { ms: number[]; cpu: number[]; gc: number[] }>();
    for (let r = 0; r < rounds; r++) {
      for (const [name, fn] of phases) {
        const x = await timed(fn);
        const cur = results.get(name) ?? { ms: [], cpu: [], gc: [] };
        cur.ms.push(x.ms);
        cur.cpu.push(x.cpuMs);
        cur.gc.push(x.gcMs);
        results.set(name, cur);
      }
    }
    gcObserver.disconnect();
    // Attribution uses each phase's fastest pass: on a shared machine interference only ever adds time.
    const cpuMin = (name: string): number => Math.min(...results.get(name)!.cpu);
    const usPerEntry = (ms: number, n = entries): string => ((ms * 1000) / n).toFixed(2);
    console.log(`\n== manifest-decode-profile: ${mfs.length} manifests, ${fmtInt(entries)} entries, ${fmtInt(blocks)} Avro blocks (${(entries / blocks).toFixed(0)} entries/block), ${(bytes / 1e6).toFixed(1)} MB → ${(inflated / 1e6).toFixed(1)} MB inflated`);
    console.log(`   phase timers over in-memory bytes, ${rounds} interleaved passes (medians unless marked min); CPU = process CPU time (all threads), GC = time in GC pauses (incl. a forced full GC before and after each pass)\n`);
    console.log(
      table(
        ['phase', 'wall ms', 'CPU ms', 'min CPU ms', 'CPU µs/entry', 'GC ms', 'entries/CPU s'],
        phases.map(([name, , n]) => {
          const r = results.get(name)!;
          const cpu = median(r.cpu);
          return [
            name, median(r.ms).toFixed(0), cpu.toFixed(0), Math.min(...r.cpu).toFixed(0), usPerEntry(cpu, n), median(r.gc).toFixed(0),
            /^[A-E] /.test(name) ? fmtInt(entries / (cpu / 1000)) : '',
          ];
        }),
      ),
    );
    const [a, b, c, d, e] = ['A  framing only (no inflate)', 'B  framing + inflate', 'C  B + avsc decode, longs as numbers', 'D  B + compiled generic decode (readAvroFile)', 'E  B + compiled manifest decode (decodeManifest)'].map(cpuMin) as [number, number, number, number, number];
    const share = (x: number): string => `${((x / e) * 100).toFixed(0)}%`;
    console.log('\n   attribution of decodeManifest (E) by CPU time, layer by layer (differences of the fastest passes; ±10–20% on a busy machine):');
    console.log(
      table(
        ['layer', 'CPU µs/entry', 'share'],
        [
          ['container framing', usPerEntry(a), share(a)],
          [`block inflate (src/iceberg/inflate.ts, engine ${inflateEngine()})`, usPerEntry(b - a), share(b - a)],
          ['compiled manifest decode + field mapping (E − B)', usPerEntry(e - b), share(e - b)],
          ['(reference, not in E) avsc generic decode, longs as numbers (C − B)', usPerEntry(c - b), ''],
          ['(reference, not in E) compiled generic decode, longs as bigint (D − B)', usPerEntry(d - b), ''],
        ],
      ),
    );

    // Result row (bench/table.ts): the real decoder against avsc's generic one on the same framed, inflated blocks.
    const hwm = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    ctx.result({
      measure: `CPU per manifest entry (fastest of ${rounds} passes, in memory, inflate included), ${fmtInt(entries)} entries of ${mfs.length} manifests; ratio = avsc ÷ ips (> 1×: ips faster)`,
      ips: `decodeManifest: ${usPerEntry(e)} µs/entry (inflate ${usPerEntry(b - a)}, decode ${usPerEntry(e - b)}); peak RSS of the bench process ${hwm ? fmtMiB(Number(hwm[1]) * 1024) : '—'}`,
      peer: `avsc generic decode, longs as numbers: ${usPerEntry(c)} µs/entry`,
      ratio: fmtRatio(c / e),
    });

    // CPU profile of the real path, files read included.
    const session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 200 });
    await session.post('Profiler.start');
    const readBack = intOption(ctx, 'read', 0) === 1;
    const run = await ipsDecodeAll(t.manifest_list, mfs.length, 'all', readBack);
    const { profile } = (await session.post('Profiler.stop')) as unknown as { profile: CpuProfile };
    session.disconnect();
    const profDir = path.join(cacheDir(), 'bench', 'profiles');
    mkdirSync(profDir, { recursive: true });
    const profPath = path.join(profDir, `manifest-decode-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
    writeFileSync(profPath, JSON.stringify(profile));
    const s = summarize(profile);
    console.log(`\n   CPU profile of ipsDecodeAll${readBack ? ' reading every stat back' : ''} over the same ${run.manifests} manifests (${run.seconds.toFixed(2)}s wall, ${s.totalMs.toFixed(0)} ms sampled), self time by category:\n`);
    console.log(table(['category', 'ms', 'share'], s.cats.map(([k, v]) => [k, v.toFixed(0), `${((v / s.totalMs) * 100).toFixed(1)}%`])));
    console.log('\n   top functions by self time:\n');
    console.log(table(['function', 'ms', 'share'], s.top.map(([k, v]) => [k, v.toFixed(0), `${((v / s.totalMs) * 100).toFixed(1)}%`])));
    console.log(`\n   full profile (open in Chrome DevTools → Performance): ${profPath}\n`);
  },
};
