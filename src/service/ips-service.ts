import pLimit from 'p-limit';
import { groupBy } from '../collections.js';
import { IpsError } from '../errors.js';
import { loadTable } from '../catalog/load-table.js';
import { MetadataPointers } from '../catalog/metadata-pointer.js';
import { MetadataCache, readMetadataFile, type LoadedTable } from '../catalog/table.js';
import { computeChangeSet } from '../capture/change-set.js';
import { writeChangesJson, type ChunkSink } from '../capture/changes-json.js';
import { statsForRanges } from '../capture/compact-entry.js';
import { OutputBounds } from '../capture/output-bounds.js';
import { ManifestReader } from '../capture/manifest-reader.js';
import type { CapturePolicy } from '../capture/policy.js';
import { branchHead, resolveRangeWithHistory } from '../capture/range.js';
import { isAncestorOrSelf, snapshotIndex } from '../iceberg/lineage.js';
import type { Snapshot, TableMetadata } from '../iceberg/metadata.js';
import type { FileIO } from '../io/file-io.js';
import { locationCovered } from '../io/locations.js';
import { RoutingFileIO } from '../io/routing-file-io.js';
import {
  SourceTablesRepo, START_POSITION, toS3Settings, toTableRef,
  type ApiToken, type Batch, type BatchCommitResult, type BatchHead, type Consumer, type ConsumerInput, type IssuedToken, type SourceTable, type SourceTableInput,
  type State, type Watermark, type WatermarkPosition, type OutputSignal,
} from '../state/index.js';
import { resolveFieldId } from '../capture/ranges.js';
import { consumerLag, type LagResult } from './lag.js';
import { StepProtocol, type PrepareLimits, type PrepareResult } from './step-protocol.js';
import { BackfillService } from '../backfill/service.js';
import { IcdcCatalogRegistrar } from './icdc-catalog.js';
import { batchRowsArrow, type BatchRowsStream } from './batch-rows.js';

/**
 * What the API and the CLI do, over the state and the step protocol: registering tables,
 * consumers and their subscriptions, the batch lifecycle, resets, lag and previews. Every
 * method validates its input and throws IpsError with a stable code.
 */

/** Tables a fleet-wide view loads at once (each load may read a metadata file from an object store). */
const TABLE_LOAD_CONCURRENCY = 8;

/** Where a new subscription starts: the first snapshot, the current head, or a snapshot id. */
export type StartPosition = 'start' | 'now' | bigint;

export interface SubscriptionInput {
  table: string;
  from?: StartPosition;
  rangeFields?: string[];
}

export interface TableView {
  table: SourceTable;
  head: Snapshot | null;
  /** The oldest snapshot any consumer still needs; `fullHistory` when one has processed nothing yet. */
  oldestNeeded: { consumer: string; snapshotId: bigint | null; sequenceNumber: bigint | null; fullHistory: boolean; backfill?: string } | null;
  consumers: { watermark: Watermark; lag: LagResult; consumerState: Consumer['state'] }[];
  /** Set when the table could not be loaded (its catalog or storage is down). */
  loadError: { code: string; message: string } | null;
  /** The metadata the view was computed from (null when it could not be loaded). */
  metadata: TableMetadata | null;
}

export interface ConsumerView {
  consumer: Consumer;
  watermarks: Watermark[];
  openBatches: Batch[];
  /** The tables it declares it writes (lineage). */
  outputs: string[];
}

/** A preview's manifest cache and the manifests it plans at once (as `ips changes`). */
const PREVIEW_READER_BYTES = 32 * 1024 * 1024;
const PREVIEW_PLAN_CONCURRENCY = 4;

export interface ServiceOptions {
  warehouse: string;
  fileIO?: (table: SourceTable) => FileIO;
  /**
   * Location prefixes a table may be registered at: its metadata file or directory, or its
   * catalog URI. Undefined: anywhere ips can read.
   */
  tableAllowedLocations?: string[] | undefined;
  /** `icdc_catalog_url`: also register every ICDC table in this JDBC/SQL catalog (`catalog_name` `name`). */
  icdcCatalog?: { url: string; name: string } | undefined;
  /** The most files one batch holds, whatever the caller's limits (StepProtocolOptions.maxBatchFiles). */
  maxBatchFiles?: number | undefined;
}

