// How prepare planned a limited batch before src/service/batch-plan.ts: the consumer's whole
// remaining range planned as full entries, then the limit applied. The peer of
// bench/prepare-backlog.ts; under test/service/prepare-backlog.test.ts's heap cap it shows that
// the test's backlog is large enough to need what prepare does now.
//   node --import tsx bench/lib/whole-range-plan.ts <table directory> <max files>
// Prints one JSON line: the files taken and the snapshots planned.
import { computeChangeSet, decisionEvents } from '../../src/capture/change-set.js';
import { ManifestReader } from '../../src/capture/manifest-reader.js';
import { DEFAULT_POLICY } from '../../src/capture/policy.js';
import { resolveRange } from '../../src/capture/range.js';
import { loadTable } from '../../src/catalog/load-table.js';
import { RoutingFileIO } from '../../src/io/routing-file-io.js';
import { selectFiles } from '../../src/service/batch-plan.js';

const [tableDir, maxFiles] = process.argv.slice(2);
const io = new RoutingFileIO();
const md = (await loadTable(io, { kind: 'directory', location: tableDir! })).metadata;
const range = resolveRange(md, { from: null });
const cs = await computeChangeSet(new ManifestReader(io, 32 * 1024 * 1024), range, DEFAULT_POLICY, md, { deleteFootprints: false });
const sel = selectFiles(cs.snapshots.map((d) => ({ snapshot: d.snapshot, events: decisionEvents(d) })), { maxFiles: Number(maxFiles) });
process.stdout.write(`${JSON.stringify({ taken: sel.taken.length, planned: range.snapshots.length })}\n`);
