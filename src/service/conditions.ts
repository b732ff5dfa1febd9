import { IpsError } from '../errors.js';
import { computeChangeSet } from '../capture/change-set.js';
import { FileDescriber } from '../capture/file-json.js';
import type { ManifestReader } from '../capture/manifest-reader.js';
import { branchHead, resolveRangeWithHistory } from '../capture/range.js';
import { specById, type TableMetadata } from '../iceberg/metadata.js';
import { bindSpec, partitionValueFromAvro } from '../iceberg/partition-values.js';
import { humanPartitionValue } from '../iceberg/transforms.js';
import { toJsonValue } from '../iceberg/values.js';
import {
  checkSignalName, checkSignalParams, type FireCondition, type SignalRequirement, type SourceTable, type Watermark,
} from '../state/index.js';
import type { CapturePolicy } from '../capture/policy.js';

/**
 * Trigger conditions beyond "a table changed" (issue 18): an all-of group of tables, a
 * partition-complete condition on a time-transform partition field, and required signals.
 * Validation happens when a subscription is created (typed errors that say what to do); the
 * fire loop (triggers.ts) evaluates them.
 */

export const TIME_TRANSFORMS = new Set(['year', 'month', 'day', 'hour']);

/** The condition as the API takes it (snake_case). */
export interface ConditionInput {
  all?: string[];
  partition?: { field: string; quiet_seconds?: number };
  signals?: { name: string; params?: Record<string, string> }[];
  fire_on_signals?: boolean;
}

/** The tables a partition condition (or an all group) looks at: the group, or every table. */
export function groupTables(tables: string[], c: FireCondition): string[] {
  return c.all ?? tables;
}

/** The time transform of partition field `field` in the table's current spec, or NOT_A_TIME_PARTITION. */
export function timeTransformOf(md: TableMetadata, table: string, field: string): string {
  const spec = specById(md, md.defaultSpecId);
  const bound = bindSpec(md, spec);
  const timeFields = bound.filter((b) => TIME_TRANSFORMS.has(b.transform.kind)).map((b) => `${b.field.name} (${b.transform.kind})`);
  const hint = timeFields.length > 0
    ? `its time partition fields are ${timeFields.join(', ')}`
    : 'it has no partition field with a year, month, day or hour transform (partition it by one, e.g. day(event_ts), or drop the partition condition)';
  const pf = bound.find((b) => b.field.name === field);
  if (!pf) {
    throw new IpsError('NOT_A_TIME_PARTITION', `table "${table}" has no partition field "${field}" in its current spec; ${hint}`,
      { details: { table, field } });
  }
  if (!TIME_TRANSFORMS.has(pf.transform.kind)) {
    throw new IpsError('NOT_A_TIME_PARTITION',
      `partition field "${field}" of table "${table}" has a ${pf.transform.kind} transform: a partition condition needs a year, month, day or hour transform; ${hint}`,
      { details: { table, field, transform: pf.transform.kind } });
  }
  return pf.transform.kind;
}

/**
 * Checks a subscription's extra conditions against its tables: group members must be tables of
 * the subscription, the partition field a time transform with the same transform in every table
 * of the group, the signal names safe identifiers.
 */
