/**
 * What every CLI command shares: exit codes, the Temporal client, the Postgres and S3
 * clients, JSON output and the mapping from errors to exit codes.
 */
import { Client, Connection, WorkflowExecutionAlreadyStartedError, WorkflowFailedError, type WorkflowStartOptions } from '@temporalio/client';
import { WorkflowIdReusePolicy, type Workflow } from '@temporalio/common';
import type { Pool } from 'pg';
import { failureOf, InvalidInputError, isNonRetryable } from '../contracts';
import { loadConfig, type Config } from '../lib/config';
import { createPool, ping } from '../lib/db';
import { ObjectStore } from '../lib/s3';
import { temporalConnectionOptions } from '../lib/temporal';

/**
 * Exit codes: 0 success; 1 the operation ran and failed (a run failed, a file could not
 * be ingested, a service answered with an error); 2 bad usage (unknown option, invalid
 * `--input`, a value out of range), nothing started; 3 a service the command needs is
 * unreachable.
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, unavailable: 3 } as const;

/** An error the CLI reports as bad usage (exit code 2): nothing was started. */
export class UsageError extends InvalidInputError {}

/** A Temporal client from the configuration; `close()` when done. */
export async function temporalClient(config: Config = loadConfig()): Promise<{ config: Config; client: Client; close: () => Promise<void> }> {
  const options = temporalConnectionOptions(config);
  let connection: Connection;
  try {
    connection = await Connection.connect({ ...options, connectTimeout: '5 seconds' });
  } catch (err) {
    throw new ServiceUnavailableError(
      `Temporal is not reachable at ${config.TEMPORAL_ADDRESS} (${(err as Error).message}); start it with \`bash infra/services.sh start\``,
    );
  }
  return { config, client: new Client({ connection, namespace: config.TEMPORAL_NAMESPACE }), close: () => connection.close() };
}

/** A command's Postgres pool and S3 store; `close()` when done (ends both, errors ignored). */
export interface DataClients {
  config: Config;
  pool: Pool;
  store: ObjectStore;
  close: () => Promise<void>;
}

/** Options of {@link dataClients}. */
export interface DataClientsOptions {
  /** Connections in the pool (default: `createPool`'s, 4). */
  max?: number;
  /** Check first that Postgres answers (`SELECT 1`); default true. Without, a command for which Postgres is optional meets the error on its first query. */
  check?: boolean;
  /** What the command needs Postgres for, said after the reason it is unreachable, e.g. `: the CLI reads the catalog to name the run`. */
  why?: string;
  /** The way around it, said last, e.g. `, or pass --id to name the run yourself`. */
  instead?: string;
}

/**
 * The Postgres pool and S3 store a command needs (the one place the CLI makes them): the
 * pool ignores errors of idle clients (a restarted Postgres must not kill the command), and
 * Postgres is checked to answer unless `check` is false.
 *
 * @throws ServiceUnavailableError (exit code 3) naming the address (password hidden), the
 *   reason, `opts.why`, how to start it and `opts.instead`; nothing is left open then.
 */
export async function dataClients(config: Config, opts: DataClientsOptions = {}): Promise<DataClients> {
  const pool = createPool(config, opts.max);
  pool.on('error', () => undefined);
  const store = ObjectStore.fromConfig(config);
  const close = async () => {
    store.destroy();
    await pool.end().catch(() => undefined);
  };
  if (opts.check ?? true) {
    try {
      await ping(pool);
    } catch (err) {
      await close();
      throw new ServiceUnavailableError(
        `PostgreSQL is not reachable at ${redactedDatabaseUrl(config)} (${(err as Error).message})${opts.why ?? ''}; start it with \`bash infra/services.sh start\`${opts.instead ?? ''}`,
      );
    }
  }
  return { config, pool, store, close };
}

/** Run `fn` with {@link dataClients}, closed when it settles. */
export async function withDataClients<T>(config: Config, opts: DataClientsOptions, fn: (c: DataClients) => Promise<T>): Promise<T> {
  const c = await dataClients(config, opts);
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

/** `DATABASE_URL` with its password replaced by `***`. */
export function redactedDatabaseUrl(config: Pick<Config, 'DATABASE_URL'>): string {
  return config.DATABASE_URL.replace(/:[^:@/]+@/, ':***@');
}

/**
 * Call `tick` every `intervalMs`, one call at a time, under an abort signal (progress
 * queries while a command waits for a workflow). `stop()` ends the polling, aborts a call
 * in flight and waits for it to settle, so the connection can be closed after it: a
 * query's gRPC retry that fires after `connection.close()` throws "Channel has been shut
 * down" from a timer and kills the process with exit code 1, after the work succeeded.
 * Errors of a tick are ignored (a progress line is best effort).
 */
export function poller(client: Client, intervalMs: number, tick: () => Promise<unknown>): { stop: () => Promise<void> } {
  const abort = new AbortController();
  let inflight: Promise<void> | null = null;
  const timer = setInterval(() => {
    if (inflight) return;
    inflight = client
      .withAbortSignal(abort.signal, tick)
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(() => {
        inflight = null;
      });
  }, intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      abort.abort();
      await inflight;
    },
  };
}

/** A service the command needs did not answer (exit code 3). */
export class ServiceUnavailableError extends Error {
  override name = 'ServiceUnavailableError';
}

/** Parse a JSON option (`--input '{"x": 1}'`), naming the option when it is not JSON. */
export function parseJsonOption(value: string, option: string): unknown {
  try {
    return JSON.parse(value) as unknown;
  } catch (err) {
    throw new UsageError(`${option} is not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * Start `workflow` under `workflowId` on `taskQueue`, or attach to the run that has that id:
 * a running or completed run is attached to, a failed or cancelled one starts again under
 * the same id (`ALLOW_DUPLICATE_FAILED_ONLY`) and resumes from its checkpoints.
 *
 * @returns `attached`: true when a run with that id was already there.
 * @throws whatever the client throws other than "already started" (e.g. an unreachable server).
 */
export async function startOrAttach<W extends Workflow>(client: Client, workflow: W, opts: WorkflowStartOptions<W>): Promise<{ attached: boolean }> {
  try {
    await client.workflow.start(workflow, { ...opts, workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY });
    return { attached: false };
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return { attached: true };
    throw err;
  }
}

/** Print a value as indented JSON on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** The Temporal Web UI page of a workflow. */
export function workflowUrl(config: Pick<Config, 'TEMPORAL_UI_URL' | 'TEMPORAL_NAMESPACE'>, workflowId: string): string {
  return `${config.TEMPORAL_UI_URL}/namespaces/${encodeURIComponent(config.TEMPORAL_NAMESPACE)}/workflows/${encodeURIComponent(workflowId)}`;
}

/**
 * Report an error on stderr (or as `{"error": {type, message}}` on stdout with `--json`)
 * and return the exit code it means: {@link EXIT}.
 */
export function reportError(err: unknown, json: boolean): number {
  let code: number = EXIT.failed;
  let { type, message } = failureOf(err);
  if (err instanceof WorkflowFailedError) {
    message = `run failed: ${message}`;
  } else if (err instanceof UsageError || (err instanceof Error && err.name === 'CommanderError')) {
    code = EXIT.usage;
  } else if (err instanceof ServiceUnavailableError) {
    code = EXIT.unavailable;
  } else if (err instanceof InvalidInputError) {
    code = EXIT.usage;
  }
  if (type === 'UsageError') type = 'InvalidInputError';
  if (json) printJson({ error: { type, message, retryable: !isNonRetryable(type) } });
  else process.stderr.write(`error: ${type}: ${message}\n`);
  return code;
}
