// Writes the corrupt variants of test/robustness/corrupt-variants.ts to a directory, to run ips
// on them by hand (docs/robustness.md):  npx tsx test/robustness/make-variants.ts /tmp/ips-variants
import path from 'node:path';
import { buildVariants } from './corrupt-variants.js';

const dir = path.resolve(process.argv[2] ?? 'ips-corrupt-variants');
for (const v of await buildVariants(dir)) process.stdout.write(`${v.dir}\t${v.covers}\n`);
