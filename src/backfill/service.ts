import { IpsError, isIpsError } from '../errors.js';
import type { LoadedTable } from '../catalog/table.js';
import { FileDescriber } from '../capture/file-json.js';
import { verifyFilesExist } from '../capture/icdc-table.js';
import { ManifestReader } from '../capture/manifest-reader.js';
import { branchHead } from '../capture/range.js';
import { changedPartitions, fieldRange, type FieldRange } from '../capture/ranges.js';
import type { FileChange } from '../capture/snapshot-changes.js';
import { snapshotById, type Snapshot, type TableMetadata } from '../iceberg/metadata.js';
import { joinLocation, type FileIO } from '../io/file-io.js';
import {
  newId, START_POSITION,
  type Backfill, type BackfillChunk, type Batch, type ChunkOrder, type Repositories, type SourceTable, type State,
} from '../state/index.js';
import type { StepProtocol } from '../service/step-protocol.js';
import { buildLineage, downstreamOf, type LineageGraph } from './lineage.js';
import { triggerDedupKey } from '../state/index.js';
import { chunkFileRef, parseChunk, planSnapshots, planWhere, snapshotChunkFiles, whereChunkFiles, type Plan } from './plan.js';
import { parseValue } from './predicate.js';
import { resolveFieldId } from '../capture/ranges.js';
import { DEFAULT_VALIDATION_TIMEOUT_SECONDS, MAX_VALIDATION_TIMEOUT_SECONDS } from './validation.js';

/**
 * Managed backfills (DESIGN.md "Managed backfill"): plan a range into chunks, hand the chunks
 * out as batches of the backfill's own series (own ICDC table, same zero-copy and file checks
 * as live batches, never the consumer's watermark), and follow each chunk's output snapshot to
 * the consumers downstream.
 */

export interface BackfillRequest {
  name: string;
  consumer: string;
  table?: string;
  where?: string;
  snapshots?: string;
  chunk?: string;
  concurrency?: number;
  order?: ChunkOrder;
  maxAttempts?: number;
  /** A shell command run per committed chunk (exit 0 = valid); see src/backfill/validation.ts for who runs it. */
  validate?: string;
  /** Longest a validation run may take per chunk (default 600 s). */
  validateTimeoutSeconds?: number;
}

export interface BackfillServiceOptions {
  icdcRoot: string;
  fileIO: (t: SourceTable) => FileIO;
  load: (t: SourceTable) => Promise<LoadedTable>;
  steps: StepProtocol;
}

export type BackfillPrepareResult =
  | { kind: 'batch'; batch: Batch; created: boolean; backfill: Backfill; chunk: BackfillChunk; chunks: number }
  | { kind: 'none'; reason: 'not-running' | 'busy' | 'no-pending'; backfill: Backfill };

export interface StageChunk {
  idx: number;
  state: string;
  snapshotId: bigint | null;
  passedAt: Date | null;
  reason: string | null;
}

export interface Stage {
  consumer: string;
  /** 0: the backfill's consumer; 1: reads one of its outputs; 2: reads what a depth-1 consumer writes; … */
  depth: number;
  table: string | null;
  tracked: boolean;
  blocked: string | null;
  chunks: StageChunk[];
}

export interface BackfillView {
  backfill: Backfill;
  chunks: BackfillChunk[];
  /** Per chunk: its output snapshots still in their tables' current lineage (null: no output recorded). */
  outputsInLineage: (boolean | null)[];
  stages: Stage[];
  /** Per chunk index: its current batch's trigger (pushed through a subscription), if any. */
  deliveries: Map<number, { state: string; runId: string | null; subscription: string }>;
  /** running/paused/failed/cancelled as stored; `committed` until propagation (and validation) is seen; `invalid` when a chunk's validation failed; `complete` when every check holds. */
  status: string;
  complete: boolean;
  /** The validation command's results: chunks passed, failed, and committed-or-not without a result. */
  validation: { required: boolean; passed: number; failed: number; pending: number };
  totals: { chunks: number; byState: Record<string, number>; files: number; records: bigint; bytes: bigint; committedRecords: bigint; committedBytes: bigint };
  throughput: { recordsPerSecond: number | null; bytesPerSecond: number | null; etaSeconds: number | null };
}

/**
 * The most chunks one backfill plans. Every view of a backfill (GET, the console, `ips backfills
 * get`) lists its chunks: 100,000 one-file chunks made a 73 MB answer that took 4 s and 1 GB to
 * build, and 18 s to create. An hourly backfill of a year is 8,760 chunks.
 */
export const MAX_CHUNKS = 10_000;

const MAX_CONCURRENCY = 10; // ICDC_RETAINED_BATCHES: every running chunk's ICDC snapshot must stay

