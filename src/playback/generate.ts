import { dayNumber, isoDate, TABLES, type PlaybackOptions } from './model.js';
import type { Lake } from './lake.js';

/**
 * One simulated day of playback events, as SQL: `rowsPerDay` plays, of which `lateFraction`
 * are backlogs uploaded today by `lateDevicesPerDay` devices that were offline for a while
 * (each device one profile, its rows spread over up to `backlogDays` consecutive days, at most
 * `maxLatenessDays` old). Deterministic in (seed, day): reruns make the same month.
 */
export function dayEventsSql(o: PlaybackOptions, dayIndex: number): string {
  const n = o.rowsPerDay;
  const late = dayIndex === 0 ? 0 : Math.round(n * o.lateFraction);
  const day0 = `DATE '${o.startDate}'`;
  const maxLag = Math.min(o.maxLatenessDays, dayIndex);
  const span = o.backlogDays;
  // A client release's bug from day consoleMillisFromDay on: console plays report milliseconds.
  const millis = o.consoleMillisFromDay === undefined ? null : `DATE '${isoDate(dayNumber(o.startDate) + o.consoleMillisFromDay)}'`;
  const select = millis === null ? '*' : `* REPLACE (CASE WHEN device = 'console' AND event_date >= ${millis} THEN watch_seconds * 1000 ELSE watch_seconds END AS watch_seconds)`;
  // hash() of (seed, day, row, salt) drives every choice; device d of today's backlogs picks its
  // profile and the newest day of its backlog, each row then one of `span` days back from there.
  return `SELECT ${select} FROM (
    WITH r AS (
      SELECT i, hash(${o.seed}, ${dayIndex}, i, 'row') AS h, i < ${late} AS is_late, i % ${o.lateDevicesPerDay} AS device
        FROM range(${n}) t(i)
    ), d AS (
      SELECT *, hash(${o.seed}, ${dayIndex}, device, 'device') AS hd FROM r
    )
    SELECT (${dayIndex}::BIGINT * ${n} + i)::BIGINT AS event_id,
           (CASE WHEN is_late THEN hd % ${o.profiles} ELSE h % ${o.profiles} END)::BIGINT AS profile_id,
           ((h >> 20) % ${o.titles})::INTEGER AS title_id,
           (${day0} + (${dayIndex} - CASE WHEN is_late
                 THEN least(${maxLag}, 1 + ((hd >> 24) % ${Math.max(1, maxLag - span + 1)}) + ((h >> 40) % ${span}))
                 ELSE 0 END)::INTEGER) AS event_date,
           (60 + (h >> 8) % 3540)::INTEGER AS watch_seconds,
           (['tv', 'phone', 'tablet', 'web', 'console'])[1 + ((h >> 32) % 5)::INTEGER] AS device
      FROM d)`;
}

/** Appends day `dayIndex` to the source table; returns rows written. */
export async function appendDay(lake: Lake, o: PlaybackOptions, dayIndex: number): Promise<bigint> {
  const w = await lake.write(TABLES.source, dayEventsSql(o, dayIndex), [], { 'ips-demo.day': isoDate(dayNumber(o.startDate) + dayIndex) });
  return w.rows;
}
