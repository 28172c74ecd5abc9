/**
 * Helpers for integration tests that run against the real local services
 * (PostgreSQL, the S3-compatible server; see `infra/services.sh`).
 *
 * Integration tests FAIL, never skip, when a service is missing: `requireServices()`
 * throws an error saying which service is down and how to start it.
 */
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { DeleteBucketCommand, DeleteObjectCommand } from '@aws-sdk/client-s3';
import type { Pool } from 'pg';
import { corpusPath } from '../../infra/corpus';
import { loadConfig, type Config } from '../../lib/config';
import { createPool } from '../../lib/db';
import { LabelStudioClient } from '../../lib/label-studio';
import { ObjectStore } from '../../lib/s3';

/** Repository root. */
export const REPO_ROOT = path.resolve(__dirname, '../..');
/**
 * The shared sample data (catalog.json + videos/): `../shared/data` beside the checkout,
 * else the same 20 videos rebuilt from their Debian packages by `infra/corpus.ts`
 * (`infra/test.sh` fetches them before jest runs).
 */
export const SHARED_DATA = corpusPath('shared');
export const SHARED_CATALOG = path.join(SHARED_DATA, 'catalog.json');
export const SHARED_VIDEOS = path.join(SHARED_DATA, 'videos');

const START_HINT = 'start it with `bash infra/services.sh start` (and `source infra/env.sh` before running jest)';

/** Connected services for one test file; call `close()` in afterAll. */
export interface Services {
  config: Config;
  pool: Pool;
  store: ObjectStore;
  /** Ends the pool and destroys the S3 client. Safe to call more than once. */
  close(): Promise<void>;
}

function redactUrl(url: string): string {
  return url.replace(/:[^:@/]+@/, ':***@');
}

/**
 * Connect to PostgreSQL and S3 with `loadConfig()` and check both answer.
 *
 * @throws Error naming the service that is not reachable, where, and how to start it.
 */
export async function requireServices(env: NodeJS.ProcessEnv = process.env): Promise<Services> {
  const config = loadConfig(env);
  const pool = createPool(config, 4);
  // Surface idle-client errors instead of crashing the jest worker.
  pool.on('error', () => undefined);
  const store = ObjectStore.fromConfig({ ...config });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    store.destroy();
    await pool.end().catch(() => undefined);
  };
  try {
    try {
      await withTimeout(pool.query('SELECT 1'), 10_000, 'timed out');
    } catch (err) {
      throw new Error(`PostgreSQL not reachable at ${redactUrl(config.DATABASE_URL)}: ${(err as Error).message}; ${START_HINT}`);
    }
    try {
      await withTimeout(store.ensureBucket(), 15_000, 'timed out');
    } catch (err) {
      const e = err as Error & { code?: string };
      throw new Error(
        `S3 not reachable at ${config.S3_ENDPOINT || '(AWS default endpoint)'} (bucket ${config.S3_BUCKET}): ${e.name}: ${e.message}; ${START_HINT}`,
      );
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { config, pool, store, close };
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(what)), ms);
      }),
    ]);
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/**
 * A suffix unique to this call (time + pid + random), safe in video ids, workflow ids
 * and S3 keys: `[a-z0-9-]` only.
 */
export function uniqueSuffix(): string {
  return `${Date.now().toString(36)}-${process.pid.toString(36)}-${randomBytes(4).toString('hex')}`;
}

/** Delete every object under a prefix (a test's own keys; one DELETE per key, for a handful of keys). */
export async function deletePrefix(store: ObjectStore, prefix: string): Promise<number> {
  if (!prefix || prefix === '/') throw new Error('deletePrefix: refusing to delete the whole bucket');
  const keys = await store.list(prefix);
  for (const key of keys) await store.client.send(new DeleteObjectCommand({ Bucket: store.bucket, Key: key }));
  return keys.length;
}

/** Delete a bucket a test created, with its objects. */
export async function deleteBucket(store: ObjectStore): Promise<void> {
  for (const key of await store.list('')) await store.client.send(new DeleteObjectCommand({ Bucket: store.bucket, Key: key }));
  await store.client.send(new DeleteBucketCommand({ Bucket: store.bucket }));
}

/** Delete one object. */
export async function deleteKey(store: ObjectStore, key: string): Promise<void> {
  await store.client.send(new DeleteObjectCommand({ Bucket: store.bucket, Key: key }));
}

/**
 * Check that Label Studio answers at `LABEL_STUDIO_URL` and accepts the configured API token.
 *
 * @returns a client authenticated as the admin.
 * @throws Error naming the address and how to start it (tests fail, never skip).
 */
export async function requireLabelStudio(env: NodeJS.ProcessEnv = process.env): Promise<LabelStudioClient> {
  const config = loadConfig(env);
  const ls = new LabelStudioClient(config.LABEL_STUDIO_URL, config.LABEL_STUDIO_API_TOKEN);
  if (!(await ls.healthy())) {
    throw new Error(
      `Label Studio not reachable at ${config.LABEL_STUDIO_URL} (GET /health/); start it with \`bash infra/services.sh start label-studio\` (after \`bash infra/install.sh\`; a fresh database takes 30-70 s)`,
    );
  }
  try {
    await ls.whoami();
  } catch (err) {
    throw new Error(`Label Studio at ${config.LABEL_STUDIO_URL} refuses LABEL_STUDIO_API_TOKEN: ${(err as Error).message}`);
  }
  return ls;
}
