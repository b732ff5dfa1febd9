import crypto from 'node:crypto';
import fsSync, { constants as fsConstants, type Stats } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IpsError, describeError } from '../errors.js';
import type { FileIO } from './file-io.js';
import { currentReadLimits, fileTooLarge, limitOf, type FileKind, type ReadLimits } from './limits.js';

/** `file:///x`, `file:/x` (how Java writes local URIs) and plain paths. */
export function localPath(location: string): string {
  if (location.startsWith('file://')) {
    try {
      return fileURLToPath(location);
    } catch (e) {
      // file://otherhost/… names another machine's file; malformed %-escapes are no path either.
      throw new IpsError('INVALID_LOCATION', `${location} is not a local file URI (file:///path, or file://localhost/path): ${describeError(e)}`, { cause: e });
    }
  }
  if (location.startsWith('file:')) return location.slice('file:'.length);
  return path.resolve(location);
}

/** Files up to this size are written with blocking calls (see LocalFileIO.write). */
const SYNC_WRITE_MAX_BYTES = 1024 * 1024;
/** Files up to this size are read with blocking calls (see LocalFileIO.readSmall). */
const SYNC_READ_MAX_BYTES = 64 * 1024;

function notFound(e: unknown): boolean {
  return (e as NodeJS.ErrnoException)?.code === 'ENOENT';
}

