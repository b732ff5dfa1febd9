import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pLimit from 'p-limit';
import { IpsError } from '../errors.js';
import type { LoadedTable } from '../catalog/table.js';
import { ManifestReader } from '../capture/manifest-reader.js';
import { resolveRangeWithHistory } from '../capture/range.js';
import type { FileIO } from '../io/file-io.js';
import { DEFAULT_MAX_ROWS } from '../rows/net-rows.js';
import { readChangelogSnapshot } from '../rows/changelog-table.js';
import { writeArrowFrom, writeRowsFile } from '../rows/output.js';
import type { Batch, SourceTable } from '../state/index.js';

/**
 * The row changes of one table of a batch as an Arrow IPC stream, for `GET /v1/batches/{id}/rows`:
 * read from the batch's changelog table when it has one (mode rows), else computed.
 * Computed whole into an unlinked scratch file before anything is sent, so a failure is still a
 * problem+json answer (never a cut stream), and nothing is left on disk whatever the client does.
 * At most `ROWS_CONCURRENCY` computations run at once: each holds a DuckDB of up to 1 GB.
 */
const ROWS_CONCURRENCY = 2;
const limit = pLimit(ROWS_CONCURRENCY);

export interface BatchRowsDeps {
  source: (name: string) => Promise<SourceTable>;
  fileIO: (t: SourceTable) => FileIO;
  load: (t: SourceTable) => Promise<LoadedTable>;
  maxRows?: bigint;
}

export interface BatchRowsStream {
  /** An open file descriptor of the (already unlinked) Arrow stream; the caller closes it. */
  fd: number;
  bytes: number;
  rows: number;
  table: string;
  /** Read from the batch's changelog table (mode rows) rather than computed. */
  fromChangelogTable: boolean;
}

export function batchRowsTable(batch: Batch, table: string | undefined): Batch['tables'][number] {
  if (table === undefined) {
    if (batch.tables.length !== 1) {
      throw new IpsError('INVALID_ARGUMENT', `batch ${batch.id} covers ${batch.tables.length} tables (${batch.tables.map((t) => t.sourceTable).join(', ')}): name one with ?table=`);
    }
    return batch.tables[0]!;
  }
  const t = batch.tables.find((x) => x.sourceTable === table);
  if (!t) throw new IpsError('NOT_FOUND', `batch ${batch.id} has no table "${table}" (it covers ${batch.tables.map((x) => x.sourceTable).join(', ')})`);
  return t;
}

export async function batchRowsArrow(deps: BatchRowsDeps, batch: Batch, opts: { table?: string; net?: boolean }): Promise<BatchRowsStream> {
  const bt = batchRowsTable(batch, opts.table);
  return limit(async () => {
    const source = await deps.source(bt.sourceTable);
    const io = deps.fileIO(source);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ips-batch-rows-'));
    try {
      const file = path.join(dir, 'rows.arrows');
      // A mode-rows batch's changelog table already holds its changelog: read it rather than recompute.
      const written = !opts.net && bt.rowChangelog ? await readChangelogSnapshot(io, bt.rowChangelog.metadataLocation, bt.rowChangelog.snapshotId) : undefined;
      let r: { rows: number };
      if (written) {
        r = await writeArrowFrom(written.schema, written.produce, file);
      } else {
        const md = (await deps.load(source)).metadata;
        const reader = new ManifestReader(io);
        const range = await resolveRangeWithHistory(md, { from: bt.fromSnapshotId, to: bt.toSnapshotId, branch: source.branch }, reader);
        r = await writeRowsFile({ io, md, reader, range, net: opts.net === true, maxRows: deps.maxRows ?? DEFAULT_MAX_ROWS }, 'arrow', file);
      }
      const fd = fs.openSync(file, 'r');
      return { fd, bytes: fs.fstatSync(fd).size, rows: r.rows, table: bt.sourceTable, fromChangelogTable: written !== undefined };
    } finally {
      // Unlinked now: the open descriptor keeps the bytes until the response is sent.
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
