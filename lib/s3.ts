import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Agent, request as httpsRequest } from 'node:https';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
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
import { SignatureV4 } from '@smithy/signature-v4';
import type { Config } from './config';

/**
 * What {@link ObjectStore.put}, `get` and `download` need to send their request
 * themselves: where the bucket is and how to sign (SigV4 by `@smithy/signature-v4`, the
 * SDK's own signer).
 */
export interface DirectRequests {
  /** `http:` or `https:` endpoint origin (`S3_ENDPOINT`, no path), e.g. `http://127.0.0.1:7070` or `https://s3.eu-west-1.amazonaws.com`. */
  endpoint: URL;
  /** Path-style (`/<bucket>/<key>`) or virtual-hosted (`<bucket>.<host>/<key>`) addressing. */
  pathStyle: boolean;
  signer: SignatureV4;
  agent: HttpAgent;
  /** Attempts per request (network errors, 5xx, 429), exponential backoff from 100 ms. */
  maxAttempts: number;
  /** Socket idle limit per request, milliseconds. */
  timeoutMs: number;
}

/** SHA-256 (and HMAC-SHA-256 with a key) for the signer, on node:crypto. */
class NodeSha256 {
  private readonly h: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.h.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.h.digest());
  }
}

function bytes(x: string | ArrayBuffer | ArrayBufferView): string | Buffer {
  if (typeof x === 'string') return x;
  return ArrayBuffer.isView(x) ? Buffer.from(x.buffer, x.byteOffset, x.byteLength) : Buffer.from(x);
}

/** RFC 3986 encoding of one key segment, as S3's canonical request wants it. */
function encodeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** sha256 of no bytes: the payload hash of a request without a body. */
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

