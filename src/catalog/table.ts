import zlib from 'node:zlib';
import type { FileIO } from '../io/file-io.js';
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
export async function readMetadataFile(io: FileIO, location: string): Promise<TableMetadata> {
  let buf = await io.read(location);
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) buf = zlib.gunzipSync(buf);
  return parseTableMetadata(buf.toString('utf8'), location);
}
