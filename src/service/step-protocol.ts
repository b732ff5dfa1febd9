import { IpsError, isIpsError } from '../errors.js';
import { loadTable } from '../catalog/load-table.js';
import type { LoadedTable } from '../catalog/table.js';
import { changeKey } from '../capture/file-key.js';
import { netEvents, type FileEvent } from '../capture/netting.js';
import type { CapturePolicy } from '../capture/policy.js';
import { FileDescriber } from '../capture/file-json.js';
import { verifyFilesExist, writeIcdcSnapshot, type IcdcWriteResult } from '../capture/icdc-table.js';
import { IcdcWriteCache } from '../capture/icdc-cache.js';
import { planBatch } from './batch-plan.js';
import { DEFAULT_MAX_BATCH_FILES } from './defaults.js';
import { ManifestReader } from '../capture/manifest-reader.js';
import { branchHead, resolveRangeWithHistory } from '../capture/range.js';
import { changedPartitions, fieldRange, type FieldRange } from '../capture/ranges.js';
import type { FileChange } from '../capture/snapshot-changes.js';
import type { TableMetadata } from '../iceberg/metadata.js';
import { baseName, joinLocation, type FileIO } from '../io/file-io.js';
import { RoutingFileIO } from '../io/routing-file-io.js';
import { changelogTableName, writeChangelogTable } from '../rows/changelog-table.js';
import {
  toS3Settings, toTableRef, checkSignalName, checkSignalParams,
  type BatchCommitResult, type BatchHead, type OutputSignal, type Signal, type TriggerDetail, type Batch, type BatchLimits, type BatchTable, type BatchTableInput, type RowChangelogRef, type SourceTable, type State, type Watermark, type WatermarkPosition,
} from '../state/index.js';

/**
 * The ICDC step protocol (DESIGN.md): prepare → (the workflow reads the ICDC snapshot) → commit,
 * or abort. The database row is what makes a batch exist: prepare writes the ICDC snapshot
 * first and stores the batch last, so a crash in between leaves only an ICDC snapshot no batch
 * names (a retry with the same instance id writes a new one and stores that).
 */

/** Limits of one prepare; a snapshot's files may be split across batches to respect them. */
export interface PrepareLimits {
  maxFiles?: number;
  maxBytes?: number | bigint;
  maxRecords?: number | bigint;
}

export interface PrepareRequest {
  consumer: string;
  /** The source table's registered name (or several in `tables`: one batch over all of them). */
  table?: string;
  tables?: string[];
  /** A subscription firing: its trigger is stored with the batch, in one transaction. */
  trigger?: { subscription: string; seq: bigint; detail?: TriggerDetail };
  /**
   * Batches that may be open at once (default 1). A batch prepared while others are open
   * starts where the last of them ends, and commits only after them (in order).
   */
  maxInFlight?: number;
  /** The orchestrator's step id: a retried step gets the same batch. */
  instanceId: string;
  limits?: PrepareLimits;
  /**
   * Watermarks the caller has just read (the service reads them to find the consumer's table):
   * used instead of reading them again. A stale one cannot hand out changes twice: storing the
   * batch compares its base version with the watermark's (CONFLICT).
   */
  watermarks?: Watermark[];
  /** Source tables the caller has just read with those watermarks: used instead of reading them again. */
  sources?: SourceTable[];
}

export type PrepareResult =
  | {
      kind: 'batch';
      batch: Batch;
      /** False when the batch existed (a retry, or a concurrent prepare of the same instance). */
      created: boolean;
    }
  | {
      /** The watermark is at the head of the table: nothing to hand out, no batch stored. */
      kind: 'no-changes';
      consumer: string;
      /** The first table asked for (and its watermark); all of them in `tables` and `watermarks`. */
      table: string;
      watermark: Watermark;
      tables: string[];
      watermarks: Watermark[];
    };

