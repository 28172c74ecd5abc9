/**
 * The batch predict workflow under the time-skipping test server with mocked activities:
 * a batch larger than one continue-as-new run predicts every video once (the history
 * bound, not a video cap, decides when a run continues as new), the plan's order is kept,
 * failing videos are reported, and invalid input fails at once naming the field.
 */
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { type TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { BATCH_PREDICT_MAX_VIDEOS, BatchPredictInput, VideoDecodeError } from '../../contracts';
import { batchPredictWorkflow, type BatchVideo } from '../../workflows/batch-predict';
import { chainHistories, childIds } from '../helpers/history';
import { timeSkippingEnvironment } from '../helpers/replay-fixtures';
import { WORKFLOWS_PATH } from '../helpers/temporal';

jest.setTimeout(300_000);

let env: TestWorkflowEnvironment;

beforeAll(async () => {
  env = await timeSkippingEnvironment();
}, 120_000);

afterAll(async () => {
  await env?.teardown();
});

type Call = { name: string; args: unknown };

/** Mocked activities: `*-bad` videos cannot be decoded, `*-empty` have no usable frame. */
function mocks(calls: Call[]) {
  const rec =
    <A, R>(name: string, out: (a: A) => R) =>
    async (a: A) => {
      calls.push({ name, args: a });
      return out(a);
    };
  const video = {
    planBatchPredict: rec('planBatchPredict', (a: { videoIds: string[]; maxVideos: number }) => ({
      model: { name: 'cup', version: 3, stage: 'production', studentPrefix: 'models/cup/v3/student' },
      videoIds: a.videoIds.slice(0, a.maxVideos),
    })),
    extractVideo: rec('extractVideo', (a: { videoId: string }) => {
      if (a.videoId.endsWith('-bad')) throw new VideoDecodeError(`${a.videoId}.mp4`, 'moov atom not found');
      const frames = a.videoId.endsWith('-empty') ? 0 : 4;
      return {
        videoId: a.videoId,
        frames,
        sampled: frames,
        dropped: { nearBlack: 0, nearWhite: 0, blurred: 0 },
        decodeErrorCount: 0,
        manifestKey: `frames/${a.videoId}/manifest.json`,
        reused: false,
      };
    }),
    finishRun: rec('finishRun', () => undefined),
  };
  const gpu = {
    predictVideos: rec('predictVideos', (a: { workflowId: string; videos: BatchVideo[] }) => ({
      workflowId: a.workflowId,
      model: { name: 'cup', version: 3, stage: 'production' },
      videos: a.videos.length,
      failed: a.videos.filter((v) => !v.manifestKey).length,
      perLabel: { cup: a.videos.filter((v) => v.manifestKey).length },
      frameLabels: 4 * a.videos.filter((v) => v.manifestKey).length,
      predictionsKey: `runs/${a.workflowId}/predict/predictions.json`,
    })),
  };
  return { video, gpu };
}

async function withWorkers<T>(calls: Call[], fn: () => Promise<T>): Promise<T> {
  const m = mocks(calls);
  const video = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: 'bp-video',
    workflowsPath: WORKFLOWS_PATH,
    activities: m.video,
    maxConcurrentActivityTaskExecutions: 32,
  });
  const gpu = await Worker.create({ connection: env.nativeConnection, taskQueue: 'bp-gpu', activities: m.gpu });
  return video.runUntil(gpu.runUntil(fn()));
}

