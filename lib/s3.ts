import { Agent } from 'node:https';
import { Agent as HttpAgent } from 'node:http';
import {
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  NotFound,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { Config } from './config';

/**
 * A thin, typed wrapper over one bucket of an S3-compatible object store.
 *
 * Works unchanged against AWS S3, MinIO and versitygw: path-style addressing is
 * configurable, and request/response checksums are only computed when the operation
 * requires them (the SDK's default CRC32 integrity checksums, on since early 2025,
 * are rejected or mishandled by several S3-compatible servers). Socket use is bounded
 * by `S3_MAX_SOCKETS`. Every method is safe to retry: writes are whole-object PUTs to
 * deterministic keys.
 */
export class ObjectStore {
  readonly client: S3Client;

  constructor(
    readonly bucket: string,
    client: S3Client,
  ) {
    this.client = client;
  }

  /** Build a store from configuration (endpoint, region, credentials, bucket). */
  static fromConfig(config: Config): ObjectStore {
    const agentOpts = { keepAlive: true, maxSockets: config.S3_MAX_SOCKETS };
    const client = new S3Client({
      region: config.S3_REGION,
      endpoint: config.S3_ENDPOINT || undefined,
      forcePathStyle: config.S3_FORCE_PATH_STYLE,
      credentials: { accessKeyId: config.S3_ACCESS_KEY_ID, secretAccessKey: config.S3_SECRET_ACCESS_KEY },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 5,
      requestHandler: new NodeHttpHandler({
        httpAgent: new HttpAgent(agentOpts),
        httpsAgent: new Agent(agentOpts),
        connectionTimeout: 5_000,
        requestTimeout: 120_000,
      }),
    });
    return new ObjectStore(config.S3_BUCKET, client);
  }

  /** Create the bucket when it does not exist (idempotent). */
  async ensureBucket(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }));
      } catch (e) {
        const name = (e as { name?: string }).name;
        if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw e;
      }
    }
  }

  /** Write an object (whole-object PUT). `body` is bytes or a string (UTF-8). */
  async put(key: string, body: Buffer | Uint8Array | string, contentType = 'application/octet-stream'): Promise<void> {
    await this.client.send(
      new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: contentType }),
    );
  }

  /** Write a JSON document (pretty-printed, UTF-8). */
  async putJson(key: string, value: unknown): Promise<void> {
    await this.put(key, JSON.stringify(value, null, 1), 'application/json');
  }

  /** Read an object's bytes, or `undefined` when the key does not exist. */
  async get(key: string): Promise<Buffer | undefined> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      if (!res.Body) return Buffer.alloc(0);
      return Buffer.from(await res.Body.transformToByteArray());
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Read and parse a JSON document, or `undefined` when the key does not exist. */
  async getJson<T>(key: string): Promise<T | undefined> {
    const buf = await this.get(key);
    return buf === undefined ? undefined : (JSON.parse(buf.toString('utf8')) as T);
  }

  /** Size in bytes of an object, or `undefined` when it does not exist. */
  async head(key: string): Promise<number | undefined> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return res.ContentLength ?? 0;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Every key under a prefix (all pages), in lexicographic order. */
  async list(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const res = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const o of res.Contents ?? []) if (o.Key) keys.push(o.Key);
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return keys.sort();
  }

  /** Copy one object within the bucket (server side; whole-object, idempotent). */
  async copy(fromKey: string, toKey: string): Promise<void> {
    await this.client.send(
      new CopyObjectCommand({ Bucket: this.bucket, Key: toKey, CopySource: `${this.bucket}/${fromKey.split('/').map(encodeURIComponent).join('/')}` }),
    );
  }

  /**
   * Copy every object under `fromPrefix` to the same relative key under `toPrefix`.
   *
   * @returns how many objects were copied (0 when the prefix is empty).
   */
  async copyPrefix(fromPrefix: string, toPrefix: string): Promise<number> {
    const keys = await this.list(fromPrefix);
    for (const key of keys) await this.copy(key, toPrefix + key.slice(fromPrefix.length));
    return keys.length;
  }

  /** Delete keys (1000 per request); missing keys are ignored. */
  async deleteMany(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const chunk = keys.slice(i, i + 1000);
      await this.client.send(
        new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: chunk.map((Key) => ({ Key })), Quiet: true } }),
      );
    }
  }

  /** `s3://bucket/key` form, for people. */
  uri(key: string): string {
    return `s3://${this.bucket}/${key}`;
  }

  /** Release sockets. */
  destroy(): void {
    this.client.destroy();
  }
}

function isNotFound(err: unknown): boolean {
  if (err instanceof NoSuchKey || err instanceof NotFound) return true;
  if (err instanceof S3ServiceException) {
    return err.$metadata.httpStatusCode === 404 || err.name === 'NoSuchBucket' || err.name === 'NotFound';
  }
  return false;
}
