import zlib from 'node:zlib';

/**
 * Raw inflate of one small deflate block, synchronously, without the cost of a new zlib stream per
 * call. `zlib.inflateRawSync` builds a Transform stream and a native zlib state for every call
 * (≈ 6–10 µs), which dominates manifests written with one entry per Avro block (PyIceberg). Here
 * one engine is kept and reset between blocks, the way minizlib (the zlib wrapper of npm's tar)
 * reuses its handle: Node's synchronous `_processChunk` closes the native handle when it is done,
 * so `close` is made a no-op on the handle and the handle is put back and reset afterwards.
 *
 * These are Node internals, so the engine checks itself once (a known block, inflated twice, must
 * come back right) and the module falls back to `zlib.inflateRawSync` for good when anything about
 * them differs. An engine that failed on a block (corrupt data, output over the limit) is closed
 * and replaced, never reused.
 */
interface NativeHandle {
  close(): void;
  reset(): void;
}
interface EngineInternals {
  _handle: NativeHandle | null;
  _maxOutputLength: number;
  _processChunk(chunk: Buffer, flushFlag: number): Buffer;
  removeAllListeners(event: string): unknown;
}

let engine: EngineInternals | null = null;
let native: NativeHandle | null = null;
let nativeClose: (() => void) | null = null;
let fastPath = true;
const ignore = (): void => {};

function newEngine(): void {
  const e = zlib.createInflateRaw({ chunkSize: 16 * 1024 }) as unknown as EngineInternals;
  const h = e._handle;
  if (!h || typeof h.close !== 'function' || typeof h.reset !== 'function' || typeof e._processChunk !== 'function' || typeof e._maxOutputLength !== 'number') {
    throw new Error('zlib internals differ');
  }
  // A failed block destroys the stream, which emits 'error' on a later tick: keep a listener.
  (e as unknown as zlib.InflateRaw).on('error', ignore);
  nativeClose = h.close.bind(h);
  h.close = () => {};
  engine = e;
  native = h;
}

function discardEngine(): void {
  try {
    nativeClose?.();
  } catch {
    // already closed
  }
  engine = null;
  native = null;
  nativeClose = null;
}

function fastInflate(data: Buffer, maxOutputLength: number): Buffer {
  if (!engine) newEngine();
  const e = engine!;
  e._maxOutputLength = maxOutputLength;
  let ok = false;
  try {
    const out = e._processChunk(data, zlib.constants.Z_FINISH);
    ok = true;
    return out;
  } finally {
    if (ok) {
      // _processChunk adds an 'error' listener per call.
      e.removeAllListeners('error');
      (e as unknown as zlib.InflateRaw).on('error', ignore);
      e._handle = native;
      try {
        native!.reset();
      } catch {
        discardEngine();
      }
    } else {
      discardEngine();
    }
  }
}

function selfTest(): boolean {
  try {
    const sample = Buffer.from('ips inflate self-test '.repeat(50));
    const packed = zlib.deflateRawSync(sample);
    for (let i = 0; i < 2; i++) if (!fastInflate(packed, 1 << 20).equals(sample)) return false;
    let refused = false;
    try {
      fastInflate(packed, 10);
    } catch (err) {
      refused = (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
    }
    return refused && fastInflate(packed, 1 << 20).equals(sample);
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
  if (fastPath) {
    try {
      return fastInflate(data, maxOutputLength);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== undefined) throw e; // zlib's own verdict on the data
      fastPath = false; // anything else: the internals misbehave; use the public API from now on
    }
  }
  return zlib.inflateRawSync(data, { chunkSize: Math.min(65536, Math.max(1024, data.length * 4)), maxOutputLength });
}

fastPath = selfTest();

/** Whether the reused engine is in use (for tests and benchmarks). */
export function fastInflateInUse(): boolean {
  return fastPath;
}
