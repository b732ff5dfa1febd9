// Deletion vectors (Puffin `deletion-vector-v1`): the blob framing and the Roaring portable
// 64-bit format, built here byte by byte from the specs (Iceberg Puffin spec, RoaringFormatSpec),
// so that every container kind is covered: array, bitmap and run containers, with and without
// the offset header, several 32-bit buckets. Spark-written DVs are checked end to end against
// Spark in test/interop/icdc/rows-local.test.ts and rows-s3.test.ts (rows.suite.ts).
import { describe, expect, it } from 'vitest';
import { decodeDeletionVector, decodeRoaring64Portable, deletionVectorChunks, maxDeletionVectorBytes } from '../../src/rows/deletion-vector.js';
import { dvBlob, roaring32, roaring64, u16, u32, u64, type Container } from './roaring-builder.js';

describe('deletion vectors: Puffin blob and Roaring portable 64-bit bitmap', () => {
  const evens = Array.from({ length: 5000 }, (_, i) => i * 2); // 5000 > 4096: a bitmap container
  const cs: Container[] = [
    { key: 0, kind: 'array', values: [0, 3, 65535] },
    { key: 1, kind: 'bitmap', values: evens },
    { key: 7, kind: 'run', runs: [[10, 4], [100, 0]] },
    { key: 65535, kind: 'array', values: [1] },
  ];
  const expected32 = [0, 3, 65535, ...evens.map((v) => 65536 + v), 7 * 65536 + 10, 7 * 65536 + 11, 7 * 65536 + 12, 7 * 65536 + 13, 7 * 65536 + 14, 7 * 65536 + 100, 65535 * 65536 + 1];

  it('array, bitmap and run containers, with the run cookie and offsets (>= 4 containers), in two 32-bit buckets', () => {
    const bm = roaring64([[0, roaring32(cs, true)], [2, roaring32([{ key: 0, kind: 'array', values: [5] }], false)]]);
    const got = decodeDeletionVector(dvBlob(bm), 'test');
    expect(got).toEqual([...expected32.map(BigInt), (2n << 32n) | 5n]);
  });

  it('the cookie without run containers, and run containers without the offset header (< 4 containers)', () => {
    const noRuns = cs.filter((c) => c.kind !== 'run');
    expect(decodeRoaring64Portable(roaring64([[0, roaring32(noRuns, false)]]), 't').map(Number)).toEqual(expected32.filter((v) => v >> 16 !== 7));
    const few: Container[] = [{ key: 3, kind: 'run', runs: [[0, 2]] }, { key: 4, kind: 'array', values: [9] }];
    expect(decodeRoaring64Portable(roaring64([[1, roaring32(few, true)]]), 't')).toEqual([
      (1n << 32n) | (3n << 16n), (1n << 32n) | (3n << 16n) | 1n, (1n << 32n) | (3n << 16n) | 2n, (1n << 32n) | (4n << 16n) | 9n,
    ]);
    expect(decodeRoaring64Portable(roaring64([]), 't')).toEqual([]);
  });

  it('refuses a blob with a wrong length, magic or CRC, and a truncated or unknown bitmap (CORRUPT_FILE)', () => {
    const good = dvBlob(roaring64([[0, roaring32(cs.slice(0, 1), false)]]));
    const bad = (mutate: (b: Buffer) => Buffer) => () => decodeDeletionVector(mutate(Buffer.from(good)), 'f.puffin at offset 4');
    expect(bad((b) => b.subarray(0, b.length - 1))).toThrow(/CORRUPT_FILE|length field/);
    expect(bad((b) => { b[5] = 0; return b; })).toThrow(/magic/);
    expect(bad((b) => { b[b.length - 1]! ^= 1; return b; })).toThrow(/CRC-32 mismatch/);
    try {
      bad((b) => { b[b.length - 6]! ^= 1; return b; })();
      expect.unreachable();
    } catch (e) {
      expect((e as { code?: string }).code).toBe('CORRUPT_FILE');
    }
    expect(() => decodeRoaring64Portable(Buffer.concat([u64(1n), u32(0), u32(99)]), 't')).toThrow(/unknown cookie 99/);
    expect(() => decodeRoaring64Portable(Buffer.concat([u64(1n), u32(0), u32(12346), u32(1), u16(0), u16(9)]), 't')).toThrow(/truncated/);
    expect(() => decodeRoaring64Portable(Buffer.concat([u64(2n), u32(1), roaring32(cs.slice(0, 1), false), u32(1), roaring32(cs.slice(0, 1), false)]), 't')).toThrow(/not ascending/);
  });

  // A run container is ten bytes for 65,536 positions: a blob of a few hundred KB can claim
  // billions. Decoding must stop at the first container that breaks what the manifests say.
  describe('bounded by the data file and the manifest entry, whatever the blob claims', () => {
    const code = (fn: () => unknown): string | undefined => {
      try {
        fn();
      } catch (e) {
        return `${(e as { code?: string }).code}: ${(e as Error).message}`;
      }
      return undefined;
    };
    /** Positions the decoder handed out before it stopped, and how it stopped. */
    const drain = (blob: Buffer, bounds: { rowCount: bigint; cardinality: bigint }) => {
      let positions = 0;
      const error = code(() => { for (const c of deletionVectorChunks(blob, 'f.puffin at offset 4', bounds)) positions += c.length; });
      return { positions, error };
    };
    // 65,536 full run containers in one 32-bit bucket: 2^32 positions from 655 KB.
    const huge = dvBlob(roaring64([[0, roaring32(Array.from({ length: 65536 }, (_, key) => ({ key, kind: 'run' as const, runs: [[0, 65535]] as [number, number][] })), true)]]));

    it('a vector past the end of its data file stops at the first container', () => {
      expect(huge.length).toBeLessThan(1 << 20);
      const r = drain(huge, { rowCount: 10n, cardinality: 10n });
      expect(r.error).toMatch(/^CORRUPT_FILE: f\.puffin at offset 4: .*position 65535 is past the end of its data file \(10 rows\)/);
      expect(r.positions).toBe(0);
    });

    it('a vector holding more positions than its record_count stops as soon as it has too many', () => {
      const r = drain(huge, { rowCount: 1n << 40n, cardinality: 70_000n });
      expect(r.error).toMatch(/^CORRUPT_FILE: .*more than the 70000 positions its manifest entry says/);
      expect(r.positions).toBe(65536); // the first container; the second one goes past 70,000
    });

    it('a record_count above the data file\'s rows, or one the bitmap does not reach, is refused', () => {
      const small = dvBlob(roaring64([[0, roaring32([{ key: 0, kind: 'array', values: [1, 4] }], false)]]));
      expect(drain(small, { rowCount: 5n, cardinality: 2n })).toEqual({ positions: 2, error: undefined });
      expect(drain(small, { rowCount: 5n, cardinality: 6n }).error).toMatch(/deletes 6 rows of a data file of 5/);
      expect(drain(small, { rowCount: 5n, cardinality: 3n }).error).toMatch(/holds 2 positions, its manifest entry says 3/);
      expect(drain(small, { rowCount: 4n, cardinality: 2n }).error).toMatch(/position 4 is past the end of its data file \(4 rows\)/);
    });

    it('positions must be strictly ascending: repeated runs, unsorted arrays and container keys are refused', () => {
      // The same full run 65,535 times would be 2^32 positions in one container.
      const repeated = roaring64([[0, roaring32([{ key: 0, kind: 'run', runs: Array.from({ length: 65535 }, () => [0, 65535] as [number, number]) }], true)]]);
      expect(code(() => decodeRoaring64Portable(repeated, 't'))).toMatch(/^CORRUPT_FILE: .*runs overlap or are not ascending/);
      expect(code(() => decodeRoaring64Portable(roaring64([[0, roaring32([{ key: 0, kind: 'run', runs: [[10, 5], [12, 1]] }], true)]]), 't'))).toMatch(/runs overlap/);
      expect(code(() => decodeRoaring64Portable(roaring64([[0, roaring32([{ key: 0, kind: 'array', values: [5, 5] }], false)]]), 't'))).toMatch(/array container values are not ascending/);
      expect(code(() => decodeRoaring64Portable(roaring64([[0, roaring32([{ key: 2, kind: 'array', values: [1] }, { key: 1, kind: 'array', values: [1] }], false)]]), 't'))).toMatch(/container keys are not ascending/);
      // Adjacent runs are unusual but ascending: accepted.
      expect(decodeRoaring64Portable(roaring64([[0, roaring32([{ key: 0, kind: 'run', runs: [[0, 1], [2, 0]] }], true)]]), 't')).toEqual([0n, 1n, 2n]);
    });
  });

  it('the size bound: the largest vectors a data file can have fit under it, and it stays small for a small file', () => {
    // Every position of the file deleted, spelled the longest way the format allows: one run per
    // position (run containers), and as bitmap or array containers; in one or more 16-bit containers.
    // One run per value; a container counts its runs in 16 bits, so a full one joins its last two.
    const singleRuns = (vs: number[]): [number, number][] => {
      const runs = vs.map((v) => [v, 0] as [number, number]);
      return runs.length === 65536 ? [...runs.slice(0, 65534), [65534, 1]] : runs;
    };
    for (const rows of [1, 10, 65_536, 65_537, 200_000]) {
      const keys = Math.ceil(rows / 65536);
      const positions = (key: number) => Array.from({ length: Math.min(65536, rows - key * 65536) }, (_, i) => i);
      const longest = [
        dvBlob(roaring64([[0, roaring32(Array.from({ length: keys }, (_, key) => ({ key, kind: 'run' as const, runs: singleRuns(positions(key)) })), true)]])),
        // (a container of more than 4,096 values is a bitmap, of fewer an array: the format's rule)
        dvBlob(roaring64([[0, roaring32(Array.from({ length: keys }, (_, key) => ({ key, kind: positions(key).length > 4096 ? 'bitmap' as const : 'array' as const, values: positions(key) })), false)]])),
      ];
      for (const blob of longest) {
        let n = 0;
        for (const c of deletionVectorChunks(blob, 't', { rowCount: BigInt(rows), cardinality: BigInt(rows) })) n += c.length;
        expect(n).toBe(rows);
        expect(BigInt(blob.length)).toBeLessThanOrEqual(maxDeletionVectorBytes(BigInt(rows)));
      }
    }
    // A data file of ten rows: no vector of it is larger than a few hundred KB, so a manifest
    // entry that says 1 GiB is refused before anything is read.
    expect(maxDeletionVectorBytes(10n)).toBeLessThan(1n << 19n);
    expect(maxDeletionVectorBytes(1n << 20n)).toBeLessThan(5n << 20n);
  });
});
