import { z } from 'zod';
import { parseRow } from './common.js';
import type { Queryable } from './database.js';
import { textArray } from './table-watch.js';

/**
 * What a partition-complete condition (issue 18) remembers per subscription: the values of its
 * time field seen in each table's changes, and the values fired. Arrivals are recorded before a
 * firing (idempotent upserts, harmless under replicas); firings in the firing's transaction,
 * keyed by (subscription, value), so a value fires once whatever the replicas do.
 */
export interface PartitionArrival {
  value: string;
  sourceTable: string;
  firstSeenAt: Date;
  /** Commit time of the newest snapshot that wrote the value (quiet counts from here). */
  lastCommitAt: Date;
}

export interface PartitionFiring {
  value: string;
  outboxId: bigint;
  reason: 'complete' | 'quiet';
  firedAt: Date;
}

const arrivalRow = z.object({ value: z.string(), source_table: z.string(), first_seen_at: z.date(), last_commit_at: z.date() })
  .transform((r): PartitionArrival => ({ value: r.value, sourceTable: r.source_table, firstSeenAt: r.first_seen_at, lastCommitAt: r.last_commit_at }));
const firingRow = z.object({ value: z.string(), outbox_id: z.bigint(), reason: z.enum(['complete', 'quiet']), fired_at: z.date() })
  .transform((r): PartitionFiring => ({ value: r.value, outboxId: r.outbox_id, reason: r.reason, firedAt: r.fired_at }));

export class PartitionsRepo {
  constructor(private readonly q: Queryable) {}

  async recordArrivals(subscription: string, sourceTable: string, values: Map<string, Date>): Promise<void> {
    for (const [value, committedAt] of values) {
      await this.q.query(
        `INSERT INTO partition_arrivals (subscription, value, source_table, last_commit_at) VALUES ($1, $2, $3, $4)
          ON CONFLICT (subscription, value, source_table) DO UPDATE SET last_commit_at = GREATEST(partition_arrivals.last_commit_at, EXCLUDED.last_commit_at)`,
        [subscription, value, sourceTable, committedAt]);
    }
  }

  /** Arrivals of values not fired yet. */
  async unfiredArrivals(subscription: string): Promise<PartitionArrival[]> {
    const res = await this.q.query(
      `SELECT a.value, a.source_table, a.first_seen_at, a.last_commit_at FROM partition_arrivals a
        WHERE a.subscription = $1 AND NOT EXISTS (SELECT 1 FROM partition_firings f WHERE f.subscription = a.subscription AND f.value = a.value)
        ORDER BY a.value, a.source_table LIMIT 100000`, [subscription]);
    return res.rows.map((r) => parseRow(arrivalRow, r, 'partition_arrivals'));
  }

  async firings(subscription: string): Promise<PartitionFiring[]> {
    const res = await this.q.query(
      'SELECT value, outbox_id, reason, fired_at FROM partition_firings WHERE subscription = $1 ORDER BY value', [subscription]);
    return res.rows.map((r) => parseRow(firingRow, r, 'partition_firings'));
  }

  async firedValues(subscription: string, values: string[]): Promise<Set<string>> {
    if (values.length === 0) return new Set();
    const res = await this.q.query<{ value: string }>(
      'SELECT value FROM partition_firings WHERE subscription = $1 AND value = ANY($2::TEXT[])', [subscription, textArray(values)]);
    return new Set(res.rows.map((r) => r.value));
  }
}
