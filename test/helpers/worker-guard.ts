/**
 * Jest setup (setupFilesAfterEnv of the workflow, integration and e2e projects): no
 * in-process Temporal worker outlives the test server it polls.
 *
 * A test that times out leaves its `worker.runUntil(...)` pending: the worker keeps polling,
 * and once the file's `afterAll` tears the test server down it retries against a closed port
 * for ever (the SDK's poll retry has no end), printing an error a second and keeping jest
 * from exiting. So every `Worker.create` is recorded here, and before a
 * `TestWorkflowEnvironment` is torn down every worker still running is shut down, with a
 * warning naming its task queue (the test that left it failed or timed out). Workers on the
 * services' own server (integration, e2e) are covered by jest's --forceExit in infra/test.sh.
 * (Not an `afterAll` here: a setup file's hooks run before the test file's own.)
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';

const created = new Set<Worker>();
const STOP_WAIT_MS = 30_000;

const create = Worker.create.bind(Worker);
(Worker as unknown as { create: typeof Worker.create }).create = async (options) => {
  const worker = await create(options);
  created.add(worker);
  return worker;
};

/** Shut down every recorded worker that is still running and wait (up to 30 s each) for it to stop. */
async function stopLeftoverWorkers(): Promise<void> {
  const left = [...created].filter((w) => w.getState() === 'RUNNING');
  for (const w of created) if (w.getState() === 'STOPPED' || w.getState() === 'FAILED') created.delete(w);
  await Promise.all(
    left.map(async (w) => {
      process.stderr.write(
        `worker-guard: a worker on task queue "${w.options.taskQueue}" was still running when its test server was torn down; shutting it down\n`,
      );
      try {
        w.shutdown();
      } catch {
        return; // it stopped meanwhile
      }
      const until = Date.now() + STOP_WAIT_MS;
      while (!['STOPPED', 'FAILED'].includes(w.getState()) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    }),
  );
}

const teardown = TestWorkflowEnvironment.prototype.teardown;
TestWorkflowEnvironment.prototype.teardown = async function guardedTeardown(this: TestWorkflowEnvironment) {
  await stopLeftoverWorkers();
  return teardown.call(this);
};
