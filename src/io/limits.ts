import { IpsError } from '../errors.js';

/**
 * Bounds on what ips reads from a table's storage. Anyone who can commit to a watched table
 * controls these bytes, so every read has a size limit per kind of file, only regular files
 * are read (a FIFO, a device such as /dev/zero or a directory is refused before it is opened
 * for reading), decompression is bounded, and every remote call has a deadline.
 */
export type FileKind = 'metadata' | 'version-hint' | 'manifest-list' | 'manifest' | 'data';

export interface ReadLimits {
  /** A table metadata JSON file (and what a `.gz` one unpacks to). */
  metadataBytes: number;
  /** `version-hint.text` of a Hadoop-layout table. */
  versionHintBytes: number;
  manifestListBytes: number;
  manifestBytes: number;
  /** Files ips reads whole that are none of the above (the demo engine's Parquet files). */
  dataBytes: number;
  /** What all blocks of one Avro file (manifest list or manifest) may decompress to together. */
  avroDecompressedBytes: number;
  /** Deadline of one remote storage request (S3) or catalog call, ms. */
  remoteTimeoutMs: number;
}

const MiB = 1024 * 1024;

export const DEFAULT_READ_LIMITS: Readonly<ReadLimits> = Object.freeze({
  metadataBytes: 64 * MiB,
  versionHintBytes: 4096,
  manifestListBytes: 64 * MiB,
  manifestBytes: 64 * MiB,
  dataBytes: 1024 * MiB,
  avroDecompressedBytes: 128 * MiB,
  remoteTimeoutMs: 30_000,
});

/** The setting that raises the limit of each kind of file, for error messages. */
export const LIMIT_SETTINGS: Record<FileKind, string> = {
  metadata: 'max_metadata_bytes',
  'version-hint': 'max_version_hint_bytes',
  'manifest-list': 'max_manifest_list_bytes',
  manifest: 'max_manifest_bytes',
  data: 'max_data_file_bytes',
};

export function limitOf(limits: ReadLimits, kind: FileKind): number {
  switch (kind) {
    case 'metadata': return limits.metadataBytes;
    case 'version-hint': return limits.versionHintBytes;
    case 'manifest-list': return limits.manifestListBytes;
    case 'manifest': return limits.manifestBytes;
    case 'data': return limits.dataBytes;
  }
}

export function fileTooLarge(location: string, kind: FileKind, size: number | bigint | null, limit: number): IpsError {
  return new IpsError('FILE_TOO_LARGE',
    `${location} ${size === null ? 'is larger' : `has ${size} bytes, more`} than the ${limit}-byte limit for a ${kind} file; a genuine one needs a larger ${LIMIT_SETTINGS[kind]} setting`,
    { details: { location, kind, limitBytes: limit, ...(size === null ? {} : { sizeBytes: size.toString() }) } });
}

let processLimits: ReadLimits = { ...DEFAULT_READ_LIMITS };

/** The limits FileIOs get when they are not given their own (set once at start from configuration). */
export function currentReadLimits(): ReadLimits {
  return processLimits;
}

export function setReadLimits(limits: Partial<ReadLimits>): void {
  processLimits = { ...DEFAULT_READ_LIMITS, ...limits };
}

/** Runs `fn` with an AbortSignal that fires after `ms`; a late answer becomes a typed TIMEOUT. */
export async function withTimeout<T>(what: string, ms: number, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ctl = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      ctl.abort();
      reject(new IpsError('UPSTREAM_TIMEOUT', `${what} did not answer within ${ms} ms; check that it is reachable, or raise remote_timeout_ms`, { details: { timeoutMs: ms } }));
    }, ms);
    timer.unref?.();
  });
  try {
    return await Promise.race([fn(ctl.signal), deadline]);
  } finally {
    clearTimeout(timer);
  }
}
