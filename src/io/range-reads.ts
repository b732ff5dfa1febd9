/**
 * Grouping of byte ranges of one file into few reads: ranges closer than `gap` share a request
 * (an S3 GET costs far more than a few KB of bytes), and a shared request never spans more than
 * `maxSpan`, so merging cannot make one read larger than the limits its ranges each meet. A
 * single range longer than `maxSpan` is read alone: its own bound is the caller's.
 */
export interface ByteRange { offset: number; size: number }

export interface RangeRead<R extends ByteRange> { offset: number; size: number; ranges: R[] }

export function groupRangeReads<R extends ByteRange>(ranges: readonly R[], gap: number, maxSpan: number): RangeRead<R>[] {
  const sorted = [...ranges].sort((a, b) => a.offset - b.offset);
  const reads: RangeRead<R>[] = [];
  for (let i = 0; i < sorted.length;) {
    const start = sorted[i]!.offset;
    let end = start + sorted[i]!.size;
    let j = i + 1;
    for (; j < sorted.length; j++) {
      const next = sorted[j]!;
      const grown = Math.max(end, next.offset + next.size);
      if (next.offset > end + gap || grown - start > maxSpan) break;
      end = grown;
    }
    reads.push({ offset: start, size: end - start, ranges: sorted.slice(i, j) });
    i = j;
  }
  return reads;
}
