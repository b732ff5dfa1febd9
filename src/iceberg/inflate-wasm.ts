import { INFLATE_WASM_BASE64 } from './inflate-wasm-module.js';

/**
 * Raw inflate with libdeflate compiled to WebAssembly (wasm/inflate.c, built by
 * scripts/build-inflate-wasm.sh): for the small Avro blocks of manifests it takes about two thirds of
 * the CPU of Node's zlib, which spends most of a ~500-byte block building its Huffman tables.
 *
 * libdeflate inflates whole buffers: the output must fit the room it is given. Linear memory
 * holds the output region at its start and the input after it; the output region starts at
 * 64 KB and doubles when a block needs more, up to MAX_OUTPUT. WebAssembly memory never shrinks,
 * so larger blocks (and inputs over MAX_INPUT) are not taken here: `inflate` answers
 * `UNSUITED` and the caller uses zlib, which streams.
 */

/** Largest output region (bytes): WebAssembly memory never shrinks, so a hostile block must not grow it far. */
const MAX_OUTPUT = 8 * 1024 * 1024;
/** Largest input taken (bytes). */
const MAX_INPUT = 2 * 1024 * 1024;
const PAGE = 65536;

/** The output would exceed the room allowed: the caller's limit, or MAX_OUTPUT (see UNSUITED). */
export const OUTPUT_TOO_LARGE = -3;
/** Corrupt or truncated deflate data. */
export const BAD_DATA = -1;
/** Not taken here (input over MAX_INPUT, or output over MAX_OUTPUT below the caller's limit): use zlib. */
export const UNSUITED = -4;

interface Exports {
  memory: WebAssembly.Memory;
  __heap_base: WebAssembly.Global;
  inflate(inPtr: number, inLen: number, outPtr: number, outCap: number): number;
}

export class WasmInflater {
  private readonly exports: Exports;
  private readonly base: number;
  private outCap = PAGE;
  private inCap = PAGE;
  /** A Buffer over all of linear memory, and one over the output region: remade when memory grows (its buffer is detached then). */
  private heap!: Buffer;
  /** The output region; valid until the next call. */
  output!: Buffer;

  constructor() {
    const module = new WebAssembly.Module(Buffer.from(INFLATE_WASM_BASE64, 'base64'));
    if (WebAssembly.Module.imports(module).length !== 0) throw new Error('the inflate module must import nothing');
    this.exports = new WebAssembly.Instance(module, {}).exports as unknown as Exports;
    // Past the module's own data and stack, 64-byte aligned.
    this.base = (Number(this.exports.__heap_base.value) + 63) & ~63;
    this.ensure();
  }

  /** Grows memory to hold the output and input regions at their current sizes, and remakes the views. */
  private ensure(): void {
    const memory = this.exports.memory;
    const need = this.base + this.outCap + this.inCap;
    if (memory.buffer.byteLength < need) memory.grow(Math.ceil((need - memory.buffer.byteLength) / PAGE));
    this.heap = Buffer.from(memory.buffer);
    this.output = Buffer.from(memory.buffer, this.base, this.outCap);
  }

  /**
   * Inflates data[start, end) into `this.output`: the output length, or OUTPUT_TOO_LARGE (more
   * than `maxOutputLength` bytes), BAD_DATA, or UNSUITED.
   */
  inflate(data: Buffer, start: number, end: number, maxOutputLength: number): number {
    const inLen = end - start;
    if (inLen > MAX_INPUT) return UNSUITED;
    if (inLen > this.inCap) {
      this.inCap = Math.ceil(inLen / PAGE) * PAGE;
      this.ensure();
    }
    // One byte of room past the limit tells "exactly the limit" from "more".
    const wanted = maxOutputLength + 1;
    let copiedTo = -1;
    for (;;) {
      // The input sits right after the output region (which moves it when it grows).
      const inPtr = this.base + this.outCap;
      if (copiedTo !== inPtr) {
        data.copy(this.heap, inPtr, start, end);
        copiedTo = inPtr;
      }
      const room = Math.min(this.outCap, wanted);
      const n = this.exports.inflate(inPtr, inLen, this.base, room);
      if (n >= 0) return n > maxOutputLength ? OUTPUT_TOO_LARGE : n;
      if (n !== OUTPUT_TOO_LARGE) return BAD_DATA;
      if (room >= wanted) return OUTPUT_TOO_LARGE;
      if (this.outCap >= MAX_OUTPUT) return UNSUITED;
      this.outCap = Math.min(this.outCap * 2, MAX_OUTPUT);
      this.ensure();
    }
  }
}
