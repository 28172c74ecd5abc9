/**
 * Apply the database migrations in `infra/migrations` (node-pg-migrate) and create the
 * S3 bucket. Idempotent: run it as often as you like.
 *
 * Usage: `tsx infra/migrate.ts [up|down]`  (default up; down reverts one migration)
 */
import { loadConfig } from '../lib/config';
import { migrate } from '../lib/migrate';

migrate(loadConfig(), process.argv[2] === 'down' ? 'down' : 'up')
  .then((r) => {
    console.log(`migrations: ${r.direction} ${r.applied.length === 0 ? 'nothing to do' : r.applied.join(', ')}`);
    console.log(`bucket: ${r.bucket}`);
  })
  .catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
