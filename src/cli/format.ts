/** Byte counts for people (`1.2 MiB`); --json output keeps the exact number. */
export function fmtBytes(n: string | bigint): string {
  const b = Number(n);
  if (b < 1024) return `${b} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = b / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}