function icdcName(b: { consumer: string; sourceTable: string; name: string }): string {
  return `${b.consumer}__${b.sourceTable}__backfill__${b.name}`;
}

/** Whether `id` is `head` or one of its ancestors (cycle-safe). */
export function isAncestorOrSelf(md: TableMetadata, head: bigint | null, id: bigint): boolean {
  const byId = new Map(md.snapshots.map((s) => [s.snapshotId, s] as const));
  const seen = new Set<bigint>();
  for (let cur = head === null ? undefined : byId.get(head); cur && !seen.has(cur.snapshotId); cur = cur.parentSnapshotId === null ? undefined : byId.get(cur.parentSnapshotId)) {
    if (cur.snapshotId === id) return true;
    seen.add(cur.snapshotId);
  }
  return false;
}

export class BackfillService {
  private readonly readers = new WeakMap<FileIO, ManifestReader>();

  constructor(private readonly state: State, private readonly o: BackfillServiceOptions) {}

  private reader(io: FileIO): ManifestReader {
    let r = this.readers.get(io);
    if (!r) this.readers.set(io, (r = new ManifestReader(io, 32 * 1024 * 1024)));
    return r;
  }

  // -- lineage ---------------------------------------------------------------------------

  async lineage(repos: Repositories = this.state.repos): Promise<LineageGraph> {
    const [inputs, outputs] = await Promise.all([repos.backfills.listInputs(), repos.backfills.listOutputs()]);
    return buildLineage(inputs.map((e) => ({ consumer: e.consumer, table: e.sourceTable })), outputs.map((e) => ({ consumer: e.consumer, table: e.sourceTable })));
  }

  /** Replaces a consumer's declared outputs; PIPELINE_CYCLE (nothing changed) when the graph would loop. */
  async setOutputs(consumer: string, tables: string[], repos?: Repositories): Promise<string[]> {
    const run = async (tx: Repositories): Promise<string[]> => {
      await tx.consumers.require(consumer);
      await tx.backfills.setOutputs(consumer, tables);
      await this.lineage(tx);
      return tx.backfills.outputsOf(consumer);
    };
    return repos ? run(repos) : this.state.withTransaction(run);
  }

  // -- planning and creation -------------------------------------------------------------

  private async tableOf(req: { consumer: string; table?: string }): Promise<{ source: SourceTable; table: string }> {
    const repos = this.state.repos;
    await repos.consumers.require(req.consumer);
    const subs = await repos.watermarks.listByConsumer(req.consumer);
    let table = req.table;
    if (table === undefined) {
      if (subs.length !== 1) throw new IpsError('INVALID_ARGUMENT', `consumer "${req.consumer}" subscribes to ${subs.map((w) => w.sourceTable).join(', ') || 'no table'}: name the table (--table)`);
      table = subs[0]!.sourceTable;
    } else if (!subs.some((w) => w.sourceTable === table)) {
      throw new IpsError('NOT_FOUND', `consumer "${req.consumer}" does not subscribe to "${table}"; subscribe it first (\`ips consumers subscribe\`)`);
    }
    return { source: await repos.sourceTables.require(table), table };
  }

  async plan(req: BackfillRequest): Promise<{ plan: Plan; source: SourceTable; md: TableMetadata; policy: Backfill['spec'] }> {
    if ((req.where === undefined) === (req.snapshots === undefined)) {
      throw new IpsError('INVALID_ARGUMENT', 'give the range with exactly one of --where (a field range over the current data) or --snapshots FROM..TO (replay that history)');
    }
    const { source } = await this.tableOf(req);
    const consumer = await this.state.repos.consumers.require(req.consumer);
    const io = this.o.fileIO(source);
    const md = (await this.o.load(source)).metadata;
    const reader = this.reader(io);
    const plan = req.where !== undefined
      ? await planWhere(md, reader, source.branch, req.where, parseChunk(req.chunk ?? 'day'))
      : await planSnapshots(md, reader, source.branch, req.snapshots!, parseChunk(req.chunk ?? 'snapshots:1'), consumer.policy);
    if (plan.chunks.length > MAX_CHUNKS) {
      const files = plan.chunks.reduce((n, c) => n + c.added.length + c.removed.length, 0);
      throw new IpsError('INVALID_ARGUMENT',
        `--chunk ${plan.spec.chunk as string} cuts this range into ${plan.chunks.length} chunks (${files} files); a backfill has at most ${MAX_CHUNKS}: use a coarser --chunk (files:${Math.ceil(files / MAX_CHUNKS)} or more, day or month), or split the range into several backfills`,
        { details: { chunks: plan.chunks.length, max_chunks: MAX_CHUNKS } });
    }
    return { plan, source, md, policy: { ...consumer.policy } };
  }

