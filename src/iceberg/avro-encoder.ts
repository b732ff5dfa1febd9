/** Longs of smaller magnitude take the double path (AvroEncoder.int). */
const SMALL = 2 ** 52;
const SMALL_BIG = 2n ** 52n;

/**
 * A growable buffer for Avro binary encoding by hand (the spec's "Binary Encoding"): zig-zag
 * varints for int and long, length-prefixed UTF-8 and bytes. For the hot writers (manifest
 * entries) where avsc's generic path made a Buffer per long and an object per map entry.
 */
export class AvroEncoder {
  buf: Buffer;
  pos = 0;

  constructor(initial = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /**
   * An int, or a long of magnitude below 2^52 (its zig-zag value, up to 2^53, is then exact in a
   * double), as a zig-zag varint.
   */
  int(v: number): void {
    this.ensure(10);
    // Zig-zag without 32-bit operators, which would wrap a long past 2^31.
    let z = v >= 0 ? v * 2 : -v * 2 - 1;
    while (z >= 0x80) {
      this.buf[this.pos++] = (z % 0x80) | 0x80;
      z = Math.floor(z / 0x80);
    }
    this.buf[this.pos++] = z;
  }

  /** A 64-bit long, exact for any bigint in range. */
  long(v: bigint | number): void {
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v)) throw new RangeError(`long ${v} is not an exact integer`);
      if (v > -SMALL && v < SMALL) {
        this.int(v);
        return;
      }
      v = BigInt(v);
    } else if (v > -SMALL_BIG && v < SMALL_BIG) {
      this.int(Number(v));
      return;
    }
    if (v < -(2n ** 63n) || v >= 2n ** 63n) throw new RangeError(`long ${v} out of range`);
    this.ensure(10);
    let z = BigInt.asUintN(64, (v << 1n) ^ (v >> 63n));
    while (z >= 0x80n) {
      this.buf[this.pos++] = Number(z & 0x7fn) | 0x80;
      z >>= 7n;
    }
    this.buf[this.pos++] = Number(z);
  }

  bytes(b: Uint8Array): void {
    this.int(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  string(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    this.int(n);
    this.ensure(n);
    this.pos += this.buf.write(s, this.pos, n, 'utf8');
  }

  /** Bytes as they are (an encoding made elsewhere, a fixed). */
  raw(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** The encoded bytes (a view) and a fresh start; the view stays valid until the next write. */
  take(): Buffer {
    const out = this.buf.subarray(0, this.pos);
    this.pos = 0;
    return out;
  }
}