async function readText(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** An S3 error answer of a direct request: `name` is S3's error code (`SlowDown`, `AccessDenied`, ...). */
export class S3RequestError extends Error {
  constructor(
    readonly status: number,
    code: string,
    message: string,
  ) {
    super(`S3 ${status} ${code}: ${message}`);
    this.name = code || `HTTP${status}`;
  }
}

/**
 * A thin, typed wrapper over one bucket of an S3-compatible object store.
 *
 * Reads and writes of whole objects (`get`, `put`, `download`) are single signed HTTP
 * requests on a keep-alive agent (the SDK's signer, not its middleware stack: a fifth of
 * the CPU per request); listing, deleting, copying and bucket management go through the
 * AWS SDK.
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
    private readonly direct?: DirectRequests,
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
    const endpoint = new URL(config.S3_ENDPOINT || `https://s3.${config.S3_REGION}.amazonaws.com`);
    const direct: DirectRequests = {
      endpoint,
      pathStyle: config.S3_FORCE_PATH_STYLE,
      signer: new SignatureV4({
        service: 's3',
        region: config.S3_REGION,
        credentials: { accessKeyId: config.S3_ACCESS_KEY_ID, secretAccessKey: config.S3_SECRET_ACCESS_KEY },
        sha256: NodeSha256,
        // S3 signs the path as sent (segments encoded once), unlike other services.
        uriEscapePath: false,
        applyChecksum: false,
      }),
      agent: endpoint.protocol === 'https:' ? new Agent(agentOpts) : new HttpAgent(agentOpts),
      maxAttempts: 5,
      timeoutMs: 120_000,
    };
    return new ObjectStore(config.S3_BUCKET, client, direct);
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

  /**
   * Write an object (whole-object PUT). `body` is bytes or a string (UTF-8).
   *
   * With a configured store this is one signed HTTP request on Node's keep-alive agent,
   * without the SDK's middleware stack (SigV4 by the SDK's own signer, path-style or
   * virtual-hosted as configured): about 0.4 ms of CPU against 2 ms per request through
   * the SDK (docs/benchmarks.md#frame-extraction-against-bare-ffmpeg), which the many small frame
   * uploads feel. The payload hash the signature covers is `sha256Hex` when the caller
   * has it (the server checks the body against it), else computed. Network errors, 5xx
   * and 429 answers are retried up to 5 attempts with exponential backoff.
   *
   * @throws S3RequestError with S3's error code and message on any other answer.
   */
  async put(key: string, body: Buffer | Uint8Array | string, contentType = 'application/octet-stream', sha256Hex?: string): Promise<void> {
    if (!this.direct) {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: contentType }));
      return;
    }
    const bytes =
      typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    const res = await this.directRequest('PUT', key, { body: bytes, contentType, sha256Hex: sha256Hex ?? createHash('sha256').update(bytes).digest('hex') });
    res.resume();
  }

  /**
   * Stream an object into a local file with one signed GET (the direct path of
   * {@link put}: a fraction of the SDK's CPU per byte), 1 MiB at a time.
   *
   * @throws S3RequestError (`NoSuchKey` for a missing key), the network error, or the
   *   signal's reason when it aborts (the request is destroyed, the file left partial).
   */
  async download(key: string, file: string, signal?: AbortSignal): Promise<void> {
    if (!this.direct) {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal: signal });
      await pipeline(res.Body as Readable, createWriteStream(file), { signal });
      return;
    }
    const res = await this.directRequest('GET', key, { signal });
    await pipeline(res, createWriteStream(file, { highWaterMark: 1 << 20 }), { signal });
  }

  /**
   * One signed request on the direct path, retried (network errors, 5xx, 429) up to
   * `maxAttempts` with exponential backoff; resolves with the response once its status
   * is 2xx (its body not read yet).
   *
   * @throws S3RequestError with S3's code and message for any other status.
   */
  private async directRequest(
    method: 'GET' | 'PUT',
    key: string,
    opts: { body?: Buffer; contentType?: string; sha256Hex?: string; signal?: AbortSignal },
  ): Promise<IncomingMessage> {
    const d = this.direct!;
    const encoded = key.split('/').map(encodeSegment).join('/');
    const host = d.pathStyle ? d.endpoint.host : `${this.bucket}.${d.endpoint.host}`;
    const path = d.pathStyle ? `/${encodeSegment(this.bucket)}/${encoded}` : `/${encoded}`;
    const headers: Record<string, string> = { host, 'x-amz-content-sha256': opts.sha256Hex ?? EMPTY_SHA256 };
    if (opts.body) {
      headers['content-type'] = opts.contentType ?? 'application/octet-stream';
      headers['content-length'] = String(opts.body.length);
    }
    for (let attempt = 1; ; attempt++) {
      opts.signal?.throwIfAborted();
      try {
        const signed = await d.signer.sign({
          method,
          protocol: d.endpoint.protocol,
          hostname: d.pathStyle ? d.endpoint.hostname : `${this.bucket}.${d.endpoint.hostname}`,
          port: d.endpoint.port ? Number(d.endpoint.port) : undefined,
          path,
          query: {},
          headers,
          body: opts.body,
        });
        const res = await this.send(d, method, host, path, signed.headers, opts.body, opts.signal);
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) return res;
        const text = await readText(res);
        const err = new S3RequestError(
          status,
          /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? (status === 404 ? 'NoSuchKey' : ''),
          /<Message>([^<]*)<\/Message>/.exec(text)?.[1] ?? `${method} ${key}`,
        );
        if (!(status >= 500 || status === 429) || attempt >= d.maxAttempts) throw err;
      } catch (err) {
        if (opts.signal?.aborted) throw opts.signal.reason;
        if (err instanceof S3RequestError && !(err.status >= 500 || err.status === 429)) throw err;
        if (attempt >= d.maxAttempts) throw err;
      }
      await new Promise((r) => setTimeout(r, 100 * 2 ** (attempt - 1) * (0.5 + Math.random())));
    }
  }

  private send(
    d: DirectRequests,
    method: string,
    host: string,
    path: string,
    headers: Record<string, string>,
    body: Buffer | undefined,
    signal?: AbortSignal,
  ): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const request = d.endpoint.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = request(
        {
          protocol: d.endpoint.protocol,
          host: d.endpoint.hostname,
          port: d.endpoint.port || undefined,
          method,
          path,
          headers: { ...headers, host },
          agent: d.agent,
          timeout: d.timeoutMs,
          signal,
        },
        resolve,
      );
      req.on('timeout', () => req.destroy(new Error(`S3 ${method} ${path}: no answer within ${d.timeoutMs} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  /** Write a JSON document (pretty-printed, UTF-8). */
  async putJson(key: string, value: unknown): Promise<void> {
    await this.put(key, JSON.stringify(value, null, 1), 'application/json');
  }

  /** Read an object's bytes, or `undefined` when the key does not exist (one signed GET, as {@link put}). */
  async get(key: string): Promise<Buffer | undefined> {
    try {
      if (this.direct) {
        const chunks: Buffer[] = [];
        for await (const c of await this.directRequest('GET', key, {})) chunks.push(c as Buffer);
        return Buffer.concat(chunks);
      }
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
      const res = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
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
      await this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: chunk.map((Key) => ({ Key })), Quiet: true } }));
    }
  }

  /** `s3://bucket/key` form, for people. */
  uri(key: string): string {
    return `s3://${this.bucket}/${key}`;
  }

  /** Release sockets. */
  destroy(): void {
    this.client.destroy();
    this.direct?.agent.destroy();
  }
}

function isNotFound(err: unknown): boolean {
  if (err instanceof NoSuchKey || err instanceof NotFound) return true;
  if (err instanceof S3RequestError) return err.status === 404;
  if (err instanceof S3ServiceException) {
    return err.$metadata.httpStatusCode === 404 || err.name === 'NoSuchBucket' || err.name === 'NotFound';
  }
  return false;
}
