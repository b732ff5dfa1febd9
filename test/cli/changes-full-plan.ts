// The previous `ips changes --json` (full decoded entries, whole document built then printed), as
// a script for test/cli/changes-memory.test.ts: run under the same heap cap, it shows that the
// test's table is large enough to need the compact, streamed plan.
//   node --import tsx test/cli/changes-full-plan.ts <table directory>
import { computeChangeSet } from '../../src/capture/change-set.js';
import { changesJson } from '../../src/capture/changes-json.js';
import { ManifestReader } from '../../src/capture/manifest-reader.js';
import { DEFAULT_POLICY } from '../../src/capture/policy.js';
import { resolveRange } from '../../src/capture/range.js';
import { loadTable } from '../../src/catalog/load-table.js';
import { stringifyJsonLossless } from '../../src/iceberg/json.js';
import { RoutingFileIO } from '../../src/io/routing-file-io.js';

const io = new RoutingFileIO();
const md = (await loadTable(io, { kind: 'directory', location: process.argv[2]! })).metadata;
const cs = await computeChangeSet(new ManifestReader(io), resolveRange(md, { from: null }), DEFAULT_POLICY, md, { deleteFootprints: false });
process.stdout.write(stringifyJsonLossless(changesJson(md, cs, []), 2) + '\n');
io.close();
