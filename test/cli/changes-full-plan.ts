// Earlier `ips changes` outputs, as a script for test/cli/changes-memory.test.ts: run under the
// same heap cap as the CLI, each shows that the test's table is large enough to need what the
// CLI does now.
//   node --import tsx test/cli/changes-full-plan.ts <table directory> [whole|kept-bounds|own-lists] [--text]
// `whole` (default): full decoded entries, the whole document built, then printed.
// `kept-bounds`: compact entries that keep every file's lower/upper bounds through planning (as
// the CLI did before it read bounds back from the manifests for --json), output streamed.
// `own-lists`: the CLI's plan, but every snapshot's manifests read from its own manifest list (as
// Iceberg Java reads them, and as ips does where the range's newest list cannot answer), output streamed.
import { computeChangeSet } from '../../src/capture/change-set.js';
import { changesJson, writeChangesJson } from '../../src/capture/changes-json.js';
import { statsForRanges } from '../../src/capture/compact-entry.js';
import { ManifestReader } from '../../src/capture/manifest-reader.js';
import { DEFAULT_POLICY } from '../../src/capture/policy.js';
import { resolveRange } from '../../src/capture/range.js';
import { loadTable } from '../../src/catalog/load-table.js';
import { renderChanges, writeChangesText } from '../../src/cli/changes.js';
import { stringifyJsonLossless } from '../../src/iceberg/json.js';
import { RoutingFileIO } from '../../src/io/routing-file-io.js';

const [tableDir, mode = 'whole', format = '--json'] = process.argv.slice(2);
const io = new RoutingFileIO();
const md = (await loadTable(io, { kind: 'directory', location: tableDir! })).metadata;
const range = resolveRange(md, { from: null });
if (mode === 'whole') {
  const cs = await computeChangeSet(new ManifestReader(io), range, DEFAULT_POLICY, md, { deleteFootprints: false });
  const doc = changesJson(md, cs, []);
  process.stdout.write(format === '--text' ? renderChanges(doc) : stringifyJsonLossless(doc, 2) + '\n');
} else if (mode === 'kept-bounds') {
  const cs = await computeChangeSet(new ManifestReader(io, 32 * 1024 * 1024), range, DEFAULT_POLICY, md, {
    deleteFootprints: false, compact: { stats: statsForRanges([], true), concurrency: 4 },
  });
  const sink = (s: string): void => void process.stdout.write(s);
  if (format === '--text') await writeChangesText(md, cs, [], sink);
  else await writeChangesJson(md, cs, [], sink);
} else if (mode === 'own-lists') {
  const cs = await computeChangeSet(new ManifestReader(io, 32 * 1024 * 1024), range, DEFAULT_POLICY, md, {
    deleteFootprints: false, newestList: false, compact: { stats: statsForRanges([], false), concurrency: 4 },
  });
  const sink = (s: string): void => void process.stdout.write(s);
  if (format === '--text') await writeChangesText(md, cs, [], sink);
  else await writeChangesJson(md, cs, [], sink);
} else {
  throw new Error(`unknown mode ${mode}`);
}
io.close();
