/**
 * The CPU video worker: every workflow, and the catalog, frames, embeddings, dedupe,
 * labelling, dataset and publish activities, on `REELSET_VIDEO_TASK_QUEUE`.
 *
 * Usage: `tsx workers/video-worker.ts` (configuration from the environment, see docs/operations.md#configuration).
 * SIGINT/SIGTERM: stops polling, lets running activities see cancellation, then exits.
 */
import { Worker } from '@temporalio/worker';
import { createVideoActivities } from '../activities';
import { createWorkerDeps, runWorker } from './deps';

async function main(): Promise<void> {
  const deps = await createWorkerDeps('worker-video', 'video');
  const worker = await Worker.create({
    connection: deps.connection,
    namespace: deps.config.TEMPORAL_NAMESPACE,
    taskQueue: deps.config.REELSET_VIDEO_TASK_QUEUE,
    ...(deps.config.REELSET_WORKER_IDENTITY ? { identity: deps.config.REELSET_WORKER_IDENTITY } : {}),
    workflowsPath: require.resolve('../workflows'),
    activities: createVideoActivities(deps),
    maxConcurrentActivityTaskExecutions: deps.config.REELSET_MAX_CONCURRENT_ACTIVITIES,
    // SIGTERM: running activities see cancellation after one second (ffmpeg is killed,
    // temporary files removed); heartbeats reach the server at least every second, so a
    // workflow's cancellation reaches a running extraction as fast.
    shutdownGraceTime: '1 second',
    maxHeartbeatThrottleInterval: '1 second',
    interceptors: { activity: deps.metrics.activityInterceptors },
  });
  await runWorker(deps, worker, {
    kind: 'video',
    identity: worker.options.identity,
    taskQueue: deps.config.REELSET_VIDEO_TASK_QUEUE,
    metrics: deps.metrics.url,
  });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