  /** The dry run: chunks with their files, records and bytes, and who downstream would follow. */
  async dryRun(req: BackfillRequest): Promise<Record<string, unknown>> {
    this.checkKnobs(req);
    const { plan, source } = await this.plan(req);
    const graph = await this.lineage();
    return {
      name: req.name, consumer: req.consumer, table: source.name, kind: plan.kind, spec: plan.spec, warnings: plan.warnings,
      planned_on_snapshot_id: plan.pinned?.snapshotId.toString() ?? null,
      live_data_files: plan.kind === 'where' ? plan.liveDataFiles : null,
      candidate_files: plan.kind === 'where' ? plan.candidateFiles : null,
      chunks: plan.chunks.map((c, i) => {
        const all = [...c.added, ...c.removed];
        return {
          index: i, range: c.range, files: all.length,
          records: all.reduce((s, f) => s + f.entry.dataFile.recordCount, 0n).toString(),
          bytes: all.reduce((s, f) => s + f.entry.dataFile.fileSizeInBytes, 0n).toString(),
          file_paths: all.map((f) => f.entry.dataFile.filePath),
        };
      }),
      totals: {
        chunks: plan.chunks.length,
        files: plan.chunks.reduce((n, c) => n + c.added.length + c.removed.length, 0),
        records: plan.chunks.reduce((n, c) => n + [...c.added, ...c.removed].reduce((s, f) => s + f.entry.dataFile.recordCount, 0n), 0n).toString(),
        bytes: plan.chunks.reduce((n, c) => n + [...c.added, ...c.removed].reduce((s, f) => s + f.entry.dataFile.fileSizeInBytes, 0n), 0n).toString(),
      },
      propagates_to: downstreamOf(graph, req.consumer),
      outputs: graph.consumers.find((c) => c.name === req.consumer)?.outputs ?? [],
    };
  }

  private checkKnobs(req: BackfillRequest): void {
    if (req.concurrency !== undefined && (!Number.isSafeInteger(req.concurrency) || req.concurrency < 1 || req.concurrency > MAX_CONCURRENCY)) {
      throw new IpsError('INVALID_ARGUMENT', `--concurrency must be 1..${MAX_CONCURRENCY}`);
    }
    if (req.maxAttempts !== undefined && (!Number.isSafeInteger(req.maxAttempts) || req.maxAttempts < 1 || req.maxAttempts > 100)) {
      throw new IpsError('INVALID_ARGUMENT', '--max-attempts must be 1..100');
    }
    if (req.validateTimeoutSeconds !== undefined) {
      if (req.validate === undefined) throw new IpsError('INVALID_ARGUMENT', '--validate-timeout needs --validate');
      if (!Number.isSafeInteger(req.validateTimeoutSeconds) || req.validateTimeoutSeconds < 1 || req.validateTimeoutSeconds > MAX_VALIDATION_TIMEOUT_SECONDS) {
        throw new IpsError('INVALID_ARGUMENT', `--validate-timeout must be 1..${MAX_VALIDATION_TIMEOUT_SECONDS} seconds`);
      }
    }
  }

  /** Whether two backfills of one consumer and table cover common data (same kind only). */
  private overlaps(md: TableMetadata, a: Record<string, unknown>, kindA: string, b: Backfill): boolean {
    if (kindA !== b.kind) return false;
    if (kindA === 'where') {
      if (a.field !== b.spec.field) return false;
      const { type } = resolveFieldId(md, a.field as string);
      const v = (x: unknown): bigint => parseValue(type, String(x), a.field as string);
      return v(a.lower) < v(b.spec.upper) && v(b.spec.lower) < v(a.upper);
    }
    const seq = (id: unknown): bigint => {
      if (id === null || id === undefined) return 0n;
      return snapshotById(md, BigInt(id as string))?.sequenceNumber ?? 0n;
    };
    return seq(a.from_snapshot_id) < seq(b.spec.to_snapshot_id) && seq(b.spec.from_snapshot_id) < seq(a.to_snapshot_id);
  }