test('a batch larger than one continue-as-new run: every video extracted and predicted once, in the plan order', async () => {
  const n = 150;
  const maxHistoryEvents = 250;
  const ids = Array.from({ length: n }, (_, i) => `v${String(i).padStart(4, '0')}${i % 40 === 7 ? '-bad' : i % 50 === 20 ? '-empty' : ''}`);
  const calls: Call[] = [];
  const handle = await env.client.workflow.start(batchPredictWorkflow, {
    taskQueue: 'bp-video',
    workflowId: 'bp-many',
    args: [{ model: 'cup', videoIds: ids, maxVideos: n, concurrency: 6, gpuTaskQueue: 'bp-gpu', maxHistoryEvents }],
  });
  const result = await withWorkers(calls, () => handle.result());

  const runs = await chainHistories(env.client, 'bp-many', handle.firstExecutionRunId);
  console.log(`batch predict of ${n} videos: ${runs.length} runs, history lengths ${runs.map((r) => r.length).join(', ')}`);
  expect(runs.length).toBeGreaterThan(2);
  for (const r of runs) expect(r.length).toBeLessThan(maxHistoryEvents);
  // One child per video across the chain, in the plan's order; each video's extraction ran once.
  const children = runs.flatMap((r) => childIds(r.events));
  expect(children).toEqual(ids.map((id) => `bp-many/extract/${id}`));
  const extracted = calls.filter((c) => c.name === 'extractVideo').map((c) => (c.args as { videoId: string }).videoId);
  expect([...extracted].sort()).toEqual([...ids].sort());
  // Planned once, predicted once with every video in the plan's order, recorded completed once.
  expect(calls.filter((c) => c.name === 'planBatchPredict')).toHaveLength(1);
  const predict = calls.filter((c) => c.name === 'predictVideos');
  expect(predict).toHaveLength(1);
  const videos = (predict[0]!.args as { videos: BatchVideo[] }).videos;
  expect(videos.map((v) => v.videoId)).toEqual(ids);
  const bad = ids.filter((id) => id.endsWith('-bad'));
  const empty = ids.filter((id) => id.endsWith('-empty'));
  expect(videos.filter((v) => v.error?.type === 'VideoDecodeError').map((v) => v.videoId)).toEqual(bad);
  expect(videos.filter((v) => v.error?.type === 'NoFrames').map((v) => v.videoId)).toEqual(empty);
  expect(videos.filter((v) => v.manifestKey).length).toBe(n - bad.length - empty.length);
  expect(result).toMatchObject({ videos: n, failed: bad.length + empty.length, frameLabels: 4 * (n - bad.length - empty.length) });
  expect(calls.filter((c) => c.name === 'finishRun').map((c) => (c.args as { status: string }).status)).toEqual(['completed']);
  const desc = await handle.describe();
  expect(desc.searchAttributes).toMatchObject({ ReelsetLabel: ['cup'], ReelsetStage: ['done'] });
  // What a run hands the next stays small: S3 keys and errors, a row per video done.
  const carried = runs.slice(1).map((r) => JSON.stringify(r.events[0]?.workflowExecutionStartedEventAttributes?.input ?? {}).length);
  for (const bytes of carried) expect(bytes).toBeLessThan(64 * 1024);
});

test('more than 2,000 videos are accepted, up to BATCH_PREDICT_MAX_VIDEOS; beyond, invalid input fails at once naming the field', async () => {
  const many = (k: number) => Array.from({ length: k }, (_, i) => `v${i}`);
  expect(BatchPredictInput.safeParse({ model: 'cup', videoIds: many(2500), maxVideos: 2500 }).success).toBe(true);
  expect(BatchPredictInput.safeParse({ model: 'cup', maxVideos: BATCH_PREDICT_MAX_VIDEOS }).success).toBe(true);
  const calls: Call[] = [];
  const err = await withWorkers(calls, () =>
    env.client.workflow.execute(batchPredictWorkflow, {
      taskQueue: 'bp-video',
      workflowId: 'bp-invalid',
      args: [{ model: 'cup', maxVideos: BATCH_PREDICT_MAX_VIDEOS + 1, concurrency: 0 }],
    }),
  ).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
  expect(cause.type).toBe('InvalidInputError');
  expect(cause.nonRetryable).toBe(true);
  expect(cause.message).toMatch(/^invalid batch predict input: field "maxVideos": Too big: expected number to be <=5000; field "concurrency": /);
  expect(cause.details?.[0]).toEqual([
    { path: 'maxVideos', message: expect.stringContaining('<=5000') },
    { path: 'concurrency', message: expect.stringContaining('>=1') },
  ]);
  expect(calls).toHaveLength(0);
});
