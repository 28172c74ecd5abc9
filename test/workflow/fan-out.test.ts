/**
 * The shared fan-out (`workflows/fan-out.ts`) under the time-skipping test server, one
 * child workflow per item, activities mocked: the bound on items running at once holds, a
 * failing item does not stop the others, continue-as-new over many items resumes at the
 * cursor with nothing done twice, and cancellation stops new items and cancels the
 * running ones.
 */
import { Context } from '@temporalio/activity';
import { WorkflowFailedError } from '@temporalio/client';
import { VideoDecodeError } from '../../contracts';
import { type TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { fanOutStateQuery, fanOutTestWorkflow, type FanOutTestResult } from '../helpers/fan-out.workflows';
import { chainHistories, childIds } from '../helpers/history';
import { timeSkippingEnvironment } from '../helpers/replay-fixtures';

jest.setTimeout(240_000);

let env: TestWorkflowEnvironment;

beforeAll(async () => {
  env = await timeSkippingEnvironment();
}, 120_000);

afterAll(async () => {
  await env?.teardown();
});

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Mocked activities: how long an item takes, which fail; counts of calls and of items running at once. */
function mocks(opts: { ms?: (item: number) => number; fails?: (item: number) => boolean; untilCancelled?: boolean } = {}) {
  const stats = {
    calls: new Map<number, number>(),
    now: 0,
    max: 0,
    cancelledAfter: [] as number[],
    ended: null as null | { started: number[]; failures: FanOutTestResult['failures'] },
  };
  const activities = {
    async work({ item }: { item: number }) {
      stats.calls.set(item, (stats.calls.get(item) ?? 0) + 1);
      stats.now++;
      stats.max = Math.max(stats.max, stats.now);
      try {
        if (opts.untilCancelled) {
          const ctx = Context.current();
          for (;;) {
            ctx.heartbeat();
            if (ctx.cancellationSignal.aborted) {
              await wait(100);
              stats.cancelledAfter.push(item);
              throw ctx.cancellationSignal.reason;
            }
            await wait(50);
          }
        }
        // Heartbeating, as a real item would (the child's heartbeat timeout is 2 s).
        const ms = opts.ms?.(item) ?? 5;
        for (let t = 0; t < ms; t += 50) {
          Context.current().heartbeat();
          await wait(Math.min(50, ms - t));
        }
        if (opts.fails?.(item)) throw new VideoDecodeError(`item${item}.mp4`, 'moov atom not found');
        return item;
      } finally {
        stats.now--;
      }
    },
    async cancelled(e: { started: number[]; failures: FanOutTestResult['failures'] }) {
      stats.ended = e;
    },
  };
  return { activities, stats };
}

async function withWorker<T>(activities: object, fn: () => Promise<T>): Promise<T> {
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: 'fan-out',
    workflowsPath: require.resolve('../helpers/fan-out.workflows'),
    activities,
    maxConcurrentActivityTaskExecutions: 32,
  });
  return worker.runUntil(fn());
}

test('at most `concurrency` items run at once, and the next starts as soon as one finishes', async () => {
  // Item 0 is slow: a chunked fan-out would hold back items 3.. until it finished.
  const { activities, stats } = mocks({ ms: (i) => (i === 0 ? 6000 : 30) });
  const r = await withWorker(activities, () =>
    env.client.workflow.execute(fanOutTestWorkflow, { taskQueue: 'fan-out', workflowId: 'fo-bound', args: [{ items: 12, concurrency: 3 }] }),
  );
  expect(stats.max).toBe(3);
  expect([...r.done].sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i));
  // Every other item finished before the slow first one.
  expect(r.done[r.done.length - 1]).toBe(0);
  expect(r.runs).toBe(1);
});

test('a failing item is reported and the others go on', async () => {
  const { activities, stats } = mocks({ fails: (i) => i % 4 === 1 });
  const r = await withWorker(activities, () =>
    env.client.workflow.execute(fanOutTestWorkflow, { taskQueue: 'fan-out', workflowId: 'fo-fail', args: [{ items: 12, concurrency: 2 }] }),
  );
  expect(r.failures).toEqual([1, 5, 9].map((item) => ({ item, type: 'VideoDecodeError' })));
  expect([...r.done].sort((a, b) => a - b)).toEqual([0, 2, 3, 4, 6, 7, 8, 10, 11]);
  expect([...stats.calls.values()].every((n) => n === 1)).toBe(true);
});

test('continue-as-new over many items resumes at the cursor: every item once, every run under the bound', async () => {
  const maxEvents = 150;
  const { activities, stats } = mocks({ fails: (i) => i === 37 });
  const handle = await env.client.workflow.start(fanOutTestWorkflow, {
    taskQueue: 'fan-out',
    workflowId: 'fo-can',
    args: [{ items: 80, concurrency: 4, maxEvents }],
  });
  const r = await withWorker(activities, () => handle.result());
  const runs = await chainHistories(env.client, 'fo-can', handle.firstExecutionRunId);
  expect(runs.length).toBeGreaterThan(2);
  expect(r.runs).toBe(runs.length);
  for (const run of runs) expect(run.length).toBeLessThan(maxEvents);
  // One child per item across the chain, each item's activity called once.
  const children = runs.flatMap((run) => childIds(run.events));
  expect(children).toHaveLength(80);
  expect(new Set(children).size).toBe(80);
  expect(stats.calls.size).toBe(80);
  expect([...stats.calls.values()].every((n) => n === 1)).toBe(true);
  expect(r.failures).toEqual([{ item: 37, type: 'VideoDecodeError' }]);
  expect(r.done).toHaveLength(79);
  // Each run started where the previous one stopped: item ids in order along the chain.
  const order = children.map((id) => Number(id.split('/').pop()));
  expect(order).toEqual(Array.from({ length: 80 }, (_, i) => i));
});

test('cancelled: no item starts after, the running ones are cancelled, and the caller can wait for them', async () => {
  const { activities, stats } = mocks({ untilCancelled: true });
  const handle = await env.client.workflow.start(fanOutTestWorkflow, { taskQueue: 'fan-out', workflowId: 'fo-cancel', args: [{ items: 10, concurrency: 3 }] });
  const err = await withWorker(activities, async () => {
    for (let i = 0; i < 200 && (await handle.query(fanOutStateQuery)).running < 3; i++) await wait(50);
    await wait(300); // the three activities are running
    await handle.cancel();
    return handle.result().catch((e: unknown) => e);
  });
  expect(err).toBeInstanceOf(WorkflowFailedError);
  expect((await handle.describe()).status.name).toBe('CANCELLED');
  // Three items started, none after; the three were cancelled and had finished cancelling when the parent recorded its end.
  expect(stats.calls.size).toBe(3);
  expect(stats.cancelledAfter.sort()).toEqual([0, 1, 2]);
  expect(stats.ended?.started).toEqual([0, 1, 2]);
  expect(stats.ended?.failures.sort((a, b) => a.item - b.item)).toEqual([0, 1, 2].map((item) => ({ item, type: 'cancelled' })));
});
