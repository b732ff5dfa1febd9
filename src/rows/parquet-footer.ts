import { IpsError, describeError, isIpsError } from '../errors.js';
import type { DataFile } from '../iceberg/manifest.js';
import { readRange, type FileIO } from '../io/file-io.js';

/**
 * The footer of a Parquet file a table names, checked before the SQL engine parses it: a Thrift
 * structure whose lists can claim millions of elements of one byte each (an empty struct), which
 * a reader turns into millions of objects (hyparquet: 3 GB of heap for a 16 MB footer; DuckDB's
 * Thrift reader likewise, outside its memory limit). Walked here without building anything.
 */
export const FOOTER_BOUNDS = Object.freeze({
  bytes: 16 * 1024 * 1024,
  schemaElements: 100_000,
  rowGroups: 100_000,
  columnChunks: 200_000,
  keyValues: 100_000,
});

/** The tail read first: most footers fit, so one request reads them. */
const TAIL_BYTES = 64 * 1024;
const MAGIC = 0x31524150; // "PAR1", little-endian
const MAX_DEPTH = 32;

// Thrift compact protocol types.
const T = { STOP: 0, TRUE: 1, FALSE: 2, BYTE: 3, I16: 4, I32: 5, I64: 6, DOUBLE: 7, BINARY: 8, LIST: 9, SET: 10, MAP: 11, STRUCT: 12, UUID: 13 } as const;

class Corrupt extends Error {}

/** A forward-only reader of Thrift compact bytes that skips what it is not asked for. */
class ThriftWalker {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}

  private byte(): number {
    if (this.pos >= this.buf.length) throw new Corrupt('it ends in the middle of a value');
    return this.buf[this.pos++]!;
  }

  varint(): bigint {
    let v = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      const b = this.byte();
      v |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return v;
    }
    throw new Corrupt('a varint runs past ten bytes');
  }

  zigzag(): bigint {
    const v = this.varint();
    return (v >> 1n) ^ -(v & 1n);
  }

  /** The next field's (id, type), or null at the struct's end. */
  field(lastId: number): { id: number; type: number } | null {
    const b = this.byte();
    const type = b & 0x0f;
    if (type === T.STOP) return null;
    const delta = b >> 4;
    return { id: delta === 0 ? Number(this.zigzag()) : lastId + delta, type };
  }

  /** A list or set header: (size, element type); a size the remaining bytes cannot hold is refused. */
  list(): { size: number; type: number } {
    const b = this.byte();
    const size = (b >> 4) === 15 ? Number(this.varint()) : b >> 4;
    if (size > this.buf.length - this.pos) throw new Corrupt(`a list claims ${size} elements in ${this.buf.length - this.pos} bytes`);
    return { size, type: b & 0x0f };
  }

  skip(type: number, depth = 0): void {
    if (depth > MAX_DEPTH) throw new Corrupt(`it nests deeper than ${MAX_DEPTH}`);
    switch (type) {
      case T.TRUE: case T.FALSE: return;
      case T.BYTE: this.byte(); return;
      case T.I16: case T.I32: case T.I64: this.varint(); return;
      case T.DOUBLE: this.bytes(8); return;
      case T.UUID: this.bytes(16); return;
      case T.BINARY: this.bytes(Number(this.varint())); return;
      case T.LIST: case T.SET: {
        const { size, type: el } = this.list();
        for (let i = 0; i < size; i++) this.skipElement(el, depth + 1);
        return;
      }
      case T.MAP: {
        const size = Number(this.varint());
        if (size === 0) return;
        if (size > this.buf.length - this.pos) throw new Corrupt(`a map claims ${size} entries in ${this.buf.length - this.pos} bytes`);
        const kv = this.byte();
        for (let i = 0; i < size; i++) {
          this.skipElement(kv >> 4, depth + 1);
          this.skipElement(kv & 0x0f, depth + 1);
        }
        return;
      }
      case T.STRUCT: {
        for (let f = this.field(0); f !== null; f = this.field(f.id)) this.skip(f.type, depth + 1);
        return;
      }
      default: throw new Corrupt(`unknown Thrift type ${type}`);
    }
  }

  /** An element of a list, set or map: there a boolean takes a byte of its own. */
  skipElement(type: number, depth: number): void {
    if (type === T.TRUE || type === T.FALSE) this.byte();
    else this.skip(type, depth);
  }

  private bytes(n: number): void {
    if (n < 0 || n > this.buf.length - this.pos) throw new Corrupt('a value runs past its end');
    this.pos += n;
  }
}

export interface FooterSummary { numRows: bigint; schemaElements: number; rowGroups: number; columnChunks: number; keyValues: number }

/**
 * Walks a FileMetaData struct (parquet.thrift: 2 schema, 3 num_rows, 4 row_groups, whose field 1
 * is the column chunks, 5 key_value_metadata); one that does not parse, or lists more than
 * FOOTER_BOUNDS, is CORRUPT_FILE (`where` names the file).
 */
