import zlib from 'node:zlib';
import { IpsError, describeError } from '../errors.js';
import type { FileIO } from '../io/file-io.js';
import { currentReadLimits, fileTooLarge } from '../io/limits.js';
import { parseTableMetadata, type TableMetadata } from '../iceberg/metadata.js';

/** A table as loaded from some catalog: where its current metadata is, and that metadata. */
export interface LoadedTable {
  /** How the user named it (identifier or location). */
  name: string;
  metadataLocation: string;
  metadata: TableMetadata;
  /** Set when the table was loaded from a directory other than the location its metadata names. */
  relocatedFrom?: string;
}

/** Reads a metadata JSON file; `.gz` variants (gzip magic) are unpacked. */
/**
 * Parsed metadata files by location, for one FileIO. A metadata file is written once and never
 * changed (a commit writes a new one), so a service that reloads a table on every request
 * parses each version once. Bounded: least recently used first out.
 */
export class MetadataCache {
  private readonly entries = new Map<string, TableMetadata>();
  constructor(private readonly capacity = 8) {}

  get(location: string): TableMetadata | undefined {
    const md = this.entries.get(location);
    if (md) {
      this.entries.delete(location);
      this.entries.set(location, md);
    }
    return md;
  }

  set(location: string, md: TableMetadata): void {
    this.entries.set(location, md);
    for (const key of this.entries.keys()) {
      if (this.entries.size <= this.capacity) break;
      this.entries.delete(key);
    }
  }
}

export async function readMetadataFile(io: FileIO, location: string, cache?: MetadataCache): Promise<TableMetadata> {
  const hit = cache?.get(location);
  if (hit) return hit;
  const md = await parseMetadataFile(io, location);
  cache?.set(location, md);
  return md;
}

async function parseMetadataFile(io: FileIO, location: string): Promise<TableMetadata> {
  let buf = await io.read(location, 'metadata');
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    const limit = (io.limits ?? currentReadLimits()).metadataBytes;
    try {
      buf = zlib.gunzipSync(buf, { maxOutputLength: limit });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw fileTooLarge(`${location} (unpacked)`, 'metadata', null, limit);
      throw new IpsError('INVALID_METADATA', `${location}: corrupt gzip: ${describeError(e)}`, { cause: e });
    }
  }
  return parseTableMetadata(buf.toString('utf8'), location);
}