/** Where a table reference points, for the allow-list: a location, or a catalog URI. */
function refLocation(ref: SourceTable['ref']): string {
  return ref.kind === 'metadata-file' || ref.kind === 'directory' ? ref.location : ref.uri;
}

function closeIO(io: FileIO): void {
  (io as { close?: () => void }).close?.();
}

export class IpsService {
  readonly steps: StepProtocol;
  readonly backfills: BackfillService;
  private readonly fileIO: (table: SourceTable) => FileIO;
  /** A FileIO of its own (not cached), for a table being registered. */
  private readonly makeIO: (table: SourceTable) => FileIO;

  private readonly pointers = new MetadataPointers();
  private readonly metadataCaches = new WeakMap<FileIO, MetadataCache>();

  private metadataCache(io: FileIO): MetadataCache {
    let c = this.metadataCaches.get(io);
    if (!c) this.metadataCaches.set(io, (c = new MetadataCache()));
    return c;
  }

  /** One FileIO (and so one S3 client and its connection pool) per table and settings version. */
  private readonly ios = new Map<string, { version: number; io: FileIO }>();

  /** The FileIO of a registered table (cached per table and settings version). */
  ioFor(t: SourceTable): FileIO {
    return this.fileIO(t);
  }

  private readonly allowedLocations: string[] | undefined;
  private readonly registrar: IcdcCatalogRegistrar | null;

  constructor(readonly state: State, options: ServiceOptions) {
    this.allowedLocations = options.tableAllowedLocations;
    // With an allow-list, every file a table's metadata names must be under it too (the ICDC tables under the warehouse).
    const allowed = options.tableAllowedLocations === undefined ? undefined : [...options.tableAllowedLocations, options.warehouse];
    const make = options.fileIO ?? ((t: SourceTable) => new RoutingFileIO({ s3: toS3Settings(t), allowedLocations: allowed }));
    this.makeIO = make;
    this.fileIO = (t) => {
      const version = t.updatedAt.getTime();
      const cached = this.ios.get(t.name);
      if (cached && cached.version === version) return cached.io;
      if (cached) closeIO(cached.io);
      const io = make(t);
      this.ios.set(t.name, { version, io });
      return io;
    };
    const registrar = options.icdcCatalog ? new IcdcCatalogRegistrar(options.icdcCatalog.url, options.icdcCatalog.name) : null;
    this.registrar = registrar;
    this.steps = new StepProtocol(state, {
      icdcRoot: options.warehouse, fileIO: this.fileIO, loadTable: (t) => this.load(t),
      ...(options.maxBatchFiles !== undefined ? { maxBatchFiles: options.maxBatchFiles } : {}),
      ...(registrar ? { onIcdcWritten: (name: string, loc: string) => registrar.register(name, loc) } : {}),
    });
    this.backfills = new BackfillService(state, { icdcRoot: options.warehouse, fileIO: this.fileIO, load: (t) => this.load(t), steps: this.steps });
  }

  /** Releases the cached FileIOs (the state is the caller's to close). */
  close(): void {
    for (const { io } of this.ios.values()) closeIO(io);
    this.ios.clear();
    void this.pointers.close();
    void this.registrar?.close().catch(() => {});
  }

  // -- tables -----------------------------------------------------------------------------

  /** Refuses a table outside `table_allowed_locations` before anything of it is read. */
  checkAllowedLocation(t: Pick<SourceTable, 'ref' | 'name'>): void {
    if (this.allowedLocations === undefined) return;
    const loc = refLocation(t.ref);
    if (this.allowedLocations.some((p) => locationCovered(loc, p))) return;
    throw new IpsError('LOCATION_NOT_ALLOWED',
      `table "${t.name}" is not under an allowed location: table_allowed_locations lists where tables may be registered (ask the operator to add the prefix)`,
      { details: { allowed: this.allowedLocations } });
  }

