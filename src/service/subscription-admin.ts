import { IpsError } from '../errors.js';
import { parseSinkConfig, sinkConfigToJson, describeSinkConfig, sinkConfigFromJson } from '../sinks/index.js';
import type { BatchLimits, FireCondition, OutboxEntry, SourceTable, State, Subscription } from '../state/index.js';
import type { LoadedTable } from '../catalog/table.js';
import type { CapturePolicy } from '../capture/policy.js';
import { resolveFieldId } from '../capture/ranges.js';
import { normalizeLimits, type PrepareLimits } from './step-protocol.js';
import { validateCondition } from './conditions.js';

/** Creating and showing subscriptions; the sink is validated here and stored with its secrets. */
export interface NewSubscription {
  name: string;
  consumer: string;
  tables: string[];
  condition?: FireCondition;
  limits?: PrepareLimits;
  /** The sink as the API takes it (see src/sinks). */
  sink: unknown;
  maxInFlight?: number;
  maxAttempts?: number;
  enabled?: boolean;
  /** Set on the consumer's watermarks of these tables: the fields its batches get ranges for. */
  rangeFields?: string[];
  /** Set on the consumer: what its batches do with overwrite and delete snapshots. */
  policy?: Partial<CapturePolicy>;
}

export async function createSubscription(state: State, input: NewSubscription, allowedHosts: string[] | undefined,
  load: (t: SourceTable) => Promise<LoadedTable>): Promise<Subscription> {
  const sink = parseSinkConfig(input.sink, { allowedHosts });
  const repos = state.repos;
  await repos.consumers.require(input.consumer);
  const subscribed = new Set((await repos.watermarks.listByConsumer(input.consumer)).map((w) => w.sourceTable));
  const missing = input.tables.filter((t) => !subscribed.has(t));
  if (missing.length) {
    throw new IpsError('NOT_FOUND', `consumer "${input.consumer}" does not subscribe to ${missing.map((t) => `"${t}"`).join(', ')}; subscribe it first (POST /v1/consumers/${input.consumer}/subscriptions)`);
  }
  const limits: BatchLimits = normalizeLimits(input.limits);
  // Groups, partition and signal conditions are checked against the tables now, not at the first firing.
  if (input.condition) await validateCondition(input.tables, input.condition, async (t) => (await load(await repos.sourceTables.require(t))).metadata);
  if (input.rangeFields !== undefined) {
    // Checked against each table's schema, so a typo fails now rather than at the first batch.
    for (const t of input.tables) {
      const md = (await load(await repos.sourceTables.require(t))).metadata;
      for (const f of input.rangeFields) resolveFieldId(md, f);
    }
  }
  return state.withTransaction(async (tx) => {
    if (input.rangeFields !== undefined) for (const t of input.tables) await tx.watermarks.setRangeFields(input.consumer, t, input.rangeFields);
    if (input.policy !== undefined) await tx.consumers.update(input.consumer, { policy: input.policy });
    return tx.subscriptions.create({
    name: input.name, consumer: input.consumer, tables: input.tables, sink: sinkConfigToJson(sink) as Record<string, unknown>,
    ...(input.condition ? { condition: input.condition } : {}),
    limits,
    ...(input.maxAttempts !== undefined ? { maxAttempts: input.maxAttempts } : {}),
    ...(input.maxInFlight !== undefined ? { maxInFlight: input.maxInFlight } : {}),
    ...(input.enabled !== undefined ? { enabled: input.enabled } : {}),
    });
  });
}

/** The sink of a stored subscription, safe to show (secrets as ***). */
/**
 * Deletes a subscription and its undelivered triggers. Their batches are aborted in the same
 * transaction: no run has them, and left open they would hold the consumer's next prepare
 * (BATCH_IN_FLIGHT) until their lease ran out. A trigger being delivered at this moment keeps
 * its batch: its run may already be going (if that attempt fails, the deliverer aborts it then).
 */
export async function deleteSubscription(state: State, name: string): Promise<{ deleted: boolean; abortedBatches: bigint[] }> {
  return state.withTransaction(async (repos) => {
    const aborted: bigint[] = [];
    for (const id of await repos.outbox.lockUndelivered(name)) {
      const batch = await repos.batches.get(id);
      if (batch?.state !== 'open') continue;
      await repos.batches.close(id, 'aborted', `subscription "${name}" was deleted before its trigger was delivered`);
      aborted.push(id);
    }
    return { deleted: await repos.subscriptions.delete(name), abortedBatches: aborted };
  });
}

export function describeStoredSink(s: Subscription): Record<string, unknown> {
  try {
    return describeSinkConfig(sinkConfigFromJson(s.sink));
  } catch (e) {
    return { type: String(s.sink['type'] ?? 'unknown'), error: e instanceof Error ? e.message : String(e) };
  }
}

export type { OutboxEntry };
