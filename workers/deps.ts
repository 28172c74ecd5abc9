import { NativeConnection, type Worker } from '@temporalio/worker';
import { createActivityDeps, type ActivityDeps } from '../lib/deps';
import { installMetrics, type WorkerMetrics } from './metrics';

/**
 * {@link createActivityDeps}, the worker's metrics endpoint (`workers/metrics.ts`: the
 * SDK runtime is installed with its Prometheus exporter before any connection) and the
 * Temporal connection a worker polls with.
 *
 * @param kind `video` or `gpu`: which `REELSET_*_METRICS_PORT` to serve on.
 */
export async function createWorkerDeps(
  name: string,
  kind: 'video' | 'gpu',
  env: NodeJS.ProcessEnv = process.env,
): Promise<ActivityDeps & { connection: NativeConnection; metrics: WorkerMetrics; close: () => Promise<void> }> {
  const deps = createActivityDeps(name, env);
  let connection: NativeConnection;
  let metrics: WorkerMetrics | undefined;
  try {
    metrics = await installMetrics({
      kind,
      host: deps.config.REELSET_METRICS_HOST,
      port: kind === 'video' ? deps.config.REELSET_VIDEO_METRICS_PORT : deps.config.REELSET_GPU_METRICS_PORT,
      logger: deps.logger,
      pool: kind === 'video' ? deps.pool : undefined,
    });
    connection = await NativeConnection.connect({ address: deps.config.TEMPORAL_ADDRESS });
  } catch (err) {
    await metrics?.close();
    await deps.close();
    throw err;
  }
  const m = metrics;
  return {
    ...deps,
    connection,
    metrics: m,
    close: async () => {
      await connection.close();
      await m.close();
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
