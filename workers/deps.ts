import { NativeConnection, type Worker } from '@temporalio/worker';
import { createActivityDeps, type ActivityDeps } from '../lib/deps';
import { temporalConnectionOptions } from '../lib/temporal';

/** {@link createActivityDeps} plus the Temporal connection a worker polls with. */
export async function createWorkerDeps(name: string, env: NodeJS.ProcessEnv = process.env): Promise<ActivityDeps & { connection: NativeConnection; close: () => Promise<void> }> {
  const deps = createActivityDeps(name, env);
  let connection: NativeConnection;
  try {
    connection = await NativeConnection.connect(temporalConnectionOptions(deps.config));
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
