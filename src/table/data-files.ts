import { IpsError, isIpsError } from '../errors.js';
import { joinLocation, type FileIO } from '../io/file-io.js';
import type { DataFile } from '../iceberg/manifest.js';
import type { TableMetadata } from '../iceberg/metadata.js';
import { dataFileFromParquet } from '../iceberg/parquet-metrics.js';

/**
 * Stores a Parquet file under `<table location>/data/<relativePath>` and returns its data-file
 * metadata, ready for commitTableUpdate. The metadata is computed first, so a file that does
 * not fit the table (no field ids, wrong types, spanning partitions) is never uploaded. An
 * existing object at that path is never replaced: paths of Iceberg files are write-once.
 */
export async function uploadDataFile(io: FileIO, md: TableMetadata, bytes: Uint8Array, relativePath: string): Promise<DataFile> {
  const rel = relativePath.replace(/^\/+/, '');
  if (rel === '' || rel.split('/').some((p) => p === '..' || p === '.' || p === '')) {
    throw new IpsError('INVALID_ARGUMENT', `data file path "${relativePath}" must be a relative path without empty, "." or ".." segments`);
  }
  const location = joinLocation(joinLocation(md.location.replace(/\/+$/, ''), 'data'), rel);
  const dataFile = dataFileFromParquet(bytes, { filePath: location, md });
  try {
    await io.write(location, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), { ifAbsent: true });
  } catch (e) {
    if (isIpsError(e) && e.code === 'ALREADY_EXISTS') {
      throw new IpsError('ALREADY_EXISTS', `data file ${location} already exists; use a new (e.g. UUID) file name for every file`, { cause: e });
    }
    throw e;
  }
  return dataFile;
}
