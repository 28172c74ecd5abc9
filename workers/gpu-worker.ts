/**
 * The training worker (the GPU queue): teacher training, distillation and evaluation
 * activities on `REELSET_GPU_TASK_QUEUE`. Activity-only: it registers no workflow.
 *
 * Uses @tensorflow/tfjs-node-gpu when installed (`REELSET_TF_BACKEND=auto`), else
 * tfjs-node, wasm or cpu; on CPU it trains heads on frozen features.
 *
 * Usage: `tsx workers/gpu-worker.ts`
 */
import { Worker } from '@temporalio/worker';
import { createTrainingActivities } from '../activities';
import { initTensorflow } from '../lib/tf';
import { createWorkerDeps, runWorker } from './deps';

async function main(): Promise<void> {
  const deps = await createWorkerDeps('worker-gpu', 'gpu');
  const tf = await initTensorflow(deps.config.REELSET_TF_BACKEND, deps.logger);
  const worker = await Worker.create({
    connection: deps.connection,
    namespace: deps.config.TEMPORAL_NAMESPACE,
    taskQueue: deps.config.REELSET_GPU_TASK_QUEUE,
    ...(deps.config.REELSET_WORKER_IDENTITY ? { identity: deps.config.REELSET_WORKER_IDENTITY } : {}),
    activities: createTrainingActivities(deps),
    maxConcurrentActivityTaskExecutions: 1,
    shutdownGraceTime: '3 seconds',
    interceptors: { activity: deps.metrics.activityInterceptors },
  });
  await runWorker(deps, worker, {
    kind: 'gpu',
    identity: worker.options.identity,
    taskQueue: deps.config.REELSET_GPU_TASK_QUEUE,
    backend: tf.backend,
    metrics: deps.metrics.url,
  });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