  async create(req: BackfillRequest, actor: string): Promise<Backfill> {
    this.checkKnobs(req);
    const { plan, source, md } = await this.plan(req);
    return this.state.withTransaction(async (tx) => {
      // Creations for one consumer queue on its row: two overlapping backfills cannot both pass the check.
      await tx.q.query('SELECT name FROM consumers WHERE name = $1 FOR UPDATE', [req.consumer]);
      const active = await tx.backfills.list({ consumer: req.consumer, sourceTable: source.name, states: ['running', 'paused', 'failed'] });
      const clash = active.find((b) => this.overlaps(md, plan.spec, plan.kind, b));
      if (clash) {
        throw new IpsError('BACKFILL_OVERLAP',
          `backfill "${clash.name}" (${clash.state}) of consumer "${req.consumer}" on "${source.name}" already covers part of this range (${String(clash.spec.where ?? clash.spec.snapshots)}); wait for it, or cancel it with \`ips backfills cancel ${clash.name}\``,
          { details: { backfill: clash.name } });
      }
      return tx.backfills.create({
        name: req.name, consumer: req.consumer, sourceTable: source.name, kind: plan.kind,
        spec: {
          ...plan.spec, warnings: plan.warnings,
          ...(req.validate !== undefined ? { validate: req.validate, validate_timeout_seconds: req.validateTimeoutSeconds ?? DEFAULT_VALIDATION_TIMEOUT_SECONDS } : {}),
        },
        pinnedSnapshotId: plan.pinned?.snapshotId ?? null, pinnedSequenceNumber: plan.pinned?.sequenceNumber ?? null,
        concurrency: req.concurrency ?? 1, maxAttempts: req.maxAttempts ?? 3, order: req.order ?? 'oldest-first', createdBy: actor,
        chunks: plan.chunks.map((c) => {
          const all = [...c.added, ...c.removed];
          return {
            range: c.range,
            files: {
              added: c.added.map(chunkFileRef), removed: c.removed.map(chunkFileRef),
              // --where: where the chunk's files are in the pinned snapshot (a prepare reads those manifests only).
              ...(plan.kind === 'where' ? { manifests: [...new Set(all.map((f) => f.manifest.path))] } : {}),
            },
            byteCount: all.reduce((n, f) => n + f.entry.dataFile.fileSizeInBytes, 0n),
            recordCount: all.reduce((n, f) => n + f.entry.dataFile.recordCount, 0n),
            fromSnapshotId: c.fromSnapshotId, toSnapshotId: c.toSnapshotId,
          };
        }),
      });
    });
  }

  // -- running chunks (the step protocol) ------------------------------------------------

