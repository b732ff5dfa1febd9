import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { IpsError, describeError } from '../errors.js';
import type { FileIO } from './file-io.js';

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

export class S3FileIO implements FileIO {
  private readonly client: S3Client;
  private readonly limit: ReturnType<typeof pLimit>;

  constructor(settings: S3Settings) {
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

  async read(location: string): Promise<Buffer> {
    const { bucket, key } = parseS3Uri(location);
    return this.limit(async () => {
      try {
        const out = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        return Buffer.from(await out.Body!.transformToByteArray());
      } catch (e) {
        if (statusOf(e) === 404) throw new IpsError('FILE_NOT_FOUND', `object not found: ${location}`, { cause: e });
        throw new IpsError('IO_ERROR', `cannot read ${location}: ${describeError(e)}`, { cause: e });
      }
    });
  }

  async exists(location: string): Promise<boolean> {
    const { bucket, key } = parseS3Uri(location);
    return this.limit(async () => {
      try {
        await this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        return true;
      } catch (e) {
        if (statusOf(e) === 404) return false;
        throw new IpsError('IO_ERROR', `cannot check ${location}: ${describeError(e)}`, { cause: e });
      }
    });
  }

  async list(dirLocation: string): Promise<string[]> {
    const { bucket, key } = parseS3Uri(dirLocation);
    const prefix = key === '' || key.endsWith('/') ? key : `${key}/`;
    const names: string[] = [];
    let token: string | undefined;
    do {
      const out = await this.limit(() => this.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, Delimiter: '/', ContinuationToken: token })));
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
        await this.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: data, IfNoneMatch: opts?.ifAbsent ? '*' : undefined }));
      } catch (e) {
        const st = statusOf(e);
        if (opts?.ifAbsent && (st === 412 || st === 409)) throw new IpsError('ALREADY_EXISTS', `${location} already exists`, { cause: e });
        throw new IpsError('IO_ERROR', `cannot write ${location}: ${describeError(e)}`, { cause: e });
      }
    });
  }

  destroy(): void {
    this.client.destroy();
  }
}