  /**
   * Registers a source table after loading it once, so that a typo fails now, not at the first
   * prepare. The load (catalog and storage calls, each under a deadline) runs before the
   * transaction, which then only writes: a slow catalog never holds the database.
   */
  async registerTable(input: SourceTableInput, opts: { verify?: boolean; pollIntervalSeconds?: number } = {}): Promise<TableView> {
    const probe = SourceTablesRepo.preview(input);
    this.checkAllowedLocation(probe);
    if (await this.state.repos.sourceTables.get(probe.name)) throw new IpsError('ALREADY_EXISTS', `source table "${probe.name}" is already registered`);
    if (opts.verify !== false) {
      const io = this.makeIO(probe);
      try {
        const loaded = await this.loadWith(io, probe);
        branchHead(loaded.metadata, probe.branch);
      } finally {
        closeIO(io);
      }
    }
    const created = await this.state.withTransaction(async (repos) => {
      const t = await repos.sourceTables.create(input);
      await repos.watch.ensure(t.name, opts.pollIntervalSeconds ?? 30);
      return t;
    });
    return this.tableView(created);
  }

  async listTables(): Promise<SourceTable[]> {
    return this.state.repos.sourceTables.list();
  }

  async getTable(name: string): Promise<TableView> {
    return this.tableView(await this.state.repos.sourceTables.require(name));
  }

  /** Loads a registered table through its cached FileIO (errors name the table). */
  async load(t: SourceTable): Promise<LoadedTable> {
    return this.loadWith(this.fileIO(t), t);
  }

  private async loadWith(io: FileIO, t: SourceTable): Promise<LoadedTable> {
    try {
      this.checkAllowedLocation(t);
      const ref = toTableRef(t);
      if (ref.kind === 'sql') {
        // The catalog's connection pool is kept between loads; the metadata file is parsed once per version.
        const location = await this.pointers.current(io, ref);
        return { name: ref.identifier, metadataLocation: location, metadata: await readMetadataFile(io, location, this.metadataCache(io)) };
      }
      return await loadTable(io, ref, this.metadataCache(io));
    } catch (e) {
      if (e instanceof IpsError) throw new IpsError(e.code === 'NOT_FOUND' ? 'TABLE_NOT_FOUND' : e.code, `source table "${t.name}": ${e.message}`, { cause: e, details: e.details });
      throw e;
    }
  }

  private async tableView(t: SourceTable): Promise<TableView> {
    const repos = this.state.repos;
    const [watermarks, oldestWatermark, states, pinned] = await Promise.all([
      repos.watermarks.listByTable(t.name),
      repos.watermarks.oldestNeeded(t.name),
      repos.consumers.statesByTable(t.name),
      repos.backfills.oldestPinned(t.name),
    ]);
    return this.assembleTableView(t, watermarks, oldestWatermark, pinned, states);
  }

  /**
   * Views of many tables (the console's overview) in a fixed number of statements, whatever the
   * number of tables and consumers: every watermark, oldest position and pin read once, the
   * tables loaded a few at a time. `consumer`: only that consumer's watermarks (its view), and no
   * oldest position (the fleet's, not shown to a consumer). `consumers`: the consumers the caller
   * has read already (their states), instead of reading them again.
   */
  async tableViews(tables: SourceTable[], filter: { consumer?: string; consumers?: readonly Consumer[] } = {}): Promise<TableView[]> {
    const repos = this.state.repos;
    const { consumer } = filter;
    const fleet = consumer === undefined;
    const none = new Map<string, never>();
    const [watermarks, oldest, consumers, pinned] = await Promise.all([
      repos.watermarks.listAll(consumer === undefined ? {} : { consumer }),
      fleet ? repos.watermarks.oldestNeededByTable() : none,
      filter.consumers ?? repos.consumers.list(),
      fleet ? repos.backfills.oldestPinnedByTable() : none,
    ]);
    const states = new Map(consumers.map((c) => [c.name, c.state] as const));
    const byTable = groupBy(watermarks, (w) => w.sourceTable);
    const limit = pLimit(TABLE_LOAD_CONCURRENCY);
    return Promise.all(tables.map((t) => limit(() =>
      this.assembleTableView(t, byTable.get(t.name) ?? [], oldest.get(t.name), pinned.get(t.name), states))));
  }

