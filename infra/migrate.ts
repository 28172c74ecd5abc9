/**
 * Apply the database migrations in `infra/migrations` (node-pg-migrate) and create the
 * S3 bucket. Idempotent: run it as often as you like.
 *
 * Usage: `tsx infra/migrate.ts [up|down]`  (default up; down reverts one migration)
 */
import { loadConfig } from '../activities/common/config';
import { MIGRATIONS_DIR } from '../activities/storage/db';
import { ObjectStore } from '../activities/storage/s3';

async function main(): Promise<void> {
  const config = loadConfig();
  const direction = process.argv[2] === 'down' ? 'down' : 'up';
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
  console.log(`migrations: ${direction} ${applied.length === 0 ? 'nothing to do' : applied.map((m) => m.name).join(', ')}`);
  const store = ObjectStore.fromConfig(config);
  await store.ensureBucket();
  store.destroy();
  console.log(`bucket: s3://${config.S3_BUCKET} at ${config.S3_ENDPOINT || 'AWS'}`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
