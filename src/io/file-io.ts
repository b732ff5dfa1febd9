import fsp from 'node:fs/promises';
import type { FileKind, ReadLimits } from './limits.js';

/** Where metadata and data files are read from (and, for ICDC tables, written to). */
export interface FileIO {
  /**
   * Reads a whole regular file, at most the limit of its `kind` (FILE_TOO_LARGE past it;
   * NOT_A_FILE for a directory, FIFO, device or socket). Without a kind, the data-file limit.
   */
  read(location: string, kind?: FileKind): Promise<Buffer>;
  /**
   * Reads `length` bytes at `offset` of a regular file (one blob of a Puffin file), fewer when the
   * file ends first; `length` is held to the kind's limit. Absent: readRange() reads it whole.
   */
  readRange?(location: string, offset: number, length: number, kind?: FileKind): Promise<Buffer>;
  /**
   * Streams a whole file into a new local file (`wx`), under the kind's limit, without holding it
   * in memory; returns its size. Absent: copyToFile() reads it whole, then writes it.
   */
  copyToFile?(location: string, file: string, kind?: FileKind): Promise<number>;
  /** The bounds this FileIO reads under (absent: the process defaults). */
  readonly limits?: ReadLimits;
  exists(location: string): Promise<boolean>;
  /** Names (not full paths) of the objects directly under a directory location. */
  list(dirLocation: string): Promise<string[]>;
  /**
   * Write a whole object. With `ifAbsent`, fail with code ALREADY_EXISTS instead of replacing.
   * `unpublished`: nothing reads the object before a later write names it (a manifest under a
   * random name): a FileIO may then write it in place, not aside first.
   */
  write(location: string, data: Buffer, opts?: { ifAbsent?: boolean; unpublished?: boolean }): Promise<void>;
  /**
   * Read locations under `from` at `to` from now on, unless an explicit mapping covers them.
   * Used when a table was copied: its metadata still names the place it was written.
   */
  relocate?(from: string, to: string): void;
  /** Where a location is actually read from (after relocations and mappings), when that differs. */
  resolve?(location: string): string;
}

export function joinLocation(dir: string, name: string): string {
  return dir.endsWith('/') ? dir + name : `${dir}/${name}`;
}

export function parentLocation(loc: string): string {
  const i = loc.lastIndexOf('/');
  return i <= 0 ? loc : loc.slice(0, i);
}

export function baseName(loc: string): string {
  return loc.slice(loc.lastIndexOf('/') + 1);
}

/** `length` bytes at `offset` of a file (fewer when it ends first), by a ranged read where the FileIO has one. */
export async function readRange(io: FileIO, location: string, offset: number, length: number, kind?: FileKind): Promise<Buffer> {
  if (io.readRange) return io.readRange(location, offset, length, kind);
  return (await io.read(location, kind)).subarray(offset, offset + length);
}

/** Copies a file to a new local file, streamed where the FileIO can (an S3 object is never held whole). */
export async function copyToFile(io: FileIO, location: string, file: string, kind?: FileKind): Promise<number> {
  if (io.copyToFile) return io.copyToFile(location, file, kind);
  const data = await io.read(location, kind);
  await fsp.writeFile(file, data, { flag: 'wx' });
  return data.length;
}
