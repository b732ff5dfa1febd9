import { z } from 'zod';
import { IpsError } from '../errors.js';
import type { NewTableSpec } from '../table/table-writer.js';

/**
 * The demo's workload: Netflix's two-stage playback pipeline (TechBlog, "Incremental
 * Processing using Netflix Maestro and Apache Iceberg", 2023) on a simulated month.
 *
 * Late rows are modelled as backlogs: a few devices per day were offline and upload a day or
 * three of old plays at once. That is how late data really arrives (and what makes incremental
 * processing pay off downstream): few keys, many rows. Uniformly random late rows would touch
 * every key of every past day and no engine could avoid re-reading them.
 */
export const playbackOptions = z.object({
  days: z.number().int().min(1).max(366).default(30),
  rowsPerDay: z.number().int().min(10).max(50_000_000).default(33_000),
  profiles: z.number().int().min(1).max(100_000_000).default(1_000),
  titles: z.number().int().min(1).max(1_000_000).default(20),
  /** Files per day in the derived tables: profile ids are split in this many truncate ranges. */
  profileRanges: z.number().int().min(1).max(1024).default(16),
  lateFraction: z.number().min(0).max(0.5).default(0.03),
  lateDevicesPerDay: z.number().int().min(1).max(1000).default(2),
  /** A device's backlog covers up to this many consecutive days. */
  backlogDays: z.number().int().min(1).max(13).default(3),
  /** The oldest a late row can be, in days; at most lookbackDays - 1 so both pipelines agree. */
  maxLatenessDays: z.number().int().min(1).default(13),
  lookbackDays: z.number().int().min(1).max(366).default(14),
  startDate: z.string().regex(/^\d{4}-\d{2}-\d{2}$/).default('2026-10-01'),
  seed: z.number().int().min(0).max(2 ** 31).default(42),
  /**
   * From this day (0-based) on, console clients report watch time in milliseconds in the
   * `watch_seconds` column (a client release's bug; `ips demo backfill`). Unset: never.
   */
  consoleMillisFromDay: z.number().int().min(0).max(365).optional(),
}).strict().superRefine((o, ctx) => {
  if (o.maxLatenessDays > o.lookbackDays - 1) {
    ctx.addIssue({ code: 'custom', path: ['maxLatenessDays'], message: `late rows up to ${o.maxLatenessDays} days old would fall outside a ${o.lookbackDays}-day lookback window, and the two pipelines could not agree: use at most ${o.lookbackDays - 1}` });
  }
});
export type PlaybackOptions = z.output<typeof playbackOptions>;

export function parsePlaybackOptions(input: unknown): PlaybackOptions {
  const r = playbackOptions.safeParse(input);
  if (!r.success) {
    throw new IpsError('INVALID_ARGUMENT', r.error.issues.map((i) => `${i.path.join('.') || 'options'}: ${i.message}`).join('; '));
  }
  return r.data;
}

/**
 * Stage 1's business logic. The original sums `watch_seconds` as reported; the corrected one
 * (`ips demo backfill`) converts the milliseconds console clients reported from
 * `consoleMillisFrom` (an ISO date) on back to seconds.
 */
export interface DailyLogic {
  consoleMillisFrom: string | null;
}

export const ORIGINAL_LOGIC: DailyLogic = { consoleMillisFrom: null };

/** The watch-time expression of stage 1 under `logic`, per event row (portable SQL: DuckDB and Spark). */
export function watchSecondsSql(logic: DailyLogic): string {
  if (logic.consoleMillisFrom === null) return 'watch_seconds';
  return `CASE WHEN device = 'console' AND event_date >= DATE '${logic.consoleMillisFrom}' THEN CAST(watch_seconds / 1000 AS INTEGER) ELSE watch_seconds END`;
}

/** Width of the truncate transform that splits profile ids into `profileRanges` files per day. */
export function profileRangeWidth(o: PlaybackOptions): number {
  return Math.max(1, Math.ceil(o.profiles / o.profileRanges));
}

const EPOCH_DAY_MS = 86_400_000;

export function dayNumber(isoDate: string): number {
  return Math.round(Date.parse(`${isoDate}T00:00:00Z`) / EPOCH_DAY_MS);
}

export function isoDate(day: number): string {
  return new Date(day * EPOCH_DAY_MS).toISOString().slice(0, 10);
}

/** The tables, by the pipeline that writes them. Namespaces keep the two pipelines apart. */
export const TABLES = {
  source: 'demo.playback_table',
  incremental: { daily: 'demo.playback_daily_table', agg: 'demo.playback_daily_agg_table' },
  lookback: { daily: 'lookback.playback_daily_table', agg: 'lookback.playback_daily_agg_table' },
} as const;

/** Names of the tables as registered in ips (ips names are [a-z0-9_-]). */
export function ipsName(identifier: string): string {
  return identifier.replace(/\./g, '__');
}

export function sourceTableSpec(): Omit<NewTableSpec, 'identifier'> {
  return {
    schema: {
      fields: [
        { id: 1, name: 'event_id', type: 'long', required: false },
        { id: 2, name: 'profile_id', type: 'long', required: false },
        { id: 3, name: 'title_id', type: 'int', required: false },
        { id: 4, name: 'event_date', type: 'date', required: false },
        { id: 5, name: 'watch_seconds', type: 'int', required: false },
        { id: 6, name: 'device', type: 'string', required: false },
      ],
    },
    partitionFields: [{ name: 'event_date', transform: 'identity', sourceId: 4, fieldId: 1000 }],
  };
}

function byDayAndProfileRange(width: number): NewTableSpec['partitionFields'] {
  return [
    { name: 'event_date', transform: 'identity', sourceId: 1, fieldId: 1000 },
    { name: 'profile_id_trunc', transform: `truncate[${width}]`, sourceId: 2, fieldId: 1001 },
  ];
}

export function dailyTableSpec(o: PlaybackOptions): Omit<NewTableSpec, 'identifier'> {
  return {
    schema: {
      fields: [
        { id: 1, name: 'event_date', type: 'date', required: false },
        { id: 2, name: 'profile_id', type: 'long', required: false },
        { id: 3, name: 'title_id', type: 'int', required: false },
        { id: 4, name: 'plays', type: 'long', required: false },
        { id: 5, name: 'watch_seconds', type: 'long', required: false },
      ],
    },
    partitionFields: byDayAndProfileRange(profileRangeWidth(o)),
  };
}

export function aggTableSpec(o: PlaybackOptions): Omit<NewTableSpec, 'identifier'> {
  return {
    schema: {
      fields: [
        { id: 1, name: 'event_date', type: 'date', required: false },
        { id: 2, name: 'profile_id', type: 'long', required: false },
        { id: 3, name: 'titles', type: 'long', required: false },
        { id: 4, name: 'plays', type: 'long', required: false },
        { id: 5, name: 'watch_seconds', type: 'long', required: false },
      ],
    },
    partitionFields: byDayAndProfileRange(profileRangeWidth(o)),
  };
}
