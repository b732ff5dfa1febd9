// The ips side of bench/manifest-decode.ts, in a process of its own so that the peak RSS beside its
// time is its own: an untimed warm-up on the first 10 manifests (V8 compiles the decode path), then
// one timed cold pass over the whole table (ipsDecodeAll), printed as one JSON line.
//   tsx bench/lib/manifest-decode-child.ts MANIFEST_LIST [all|touch|none]
// all: every column stat decoded; touch: the same, then every stat read back through the public
// maps (a bigint per count, a Buffer per bound, every byte), inside the timed pass; none: stats skipped.
import { ipsDecodeAll } from '../manifest-decode.js';

const [manifestList, mode = 'all'] = process.argv.slice(2);
if (!manifestList || (mode !== 'all' && mode !== 'touch' && mode !== 'none')) throw new Error('usage: manifest-decode-child.ts MANIFEST_LIST [all|touch|none]');
const stats = mode === 'none' ? 'none' : 'all';
await ipsDecodeAll(manifestList, 10, stats, mode === 'touch');
const run = await ipsDecodeAll(manifestList, 0, stats, mode === 'touch');
console.log(JSON.stringify({ ...run, recordCountSum: run.recordCountSum.toString(), stats: { ...run.stats, countSum: run.stats.countSum.toString() }, maxRssBytes: process.resourceUsage().maxRSS * 1024 }));