  /** A table's view from its state rows: loads the table (its metadata cached per version) and each watermark's lag. */
  private async assembleTableView(
    t: SourceTable, watermarks: Watermark[],
    oldestWatermark: { consumer: string; snapshotId: bigint | null; sequenceNumber: bigint | null } | undefined,
    pinned: { backfill: string; consumer: string; snapshotId: bigint | null; sequenceNumber: bigint | null } | undefined,
    states: ReadonlyMap<string, Consumer['state']>,
  ): Promise<TableView> {
    // Running backfills pin the snapshot they were planned on (or replay from): retention keeps it too.
    let oldest: (NonNullable<typeof oldestWatermark> & { backfill?: string }) | undefined = oldestWatermark;
    if (pinned && (!oldest || (oldest.sequenceNumber !== null && (pinned.sequenceNumber === null || pinned.sequenceNumber < oldest.sequenceNumber)))) {
      oldest = { consumer: pinned.consumer, snapshotId: pinned.snapshotId, sequenceNumber: pinned.sequenceNumber, backfill: pinned.backfill };
    }
    let head: Snapshot | null = null;
    let loadError: TableView['loadError'] = null;
    let metadata: TableMetadata | null = null;
    let lags: LagResult[];
    try {
      const md = (await this.load(t)).metadata;
      metadata = md;
      const headId = branchHead(md, t.branch);
      head = md.snapshots.find((s) => s.snapshotId === headId) ?? null;
      lags = watermarks.map((w) => consumerLag(md, w, t.branch));
    } catch (e) {
      loadError = e instanceof IpsError ? { code: e.code, message: e.message } : { code: 'INTERNAL', message: String(e) };
      lags = watermarks.map(() => ({ ok: false, code: 'TABLE_UNAVAILABLE', message: 'the table could not be loaded' }));
    }
    return {
      table: t,
      head,
      oldestNeeded: oldest ? { ...oldest, fullHistory: oldest.snapshotId === null } : null,
      consumers: watermarks.map((w, i) => ({ watermark: w, lag: lags[i]!, consumerState: states.get(w.consumer) ?? 'active' })),
      loadError,
      metadata,
    };
  }

  // -- consumers --------------------------------------------------------------------------

  /** Fails with UNKNOWN_FIELD (naming the columns) unless every range field is a column of the table. */
  private async checkRangeFields(t: SourceTable, fields: string[] | undefined): Promise<void> {
    if (!fields?.length) return;
    const md = (await this.load(t)).metadata;
    for (const f of fields) resolveFieldId(md, f);
  }

  /** Where `from` puts a new or reset watermark, checked against the table's lineage. */
  private async position(t: SourceTable, from: StartPosition): Promise<WatermarkPosition> {
    if (from === 'start') return START_POSITION;
    const md = (await this.load(t)).metadata;
    let id: bigint | null;
    if (from === 'now') id = branchHead(md, t.branch);
    else {
      id = from;
      if (!isAncestorOrSelf(snapshotIndex(md.snapshots), branchHead(md, t.branch), id)) {
        throw new IpsError('UNKNOWN_SNAPSHOT', `snapshot ${id} is not on branch ${t.branch} of "${t.name}" (expired, rolled back, or from another table); use "now", "start" or a snapshot id from \`ips inspect\``);
      }
    }
    if (id === null) return START_POSITION;
    const snap = md.snapshots.find((s) => s.snapshotId === id);
    if (!snap) throw new IpsError('UNKNOWN_SNAPSHOT', `snapshot ${id} does not exist in "${t.name}"`);
    return { ...START_POSITION, snapshotId: snap.snapshotId, sequenceNumber: snap.sequenceNumber };
  }