export function summarizeFooter(footer: Buffer, where: string): FooterSummary {
  try {
    return walkFooter(footer);
  } catch (e) {
    if (!(e instanceof Corrupt)) throw e;
    throw new IpsError('CORRUPT_FILE', `${where}: its Parquet footer is not one to read: ${e.message}`);
  }
}

function walkFooter(footer: Buffer): FooterSummary {
  const w = new ThriftWalker(footer);
  const out: FooterSummary = { numRows: -1n, schemaElements: 0, rowGroups: 0, columnChunks: 0, keyValues: 0 };
  const bound = (what: keyof typeof FOOTER_BOUNDS, n: number) => {
    if (n > FOOTER_BOUNDS[what]) throw new Corrupt(`it lists ${n} ${what}, above the bound of ${FOOTER_BOUNDS[what]}`);
  };
  for (let f = w.field(0); f !== null; f = w.field(f.id)) {
    if (f.id === 3 && f.type === T.I64) {
      out.numRows = w.zigzag();
    } else if ((f.id === 2 || f.id === 5) && f.type === T.LIST) {
      const { size, type } = w.list();
      if (f.id === 2) bound('schemaElements', (out.schemaElements = size));
      else bound('keyValues', (out.keyValues = size));
      for (let i = 0; i < size; i++) w.skipElement(type, 1);
    } else if (f.id === 4 && f.type === T.LIST) {
      const { size, type } = w.list();
      bound('rowGroups', (out.rowGroups = size));
      if (size > 0 && type !== T.STRUCT) throw new Corrupt('its row groups are not structs');
      for (let i = 0; i < size; i++) {
        for (let g = w.field(0); g !== null; g = w.field(g.id)) {
          if (g.id === 1 && g.type === T.LIST) {
            const chunks = w.list();
            bound('columnChunks', (out.columnChunks += chunks.size));
            for (let j = 0; j < chunks.size; j++) w.skipElement(chunks.type, 3);
          } else {
            w.skip(g.type, 2);
          }
        }
      }
    } else {
      w.skip(f.type, 1);
    }
  }
  if (out.numRows < 0n) throw new Corrupt('it has no row count');
  return out;
}

function invalid(df: DataFile, why: string): IpsError {
  return new IpsError('INVALID_MANIFEST', `${df.filePath}: ${why}: the table's metadata does not describe its files`, {
    details: { file: df.filePath, file_size_in_bytes: df.fileSizeInBytes.toString() },
  });
}

/**
 * The row count a Parquet file's footer states, read by range from where the manifest entry's
 * file_size_in_bytes puts it (as Iceberg Java reads it: the size must be exact), without
 * staging the file. A footer that is not there (a wrong size, or not Parquet) is
 * INVALID_MANIFEST; one that does not parse, or lists more than FOOTER_BOUNDS, CORRUPT_FILE.
 */
export async function parquetFooterRowCount(io: FileIO, df: DataFile): Promise<bigint> {
  const size = Number(df.fileSizeInBytes);
  if (!Number.isSafeInteger(size) || size < 12) throw invalid(df, `file_size_in_bytes ${df.fileSizeInBytes} is no Parquet file's size`);
  const read = async (offset: number, length: number): Promise<Buffer> => {
    let got: Buffer;
    try {
      got = await readRange(io, df.filePath, offset, length, 'data');
    } catch (e) {
      if (isIpsError(e) && e.code !== 'FILE_NOT_FOUND') throw e;
      throw new IpsError('FILES_MISSING', `cannot read ${df.filePath}: ${describeError(e)}`, { cause: e });
    }
    if (got.length < length) throw invalid(df, `the file ends before byte ${size}, its file_size_in_bytes`);
    return got;
  };
  const tailStart = Math.max(0, size - TAIL_BYTES);
  let tail = await read(tailStart, size - tailStart);
  if (tail.readUInt32LE(tail.length - 4) !== MAGIC) throw invalid(df, `no Parquet footer ends at byte ${size} (its file_size_in_bytes)`);
  const length = tail.readUInt32LE(tail.length - 8);
  if (length > size - 12 || length > FOOTER_BOUNDS.bytes) {
    throw new IpsError('CORRUPT_FILE', `${df.filePath}: its Parquet footer claims ${length} bytes, more than ${length > FOOTER_BOUNDS.bytes ? `the bound of ${FOOTER_BOUNDS.bytes} on footers` : 'the file holds'}`);
  }
  if (length + 8 > tail.length) tail = Buffer.concat([await read(size - 8 - length, length + 8 - tail.length), tail]);
  return summarizeFooter(tail.subarray(tail.length - 8 - length, tail.length - 8), df.filePath).numRows;
}
