// CPU time of processes, from /proc (Linux): an ips server in its own process, a PostgreSQL server
// on this machine and its backends, and the benchmark process itself.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

export const CLK_TCK = ((): number => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return Number.isInteger(n) && n > 0 ? n : 100;
})();

/** Parent pid, utime + stime (`self`) and cutime + cstime (`children`) of a process, in clock ticks; null when it is gone. */
export function procStat(pid: number): { ppid: number; self: number; children: number } | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
    return { ppid: Number(f[1]), self: Number(f[11]) + Number(f[12]), children: Number(f[13]) + Number(f[14]) };
  } catch {
    return null;
  }
}

/** utime + stime of one process (all its threads), in seconds; NaN when it is gone. */
export function processCpuSeconds(pid: number): number {
  const st = procStat(pid);
  return st ? st.self / CLK_TCK : NaN;
}

/** CPU seconds of a PostgreSQL server: the postmaster, its reaped children and its live ones (backends, writers). NaN without a postmaster. */
export function pgCpuSeconds(postmaster: number | null): number {
  if (postmaster === null) return NaN;
  const pm = procStat(postmaster);
  if (!pm) return NaN;
  let ticks = pm.self + pm.children;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const st = procStat(Number(d));
    if (st && st.ppid === postmaster) ticks += st.self;
  }
  return ticks / CLK_TCK;
}

/** CPU seconds of this process (user + system). */
export function benchCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}