  /** Creates a consumer and its subscriptions in one transaction. */
  async createConsumer(input: ConsumerInput & { tables?: SubscriptionInput[]; outputs?: string[] }, actor: string): Promise<ConsumerView> {
    const tables = input.tables ?? [];
    const names = tables.map((s) => s.table);
    if (new Set(names).size !== names.length) throw new IpsError('INVALID_ARGUMENT', 'a table is listed twice in the subscriptions');
    // Positions need table loads (I/O): resolved before the transaction.
    const positions: WatermarkPosition[] = [];
    for (const s of tables) {
      const t = await this.state.repos.sourceTables.require(s.table);
      await this.checkRangeFields(t, s.rangeFields);
      positions.push(await this.position(t, s.from ?? 'start'));
    }
    const { tables: _t, outputs, ...consumer } = input;
    await this.state.withTransaction(async (repos) => {
      await repos.consumers.create(consumer);
      for (const [i, s] of tables.entries()) {
        await repos.watermarks.create({ consumer: input.name, sourceTable: s.table, position: positions[i]!, rangeFields: s.rangeFields ?? [] },
          { actor, reason: 'subscribe' });
      }
      // The tables it writes (lineage); a cycle refuses the whole creation.
      if (outputs !== undefined) await this.backfills.setOutputs(input.name, outputs, repos);
    });
    return this.getConsumer(input.name);
  }

  async subscribe(consumer: string, s: SubscriptionInput, actor: string): Promise<ConsumerView> {
    await this.state.repos.consumers.require(consumer);
    const t = await this.state.repos.sourceTables.require(s.table);
    await this.checkRangeFields(t, s.rangeFields);
    const pos = await this.position(t, s.from ?? 'start');
    await this.state.withTransaction(async (repos) => {
      await repos.watermarks.create({ consumer, sourceTable: s.table, position: pos, rangeFields: s.rangeFields ?? [] }, { actor, reason: 'subscribe' });
      await this.backfills.lineage(repos); // PIPELINE_CYCLE when it reads what it (indirectly) writes
    });
    return this.getConsumer(consumer);
  }

  async listConsumers(): Promise<Consumer[]> {
    return this.state.repos.consumers.list();
  }

  async getConsumer(name: string): Promise<ConsumerView> {
    const repos = this.state.repos;
    const consumer = await repos.consumers.require(name);
    await repos.batches.expireDue();
    const [watermarks, openBatches, outputs] = await Promise.all([
      repos.watermarks.listByConsumer(name),
      repos.batches.list({ consumer: name, state: 'open' }),
      repos.backfills.outputsOf(name),
    ]);
    return { consumer, watermarks, openBatches, outputs };
  }

  async updateConsumer(name: string, patch: { description?: string | null; policy?: Partial<CapturePolicy>; leaseSeconds?: number; properties?: Record<string, string> }): Promise<ConsumerView> {
    await this.state.repos.consumers.update(name, patch);
    return this.getConsumer(name);
  }

  /**
   * Moves a consumer's watermark(s) to `to` (the head, the first snapshot, or a snapshot id)
   * and makes it active again: its open batches are aborted, each move is audited as `reset`.
   * This is how a stale consumer (rolled-back or expired history) is brought back.
   */
  async resetConsumer(name: string, req: { to: StartPosition; table?: string }, actor: string): Promise<ConsumerView> {
    const repos = this.state.repos;
    await repos.consumers.require(name);
    const all = await repos.watermarks.listByConsumer(name);
    const targets = req.table === undefined ? all : all.filter((w) => w.sourceTable === req.table);
    if (req.table !== undefined && targets.length === 0) throw new IpsError('NOT_FOUND', `consumer "${name}" does not subscribe to "${req.table}"`);
    if (targets.length === 0) throw new IpsError('INVALID_ARGUMENT', `consumer "${name}" subscribes to no table: nothing to reset`);
    if (typeof req.to === 'bigint' && targets.length > 1) {
      throw new IpsError('INVALID_ARGUMENT', `a snapshot id belongs to one table: pass the table to reset (consumer "${name}" subscribes to ${targets.map((w) => w.sourceTable).join(', ')})`);
    }
    const positions = new Map<string, WatermarkPosition>();
    for (const w of targets) positions.set(w.sourceTable, await this.position(await repos.sourceTables.require(w.sourceTable), req.to));
    await this.state.withTransaction(async (tx) => {
      for (const b of await tx.batches.list({ consumer: name, state: 'open' })) {
        if (b.backfill === null && b.tables.some((t) => positions.has(t.sourceTable))) await tx.batches.close(b.id, 'aborted', `consumer reset by ${actor}`);
      }
      for (const w of targets) {
        const current = await tx.watermarks.require(name, w.sourceTable);
        await tx.watermarks.advance(name, w.sourceTable, current.version, positions.get(w.sourceTable)!, { actor, reason: 'reset' });
      }
      await tx.consumers.setState(name, 'active', null);
    });
    return this.getConsumer(name);
  }

