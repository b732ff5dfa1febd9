import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IpsError, describeError } from '../errors.js';
import type { FileIO } from './file-io.js';

/** `file:///x`, `file:/x` (how Java writes local URIs) and plain paths. */
export function localPath(location: string): string {
  if (location.startsWith('file://')) return fileURLToPath(location);
  if (location.startsWith('file:')) return location.slice('file:'.length);
  return path.resolve(location);
}

function notFound(e: unknown): boolean {
  return (e as NodeJS.ErrnoException)?.code === 'ENOENT';
}

export class LocalFileIO implements FileIO {
  async read(location: string): Promise<Buffer> {
    try {
      return await fs.readFile(localPath(location));
    } catch (e) {
      if (notFound(e)) throw new IpsError('FILE_NOT_FOUND', `file not found: ${location}`, { cause: e });
      throw new IpsError('IO_ERROR', `cannot read ${location}: ${describeError(e)}`, { cause: e });
    }
  }

  async exists(location: string): Promise<boolean> {
    try {
      await fs.access(localPath(location));
      return true;
    } catch {
      return false;
    }
  }

  async list(dirLocation: string): Promise<string[]> {
    try {
      return await fs.readdir(localPath(dirLocation));
    } catch (e) {
      if (notFound(e)) return [];
      throw new IpsError('IO_ERROR', `cannot list ${dirLocation}: ${describeError(e)}`, { cause: e });
    }
  }

  async write(location: string, data: Buffer, opts?: { ifAbsent?: boolean }): Promise<void> {
    const p = localPath(location);
    await fs.mkdir(path.dirname(p), { recursive: true });
    if (opts?.ifAbsent) {
      // Write aside, then link: link(2) fails if the target exists, so two writers cannot both win.
      const tmp = `${p}.${process.pid}.${crypto.randomUUID()}.tmp`;
      await fs.writeFile(tmp, data);
      try {
        await fs.link(tmp, p);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new IpsError('ALREADY_EXISTS', `${location} already exists`);
        throw new IpsError('IO_ERROR', `cannot write ${location}: ${describeError(e)}`, { cause: e });
      } finally {
        await fs.rm(tmp, { force: true });
      }
      return;
    }
    const tmp = `${p}.${process.pid}.${crypto.randomUUID()}.tmp`;
    await fs.writeFile(tmp, data);
    await fs.rename(tmp, p);
  }
}