export interface StepProtocolOptions {
  /** Where ICDC tables live: `<icdcRoot>/<consumer>__<table>`. */
  icdcRoot: string;
  /** FileIO for a source table (also used to write its ICDC tables). Default: RoutingFileIO with the table's S3 settings. */
  fileIO?: (table: SourceTable) => FileIO;
  /** Recorded in the watermark audit (default `step-protocol`). */
  actor?: string;
  /** How a source table's current metadata is loaded (default: loadTable through fileIO). */
  loadTable?: (table: SourceTable) => Promise<LoadedTable>;
  /** Called after each ICDC snapshot is written, with the table's name (`<consumer>__<table>`): `icdc_catalog_url` registers it. */
  onIcdcWritten?: (name: string, metadataLocation: string) => Promise<void>;
  /**
   * The most files one batch holds, whatever the caller's limits (`max_batch_files`, default
   * DEFAULT_MAX_BATCH_FILES): a batch's files are held in memory whole (planned entries, the ICDC
   * manifests, the stored file lists), so one prepare over a consumer's backlog of millions of
   * files would take the whole service down with it. Past it the batch is cut like any limited
   * one and the next prepare goes on from there.
   */
  maxBatchFiles?: number;
}


/** History errors of src/capture/range.ts: the consumer's position is no longer on the table's lineage. */
const HISTORY_ERRORS = new Set(['FROM_NOT_ANCESTOR', 'LINEAGE_BROKEN', 'FROM_EXPIRED', 'HISTORY_TRUNCATED', 'UNKNOWN_SNAPSHOT', 'NOT_ON_BRANCH']);

const ICDC_WRITE_ATTEMPTS = 10;

/**
 * Batches whose snapshots an ICDC table keeps: the current batch and a few before it for inspection. With
 * one batch in flight per consumer and table, only the newest can belong to an open batch.
 */
export const ICDC_RETAINED_BATCHES = 10;

/** Decoded-manifest cache per source table (a service may watch many tables). */
const READER_BUDGET_BYTES = 32 * 1024 * 1024;


function positiveLimit(v: number | bigint | undefined, what: string): bigint | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'number' && !Number.isSafeInteger(v)) throw new IpsError('INVALID_ARGUMENT', `${what} must be a positive integer`);
  const b = BigInt(v);
  if (b <= 0n) throw new IpsError('INVALID_ARGUMENT', `${what} must be a positive integer`);
  return b;
}

export function normalizeLimits(l: PrepareLimits | undefined): BatchLimits {
  const out: BatchLimits = {};
  if (!l) return out;
  if (l.maxFiles !== undefined) {
    if (!Number.isSafeInteger(l.maxFiles) || l.maxFiles <= 0) throw new IpsError('INVALID_ARGUMENT', 'maxFiles must be a positive integer');
    out.maxFiles = l.maxFiles;
  }
  const bytes = positiveLimit(l.maxBytes, 'maxBytes');
  if (bytes !== undefined) out.maxBytes = bytes;
  const records = positiveLimit(l.maxRecords, 'maxRecords');
  if (records !== undefined) out.maxRecords = records;
  return out;
}

function inFlight(table: string, open: Batch): IpsError {
  return new IpsError('BATCH_IN_FLIGHT',
    `consumer "${open.consumer}" has batch ${open.id} open on "${table}" (instance ${open.instanceId}); commit or abort it first`,
    { details: { consumer: open.consumer, table, batch_id: open.id.toString(), instance_id: open.instanceId } });
}

function icdcName(consumer: string, table: string): string {
  return `${consumer}__${table}`;
}

export class StepProtocol {
  private readonly fileIO: (table: SourceTable) => FileIO;
  private readonly actor: string;
  /** The most files one batch holds (StepProtocolOptions.maxBatchFiles). */
  private readonly maxBatchFiles: number;
  /** Manifests never change once written: one cache per FileIO serves every prepare on its table. */
  private readonly readers = new WeakMap<FileIO, ManifestReader>();
  /** What this process wrote to each ICDC table last: the next prepare builds on it without reading it back. */
  private readonly icdcCache = new IcdcWriteCache();

  constructor(private readonly state: State, private readonly options: StepProtocolOptions) {
    this.fileIO = options.fileIO ?? ((t) => new RoutingFileIO({ s3: toS3Settings(t) }));
    this.actor = options.actor ?? 'step-protocol';
    this.maxBatchFiles = options.maxBatchFiles ?? DEFAULT_MAX_BATCH_FILES;
  }

