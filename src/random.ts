import crypto from 'node:crypto';

// Random bytes from a pool refilled 4 KiB at a time: a synchronous crypto.randomBytes(8) costs
// about 2.5 µs here, and a batch's prepare and commit take a dozen (ids, snapshot ids, Avro sync
// markers). Node's randomUUID pools its entropy the same way.
const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let at = POOL_BYTES;

/** `n` (≤ 4096) cryptographically random bytes, copied out of the pool. */
export function randomBytes(n: number): Buffer {
  if (n > POOL_BYTES) return crypto.randomBytes(n);
  if (at + n > POOL_BYTES) {
    crypto.randomFillSync(pool);
    at = 0;
  }
  const out = Buffer.from(pool.subarray(at, at + n));
  at += n;
  return out;
}

/** A random 63-bit positive id, as Iceberg Java picks snapshot ids (no shared counter; above 2^53, so bigint). */
export function randomId63(): bigint {
  let id = 0n;
  while (id === 0n) id = randomBytes(8).readBigUInt64BE() & 0x7fffffffffffffffn;
  return id;
}
