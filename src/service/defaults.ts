/** The service's default port, shared by `ips serve` and the CLI clients (which load nothing else of the service). */
export const DEFAULT_PORT = 8742;

/**
 * The most files one batch holds by default, whatever a prepare's limits (`max_batch_files`): a
 * batch's files are in memory whole while it is prepared. A prepare without limits of 100,000
 * files (Iceberg Java's appends) takes about 10.5 s of CPU and 0.94 GB of peak RSS on PostgreSQL
 * (about 20 s and 1.9–2.1 GB on the embedded database, whose WebAssembly memory keeps what the
 * stored file list needed); one of a million ran the server out of memory.
 */
export const DEFAULT_MAX_BATCH_FILES = 100_000;