  /**
   * Hands out the backfill's next chunk as a batch (idempotent on the instance id, like
   * prepare). Concurrent prepares may plan the same chunk; the transaction that stores the
   * batch decides, and the loser moves on to the next chunk.
   */
  async prepare(name: string, instanceId: string, opts: { subscription?: string; onlyChunk?: number } = {}): Promise<BackfillPrepareResult> {
    if (!instanceId) throw new IpsError('INVALID_ARGUMENT', 'instanceId is required');
    const repos = this.state.repos;
    await repos.batches.expireDue();
    const bf = await repos.backfills.require(name);
    const mine = async (): Promise<BackfillPrepareResult | null> => {
      const existing = await repos.batches.findByInstance(bf.consumer, instanceId);
      if (!existing) return null;
      if (existing.backfill !== name) {
        throw new IpsError('INVALID_ARGUMENT', `instance id "${instanceId}" already has batch ${existing.id} of consumer "${bf.consumer}"${existing.backfill ? ` (backfill "${existing.backfill}")` : ''}; use a new instance id per run`);
      }
      const chunk = (await repos.backfills.chunk(name, existing.backfillChunk!))!;
      return { kind: 'batch', batch: existing, created: false, backfill: await repos.backfills.require(name), chunk, chunks: await repos.backfills.chunkCount(name) };
    };
    const again = await mine();
    if (again) return again;
    const consumer = await repos.consumers.require(bf.consumer);
    const source = await repos.sourceTables.require(bf.sourceTable);
    const wm = await repos.watermarks.get(bf.consumer, bf.sourceTable);
    for (let attempt = 0; attempt < 20; attempt++) {
      const next = await repos.backfills.nextChunk(name);
      if ('none' in next) return { kind: 'none', reason: next.none, backfill: next.backfill };
      const chunk = next.chunk;
      if (opts.onlyChunk !== undefined && chunk.idx !== opts.onlyChunk) return { kind: 'none', reason: 'no-pending', backfill: bf };
      const chunkCount = await repos.backfills.chunkCount(name);
      const io = this.o.fileIO(source);
      const md = (await this.o.load(source)).metadata;
      const reader = this.reader(io);
      let added: FileChange[];
      let removed: FileChange[] = [];
      let to: Snapshot;
      try {
        if (bf.kind === 'where') {
          const planned = await repos.backfills.chunkFiles(name, chunk.idx);
          if (!planned) throw new IpsError('NOT_FOUND', `backfill "${name}" has no chunk ${chunk.idx}`);
          added = await whereChunkFiles(md, reader, bf.pinnedSnapshotId!, planned.added, planned.manifests);
          to = snapshotById(md, bf.pinnedSnapshotId!)!;
        } else {
          ({ added, removed } = await snapshotChunkFiles(md, reader, source.branch, chunk.fromSnapshotId, chunk.toSnapshotId!, consumer.policy));
          to = snapshotById(md, chunk.toSnapshotId!)!;
        }
        await verifyFilesExist(io, [...added, ...removed]);
      } catch (e) {
        // The table no longer holds what the chunk needs: retrying cannot help. Stop with the cause.
        if (isIpsError(e) && e.code !== 'TABLE_UNAVAILABLE') {
          await repos.backfills.setState(name, 'failed', `chunk ${chunk.idx}: ${e.code}: ${e.message}`);
        }
        throw e;
      }
      const decided = async (): Promise<Batch | null> => (await repos.batches.findByInstance(bf.consumer, instanceId)) ?? null;
      const location = joinLocation(this.o.icdcRoot.replace(/\/+$/, ''), icdcName(bf));
      const icdc = await this.o.steps.writeIcdc(io, md, location, added, decided, {
        'ips.consumer': bf.consumer, 'ips.source-table': bf.sourceTable, 'ips.instance-id': instanceId,
        'ips.backfill': name, 'ips.backfill-chunk': String(chunk.idx),
      });
      if ('existing' in icdc) return (await mine())!;
      const describer = new FileDescriber(md);
      const all = [...added, ...removed];
      const ranges: Record<string, FieldRange> = {};
      for (const f of wm?.rangeFields ?? []) ranges[f] = fieldRange(md, describer, all, f);
      if (bf.kind === 'where') {
        const r = chunk.range as { field: string; min: string; max: string };
        ranges[r.field] = { min: r.min, max: r.max, flag: 'exact' };
      }
      const id = newId();
      const stored = await this.state.withTransaction(async (tx) => {
        const raced = await tx.batches.findByInstance(bf.consumer, instanceId);
        if (raced) return { batch: raced, created: false };
        if (!(await tx.backfills.startChunk(tx.q, name, chunk.idx, id, instanceId))) return null;
        const created = await tx.batches.create({
          id, consumer: bf.consumer, instanceId, leaseSeconds: consumer.leaseSeconds,
          backfill: { name, chunk: chunk.idx },
          tables: [{
            sourceTable: bf.sourceTable,
            fromSnapshotId: chunk.fromSnapshotId,
            fromSequenceNumber: chunk.fromSnapshotId === null ? null : snapshotById(md, chunk.fromSnapshotId)?.sequenceNumber ?? null,
            toSnapshotId: to.snapshotId, toSequenceNumber: to.sequenceNumber,
            files: { added: added.map((f) => describer.describe(f)), removed: removed.map((f) => describer.describe(f)) },
            ranges: { ranges, changed_partitions: changedPartitions(describer, all), backfill: { name, chunk: chunk.idx, chunks: chunkCount, range: chunk.range } },
            icdc: { table: `icdc.${icdcName(bf)}`, snapshotId: icdc.snapshotId, metadataLocation: icdc.metadataLocation },
            baseWatermarkVersion: 0n,
            next: START_POSITION,
          }],
        });
        if (opts.subscription !== undefined && created.created) {
          // Delivered through the subscription's sink: the trigger exists exactly when the batch does.
          const sub = await tx.q.query<{ fire_seq: bigint }>('SELECT fire_seq FROM subscriptions WHERE name = $1 FOR UPDATE', [opts.subscription]);
          const seq = (sub.rows[0]?.fire_seq ?? 0n) + 1n;
          await tx.q.query('UPDATE subscriptions SET fire_seq = $2, updated_at = now() WHERE name = $1', [opts.subscription, seq]);
          await tx.q.query('INSERT INTO outbox (id, subscription, batch_id, seq, dedup_key) VALUES ($1, $2, $3, $4, $5)',
            [newId(), opts.subscription, id, seq, triggerDedupKey(opts.subscription, id)]);
        }
        return created;
      });
      if (stored === null) continue; // another prepare took this chunk (or the backfill paused): look again
      if (!stored.created) return (await mine())!;
      return {
        kind: 'batch', batch: stored.batch, created: true, backfill: await repos.backfills.require(name),
        chunk: (await repos.backfills.chunk(name, chunk.idx))!, chunks: chunkCount,
      };
    }
    throw new IpsError('CONFLICT', `backfill "${name}": other prepares kept taking the chunks planned here; prepare again`);
  }

