import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { IpsError } from '../errors.js';
import { NO_COUNTS, type RetentionCounts, type RetentionPolicy, type State } from '../state/index.js';
import { Loop } from './loop.js';

export interface RetentionOptions {
  policy: RetentionPolicy;
  /** How often a pass runs (across all replicas: the lease row records when the last one started). */
  intervalSeconds: number;
  /** How long a replica's hold on the job lasts without renewal: a dead replica's pass resumes after it. */
  claimSeconds: number;
  /** This replica's name in the lease. */
  owner?: string;
  /** Rows per transaction. */
  sliceSize?: number;
  log?: (line: string) => void;
}

export interface RetentionStatus {
  policy: RetentionPolicy;
  intervalSeconds: number;
  running: boolean;
  claimedBy: string | null;
  lastStartedAt: Date | null;
  lastFinishedAt: Date | null;
  lastResult: unknown;
}

const JOB = 'retention';

/**
 * Runs the retention policy in the background: one replica at a time (a lease row in
 * maintenance_leases), at most once per interval across replicas, in small transactions so that
 * live prepares and commits never wait long behind it. A pass that is cut short (the replica
 * dies, or stops) is simply done again by the next one: every step is idempotent.
 */
export class RetentionService {
  private readonly loop: Loop;
  private readonly owner: string;
  private stopping = false;
  private current: Promise<RetentionCounts> | null = null;

  constructor(private readonly state: State, private readonly o: RetentionOptions) {
    this.owner = o.owner ?? `${os.hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    // Checking whether a pass is due is one UPDATE; a minute (or the interval, if shorter) is often enough.
    const checkMs = Math.min(60_000, o.intervalSeconds * 1000);
    this.loop = new Loop(JOB, checkMs, () => this.tick(), o.log ?? (() => {}));
  }

  get policy(): RetentionPolicy {
    return this.o.policy;
  }

  start(): void {
    this.loop.start();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop.stop();
    await this.current?.catch(() => {});
  }

  /** A pass now, on this replica, unless another holds the job; `dryRun` only counts (and needs no lease). */
  async runNow(options: { dryRun?: boolean; now?: Date } = {}): Promise<RetentionCounts> {
    const repo = this.state.repos.retention;
    if (options.dryRun) return repo.run(this.o.policy, { dryRun: true, ...(options.now ? { now: options.now } : {}) });
    if (!(await repo.claim(JOB, this.owner, 0, this.o.claimSeconds))) {
      const s = await repo.status(JOB);
      throw new IpsError('RETENTION_RUNNING', `a retention pass is already running on ${s?.claimedBy ?? 'another replica'}; try again when it has finished`);
    }
    return this.pass(options.now);
  }

  async status(): Promise<RetentionStatus> {
    const s = await this.state.repos.retention.status(JOB);
    return {
      policy: this.o.policy, intervalSeconds: this.o.intervalSeconds, running: s?.claimedBy != null,
      claimedBy: s?.claimedBy ?? null, lastStartedAt: s?.lastStartedAt ?? null, lastFinishedAt: s?.lastFinishedAt ?? null,
      lastResult: s?.lastResult ?? null,
    };
  }

  private async tick(): Promise<boolean> {
    if (this.stopping) return false;
    if (!(await this.state.repos.retention.claim(JOB, this.owner, this.o.intervalSeconds, this.o.claimSeconds))) return false;
    await this.pass();
    return false;
  }

  private pass(now?: Date): Promise<RetentionCounts> {
    const repo = this.state.repos.retention;
    const started = Date.now();
    const log = this.o.log ?? (() => {});
    let held = true;
    this.current = (async () => {
      let counts: RetentionCounts = { ...NO_COUNTS };
      let error: string | null = null;
      try {
        counts = await repo.run(this.o.policy, {
          ...(now ? { now } : {}),
          ...(this.o.sliceSize ? { sliceSize: this.o.sliceSize } : {}),
          onProgress: (c) => { counts = c; },
          keepGoing: async () => !this.stopping && (held = await repo.extend(JOB, this.owner, this.o.claimSeconds)),
        });
      } catch (e) {
        error = e instanceof Error ? e.message : String(e);
        throw e;
      } finally {
        const result = { ...countsToJson(counts), duration_ms: Date.now() - started, completed: error === null && held && !this.stopping, ...(error ? { error } : {}) };
        if (held) await repo.finish(JOB, this.owner, result).catch(() => {});
        const total = Object.values(counts).reduce((a, b) => a + b, 0);
        if (total > 0 || error) log(`retention: ${error ? `failed (${error}) after ` : ''}${describeCounts(counts)} in ${result.duration_ms} ms`);
        this.current = null;
      }
      return counts;
    })();
    return this.current;
  }
}

/** The counts as the API and the lease row show them. */
export function countsToJson(c: RetentionCounts): Record<string, number> {
  return {
    batches_archived: c.batchesArchived, batch_file_lists_pruned: c.batchFileListsPruned, chunk_file_lists_pruned: c.chunkFileListsPruned, batches_deleted: c.batchesDeleted,
    outbox_deleted: c.outboxDeleted, watermark_moves_deleted: c.watermarkMovesDeleted, backfills_deleted: c.backfillsDeleted,
    partition_arrivals_deleted: c.partitionArrivalsDeleted, partition_firings_deleted: c.partitionFiringsDeleted,
    signals_deleted: c.signalsDeleted, signal_consumptions_deleted: c.signalConsumptionsDeleted,
  };
}

export function describeCounts(c: RetentionCounts): string {
  return `${c.batchesArchived} closed batches archived (their file lists dropped); ${c.batchFileListsPruned} batch file lists and ${c.chunkFileListsPruned} chunk file lists dropped; ` +
    `${c.batchesDeleted} batches, ${c.outboxDeleted} triggers, ${c.watermarkMovesDeleted} watermark moves, ${c.backfillsDeleted} backfills, ` +
    `${c.partitionFiringsDeleted} fired partition values (${c.partitionArrivalsDeleted} arrivals) and ${c.signalsDeleted} signals (${c.signalConsumptionsDeleted} consumptions) deleted`;
}
