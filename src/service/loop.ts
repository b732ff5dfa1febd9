import { describeError } from '../errors.js';

/**
 * A background loop: runs `tick` every `intervalMs` (with jitter), at once when poked, never
 * two ticks at a time; a failing tick is logged and the loop goes on. `tick` returns true when
 * it found work, and then runs again at once (a backlog drains without waiting).
 */
export class Loop {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;

  constructor(
    private readonly name: string,
    private readonly intervalMs: number,
    private readonly tick: () => Promise<boolean>,
    private readonly log: (line: string) => void,
  ) {}

  start(): void {
    this.schedule(Math.random() * this.intervalMs);
  }

  /** Runs a tick as soon as possible (after the current one, if any). */
  poke(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.run(), ms);
    this.timer.unref();
  }

  private run(): void {
    this.timer = null;
    this.running = (async () => {
      let busy = false;
      try {
        busy = await this.tick();
      } catch (e) {
        this.log(`${this.name}: ${describeError(e)}`);
      }
      this.running = null;
      const next = busy || this.again ? 0 : this.intervalMs * (0.8 + Math.random() * 0.4);
      this.again = false;
      this.schedule(next);
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }
}

/** Exponential backoff with full jitter: attempt 1 → up to base, doubling, capped. */
export function backoffMs(attempt: number, baseMs: number, capMs: number): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}