  /**
   * Sends chunks of running backfills whose consumer has an enabled subscription on the table
   * through that subscription's sink: each chunk attempt is prepared with its trigger (outbox
   * row) in one transaction, under the instance id `backfill:<name>:<chunk>:<attempt>`, so
   * replicas dispatching at once make one batch and one trigger per attempt. True when it fired.
   */
  async dispatch(): Promise<boolean> {
    const repos = this.state.repos;
    const running = await repos.backfills.list({ states: ['running'] });
    if (running.length === 0) return false;
    await repos.batches.expireDue();
    const subs = await repos.subscriptions.list();
    let fired = false;
    const errors: string[] = [];
    for (const bf of running) {
      const sub = subs.find((s) => s.enabled && s.consumer === bf.consumer && s.tables.includes(bf.sourceTable));
      if (!sub) continue; // pulled with `ips step prepare --backfill`
      try {
        for (let i = 0; i < bf.concurrency; i++) {
          const next = await repos.backfills.nextChunk(bf.name);
          if ('none' in next) break;
          const r = await this.prepare(bf.name, `backfill:${bf.name}:${next.chunk.idx}:${next.chunk.attempts + 1}`, { subscription: sub.name, onlyChunk: next.chunk.idx });
          if (r.kind === 'none') break;
          if (r.created) fired = true;
        }
      } catch (e) {
        // One backfill's trouble (recorded on it when it stops it) does not hold up the others.
        errors.push(`${bf.name}: ${isIpsError(e) ? `${e.code}: ${e.message}` : String(e)}`);
      }
    }
    if (errors.length > 0) throw new IpsError('BACKFILL_DISPATCH', errors.join('; '));
    return fired;
  }

  /**
   * The output snapshots a backfill chunk's commit records: those the run named (each must be
   * on its table's current lineage), else the head of each declared output table now (the run
   * committed its output before committing the chunk, so the head is at or after it).
   */
  async resolveOutputs(batch: Pick<Batch, 'consumer'>, given: Record<string, bigint>): Promise<Record<string, bigint>> {
    const repos = this.state.repos;
    const out: Record<string, bigint> = {};
    const declared = await repos.backfills.outputsOf(batch.consumer);
    const names = Object.keys(given).length > 0 ? Object.keys(given) : declared;
    const implicit = Object.keys(given).length === 0;
    for (const t of names) {
      if (implicit) {
        // Found on the declared outputs: best effort, a table that cannot be loaded records nothing.
        try {
          const source = await repos.sourceTables.get(t);
          if (!source) continue;
          const md = (await this.o.load(source)).metadata;
          const head = branchHead(md, source.branch);
          if (head !== null) out[t] = head;
        } catch {
          /* recorded as no output */
        }
        continue;
      }
      const source = await repos.sourceTables.get(t);
      if (!source) throw new IpsError('NOT_FOUND', `output table "${t}" is not registered; register it (\`ips tables register\`) and declare it (\`ips consumers outputs ${batch.consumer} --output ${t}\`)`);
      const md = (await this.o.load(source)).metadata;
      const head = branchHead(md, source.branch);
      const id = given[t] ?? head;
      if (id === null || id === undefined) continue;
      if (!isAncestorOrSelf(md, head, id)) {
        throw new IpsError('UNKNOWN_SNAPSHOT', `output snapshot ${id} is not on the current lineage of "${t}" (branch ${source.branch}); name the snapshot your run committed (\`ips inspect\`)`,
          { details: { table: t, snapshot_id: id.toString() } });
      }
      out[t] = id;
    }
    return out;
  }

  // -- control ---------------------------------------------------------------------------

  async pause(name: string): Promise<Backfill> {
    const b = await this.state.repos.backfills.require(name);
    if (b.state !== 'running') throw new IpsError('BACKFILL_STATE', `backfill "${name}" is ${b.state}: only a running backfill can be paused`);
    return this.state.repos.backfills.setState(name, 'paused', 'paused');
  }

  async resume(name: string): Promise<Backfill> {
    const b = await this.state.repos.backfills.require(name);
    // A failed backfill resumes too (e.g. after its table's trouble was fixed); its failed chunks stay failed until retried.
    if (b.state !== 'paused' && b.state !== 'failed') throw new IpsError('BACKFILL_STATE', `backfill "${name}" is ${b.state}: only a paused or failed backfill resumes`);
    return this.state.repos.backfills.setState(name, 'running', null);
  }

  /** Cancels: no chunk is handed out again, running chunks' batches are aborted. */
  async cancel(name: string, actor: string): Promise<Backfill> {
    const repos = this.state.repos;
    const b = await repos.backfills.require(name);
    if (b.state === 'cancelled' || b.state === 'committed') throw new IpsError('BACKFILL_STATE', `backfill "${name}" is ${b.state} already`);
    await repos.backfills.setState(name, 'cancelled', `cancelled by ${actor}`);
    for (const id of await repos.backfills.runningBatchIds(name)) {
      try {
        await repos.batches.close(id, 'aborted', `backfill cancelled by ${actor}`);
      } catch (e) {
        if (!(isIpsError(e) && e.code === 'BATCH_NOT_OPEN')) throw e;
      }
    }
    await repos.backfills.cancelPending(name);
    return repos.backfills.require(name);
  }

