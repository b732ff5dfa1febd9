import type { Cursor } from './avro-decoder.js';
import zlib from 'node:zlib';
import { BAD_DATA, OUTPUT_TOO_LARGE, WasmInflater } from './inflate-wasm.js';

/**
 * Raw inflate of Avro deflate blocks, synchronously, at the lowest cost per block this process
 * can get. Three engines, the first that passes its self-test at load is used:
 *
 * 1. libdeflate in WebAssembly (src/iceberg/inflate-wasm.ts): about two thirds of zlib's CPU on the
 *    ~500-byte one-entry blocks PyIceberg writes. It takes blocks whose output fits 8 MB; larger
 *    ones (and any block it cannot take) go to the next engine.
 * 2. One native zlib handle, kept and driven directly. `zlib.inflateRawSync` builds a Transform
 *    stream and a native zlib state for every call (≈ 6–10 µs), which dominates manifests written
 *    with one entry per Avro block. Here `handle.writeSync(flush, in, inOff, inLen, out, outOff,
 *    outLen)` inflates into a reused output buffer (grown when a block needs more, up to the
 *    caller's limit), the handle's write state says how much input and output are left, and
 *    `reset()` readies it for the next block. Errors arrive synchronously through the handle's
 *    `onerror`, as Node's own synchronous path receives them. (Node's `_processChunk` on top of
 *    the same handle added listeners, slices and an output allocation per call: ~25 % more.)
 * 3. `zlib.inflateRawSync`.
 *
 * Engines 1 and 2 are checked once (known blocks, inflated twice, must come back right; a limit
 * must be refused; corrupt data must fail); engine 2 uses Node internals, and the module falls
 * back to engine 3 for good when anything about them differs. A zlib handle that failed on a
 * block is closed and replaced, never reused.
 */
interface NativeHandle {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
  close(): void;
  reset(): void;
  onerror: (message: string, errno: number, code: string) => void;
}
interface EngineInternals {
  _handle: NativeHandle | null;
  _writeState: Uint32Array;
}

/** zlib's verdict on a block (corrupt or truncated data), with zlib's code (Z_DATA_ERROR, Z_BUF_ERROR, …). */
class InflateError extends Error {
  constructor(message: string, readonly code: string, readonly errno: number) {
    super(message);
  }
}

/** The output would pass the caller's limit (the code zlib.inflateRawSync uses for it). */
class TooLarge extends Error {
  readonly code = 'ERR_BUFFER_TOO_LARGE';
}

let native: NativeHandle | null = null;
let state: Uint32Array | null = null;
let failure: InflateError | null = null;
let out = Buffer.allocUnsafeSlow(64 * 1024);
let fastPath = true;

function newEngine(): void {
  const e = zlib.createInflateRaw() as unknown as EngineInternals;
  const h = e._handle;
  if (!h || typeof h.writeSync !== 'function' || typeof h.reset !== 'function' || typeof h.close !== 'function' || !(e._writeState instanceof Uint32Array)) {
    throw new Error('zlib internals differ');
  }
  // The stream object is dropped: only its native handle and write state are used from here on.
  h.onerror = (message, errno, code) => {
    failure = new InflateError(message, code, errno);
  };
  native = h;
  state = e._writeState;
}

function discardEngine(): void {
  try {
    native?.close();
  } catch {
    // already closed
  }
  native = null;
  state = null;
}

