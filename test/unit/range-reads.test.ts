// Grouping of a file's byte ranges into reads (deletion vectors of one Puffin file): every range
// lands in exactly one read that covers it; neighbours share a read only when close; and a read
// that holds more than one range never spans more than the cap, so merging cannot turn blobs that
// each meet a size limit into one read that breaks it. Checked on random layouts against these
// rules, not against the grouping's own output.
import { describe, expect, it } from 'vitest';
import { groupRangeReads } from '../../src/io/range-reads.js';
import { mulberry32 as rng } from '../setup/random.js';

describe('groupRangeReads', () => {
  it('keeps the rules on random layouts', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const r = rng(seed);
      const gap = 1 + Math.floor(r() * 100);
      const maxSpan = 1 + Math.floor(r() * 1000);
      const n = Math.floor(r() * 40);
      const ranges = Array.from({ length: n }, (_, id) => ({ id, offset: Math.floor(r() * 5000), size: Math.floor(r() * 400) }));
      const reads = groupRangeReads(ranges, gap, maxSpan);
      const ids = reads.flatMap((x) => x.ranges.map((y) => y.id)).sort((a, b) => a - b);
      expect(ids, `seed ${seed}`).toEqual(ranges.map((x) => x.id));
      for (const read of reads) {
        for (const x of read.ranges) {
          expect(x.offset, `seed ${seed}`).toBeGreaterThanOrEqual(read.offset);
          expect(x.offset + x.size, `seed ${seed}`).toBeLessThanOrEqual(read.offset + read.size);
        }
        // Tight: the read starts at its first range and ends at its furthest.
        expect(read.offset).toBe(Math.min(...read.ranges.map((x) => x.offset)));
        expect(read.offset + read.size).toBe(Math.max(...read.ranges.map((x) => x.offset + x.size)));
        if (read.ranges.length > 1) expect(read.size, `seed ${seed}`).toBeLessThanOrEqual(maxSpan);
      }
      // Reads are in file order and do not overlap less than a gap apart without cause: the next
      // read starts past this one's end + gap, or taking it in would have broken the cap.
      for (let i = 1; i < reads.length; i++) {
        const prev = reads[i - 1]!;
        const next = reads[i]!.ranges[0]!;
        const farApart = next.offset > prev.offset + prev.size + gap;
        const tooLong = Math.max(prev.offset + prev.size, next.offset + next.size) - prev.offset > maxSpan;
        expect(farApart || tooLong, `seed ${seed}, read ${i}`).toBe(true);
      }
    }
  });

  it('never merges blobs that each meet a limit into a read over it', () => {
    // Twenty 100 MiB deletion vectors written side by side: each is a fine read under a 1 GiB
    // limit, and all of them together (2 GiB) are not.
    const MiB = 1024 * 1024;
    const ranges = Array.from({ length: 20 }, (_, i) => ({ offset: 4 + i * 100 * MiB, size: 100 * MiB }));
    const reads = groupRangeReads(ranges, 64 * 1024, 8 * MiB);
    expect(reads).toHaveLength(20);
    expect(Math.max(...reads.map((x) => x.size))).toBe(100 * MiB);
  });

  it('shares one read among close small blobs', () => {
    const ranges = [{ offset: 4, size: 40 }, { offset: 44, size: 40 }, { offset: 200, size: 40 }, { offset: 1_000_000, size: 40 }];
    const reads = groupRangeReads(ranges, 64 * 1024, 8 * 1024 * 1024);
    expect(reads.map((x) => [x.offset, x.size, x.ranges.length])).toEqual([[4, 236, 3], [1_000_000, 40, 1]]);
  });
});