  /** Failed (and cancelled) chunks, or one chunk, get fresh attempts; the backfill runs again. */
  async retry(name: string, chunk?: number): Promise<Backfill> {
    const repos = this.state.repos;
    const b = await repos.backfills.require(name);
    if (chunk !== undefined && !(await repos.backfills.chunk(name, chunk))) throw new IpsError('NOT_FOUND', `backfill "${name}" has no chunk ${chunk}`);
    const n = await repos.backfills.retryChunks(name, chunk);
    if (n === 0) throw new IpsError('BACKFILL_STATE', `backfill "${name}" has no failed, cancelled or invalid chunk${chunk === undefined ? '' : ` ${chunk}`} to retry`);
    if (b.state !== 'running') await repos.backfills.setState(name, 'running', null);
    return repos.backfills.require(name);
  }

  // -- monitoring ------------------------------------------------------------------------

  async list(filter: { consumer?: string } = {}): Promise<{ backfill: Backfill; counts: Record<string, number>; chunks: number }[]> {
    await this.state.repos.batches.expireDue();
    const all = await this.state.repos.backfills.list(filter);
    const counts = await this.state.repos.backfills.chunkCounts();
    return all.map((b) => {
      const mine = counts.filter((c) => c.backfill === b.name);
      return { backfill: b, counts: Object.fromEntries(mine.map((c) => [c.state, c.n])), chunks: mine.reduce((n, c) => n + c.n, 0) };
    });
  }