/** Inflates data[start, end) into `out`; returns the output length (the output is out[0, length)). */
function fastInflate(data: Buffer, maxOutputLength: number, start = 0, end = data.length): number {
  if (!native) newEngine();
  const h = native!;
  const st = state!;
  let inOff = start;
  let inLeft = end - start;
  let outOff = 0;
  let ok = false;
  failure = null;
  try {
    for (;;) {
      const room = out.length - outOff;
      h.writeSync(zlib.constants.Z_FINISH, data, inOff, inLeft, out, outOff, room);
      if (failure) throw failure;
      const outLeft = st[0]!;
      const inLeftAfter = st[1]!;
      outOff += room - outLeft;
      inOff += inLeft - inLeftAfter;
      inLeft = inLeftAfter;
      if (outOff > maxOutputLength) throw new TooLarge(`Cannot create a Buffer larger than ${maxOutputLength} bytes`);
      if (outLeft !== 0) break; // Z_STREAM_END (zlib reports a truncated stream as an error)
      // Output full: a larger buffer (never more than one byte past the limit), and go on.
      const size = Math.min(out.length * 2, maxOutputLength + 1);
      if (size <= outOff) throw new TooLarge(`Cannot create a Buffer larger than ${maxOutputLength} bytes`);
      const bigger = Buffer.allocUnsafeSlow(size);
      out.copy(bigger, 0, 0, outOff);
      out = bigger;
    }
    h.reset();
    ok = true;
    inflated = out;
    return outOff;
  } finally {
    if (!ok) discardEngine();
    // A large block's buffer is not kept for ever (`inflated` still holds it until the next call).
    if (out.length > 1024 * 1024) out = Buffer.allocUnsafeSlow(64 * 1024);
  }
}

/** The buffer the last fastInflate wrote into. */
let inflated: Buffer = out;

/** fastInflate's output as a view (for the self-test). */
function fastInflated(data: Buffer, max: number, start?: number, end?: number): Buffer {
  const n = fastInflate(data, max, start, end);
  return inflated.subarray(0, n);
}

