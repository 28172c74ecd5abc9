import { NativeConnection, type Worker } from '@temporalio/worker';
import { loadConfig, redactConfig, type Config } from '../activities/common/config';
import type { ActivityDeps } from '../activities/common/deps';
import { createLogger } from '../activities/common/logger';
import { createPool } from '../activities/storage/db';
import { ObjectStore } from '../activities/storage/s3';

/**
 * Make the clients a worker process needs from the environment: configuration (logged
 * with secrets removed), logger, S3 store, Postgres pool and the Temporal connection.
 */
export async function createWorkerDeps(name: string, env: NodeJS.ProcessEnv = process.env): Promise<ActivityDeps & { connection: NativeConnection; close: () => Promise<void> }> {
  const config: Config = loadConfig(env);
  const logger = createLogger(config.REELSET_LOG_LEVEL, name);
  logger.info({ config: redactConfig(config) }, 'configuration');
  const store = ObjectStore.fromConfig(config);
  const pool = createPool(config, config.REELSET_MAX_CONCURRENT_ACTIVITIES + 2);
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  return {
    config,
    logger,
    store,
    pool,
    connection,
    close: async () => {
      await connection.close();
      await pool.end();
      store.destroy();
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
