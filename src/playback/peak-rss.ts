/**
 * Peak resident memory of this process while a run lasts: sampled every few milliseconds (a
 * run's DuckDB queries allocate natively, off the JS heap, so only RSS sees them). It is the
 * whole process's (the in-process ips and the engine's caches included), the same for both
 * pipelines: a run's peak is what the machine needed while it ran.
 */
export class PeakRss {
  private peak = process.memoryUsage.rss();
  private readonly timer: NodeJS.Timeout;

  constructor(everyMs = 10) {
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }

  private sample(): void {
    const rss = process.memoryUsage.rss();
    if (rss > this.peak) this.peak = rss;
  }

  /** Stops sampling; the peak in bytes. */
  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.peak;
  }
}