  async get(name: string, now: Date = new Date()): Promise<BackfillView> {
    const repos = this.state.repos;
    await repos.batches.expireDue();
    const backfill = await repos.backfills.require(name);
    const chunks = await repos.backfills.chunks(name);
    const graph = await this.lineage();
    const tables = new Map<string, { md: TableMetadata; source: SourceTable } | null>();
    const table = async (t: string): Promise<{ md: TableMetadata; source: SourceTable } | null> => {
      if (!tables.has(t)) {
        const source = await repos.sourceTables.get(t);
        let v: { md: TableMetadata; source: SourceTable } | null = null;
        if (source) {
          try {
            v = { md: (await this.o.load(source)).metadata, source };
          } catch {
            v = null;
          }
        }
        tables.set(t, v);
      }
      return tables.get(t)!;
    };

    // Outputs still in their tables' lineage (a rollback of the output table undoes a chunk).
    const outputsInLineage: (boolean | null)[] = [];
    for (const c of chunks) {
      const entries = Object.entries(c.outputs);
      if (entries.length === 0) {
        outputsInLineage.push(null);
        continue;
      }
      let ok = true;
      for (const [t, id] of entries) {
        const tv = await table(t);
        if (!tv || !isAncestorOrSelf(tv.md, branchHead(tv.md, tv.source.branch), id)) ok = false;
      }
      outputsInLineage.push(ok);
    }

    const stages: Stage[] = [{
      consumer: backfill.consumer, depth: 0, table: backfill.sourceTable, tracked: true, blocked: null,
      chunks: chunks.map((c) => ({ idx: c.idx, state: c.state, snapshotId: null, passedAt: c.finishedAt, reason: c.lastError })),
    }];
    // Per chunk, the snapshot of each table that carries the chunk's change: its outputs first;
    // then, for each downstream consumer that passed it, what that consumer's batch wrote.
    const carried: Map<string, bigint>[] = chunks.map((c) => new Map(Object.entries(c.outputs)));
    for (const d of downstreamOf(graph, backfill.consumer)) {
      const consumer = await repos.consumers.get(d.consumer);
      const wm = await repos.watermarks.get(d.consumer, d.table);
      const tv = await table(d.table);
      const moves = await repos.watermarks.moves({ consumer: d.consumer, sourceTable: d.table });
      let blocked: string | null = consumer?.state === 'stale' ? `consumer "${d.consumer}" is stale: ${consumer.stateReason ?? ''}` : null;
      const stageChunks: StageChunk[] = [];
      for (const [i, c] of chunks.entries()) {
        const out = carried[i]!.get(d.table);
        if (out === undefined) {
          const upstreamDone = d.depth === 1 ? c.state === 'committed' : stages.some((s) => s.depth === d.depth - 1 && s.chunks[i]?.state === 'propagated');
          stageChunks.push({ idx: c.idx, state: upstreamDone ? 'no-output' : 'waiting', snapshotId: null, passedAt: null,
            reason: upstreamDone ? `no snapshot of ${d.table} was recorded for this chunk upstream (name it with --output, or declare ${d.table} as an output)` : null });
          continue;
        }
        if (!tv || !wm) {
          stageChunks.push({ idx: c.idx, state: 'unknown', snapshotId: out, passedAt: null, reason: `table ${d.table} could not be loaded` });
          continue;
        }
        const op = snapshotById(tv.md, out)?.operation ?? null;
        const policy = consumer?.policy;
        let reason: string | null = null;
        if (policy && op === 'overwrite' && policy.overwrite === 'fail') reason = `consumer "${d.consumer}" has policy overwrite=fail and the chunk's output ${out} is an overwrite: it will refuse it`;
        if (policy && op === 'delete' && policy.delete === 'fail') reason = `consumer "${d.consumer}" has policy delete=fail and the chunk's output ${out} is a delete: it will refuse it`;
        const passed = wm.snapshotId !== null && isAncestorOrSelf(tv.md, wm.snapshotId, out);
        if (passed) {
          const move = moves.find((m) => m.to.snapshotId !== null && isAncestorOrSelf(tv.md, m.to.snapshotId, out));
          // What the batch that passed it wrote carries the change one stage further.
          if (move?.batchId != null) {
            for (const [t, snap] of Object.entries(await repos.backfills.batchOutputs(move.batchId))) if (!carried[i]!.has(t)) carried[i]!.set(t, snap);
          }
          stageChunks.push({ idx: c.idx, state: 'propagated', snapshotId: out, passedAt: move?.movedAt ?? null, reason: null });
          continue;
        }
        if (reason) blocked ??= reason;
        stageChunks.push({ idx: c.idx, state: reason ? 'blocked' : 'waiting', snapshotId: out, passedAt: null, reason });
      }
      stages.push({ consumer: d.consumer, depth: d.depth, table: d.table, tracked: true, blocked, chunks: stageChunks });
    }

    const byState: Record<string, number> = {};
    for (const c of chunks) byState[c.state] = (byState[c.state] ?? 0) + 1;
    const committed = chunks.filter((c) => c.state === 'committed');
    const tracked = stages.filter((s) => s.depth >= 1);
    const propagatedAll = chunks.every((c, i) => c.state === 'committed' && outputsInLineage[i] !== false && tracked.every((s) => s.chunks[i]!.state === 'propagated'));
    // With a validation command, every chunk's must have passed.
    const required = typeof backfill.spec.validate === 'string';
    const validation = {
      required,
      passed: chunks.filter((c) => c.validation?.passed === true).length,
      failed: chunks.filter((c) => c.validation?.passed === false).length,
      pending: required ? chunks.filter((c) => c.validation === null).length : 0,
    };
    const validated = !required || validation.passed === chunks.length;
    const complete = backfill.state === 'committed' && propagatedAll && validated;
    const sum = (cs: BackfillChunk[], k: 'recordCount' | 'byteCount'): bigint => cs.reduce((s, c) => s + c[k], 0n);
    const started = chunks.map((c) => c.startedAt).filter((d): d is Date => d !== null).sort((a, b) => a.getTime() - b.getTime())[0];
    const end = backfill.finishedAt ?? now;
    const seconds = started ? Math.max(0.001, (end.getTime() - started.getTime()) / 1000) : null;
    const cr = sum(committed, 'recordCount');
    const cb = sum(committed, 'byteCount');
    const total = sum(chunks, 'recordCount');
    const rps = seconds !== null && committed.length > 0 ? Number(cr) / seconds : null;
    const left = chunks.filter((c) => c.state === 'pending' || c.state === 'running');
    const etaSeconds = rps && rps > 0 ? Number(sum(left, 'recordCount')) / rps : left.length === 0 ? 0 : null;
    return {
      backfill, chunks, outputsInLineage, stages, deliveries: await repos.backfills.deliveries(name),
      // `invalid`: every chunk committed, but a validation failed (retry the chunk once fixed).
      status: complete ? 'complete' : backfill.state === 'committed' && validation.failed > 0 ? 'invalid' : backfill.state,
      complete,
      validation,
      totals: { chunks: chunks.length, byState, files: chunks.reduce((n, c) => n + c.fileCount, 0), records: total, bytes: sum(chunks, 'byteCount'), committedRecords: cr, committedBytes: cb },
      throughput: { recordsPerSecond: rps, bytesPerSecond: seconds !== null && committed.length > 0 ? Number(cb) / seconds : null, etaSeconds },
    };
  }
}
