import { NativeConnection, type Worker } from '@temporalio/worker';
import { loadConfig, redactConfig, type Config } from '../activities/common/config';
import type { ActivityDeps } from '../activities/common/deps';
import { createLogger } from '../activities/common/logger';
import { createPool } from '../activities/storage/db';
import { ObjectStore } from '../activities/storage/s3';

/**
 * Make the clients activities need from the environment: configuration (logged with
 * secrets removed), logger, S3 store and Postgres pool. Used by workers, and by
 * benchmarks and test harnesses that run activities outside a worker.
 */
export function createActivityDeps(name: string, env: NodeJS.ProcessEnv = process.env): ActivityDeps & { close: () => Promise<void> } {
  const config: Config = loadConfig(env);
  const logger = createLogger(config.REELSET_LOG_LEVEL, name);
  logger.info({ config: redactConfig(config) }, 'configuration');
  const store = ObjectStore.fromConfig(config);
  const pool = createPool(config, config.REELSET_MAX_CONCURRENT_ACTIVITIES + 2);
  return {
    config,
    logger,
    store,
    pool,
    close: async () => {
      await pool.end();
      store.destroy();
    },
  };
}

/** {@link createActivityDeps} plus the Temporal connection a worker polls with. */
export async function createWorkerDeps(name: string, env: NodeJS.ProcessEnv = process.env): Promise<ActivityDeps & { connection: NativeConnection; close: () => Promise<void> }> {
  const deps = createActivityDeps(name, env);
  let connection: NativeConnection;
  try {
    connection = await NativeConnection.connect({ address: deps.config.TEMPORAL_ADDRESS });
  } catch (err) {
    await deps.close();
    throw err;
  }
  return {
    ...deps,
    connection,
    close: async () => {
      await connection.close();
      await deps.close();
    },
  };
}

/**
 * Run a worker until SIGINT/SIGTERM (the SDK's default shutdown signals), then close
 * the clients; exit code 1 when the worker fails.
 */
export async function runWorker(deps: { close: () => Promise<void>; logger: ActivityDeps['logger'] }, worker: Worker, fields: object): Promise<void> {
  deps.logger.info(fields, `${(fields as { kind?: string }).kind ?? 'worker'} worker started`);
  try {
    await worker.run();
  } finally {
    await deps.close();
  }
}