  // -- batches ----------------------------------------------------------------------------

  /** Prepares the next batch; the table may be left out when the consumer subscribes to one. */
  async prepare(req: { consumer: string; table?: string; tables?: string[]; instanceId: string; limits?: PrepareLimits; maxInFlight?: number }): Promise<PrepareResult> {
    if (req.tables !== undefined && req.tables.length > 0) {
      return this.steps.prepare({ consumer: req.consumer, tables: req.tables, instanceId: req.instanceId, ...(req.limits ? { limits: req.limits } : {}), ...(req.maxInFlight ? { maxInFlight: req.maxInFlight } : {}) });
    }
    let table = req.table;
    let subs: { watermark: Watermark; source: SourceTable }[] | undefined;
    if (table === undefined) {
      subs = await this.state.repos.watermarks.listByConsumerWithSources(req.consumer);
      if (subs.length === 0) {
        await this.state.repos.consumers.require(req.consumer);
        throw new IpsError('INVALID_ARGUMENT', `consumer "${req.consumer}" subscribes to no table; subscribe it first`);
      }
      if (subs.length > 1) throw new IpsError('INVALID_ARGUMENT', `consumer "${req.consumer}" subscribes to ${subs.map((w) => w.watermark.sourceTable).join(', ')}: name the table`);
      table = subs[0]!.watermark.sourceTable;
    }
    return this.steps.prepare({
      consumer: req.consumer, table, instanceId: req.instanceId, ...(req.limits ? { limits: req.limits } : {}), ...(req.maxInFlight ? { maxInFlight: req.maxInFlight } : {}),
      ...(subs ? { watermarks: subs.map((s) => s.watermark), sources: subs.map((s) => s.source) } : {}),
    });
  }

  async getBatch(id: bigint): Promise<Batch> {
    await this.state.repos.batches.expireDue();
    return this.state.repos.batches.require(id);
  }

  /** The row changes of a batch's table as an Arrow IPC stream in an unlinked file (see batch-rows.ts). */
  async batchRows(batch: Batch, opts: { table?: string; net?: boolean }): Promise<BatchRowsStream> {
    const maxRows = process.env['IPS_ROWS_MAX_ROWS'];
    return batchRowsArrow({
      source: (name) => this.state.repos.sourceTables.require(name),
      fileIO: this.fileIO, load: (t) => this.load(t),
      ...(maxRows !== undefined && /^\d+$/.test(maxRows) ? { maxRows: BigInt(maxRows) } : {}),
    }, batch, opts);
  }

  async listBatches(filter: { consumer?: string; state?: Batch['state']; limit?: number; newestFirst?: boolean; files?: boolean }): Promise<Batch[]> {
    await this.state.repos.batches.expireDue();
    return this.state.repos.batches.list(filter);
  }

