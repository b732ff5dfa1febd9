// The ips side of bench/manifest-decode.ts, in a process of its own so that the peak RSS beside its
// time is its own: an untimed warm-up on the first 10 manifests (V8 compiles the decode path), then
// one timed cold pass over the whole table (ipsDecodeAll), printed as one JSON line.
//   tsx bench/lib/manifest-decode-child.ts MANIFEST_LIST [all|none]
import { ipsDecodeAll } from '../manifest-decode.js';

const [manifestList, stats] = process.argv.slice(2);
if (!manifestList || (stats !== undefined && stats !== 'all' && stats !== 'none')) throw new Error('usage: manifest-decode-child.ts MANIFEST_LIST [all|none]');
await ipsDecodeAll(manifestList, 10, stats ?? 'all');
const run = await ipsDecodeAll(manifestList, 0, stats ?? 'all');
console.log(JSON.stringify({ ...run, recordCountSum: run.recordCountSum.toString(), stats: { ...run.stats, countSum: run.stats.countSum.toString() }, maxRssBytes: process.resourceUsage().maxRSS * 1024 }));
