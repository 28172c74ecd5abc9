/**
 * The clients every activity factory receives, made once per process by
 * {@link createActivityDeps} (workers, benches and test harnesses).
 */
import type { Pool } from 'pg';
import { loadConfig, redactConfig, type Config } from './config';
import { createPool } from './db';
import { createLogger, type Logger } from './logger';
import { ObjectStore } from './s3';

/** Clients every activity factory receives. */
export interface ActivityDeps {
  config: Config;
  store: ObjectStore;
  pool: Pool;
  logger: Logger;
}

/**
 * Make the clients activities need from the environment: configuration (logged with
 * secrets removed), logger, S3 store and Postgres pool.
 *
 * @param name component name in every log line, e.g. `worker-video`.
 * @throws ConfigError when an environment variable does not validate.
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
