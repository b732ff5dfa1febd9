// Memory and CPU of a process tree, from /proc (Linux): the runner's per-benchmark figures (the
// bench process and everything it started) and bench/idle-memory.ts's ips servers.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { CLK_TCK, procStat } from './proc-cpu.js';

export interface ProcMemory {
  /** VmRSS: resident now, in bytes. */
  rss: number;
  /** VmHWM: the highest VmRSS since the process started (or since resetPeak), in bytes. */
  hwm: number;
}

/** VmRSS and VmHWM of a process (/proc/PID/status); null when it is gone. */
export function procMemory(pid: number): ProcMemory | null {
  let s: string;
  try {
    s = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024;
  const rss = kb('VmRSS');
  const hwm = kb('VmHWM');
  // A zombie (exited, not yet reaped) has no memory lines.
  return Number.isFinite(rss) && Number.isFinite(hwm) ? { rss, hwm } : null;
}

/** Resets this process's VmHWM to its current RSS (`5` to /proc/self/clear_refs, Linux ≥ 4.0); false when refused. */
export function resetOwnPeak(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

/** Live descendants of a process (children, their children, …), by /proc's ppid. */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const st = procStat(Number(d));
    if (!st) continue;
    const list = children.get(st.ppid);
    if (list) list.push(Number(d));
    else children.set(st.ppid, [Number(d)]);
  }
  const out: number[] = [];
  const stack = [...(children.get(root) ?? [])];
  while (stack.length) {
    const p = stack.pop()!;
    out.push(p);
    stack.push(...(children.get(p) ?? []));
  }
  return out;
}

export const MB = 1024 * 1024;
export const mb = (bytes: number): string => (Number.isFinite(bytes) ? `${(bytes / MB).toFixed(0)} MB` : '—');

export interface TreeUsage {
  wallSeconds: number;
  /** CPU seconds of the root and its descendants over the span (see TreeMeter). */
  cpuSeconds: number;
  /** The highest Σ VmRSS of the tree seen in one sample. */
  peakTreeRss: number;
  /** The highest VmHWM of any one process of the tree (exact: the kernel's peak, not a sample). */
  peakProcessHwm: number;
  /** The command line of the process with that peak, shortened. */
  peakProcess: string;
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).map((a) => (a.length > 60 ? `${a.slice(0, 57)}…` : a)).join(' ').slice(0, 160);
  } catch {
    return `pid ${pid}`;
  }
}

/**
 * Wall, CPU and peak memory of a process and its descendants over a span, sampled every
 * `intervalMs`. CPU = the root's own utime+stime and that of the children it reaped (cutime),
 * plus what live descendants used since they were first seen (or since start when they were
 * already running). The test harness's private PostgreSQL and MinIO are children of the bench
 * process and count; a server that daemonizes away (pg_ctl, a docker-compose stack) does not.
 * Σ RSS is sampled (a peak between samples can be missed) and counts pages shared between
 * processes (PostgreSQL's shared buffers) once per process; each process's VmHWM is the kernel's
 * exact peak, read at every sample while it lives.
 */
export class TreeMeter {
  private timer: NodeJS.Timeout | null = null;
  private t0 = 0;
  private rootCpu0 = 0;
  private readonly base = new Map<number, number>();
  private readonly last = new Map<number, number>();
  private peakTreeRss = 0;
  private peakHwm = 0;
  private peakCmd = '';

  constructor(private readonly root: number = process.pid, private readonly intervalMs = 200) {}

  private rootCpu(): number {
    const st = procStat(this.root);
    return st ? st.self + st.children : NaN;
  }

  private sample(): void {
    let sum = 0;
    for (const pid of [this.root, ...descendants(this.root)]) {
      const m = procMemory(pid);
      if (!m) continue;
      sum += m.rss;
      if (m.hwm > this.peakHwm) {
        this.peakHwm = m.hwm;
        this.peakCmd = cmdline(pid);
      }
      if (pid === this.root) continue;
      const st = procStat(pid);
      if (!st) continue;
      // A live descendant's own CPU and that of the children it reaped (which are never live at the end, so never counted twice).
      const ticks = st.self + st.children;
      if (!this.base.has(pid)) this.base.set(pid, this.t0 === 0 ? ticks : 0);
      this.last.set(pid, ticks);
    }
    this.peakTreeRss = Math.max(this.peakTreeRss, sum);
  }

  start(): void {
    if (this.root === process.pid) resetOwnPeak();
    this.sample(); // descendants already running: counted from now
    this.t0 = performance.now();
    this.rootCpu0 = this.rootCpu();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): TreeUsage {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.sample();
    const live = new Set(descendants(this.root));
    let ticks = this.rootCpu() - this.rootCpu0;
    // Reaped descendants are in the root's cutime already; only the live ones are added.
    for (const [pid, last] of this.last) if (live.has(pid)) ticks += last - (this.base.get(pid) ?? 0);
    return {
      wallSeconds: (performance.now() - this.t0) / 1000,
      cpuSeconds: ticks / CLK_TCK,
      peakTreeRss: this.peakTreeRss,
      peakProcessHwm: this.peakHwm,
      peakProcess: this.peakCmd,
    };
  }
}
