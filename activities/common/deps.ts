import type { Pool } from 'pg';
import type { Config } from './config';
import type { Logger } from './logger';
import type { ObjectStore } from '../storage/s3';

/** Clients every activity factory receives; made once per worker process by `workers/`. */
export interface ActivityDeps {
  config: Config;
  store: ObjectStore;
  pool: Pool;
  logger: Logger;
}