  /**
   * Commits a batch (see StepProtocol.commit) and wakes the consumer's subscriptions: with one
   * batch in flight, the next trigger waits for this commit.
   */
  async commit(batchId: bigint, actor: string, outputs: Record<string, bigint> = {}, signals: OutputSignal[] = [],
    opts: { head?: BatchHead; authorize?: (consumer: string) => void } = {}): ReturnType<StepProtocol['commit']> {
    // Every open batch of a consumer that declares outputs records them, so a backfill can follow
    // a chunk further down; a backfill chunk records the output snapshots its run committed (named,
    // or found on the declared outputs). Both are resolved before the commit's transaction.
    const needsOutputs = (b: BatchHead): boolean => b.state === 'open' && (b.hasOutputs || Object.keys(outputs).length > 0);
    let r: BatchCommitResult | null = null;
    if (opts.head === undefined && Object.keys(outputs).length === 0) {
      // Most commits: one transaction reads the batch's owner, checks it and commits, with no
      // read of the head before it; a consumer with outputs to resolve goes the long way below.
      r = await this.steps.commitIf(batchId, actor, signals, (head) => {
        opts.authorize?.(head.consumer);
        return !needsOutputs(head);
      });
    }
    if (r === null) {
      const batch = opts.head ?? await this.state.repos.batches.requireHead(batchId);
      opts.authorize?.(batch.consumer);
      const found = needsOutputs(batch) ? await this.backfills.resolveOutputs(batch, outputs) : {};
      r = await this.steps.commit(batchId, actor, found, signals);
    }
    // A consumer without subscriptions gives the trigger loop nothing to do: no pass for its commits.
    if (!r.alreadyCommitted && r.woke) this.onRelease?.();
    return r;
  }

  /** Aborts a batch; its changes go to the next batch (a subscription fires again). */
  async abort(batchId: bigint, reason: string | null): ReturnType<StepProtocol['abort']> {
    const r = await this.steps.abort(batchId, reason);
    if (r.changed) this.onRelease?.();
    return r;
  }

  /**
   * Called when a batch was committed or aborted. The commit or abort transaction already made
   * the consumer's subscriptions due; this only lets the local trigger loop look at once.
   */
  onRelease: (() => void) | null = null;

  // -- preview ----------------------------------------------------------------------------

  /**
   * What changed in a range, without creating a batch or moving anything: the preview's document
   * (`ips changes --json`'s), written as it is produced. Files are planned as compact entries (the
   * range fields' stats only) and each file's bounds are read back from its manifest as it is
   * written, so a range of a million files never sits in memory whole: a preview of a consumer
   * far behind cannot run the service out of memory. Planning (and so every error of the range
   * or the table) happens here, before anything is written; the function returned writes.
   * `from` defaults to the consumer's watermark when a consumer is given.
   */
  async preview(req: { table: string; from?: bigint | null; to?: bigint | null; consumer?: string; policy?: CapturePolicy; rangeFields?: string[] }): Promise<(sink: ChunkSink) => Promise<void>> {
    const t = await this.state.repos.sourceTables.require(req.table);
    let from = req.from ?? null;
    let policy = req.policy;
    let fields = req.rangeFields;
    if (req.consumer !== undefined) {
      const wm = await this.state.repos.watermarks.require(req.consumer, req.table);
      if (req.from === undefined) from = wm.snapshotId;
      policy ??= (await this.state.repos.consumers.require(req.consumer)).policy;
      fields ??= wm.rangeFields;
    }
    const io = this.fileIO(t);
    const md = (await this.load(t)).metadata;
    const rangeFields = fields ?? [];
    const fieldIds = rangeFields.map((f) => resolveFieldId(md, f).id); // an unknown field fails before any reading
    // A plan reads each manifest once: a small cache serves the few reads twice (footprints, bounds).
    const reader = new ManifestReader(io, PREVIEW_READER_BYTES);
    const range = await resolveRangeWithHistory(md, { from, to: req.to ?? null, branch: t.branch }, reader);
    const cs = await computeChangeSet(reader, range, policy ?? { overwrite: 'include', delete: 'include' }, md, {
      deleteFootprints: rangeFields.length > 0,
      compact: { stats: statsForRanges(fieldIds, false), concurrency: PREVIEW_PLAN_CONCURRENCY },
    });
    return (sink) => writeChangesJson(md, cs, rangeFields, sink, {}, { bounds: new OutputBounds(reader) });
  }

  // -- tokens -----------------------------------------------------------------------------

  issueToken(input: { consumer: string | null; scopes: ApiToken['scopes']; description?: string | null }): Promise<IssuedToken> {
    return this.state.repos.tokens.issue(input);
  }

  listTokens(consumer?: string): Promise<ApiToken[]> {
    return this.state.repos.tokens.list(consumer === undefined ? {} : { consumer });
  }

  revokeToken(id: bigint): Promise<ApiToken> {
    return this.state.repos.tokens.revoke(id);
  }
}