function kindOfNode(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

function notARegularFile(location: string, kind: FileKind, st: Stats): IpsError {
  return new IpsError('NOT_A_FILE', `${location} is ${kindOfNode(st)}, not a regular file: a table's ${kind} file must be a regular file`, { details: { location, kind } });
}

/**
 * Opens a local table file without blocking (opening a FIFO for reading would otherwise wait
 * for a writer for ever) and keeps it only if the open handle is a regular file within `limit`:
 * a device or directory is never a table's file. Table metadata names these paths, so they are
 * hostile input. The caller owns the descriptor.
 */
export function openRegularFile(location: string, kind: FileKind, limit: number): { fd: number; size: number } {
  let fd: number;
  try {
    fd = fsSync.openSync(localPath(location), fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch (e) {
    if (notFound(e)) throw new IpsError('FILE_NOT_FOUND', `file not found: ${location}`, { cause: e });
    throw new IpsError('IO_ERROR', `cannot read ${location}: ${describeError(e)}`, { cause: e });
  }
  try {
    const st = fsSync.fstatSync(fd);
    if (!st.isFile()) throw notARegularFile(location, kind, st);
    if (st.size > limit) throw fileTooLarge(location, kind, st.size, limit);
    return { fd, size: st.size };
  } catch (e) {
    fsSync.closeSync(fd);
    if (e instanceof IpsError) throw e;
    throw new IpsError('IO_ERROR', `cannot read ${location}: ${describeError(e)}`, { cause: e });
  }
}

export class LocalFileIO implements FileIO {
  constructor(private readonly ownLimits?: ReadLimits) {}

  get limits(): ReadLimits {
    return this.ownLimits ?? currentReadLimits();
  }

  /**
   * Opens without blocking (a FIFO would otherwise wait for a writer for ever), refuses anything
   * but a regular file by the open handle's own stat, and reads at most the kind's limit.
   */
  async read(location: string, kind: FileKind = 'data'): Promise<Buffer> {
    const limit = limitOf(this.limits, kind);
    const p = localPath(location);
    const small = this.readSmall(location, kind, limit);
    if (small !== null) return small;
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(p, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    } catch (e) {
      if (notFound(e)) throw new IpsError('FILE_NOT_FOUND', `file not found: ${location}`, { cause: e });
      throw new IpsError('IO_ERROR', `cannot read ${location}: ${describeError(e)}`, { cause: e });
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) {
        throw notARegularFile(location, kind, st);
      }
      if (st.size > limit) throw fileTooLarge(location, kind, st.size, limit);
      // Read what stat promised, then on to the end (a file may grow), never past the limit.
      const chunks: Buffer[] = [];
      let total = 0;
      let want = Math.max(st.size, 4096);
      for (;;) {
        const buf = Buffer.allocUnsafe(Math.min(want, limit + 1 - total));
        const { bytesRead } = await fh.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        chunks.push(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead));
        total += bytesRead;
        if (total > limit) throw fileTooLarge(location, kind, null, limit);
        want = 64 * 1024;
      }
      return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
    } catch (e) {
      if (e instanceof IpsError) throw e;
      throw new IpsError('IO_ERROR', `cannot read ${location}: ${describeError(e)}`, { cause: e });
    } finally {
      await fh.close();
    }
  }

  /**
   * A file of at most SYNC_READ_MAX_BYTES (a version hint, a small metadata file), read with
   * blocking calls under the same rules as read(); null when it is larger (read() then reads it
   * through the threadpool). Five threadpool round trips cost more CPU than reading it.
   */
  private readSmall(location: string, kind: FileKind, limit: number): Buffer | null {
    const { fd, size } = openRegularFile(location, kind, limit);
    try {
      if (size > SYNC_READ_MAX_BYTES) return null;
      // Read what stat promised, then on to the end (a file may grow), never past the limit.
      const chunks: Buffer[] = [];
      let total = 0;
      let want = Math.max(size + 1, 4096);
      for (;;) {
        const buf = Buffer.allocUnsafe(Math.min(want, limit + 1 - total));
        const bytesRead = fsSync.readSync(fd, buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        chunks.push(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead));
        total += bytesRead;
        if (total > limit) throw fileTooLarge(location, kind, null, limit);
        want = 64 * 1024;
      }
      return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
    } catch (e) {
      if (e instanceof IpsError) throw e;
      throw new IpsError('IO_ERROR', `cannot read ${location}: ${describeError(e)}`, { cause: e });
    } finally {
      fsSync.closeSync(fd);
    }
  }

  /** Opened without blocking and refused unless a regular file, as read() does; one positioned read. */
  async readRange(location: string, offset: number, length: number, kind: FileKind = 'data'): Promise<Buffer> {
    const limit = limitOf(this.limits, kind);
    if (length > limit) throw fileTooLarge(location, kind, length, limit);
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(localPath(location), fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    } catch (e) {
      if (notFound(e)) throw new IpsError('FILE_NOT_FOUND', `file not found: ${location}`, { cause: e });
      throw new IpsError('IO_ERROR', `cannot read ${location}: ${describeError(e)}`, { cause: e });
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw notARegularFile(location, kind, st);
      const buf = Buffer.allocUnsafe(Math.max(0, Math.min(length, st.size - offset)));
      let got = 0;
      while (got < buf.length) {
        const { bytesRead } = await fh.read(buf, got, buf.length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return buf.subarray(0, got);
    } catch (e) {
      if (e instanceof IpsError) throw e;
      throw new IpsError('IO_ERROR', `cannot read ${location}: ${describeError(e)}`, { cause: e });
    } finally {
      await fh.close();
    }
  }

  // exists and list are one blocking call each: a stat or a directory read into the page cache
  // costs microseconds, a threadpool round trip more CPU than that (a prepare checks its batch's
  // files and lists its table's metadata directory).
  async exists(location: string): Promise<boolean> {
    try {
      fsSync.accessSync(localPath(location));
      return true;
    } catch {
      return false;
    }
  }

  async list(dirLocation: string): Promise<string[]> {
    try {
      return fsSync.readdirSync(localPath(dirLocation));
    } catch (e) {
      if (notFound(e)) return [];
      throw new IpsError('IO_ERROR', `cannot list ${dirLocation}: ${describeError(e)}`, { cause: e });
    }
  }

  async write(location: string, data: Buffer, opts?: { ifAbsent?: boolean; unpublished?: boolean }): Promise<void> {
    const p = localPath(location);
    // Not read before something names it: created in place, exclusively (O_EXCL: an existing file
    // is never replaced), without the temp file and its link and unlink.
    if (opts?.ifAbsent && opts.unpublished && data.length <= SYNC_WRITE_MAX_BYTES) {
      try {
        this.writeAsideSync(p, data);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new IpsError('ALREADY_EXISTS', `${location} already exists`);
        try {
          fsSync.unlinkSync(p); // what a failed write (a full disk) left of it
        } catch {
          /* never created */
        }
        throw new IpsError('IO_ERROR', `cannot write ${location}: ${describeError(e)}`, { cause: e });
      }
      return;
    }
    const tmp = `${p}.${process.pid}.${crypto.randomUUID()}.tmp`;
    // A small new file (every ICDC metadata file, manifest list and manifest of a batch) is
    // written with blocking calls: write, link and unlink into the page cache take about 50 µs of
    // CPU together, the same through fs/promises' threadpool about 300 µs (measured here). Not a
    // replacing rename: ext4 starts writing the new file's blocks out within rename(2) when it
    // replaces a file (auto_da_alloc), about 1 ms the event loop would wait (see below). Large
    // files keep the threadpool.
    if (opts?.ifAbsent && data.length <= SYNC_WRITE_MAX_BYTES) {
      this.writeAsideSync(tmp, data);
      try {
        fsSync.linkSync(tmp, p); // as below: fails if the target exists
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new IpsError('ALREADY_EXISTS', `${location} already exists`);
        throw new IpsError('IO_ERROR', `cannot write ${location}: ${describeError(e)}`, { cause: e });
      } finally {
        try {
          fsSync.unlinkSync(tmp);
        } catch {
          /* already gone */
        }
      }
      return;
    }
    // A replacing write of a small file: written aside with blocking calls, renamed over the old
    // one on the threadpool.
    if (data.length <= SYNC_WRITE_MAX_BYTES) this.writeAsideSync(tmp, data);
    else await this.writeAside(tmp, data);
    if (opts?.ifAbsent) {
      // Written aside, then linked: link(2) fails if the target exists, so two writers cannot both win.
      try {
        await fs.link(tmp, p);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new IpsError('ALREADY_EXISTS', `${location} already exists`);
        throw new IpsError('IO_ERROR', `cannot write ${location}: ${describeError(e)}`, { cause: e });
      } finally {
        await fs.unlink(tmp).catch(() => {});
      }
      return;
    }
    await fs.rename(tmp, p);
  }

  /** writeAside with blocking calls (small files only, see write). */
  private writeAsideSync(file: string, data: Buffer): void {
    const dir = path.dirname(file);
    if (!this.knownDirs.has(dir)) {
      fsSync.mkdirSync(dir, { recursive: true });
      if (this.knownDirs.size >= 10_000) this.knownDirs.clear();
      this.knownDirs.add(dir);
    }
    try {
      fsSync.writeFileSync(file, data, { flag: 'wx' });
    } catch (e) {
      if (!notFound(e)) throw e;
      this.knownDirs.delete(dir);
      fsSync.mkdirSync(dir, { recursive: true });
      fsSync.writeFileSync(file, data, { flag: 'wx' });
      this.knownDirs.add(dir);
    }
  }

  /** Directories this instance created or found: an ICDC table gets five files a batch in one directory. */
  private readonly knownDirs = new Set<string>();

  /** Writes a new file, creating its directory the first time (or again, when it was removed since). */
  private async writeAside(file: string, data: Buffer): Promise<void> {
    const dir = path.dirname(file);
    if (!this.knownDirs.has(dir)) {
      await fs.mkdir(dir, { recursive: true });
      if (this.knownDirs.size >= 10_000) this.knownDirs.clear();
      this.knownDirs.add(dir);
    }
    try {
      await fs.writeFile(file, data, { flag: 'wx' });
    } catch (e) {
      if (!notFound(e)) throw e;
      this.knownDirs.delete(dir);
      await fs.mkdir(dir, { recursive: true });
      await fs.writeFile(file, data, { flag: 'wx' });
      this.knownDirs.add(dir);
    }
  }
}
