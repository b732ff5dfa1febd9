import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import fsp from 'node:fs/promises';
import pLimit from 'p-limit';
import { IpsError, describeError } from '../errors.js';
import type { FileIO } from './file-io.js';
import { currentReadLimits, fileTooLarge, limitOf, withTimeout, type FileKind, type ReadLimits } from './limits.js';

export interface S3Settings {
  /** e.g. http://127.0.0.1:9000 for MinIO; omit for AWS. */
  endpoint?: string | undefined;
  region?: string | undefined;
  accessKeyId?: string | undefined;
  secretAccessKey?: string | undefined;
  sessionToken?: string | undefined;
  /** MinIO and most self-hosted stores need path-style addressing. Defaults to true when an endpoint is set. */
  pathStyle?: boolean | undefined;
  /** Requests in flight at once. */
  concurrency?: number | undefined;
  maxAttempts?: number | undefined;
  /** Size limits per kind of file and the deadline of each request (default: the process's). */
  limits?: ReadLimits | undefined;
}

/** `s3://bucket/key`, `s3a://…` and `s3n://…` (Hadoop spellings of the same thing). */
export function parseS3Uri(location: string): { bucket: string; key: string } {
  const m = /^s3[an]?:\/\/([^/]+)\/?(.*)$/.exec(location);
  if (!m) throw new IpsError('INVALID_LOCATION', `not an S3 location: ${location}`);
  return { bucket: m[1]!, key: m[2]! };
}