function selfTest(): boolean {
  try {
    const sample = Buffer.from('ips inflate self-test '.repeat(50));
    const large = Buffer.alloc(200 * 1024, 7);
    const packed = zlib.deflateRawSync(sample);
    const packedLarge = zlib.deflateRawSync(large);
    for (let i = 0; i < 2; i++) {
      if (!fastInflated(packed, 1 << 20).equals(sample)) return false;
      if (!fastInflated(packedLarge, 1 << 20).equals(large)) return false;
    }
    let refused = false;
    try {
      fastInflate(packed, 10);
    } catch (err) {
      refused = (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
    }
    let corrupt = false;
    try {
      fastInflate(packed.subarray(0, packed.length >> 1), 1 << 20);
    } catch (err) {
      corrupt = err instanceof InflateError;
    }
    const padded = Buffer.concat([Buffer.from('xyz'), packed, Buffer.from('xyz')]);
    return refused && corrupt && fastInflated(padded, 1 << 20, 3, 3 + packed.length).equals(sample);
  } catch {
    return false;
  } finally {
    discardEngine();
  }
}

/**
 * Inflate a raw deflate block to at most `maxOutputLength` bytes (beyond: an error with code
 * ERR_BUFFER_TOO_LARGE, as zlib.inflateRawSync throws; corrupt data: zlib's error).
 *
 * The result is borrowed: it may share the engine's output buffer, so it is valid only until the
 * next call. Callers that keep it copy it (decompressAvroFile does; the record decoders copy what
 * they keep out of a block anyway).
 */
export function inflateRawBlock(data: Buffer, maxOutputLength: number): Buffer {
  const c = { buf: data, pos: 0, end: 0 };
  inflateRawInto(data, 0, data.length, maxOutputLength, c);
  return c.buf.subarray(0, c.end);
}

/**
 * The same for data[start, end), into a cursor: `c.buf` becomes the output (borrowed, as above; it
 * may be longer than the output), `c.pos` 0 and `c.end` the output length. No Buffer view is made
 * of the input or the output: with one Avro block per manifest entry, each was a measurable cost.
 */
export function inflateRawInto(data: Buffer, start: number, end: number, maxOutputLength: number, c: Cursor): void {
  if (wasm !== null) {
    const n = wasmInflate(wasm, data, start, end, maxOutputLength);
    if (n >= 0) {
      c.buf = wasm.output;
      c.pos = 0;
      c.end = n;
      return;
    }
    // Otherwise not taken there: zlib below.
  }
  if (fastPath) {
    try {
      const n = fastInflate(data, maxOutputLength, start, end);
      c.buf = inflated;
      c.pos = 0;
      c.end = n;
      return;
    } catch (e) {
      if (e instanceof InflateError || e instanceof TooLarge) throw e; // zlib's own verdict on the data, or the limit
      fastPath = false; // anything else: the internals misbehave; use the public API from now on
    }
  }
  const input = data.subarray(start, end);
  const outBuf = zlib.inflateRawSync(input, { chunkSize: Math.min(65536, Math.max(1024, input.length * 4)), maxOutputLength });
  c.buf = outBuf;
  c.pos = 0;
  c.end = outBuf.length;
}

/**
 * data[start, end) inflated by the WebAssembly engine alone, for a caller that has a slower way
 * for what it does not take (decompressAvroFile: libuv's pool): the output (borrowed, as
 * inflateRawBlock's), or null when the engine is off or does not take the block (over 8 MB of
 * output, or memory refused). Corrupt data and the limit throw, as zlib's would. At most 8 MB of
 * output are inflated on the calling thread before null (a bomb's first 8 MB: a few ms).
 */
export function inflateRawBlockInWasm(data: Buffer, start: number, end: number, maxOutputLength: number): Buffer | null {
  if (wasm === null) return null;
  const n = wasmInflate(wasm, data, start, end, maxOutputLength);
  return n >= 0 ? wasm.output.subarray(0, n) : null;
}

/**
 * The WebAssembly engine's answer: the output length, or -1 when the block is not taken there
 * (too large for it, or memory for it could not be had). Corrupt data and the limit throw, as
 * zlib's would.
 */
function wasmInflate(w: WasmInflater, data: Buffer, start: number, end: number, maxOutputLength: number): number {
  let n: number;
  try {
    n = w.inflate(data, start, end, maxOutputLength);
  } catch {
    return -1; // e.g. memory.grow refused: zlib streams the block instead
  }
  if (n >= 0) return n;
  if (n === OUTPUT_TOO_LARGE) throw new TooLarge(`Cannot create a Buffer larger than ${maxOutputLength} bytes`);
  if (n === BAD_DATA) throw new InflateError('invalid deflate data (corrupt or truncated)', 'Z_DATA_ERROR', zlib.constants.Z_DATA_ERROR);
  return -1;
}

/** The WebAssembly engine, checked like the zlib handle: known blocks, the limit, corrupt data, offsets. */
function wasmEngine(): WasmInflater | null {
  try {
    const w = new WasmInflater();
    const sample = Buffer.from('ips inflate self-test '.repeat(50));
    // Over the engine's first output region (64 KB), so that growing it is checked too.
    const large = Buffer.alloc(200 * 1024, 7);
    const packed = zlib.deflateRawSync(sample);
    const packedLarge = zlib.deflateRawSync(large);
    const inflate = (b: Buffer, max: number, start = 0, end = b.length): Buffer | number => {
      const n = w.inflate(b, start, end, max);
      return n < 0 ? n : Buffer.from(w.output.subarray(0, n));
    };
    for (let i = 0; i < 2; i++) {
      if (!sample.equals(inflate(packed, 1 << 20) as Buffer)) return null;
      if (!large.equals(inflate(packedLarge, 1 << 20) as Buffer)) return null;
    }
    if (inflate(packed, sample.length - 1) !== OUTPUT_TOO_LARGE) return null;
    if (!sample.equals(inflate(packed, sample.length) as Buffer)) return null;
    if (inflate(packed.subarray(0, packed.length >> 1), 1 << 20) !== BAD_DATA) return null;
    const padded = Buffer.concat([Buffer.from('xyz'), packed, Buffer.from('xyz')]);
    return sample.equals(inflate(padded, 1 << 20, 3, 3 + packed.length) as Buffer) ? w : null;
  } catch {
    return null;
  }
}

fastPath = selfTest();
const wasm: WasmInflater | null = process.env.IPS_INFLATE === 'zlib' ? null : wasmEngine();

/**
 * Which engine inflates blocks (for tests and benchmarks): 'libdeflate-wasm' (blocks it cannot
 * take still go to zlib), 'zlib-handle' or 'zlib'. IPS_INFLATE=zlib at start leaves the
 * WebAssembly engine out (to compare the two).
 */
export function inflateEngine(): 'libdeflate-wasm' | 'zlib-handle' | 'zlib' {
  return wasm !== null ? 'libdeflate-wasm' : fastPath ? 'zlib-handle' : 'zlib';
}

/** Whether the reused zlib handle is in use (for tests and benchmarks). */
export function fastInflateInUse(): boolean {
  return fastPath;
}
