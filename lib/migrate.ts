/**
 * Database migrations (node-pg-migrate, SQL files in `infra/migrations`) and the bucket:
 * what a fresh deployment needs before any worker starts. Idempotent.
 */
import * as path from 'node:path';
import type { Config } from './config';
import { ObjectStore } from './s3';

/** Directory of the SQL migrations (`-- Up Migration` / `-- Down Migration`). */
export const MIGRATIONS_DIR = path.resolve(__dirname, '../infra/migrations');

/** What {@link migrate} did. */
export interface MigrateReport {
  direction: 'up' | 'down';
  /** Names of the migrations applied (or reverted) now; empty when there was nothing to do. */
  applied: string[];
  /** `s3://bucket at endpoint`. */
  bucket: string;
}

/**
 * Apply every pending migration (`up`) or revert the last one (`down`), in one
 * transaction, then create the bucket when it does not exist.
 *
 * @throws the database's or S3's error when either cannot be reached (retry when they are up).
 */
export async function migrate(config: Config, direction: 'up' | 'down' = 'up'): Promise<MigrateReport> {
  // node-pg-migrate is ESM-only; load it at run time (Node >= 20.19 and tsx both can).
  const { runner } = (await import('node-pg-migrate' as string)) as {
    runner: (options: Record<string, unknown>) => Promise<Array<{ name: string }>>;
  };
  const applied = await runner({
    databaseUrl: config.DATABASE_URL,
    dir: MIGRATIONS_DIR,
    direction,
    count: direction === 'down' ? 1 : Infinity,
    migrationsTable: 'pgmigrations',
    log: () => undefined,
    singleTransaction: true,
  });
  const store = ObjectStore.fromConfig(config);
  try {
    await store.ensureBucket();
  } finally {
    store.destroy();
  }
  return { direction, applied: applied.map((m) => m.name), bucket: `s3://${config.S3_BUCKET} at ${config.S3_ENDPOINT || 'AWS'}` };
}