function statusOf(e: unknown): number | undefined {
  return e instanceof S3ServiceException ? e.$metadata.httpStatusCode : (e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

/**
 * A failed S3 call as a typed error: missing or refused credentials are the table settings'
 * fault (S3_CREDENTIALS, 4xx on the API), anything else the store's (IO_ERROR).
 */
function s3Error(what: string, e: unknown): IpsError {
  const name = (e as { name?: string })?.name ?? '';
  const st = statusOf(e);
  if (name === 'CredentialsProviderError' || /credential/i.test(describeError(e)) || st === 403 || name === 'InvalidAccessKeyId' || name === 'SignatureDoesNotMatch' || name === 'AccessDenied') {
    return new IpsError('S3_CREDENTIALS', `${what}: the store refused or ips has no credentials (${describeError(e)}); set the table's S3 credentials or the AWS environment`, { cause: e });
  }
  return new IpsError('IO_ERROR', `${what}: ${describeError(e)}`, { cause: e });
}

export class S3FileIO implements FileIO {
  private readonly client: S3Client;
  private readonly limit: ReturnType<typeof pLimit>;
  private readonly ownLimits: ReadLimits | undefined;

  get limits(): ReadLimits {
    return this.ownLimits ?? currentReadLimits();
  }

  /** One request under the remote deadline (retries included): a stalled store is a typed UPSTREAM_TIMEOUT. */
  private send<T>(what: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    return withTimeout(`S3 (${what})`, this.limits.remoteTimeoutMs, fn);
  }

  constructor(settings: S3Settings) {
    this.ownLimits = settings.limits;
    const credentials = settings.accessKeyId && settings.secretAccessKey
      ? { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey, sessionToken: settings.sessionToken }
      : undefined;
    this.client = new S3Client({
      endpoint: settings.endpoint,
      region: settings.region ?? 'us-east-1',
      forcePathStyle: settings.pathStyle ?? settings.endpoint !== undefined,
      credentials,
      // The SDK's adaptive mode retries throttling (503 SlowDown) and transient errors with backoff.
      retryMode: 'adaptive',
      maxAttempts: settings.maxAttempts ?? 6,
    });
    this.limit = pLimit(settings.concurrency ?? 32);
  }

  /** Refuses an object whose ContentLength exceeds the kind's limit before reading its body, and stops a body that runs past it. */
  async read(location: string, kind: FileKind = 'data'): Promise<Buffer> {
    const chunks: Buffer[] = [];
    const total = await this.body(location, kind, (c) => {
      chunks.push(c);
    });
    return Buffer.concat(chunks, total);
  }

  /**
   * Streams the object into a new local file (the SQL engine's staged copy), never holding it
   * whole in memory, under the same limits as read(). A failed copy leaves no file behind.
   */
  async copyToFile(location: string, file: string, kind: FileKind = 'data'): Promise<number> {
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(file, 'wx');
    } catch (e) {
      throw new IpsError('IO_ERROR', `cannot stage ${location} at ${file}: ${describeError(e)}`, { cause: e });
    }
    try {
      const n = await this.body(location, kind, (c) => fh.write(c).then(() => {}));
      await fh.close();
      return n;
    } catch (e) {
      await fh.close().catch(() => {});
      await fsp.rm(file, { force: true });
      throw e;
    }
  }

  /** The object's body, a chunk at a time to `sink`, within the kind's limit; returns its size. */
  private body(location: string, kind: FileKind, sink: (chunk: Buffer) => void | Promise<void>): Promise<number> {
    const { bucket, key } = parseS3Uri(location);
    const max = limitOf(this.limits, kind);
    return this.limit(async () => {
      try {
        return await this.send(`GET ${location}`, async (abortSignal) => {
          const out = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal });
          const body = out.Body as (AsyncIterable<Uint8Array> & { destroy?: () => void }) | undefined;
          if (!body) return 0;
          if (out.ContentLength !== undefined && out.ContentLength > max) {
            body.destroy?.();
            throw fileTooLarge(location, kind, out.ContentLength, max);
          }
          let total = 0;
          for await (const c of body) {
            total += c.length;
            if (total > max) {
              body.destroy?.();
              throw fileTooLarge(location, kind, null, max);
            }
            await sink(Buffer.from(c.buffer, c.byteOffset, c.length));
          }
          return total;
        });
      } catch (e) {
        if (e instanceof IpsError) throw e;
        if (statusOf(e) === 404) throw new IpsError('FILE_NOT_FOUND', `object not found: ${location}`, { cause: e });
        throw s3Error(`cannot read ${location}`, e);
      }
    });
  }

  /** One ranged GET; a range that starts past the end of the object is empty (416). */
  async readRange(location: string, offset: number, length: number, kind: FileKind = 'data'): Promise<Buffer> {
    const { bucket, key } = parseS3Uri(location);
    const max = limitOf(this.limits, kind);
    if (length > max) throw fileTooLarge(location, kind, length, max);
    if (length === 0) return Buffer.alloc(0);
    return this.limit(async () => {
      try {
        return await this.send(`GET ${location} (bytes ${offset}+${length})`, async (abortSignal) => {
          const out = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${offset}-${offset + length - 1}` }), { abortSignal });
          const body = out.Body as (AsyncIterable<Uint8Array> & { destroy?: () => void }) | undefined;
          if (!body) return Buffer.alloc(0);
          if (out.ContentRange === undefined && offset > 0) {
            body.destroy?.();
            throw new IpsError('IO_ERROR', `cannot read ${location}: the store answered a ranged GET with the whole object`);
          }
          const chunks: Buffer[] = [];
          let total = 0;
          for await (const c of body) {
            // A store that ignores Range sends the whole object: never keep more than was asked for.
            const keep = Math.min(c.length, length - total);
            if (keep > 0) chunks.push(Buffer.from(c.buffer, c.byteOffset, keep));
            total += keep;
            if (total >= length) {
              body.destroy?.();
              break;
            }
          }
          return Buffer.concat(chunks, total);
        });
      } catch (e) {
        if (e instanceof IpsError) throw e;
        if (statusOf(e) === 404) throw new IpsError('FILE_NOT_FOUND', `object not found: ${location}`, { cause: e });
        if (statusOf(e) === 416) return Buffer.alloc(0);
        throw s3Error(`cannot read ${location}`, e);
      }
    });
  }

  async exists(location: string): Promise<boolean> {
    const { bucket, key } = parseS3Uri(location);
    return this.limit(async () => {
      try {
        await this.send(`HEAD ${location}`, (abortSignal) => this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal }));
        return true;
      } catch (e) {
        if (e instanceof IpsError) throw e;
        if (statusOf(e) === 404) return false;
        throw s3Error(`cannot check ${location}`, e);
      }
    });
  }

  async list(dirLocation: string): Promise<string[]> {
    const { bucket, key } = parseS3Uri(dirLocation);
    const prefix = key === '' || key.endsWith('/') ? key : `${key}/`;
    const names: string[] = [];
    let token: string | undefined;
    do {
      const out = await this.limit(() => this.send(`LIST ${dirLocation}`, async (abortSignal) => {
        try {
          return await this.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, Delimiter: '/', ContinuationToken: token }), { abortSignal });
        } catch (e) {
          throw s3Error(`cannot list ${dirLocation}`, e);
        }
      }));
      for (const o of out.Contents ?? []) if (o.Key) names.push(o.Key.slice(prefix.length));
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
    return names;
  }

  async write(location: string, data: Buffer, opts?: { ifAbsent?: boolean }): Promise<void> {
    const { bucket, key } = parseS3Uri(location);
    return this.limit(async () => {
      try {
        // If-None-Match: * makes the create conditional, so two writers cannot both create the object.
        await this.send(`PUT ${location}`, (abortSignal) => this.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: data, IfNoneMatch: opts?.ifAbsent ? '*' : undefined }), { abortSignal }));
      } catch (e) {
        if (e instanceof IpsError) throw e;
        const st = statusOf(e);
        if (opts?.ifAbsent && (st === 412 || st === 409)) throw new IpsError('ALREADY_EXISTS', `${location} already exists`, { cause: e });
        throw s3Error(`cannot write ${location}`, e);
      }
    });
  }

  destroy(): void {
    this.client.destroy();
  }
}
