import { Pool, type PoolClient } from 'pg';
import type { Config } from './config';

/**
 * What a repository function (`lib/repositories/`) runs its SQL on: the pool, or a client
 * inside a transaction ({@link withTransaction}) so that the caller can compose several
 * repository calls atomically.
 */
export type Queryable = Pool | PoolClient;

/**
 * Create the PostgreSQL connection pool.
 *
 * @param config `DATABASE_URL` is used; at most `max` connections (default 4).
 */
export function createPool(config: Pick<Config, 'DATABASE_URL'>, max = 4): Pool {
  return new Pool({ connectionString: config.DATABASE_URL, max, idleTimeoutMillis: 10_000 });
}

/**
 * Check that Postgres answers (`SELECT 1`).
 *
 * @throws the driver's error when it does not (connection refused, bad credentials, timeout).
 */
export async function ping(pool: Pool): Promise<void> {
  await pool.query('SELECT 1');
}

/**
 * Run `fn` in a transaction: COMMIT when it resolves, ROLLBACK when it throws.
 *
 * @returns what `fn` returns.
 */
export async function withTransaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const out = await fn(client);
    await client.query('COMMIT');
    return out;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
