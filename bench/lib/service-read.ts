// CPU of the service's manifest read path (ManifestReader without `inline`: decompressAvroFile,
// then decodeManifest, every stat) over the first N manifests of a generated manifest-decode table,
// after an untimed warm-up on 10. One JSON line. IPS_INFLATE=zlib leaves the WebAssembly inflater
// out (blocks then inflate as before it: zlib, large ones on libuv's pool), to compare the two:
//   npx tsx bench/lib/service-read.ts MANIFEST_LIST [N]
//   IPS_INFLATE=zlib npx tsx bench/lib/service-read.ts MANIFEST_LIST [N]
// (MANIFEST_LIST: the snap-*.avro of a table `npm run bench -- --only manifest-decode` or
// `manifest-decode-java-blocks` generated under ~/.cache/ips/bench.)
import { ManifestReader } from '../../src/capture/manifest-reader.js';
import { inflateEngine } from '../../src/iceberg/inflate.js';
import { decodeManifestList } from '../../src/iceberg/manifest-list.js';
import { LocalFileIO } from '../../src/io/local-file-io.js';

const [list, n = '100'] = process.argv.slice(2);
if (!list) throw new Error('usage: service-read.ts MANIFEST_LIST [N]');
const io = new LocalFileIO();
const manifests = decodeManifestList(await io.read(list), list).manifests;
const reader = new ManifestReader(io);

async function pass(count: number): Promise<number> {
  let entries = 0;
  for (const mf of manifests.slice(0, count)) entries += (await reader.manifest(mf, { cache: false })).entries.length;
  return entries;
}

await pass(10);
const cpu0 = process.cpuUsage();
const wall0 = performance.now();
const entries = await pass(Number(n));
const cpu = process.cpuUsage(cpu0);
const cpuUs = cpu.user + cpu.system;
console.log(JSON.stringify({ engine: inflateEngine(), entries, cpuSeconds: cpuUs / 1e6, wallSeconds: (performance.now() - wall0) / 1e3, cpuUsPerEntry: +(cpuUs / entries).toFixed(2) }));
