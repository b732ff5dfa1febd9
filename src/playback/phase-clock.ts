/**
 * Where a run's CPU goes, by phase (issue 15's "find where the per-run cost is"): the process's
 * CPU (all threads: DuckDB's, libuv's and the in-process ips's) over each phase of the run that
 * is executing. Runs never overlap, so a phase is the run's; ips's work for other consumers that
 * happens meanwhile (its trigger loops) lands in whichever phase is open, as it lands in the
 * run's total. Nested phases count in the outermost only, so the phases add up to at most the
 * run's CPU; the rest is the run's own glue (and ips in the background).
 */
export const PHASES = [
  'ICDC metadata + plan',
  'table loads + plans',
  'engine views + queries',
  'engine write (COPY)',
  'data files: read back, metrics, store',
  'table commit',
  'ips batch commit',
  'ips events call',
] as const;
export type Phase = (typeof PHASES)[number];

export class PhaseClock {
  private readonly cpuMs = new Map<Phase, number>();
  private depth = 0;

  async time<T>(phase: Phase, fn: () => Promise<T>): Promise<T> {
    if (this.depth > 0) return fn();
    this.depth++;
    const start = process.cpuUsage();
    try {
      return await fn();
    } finally {
      this.depth--;
      const u = process.cpuUsage(start);
      this.cpuMs.set(phase, (this.cpuMs.get(phase) ?? 0) + (u.user + u.system) / 1000);
    }
  }

  /** CPU milliseconds per phase so far. */
  totals(): Partial<Record<Phase, number>> {
    return Object.fromEntries(this.cpuMs);
  }
}