export async function validateCondition(tables: string[], c: FireCondition, load: (table: string) => Promise<TableMetadata>): Promise<void> {
  if (c.all !== undefined) {
    if (c.all.length === 0) throw new IpsError('UNKNOWN_GROUP_TABLE', 'an all group names at least one table of the subscription (or leave "all" out: any change fires)');
    const unknown = c.all.filter((t) => !tables.includes(t));
    if (unknown.length > 0) {
      throw new IpsError('UNKNOWN_GROUP_TABLE',
        `the all group names ${unknown.map((t) => `"${t}"`).join(', ')}, not among the subscription's tables (${tables.map((t) => `"${t}"`).join(', ')}); add it to the tables (--table) or remove it from the group (--all)`,
        { details: { unknown, tables } });
    }
    if (new Set(c.all).size !== c.all.length) throw new IpsError('UNKNOWN_GROUP_TABLE', 'the all group lists a table twice; list each once');
  }
  if (c.partition !== undefined) {
    const kinds = new Map<string, string>();
    for (const t of groupTables(tables, c)) kinds.set(t, timeTransformOf(await load(t), t, c.partition.field));
    if (new Set(kinds.values()).size > 1) {
      throw new IpsError('NOT_A_TIME_PARTITION',
        `partition field "${c.partition.field}" has different transforms across the group (${[...kinds].map(([t, k]) => `${t}: ${k}`).join(', ')}): its values would not name the same periods; use tables partitioned the same way`);
    }
  }
  for (const r of c.signals ?? []) {
    checkSignalName(r.name);
    checkSignalParams(r.params);
  }
  if ((c.signals?.length ?? 0) > 16) throw new IpsError('INVALID_ARGUMENT', 'a subscription requires at most 16 signals');
  if (c.fireOnSignals && (c.signals?.length ?? 0) === 0) {
    throw new IpsError('INVALID_ARGUMENT', 'fire_on_signals needs the signals to fire on: add at least one (--signal NAME[:k=v,…])');
  }
}

export function conditionExtrasFromInput(c: ConditionInput): Pick<FireCondition, 'all' | 'partition' | 'signals' | 'fireOnSignals'> {
  const out: Pick<FireCondition, 'all' | 'partition' | 'signals' | 'fireOnSignals'> = {};
  if (c.all !== undefined) out.all = c.all;
  if (c.partition !== undefined) out.partition = { field: c.partition.field, ...(c.partition.quiet_seconds !== undefined ? { quietSeconds: c.partition.quiet_seconds } : {}) };
  if (c.signals !== undefined) out.signals = c.signals.map((r): SignalRequirement => ({ name: r.name, params: r.params ?? {} }));
  if (c.fire_on_signals !== undefined) out.fireOnSignals = c.fire_on_signals;
  return out;
}

/**
 * The values of a time partition field in a table's changes after the watermark, each with the
 * commit time (snapshot timestamp) of the newest snapshot that wrote it. Files of a spec without
 * the field, and null values, carry no value.
 */
export async function pendingPartitionValues(reader: ManifestReader, md: TableMetadata, source: SourceTable, wm: Watermark, policy: CapturePolicy, field: string): Promise<Map<string, Date>> {
  const out = new Map<string, Date>();
  const head = branchHead(md, source.branch);
  if (head === null || head === wm.snapshotId) return out;
  const range = await resolveRangeWithHistory(md, { from: wm.snapshotId, branch: source.branch }, reader);
  // Partition values only: no statistics, no delete footprints, and compact entries, so a
  // subscription far behind does not hold its whole backlog as full entries at every check.
  const cs = await computeChangeSet(reader, range, policy, md, { deleteFootprints: false, compact: { stats: { fields: 'none' }, concurrency: 4 } });
  const describer = new FileDescriber(md);
  for (const d of cs.snapshots) {
    if (d.action === 'skipped') continue;
    const at = new Date(Number(d.snapshot.timestampMs));
    for (const fc of [...d.added, ...d.removed]) {
      const pf = describer.boundSpec(fc.manifest.partitionSpecId).find((b) => b.field.name === field && TIME_TRANSFORMS.has(b.transform.kind));
      if (!pf) continue;
      const v = partitionValueFromAvro(pf.resultType, fc.entry.dataFile.partition.get(pf.field.fieldId));
      if (v === null) continue;
      const value = humanPartitionValue(pf.transform, v, (x) => toJsonValue(pf.resultType, x) as string | number | boolean);
      const prev = out.get(value);
      if (!prev || prev < at) out.set(value, at);
    }
  }
  return out;
}