  /** The caller's limits, with max_files no higher than the service's ceiling. */
  private withinCeiling(limits: BatchLimits): BatchLimits {
    return limits.maxFiles !== undefined && limits.maxFiles <= this.maxBatchFiles ? limits : { ...limits, maxFiles: this.maxBatchFiles };
  }

  /** Where the ICDC table of (consumer, table) lives. */
  icdcLocation(consumer: string, table: string): string {
    return joinLocation(this.options.icdcRoot.replace(/\/+$/, ''), icdcName(consumer, table));
  }

  async prepare(req: PrepareRequest): Promise<PrepareResult> {
    const repos = this.state.repos;
    const limits = this.withinCeiling(normalizeLimits(req.limits));
    if (!req.instanceId) throw new IpsError('INVALID_ARGUMENT', 'instanceId is required');
    const tables = req.tables ?? (req.table !== undefined ? [req.table] : []);
    if (tables.length === 0) throw new IpsError('INVALID_ARGUMENT', 'name the table(s) to prepare');
    if (new Set(tables).size !== tables.length) throw new IpsError('INVALID_ARGUMENT', 'a table is listed twice');

    // A retried step: the stored batch, exactly as it was handed out. The same statement lists the
    // consumer's open batches (for the in-flight check below), and the consumer itself.
    const { view, consumer: consumerRow } = await repos.batches.stepStart(req.consumer, req.instanceId);
    const existing = view.instance !== null ? await repos.batches.get(view.instance) : undefined;
    if (existing && existing.backfill !== null) {
      throw new IpsError('INVALID_ARGUMENT', `instance id "${req.instanceId}" belongs to chunk ${existing.backfillChunk} of backfill "${existing.backfill}" (batch ${existing.id}); a live step needs its own instance id`,
        { details: { batch_id: existing.id.toString(), backfill: existing.backfill } });
    }
    if (existing) return { kind: 'batch', batch: existing, created: false };

    const consumer = consumerRow ?? await repos.consumers.require(req.consumer);
    if (consumer.state === 'stale') {
      throw new IpsError('CONSUMER_STALE', `consumer "${consumer.name}" is stale: ${consumer.stateReason ?? 'no reason recorded'}; reset it or run a backfill`,
        { details: { consumer: consumer.name, reason: consumer.stateReason } });
    }

    const maxInFlight = req.maxInFlight ?? 1;
    if (!Number.isSafeInteger(maxInFlight) || maxInFlight < 1) throw new IpsError('INVALID_ARGUMENT', 'maxInFlight must be a positive integer');
    // At most maxInFlight batches per consumer and table (default one): more would hand out the same changes again.
    let open: Batch[] = [];
    const busy = async (seen: typeof view | null): Promise<Batch | null> => {
      let v = seen ?? await repos.batches.stepView(req.consumer, req.instanceId);
      // A concurrent prepare of this same instance stored its batch a moment ago: that is our batch.
      if (v.instance !== null) return (await repos.batches.get(v.instance)) ?? null;
      // A batch whose lease ran out is released (and what hangs on it) before it is counted.
      if (v.open.some((o) => o.due)) {
        await repos.batches.expireDue();
        v = await repos.batches.stepView(req.consumer, req.instanceId);
        if (v.instance !== null) return (await repos.batches.get(v.instance)) ?? null;
      }
      open = (await repos.batches.load(v.open.filter((o) => !o.due).map((o) => o.id), { files: false }))
        .filter((b) => b.state === 'open' && b.backfill === null && b.tables.some((t) => tables.includes(t.sourceTable)));
      if (open.length >= maxInFlight) throw inFlight(open[0]!.tables.find((t) => tables.includes(t.sourceTable))!.sourceTable, open[0]!);
      return null;
    };
    const raced = await busy(view);
    if (raced) return { kind: 'batch', batch: raced, created: false };

    const planned: BatchTableInput[] = [];
    const watermarks: Watermark[] = [];
    for (const table of tables) {
      // With batches in flight, this one starts where the last of them ends.
      const ahead = open.flatMap((b) => b.tables.filter((t) => t.sourceTable === table))
        .sort((a, b) => (a.baseWatermarkVersion < b.baseWatermarkVersion ? -1 : 1));
      const plan = await this.planTable(req, consumer.policy, table, limits, ahead.at(-1) ?? null, ahead.length);
      watermarks.push(plan.watermark);
      if (plan.kind === 'no-changes') continue;
      if (consumer.mode === 'rows' && (plan.watermark.partialSnapshotId !== null || plan.table.next.partialSnapshotId !== null)) {
        const ceiling = this.maxBatchFiles;
        const byCeiling = limits.maxFiles === ceiling && (req.limits?.maxFiles === undefined || req.limits.maxFiles > ceiling);
        throw new IpsError('INVALID_ARGUMENT', `consumer "${req.consumer}" has mode rows, whose batches hold whole snapshots, but this batch would split snapshot ${plan.watermark.partialSnapshotId ?? plan.table.next.partialSnapshotId} of "${table}" (${byCeiling
          ? `the service's max_batch_files, ${ceiling}, cut it); raise IPS_MAX_BATCH_FILES on the service`
          : 'limits max_files/max_bytes/max_records cut it); raise the limits, or prepare without them'}`);
      }
      // Concurrent prepares of one consumer race on the ICDC table's next version; before each
      // retry, the database decides: the same instance stored first → its batch; another → in flight.
      const decided = (): Promise<Batch | null> => busy(null);
      const icdc = await this.writeIcdc(plan.io, plan.md, this.icdcLocation(req.consumer, table), plan.added, decided, {
        'ips.consumer': req.consumer,
        'ips.source-table': table,
        'ips.instance-id': req.instanceId,
        'ips.source-from': plan.watermark.snapshotId?.toString() ?? 'start',
        'ips.source-to': plan.table.toSnapshotId.toString(),
      });
      if ('existing' in icdc) return { kind: 'batch', batch: icdc.existing, created: false };
      const rowChangelog = consumer.mode === 'rows' ? await this.writeRowChangelog(req, table, plan) : null;
      planned.push({
        ...plan.table,
        icdc: { table: `icdc.${icdcName(req.consumer, table)}`, snapshotId: icdc.snapshotId, metadataLocation: icdc.metadataLocation },
        rowChangelog,
      });
    }
    if (planned.length === 0) {
      return { kind: 'no-changes', consumer: req.consumer, table: tables[0]!, watermark: watermarks[0]!, tables, watermarks };
    }

    // The batch exists from here on. A concurrent prepare of the same instance that stored first
    // wins: its batch is returned and the ICDC snapshots written here stay unreferenced.
    const { batch, created } = await repos.batches.create({
      consumer: req.consumer,
      instanceId: req.instanceId,
      leaseSeconds: consumer.leaseSeconds,
      limits,
      maxInFlight,
      tables: planned,
      ...(req.trigger ? { trigger: req.trigger } : {}),
    });
    return { kind: 'batch', batch, created };
  }

  /** What one table contributes to a batch: its files within the limits and where its watermark moves. */
  private async planTable(req: PrepareRequest, policy: CapturePolicy, table: string, limits: BatchLimits, after: BatchTable | null, ahead: number): Promise<
    | { kind: 'no-changes'; watermark: Watermark }
    | { kind: 'changes'; watermark: Watermark; table: BatchTableInput; io: FileIO; md: TableMetadata; added: FileChange[] }> {
    const repos = this.state.repos;
    // Independent reads, overlapped; a missing table is reported before a missing subscription, as when read in turn.
    const known = req.watermarks?.find((w) => w.consumer === req.consumer && w.sourceTable === table);
    const knownSource = req.sources?.find((s) => s.name === table);
    const [sourceRead, committedRead] = await Promise.allSettled([knownSource ?? repos.sourceTables.require(table), known ?? repos.watermarks.require(req.consumer, table)]);
    if (sourceRead.status === 'rejected') throw sourceRead.reason;
    if (committedRead.status === 'rejected') throw committedRead.reason;
    const source = sourceRead.value;
    const committed = committedRead.value;
    // The position this batch starts from: the watermark, or where the open batches before it end.
    const wm: Watermark = after === null ? committed : { ...committed, ...after.next, version: committed.version + BigInt(ahead) };
    const io = this.fileIO(source);
    const loaded = this.options.loadTable ? await this.options.loadTable(source) : await loadTable(io, toTableRef(source));
    const md = loaded.metadata;
    let reader = this.readers.get(io);
    if (!reader) this.readers.set(io, (reader = new ManifestReader(io, READER_BUDGET_BYTES)));
    const head = branchHead(md, source.branch);
    if (head === null || (head === wm.snapshotId && wm.partialSnapshotId === null)) return { kind: 'no-changes', watermark: wm };

    let range;
    try {
      range = await resolveRangeWithHistory(md, { from: wm.snapshotId, branch: source.branch }, reader);
      if (wm.partialSnapshotId !== null && range.snapshots[0]?.snapshotId !== wm.partialSnapshotId) {
        throw new IpsError('LINEAGE_BROKEN',
          `snapshot ${wm.partialSnapshotId}, partly processed by consumer "${req.consumer}", is no longer the next snapshot after ${wm.snapshotId ?? 'the start'} on ${source.branch}; reset the consumer or run a backfill`,
          { details: { partial_snapshot_id: wm.partialSnapshotId.toString() } });
      }
    } catch (e) {
      if (isIpsError(e) && HISTORY_ERRORS.has(e.code)) {
        await repos.consumers.setState(req.consumer, 'stale', `${table}: ${e.code}: ${e.message}`);
      }
      throw e;
    }
    if (range.snapshots.length === 0) return { kind: 'no-changes', watermark: wm };

    const processed = new Set(wm.processedFiles);
    const { selection: sel } = await planBatch(reader, range, policy, md, {
      limits,
      changeSet: { deleteFootprints: wm.rangeFields.length > 0 },
      ...(wm.partialSnapshotId !== null ? { skip: (e: FileEvent) => e.snapshot.snapshotId === wm.partialSnapshotId && processed.has(changeKey(e.change)) } : {}),
    });
    const files = netEvents(sel.taken);

    const lastDone = sel.completed[sel.completed.length - 1];
    const fullyProcessed = lastDone
      ? { snapshotId: lastDone.snapshotId, sequenceNumber: lastDone.sequenceNumber }
      : { snapshotId: wm.snapshotId, sequenceNumber: wm.sequenceNumber };
    let next: WatermarkPosition;
    if (sel.cut) {
      const earlier = sel.cut.snapshot.snapshotId === wm.partialSnapshotId ? wm.processedFiles : [];
      next = {
        ...fullyProcessed,
        partialSnapshotId: sel.cut.snapshot.snapshotId,
        partialSequenceNumber: sel.cut.snapshot.sequenceNumber,
        processedFiles: [...new Set([...earlier, ...sel.cut.paths])].sort(),
      };
    } else {
      next = { ...fullyProcessed, partialSnapshotId: null, partialSequenceNumber: null, processedFiles: [] };
    }
    const to = sel.cut?.snapshot ?? lastDone;
    if (!to) throw new IpsError('INTERNAL', 'prepare selected no snapshot');

    await verifyFilesExist(io, [...files.added, ...files.removed]);
    const describer = new FileDescriber(md);
    return {
      kind: 'changes', watermark: wm, io, md, added: files.added,
      table: {
        sourceTable: table,
        fromSnapshotId: wm.snapshotId,
        fromSequenceNumber: wm.sequenceNumber,
        toSnapshotId: to.snapshotId,
        toSequenceNumber: to.sequenceNumber,
        files: { added: files.added.map((f) => describer.describe(f)), removed: files.removed.map((f) => describer.describe(f)) },
        ranges: this.rangesJson(md, describer, [...files.added, ...files.removed], wm.rangeFields),
        baseWatermarkVersion: wm.version,
        next,
      },
    };
  }

  /** Advances the watermark(s) by compare-and-set; a second commit is a no-op; CONFLICT when the base moved. */
  async commit(batchId: bigint, actor: string = this.actor, outputs: Record<string, bigint> = {}, signals: OutputSignal[] = []): Promise<BatchCommitResult> {
    for (const sig of signals) {
      checkSignalName(sig.name);
      checkSignalParams(sig.params);
    }
    return this.state.repos.batches.commit(batchId, actor, outputs, signals);
  }

  /** commit() after a check of the locked batch, in its transaction (see BatchesRepo.commitIf): null when the check answers false. */
  async commitIf(batchId: bigint, actor: string, signals: OutputSignal[], check: (head: BatchHead) => boolean): Promise<BatchCommitResult | null> {
    for (const sig of signals) {
      checkSignalName(sig.name);
      checkSignalParams(sig.params);
    }
    return this.state.repos.batches.commitIf(batchId, actor, signals, check);
  }

  /** Releases an open batch: the next prepare hands out the same changes. Aborting twice is a no-op. */
  async abort(batchId: bigint, reason: string | null = null): Promise<{ batch: Batch; changed: boolean }> {
    return this.state.repos.batches.close(batchId, 'aborted', reason);
  }

  /**
   * A mode-rows batch's changelog table: the row changelog of its range, committed as the next
   * snapshot of `<icdc name>__changelog` beside the ICDC table before the batch is stored.
   */
  private async writeRowChangelog(req: PrepareRequest, table: string, plan: { io: FileIO; md: TableMetadata; watermark: Watermark; table: BatchTableInput }): Promise<RowChangelogRef> {
    const reader = this.readers.get(plan.io) ?? new ManifestReader(plan.io, READER_BUDGET_BYTES);
    const range = await resolveRangeWithHistory(plan.md, { from: plan.watermark.snapshotId, to: plan.table.toSnapshotId }, reader);
    const name = changelogTableName(icdcName(req.consumer, table));
    const maxRows = process.env['IPS_ROWS_MAX_ROWS'];
    const w = await writeChangelogTable(
      { io: plan.io, md: plan.md, reader, range, net: false, ...(maxRows !== undefined && /^\d+$/.test(maxRows) ? { maxRows: BigInt(maxRows) } : {}) },
      joinLocation(this.options.icdcRoot.replace(/\/+$/, ''), name),
      {
        'ips.consumer': req.consumer, 'ips.source-table': table, 'ips.instance-id': req.instanceId,
        'ips.source-from': plan.watermark.snapshotId?.toString() ?? 'start', 'ips.source-to': plan.table.toSnapshotId.toString(),
      },
      ICDC_RETAINED_BATCHES,
    );
    await this.options.onIcdcWritten?.(name, w.metadataLocation);
    return { table: `icdc.${name}`, snapshotId: w.snapshotId, metadataLocation: w.metadataLocation, recordCount: BigInt(w.rows) };
  }

  private rangesJson(md: TableMetadata, describer: FileDescriber, files: FileChange[], fields: string[]): Record<string, unknown> {
    const ranges: Record<string, FieldRange> = {};
    for (const f of fields) ranges[f] = fieldRange(md, describer, files, f);
    return { ranges, changed_partitions: changedPartitions(describer, files) };
  }

  /** Writes an ICDC snapshot, building on a concurrent writer's version (CONFLICT) until `decided` names a stored batch. */
  async writeIcdc(io: FileIO, md: TableMetadata, location: string, files: FileChange[], decided: () => Promise<Batch | null>,
    summary: Record<string, string>): Promise<IcdcWriteResult | { existing: Batch }> {
    for (let attempt = 1; ; attempt++) {
      try {
        const written = await writeIcdcSnapshot({ io, source: md, location, files, summary, retainBatches: ICDC_RETAINED_BATCHES, cache: this.icdcCache });
        await this.options.onIcdcWritten?.(baseName(location.replace(/\/+$/, '')), written.metadataLocation);
        return written;
      } catch (e) {
        // Another writer took the next metadata version first: build on top of it.
        if (isIpsError(e) && e.code === 'CONFLICT' && attempt < ICDC_WRITE_ATTEMPTS) {
          const existing = await decided();
          if (existing) return { existing };
          await new Promise((r) => setTimeout(r, Math.random() * 10 * attempt));
          continue;
        }
        throw e;
      }
    }
  }
}
