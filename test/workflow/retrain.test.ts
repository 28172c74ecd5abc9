/**
 * The retrain and fan-out workflows' own logic under a local dev server with mocked
 * activities: the no-op path (one activity, says so), new videos (only they are
 * extracted), labels changed only (no extraction), a label people label (the new frames go
 * to them through the labelling child, as in new-category), the fan-out's concurrency and
 * its failure after every label ran, and invalid input.
 */
import { Context } from '@temporalio/activity';
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { type TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { TrainingActivities, VideoActivities } from '../../activities';
import { DatasetError, NewCategoryInput, PromotionConflictError, type GateDecision, type RetrainAllResult, type RetrainPlan } from '../../contracts';
import { retrainAllWorkflow, retrainWorkflow } from '../../workflows/retrain';
import { batchExtraction } from '../helpers/batch-extraction';
import { localDevEnvironment, WORKFLOWS_PATH } from '../helpers/temporal';

let env: TestWorkflowEnvironment;

beforeAll(async () => {
  env = await localDevEnvironment();
}, 120_000);

afterAll(async () => {
  await env?.teardown();
});

type Call = { name: string; args: unknown; wf: string };
const step = <T extends object>(s: T) => ({ ...s, manifestKey: 'runs/x/step/manifest.json', reused: false, durationMs: 1 });
const evaluation = { validationFrames: 2, validationVideos: 1, teacher: null, student: null };
/** A gate decision as the mocked activities return it. */
const GATE: GateDecision = {
  promote: false,
  rules: [{ rule: 'video-margin', passed: false, detail: 'tie' }],
  reason: 'held back: video-margin: tie',
  candidate: { name: 'cup', version: 2, score: 0.5 },
  production: { version: 1, score: 0.5 },
  evalVersion: 1,
  config: { margin: 0.02, recallTolerance: 0.05, minLowerBound: 0.6 },
};
const labelCounts = {
  tasks: 5,
  done: 5,
  labelled: 5,
  annotations: 6,
  validation: { tasks: 1, done: 1, pairs: 1, agreement: 1, kappa: null, disagreements: 0 },
};

/** What the mocked plan says per label: new videos, changed labels, or nothing. */
type Scenario = 'unchanged' | 'new-videos' | 'new-videos-human' | 'labels-only' | 'fails';

function plan(label: string, scenario: Scenario): RetrainPlan {
  const changed = scenario !== 'unchanged';
  return {
    label,
    changed,
    reasons: [scenario],
    newVideos: {
      positives: scenario.startsWith('new-videos') ? 2 : 0,
      negatives: scenario.startsWith('new-videos') ? 1 : 0,
      positivesLeftForLater: 0,
      knownUnusable: 0,
    },
    labels: { labelledFrames: 10, fingerprint: 'f', baseline: null },
    earlierRuns: 1,
    // The label's last run's labelling mode: weak, or people for `new-videos-human`.
    input: NewCategoryInput.parse({ label, gpuTaskQueue: 'rt-gpu', labeling: { mode: scenario === 'new-videos-human' ? 'human' : 'weak' } }),
    inputFrom: null,
  };
}

function mocks(calls: Call[], scenarioOf: (label: string) => Scenario, opts: { planDelayMs?: number; running?: { now: number; max: number } } = {}) {
  const race = { promotions: 0, evaluations: 0 };
  const rec =
    <A, R>(name: string, out: (a: A) => R | Promise<R>) =>
    async (a: A) => {
      calls.push({ name, args: a, wf: Context.current().info.workflowExecution?.workflowId ?? '' });
      return out(a);
    };
  const video: Partial<Record<keyof VideoActivities, unknown>> = {
    planRetrain: rec('planRetrain', async (a: { label: string }) => {
      if (opts.running) {
        opts.running.now++;
        opts.running.max = Math.max(opts.running.max, opts.running.now);
      }
      try {
        if (opts.planDelayMs) await new Promise((r) => setTimeout(r, opts.planDelayMs));
        if (scenarioOf(a.label) === 'fails') throw new DatasetError(`no catalog video matches label "${a.label}"`);
        return plan(a.label, scenarioOf(a.label));
      } finally {
        if (opts.running) opts.running.now--;
      }
    }),
    listRetrainLabels: rec('listRetrainLabels', (a: { labels: 'all' | string[] }) => (a.labels === 'all' ? ['a', 'b', 'c', 'd'] : a.labels)),
    startRun: rec('startRun', () => undefined),
    finishRun: rec('finishRun', () => undefined),
    searchNewVideos: rec('searchNewVideos', (a: { label: string }) =>
      step({ label: a.label, positives: 2, negatives: 1, videoIds: scenarioOf(a.label).startsWith('new-videos') ? ['n1', 'n2', 'neg1'] : [] }),
    ),
    extractVideo: rec('extractVideo', (a: { videoId: string }) => ({
      videoId: a.videoId,
      frames: 3,
      sampled: 3,
      dropped: { nearBlack: 0, nearWhite: 0, blurred: 0 },
      decodeErrorCount: 0,
      manifestKey: 'k',
      reused: false,
    })),
    finishExtract: rec('finishExtract', () =>
      step({ videos: 3, succeeded: 3, failed: 0, frames: 9, dropped: { nearBlack: 0, nearWhite: 0, blurred: 0 }, decodeErrorCount: 0 }),
    ),
    embedFrames: rec('embedFrames', () => step({ frames: 9, computed: 9, cached: 0 })),
    dedupeFrames: rec('dedupeFrames', () => step({ frames: 9, clusters: 5 })),
    labelFrames: rec('labelFrames', () => step({ source: 'weak', frames: 5, sent: 5, inherited: 0 })),
    // The labelling child's (human mode): people label the 5 new representatives at once.
    prepareLabeling: rec('prepareLabeling', (a: { deadline: string }) => ({
      projectId: 5,
      projectUrl: 'http://ls/projects/5/data',
      tasks: 5,
      created: 5,
      reused: 0,
      inherited: 0,
      validationTasks: 1,
      deadline: a.deadline,
      model: { name: 'cup', version: 1 },
    })),
    syncLabeling: rec('syncLabeling', () => ({ ...labelCounts, syncedAt: new Date().toISOString() })),
    finishLabeling: rec('finishLabeling', (a: { finishedBy: string }) =>
      step({
        source: 'human',
        mode: 'human',
        frames: 5,
        perLabel: { cup: 3, other: 2 },
        sent: 5,
        inherited: 0,
        human: 5,
        finishedBy: a.finishedBy,
        projectUrl: 'http://ls/projects/5/data',
      }),
    ),
    closeLabeling: rec('closeLabeling', () => undefined),
    buildLabelDataset: rec('buildLabelDataset', (a: { label: string }) =>
      step({
        name: a.label,
        version: 2,
        datasetKey: `datasets/${a.label}/v2/manifest.json`,
        labels: [a.label, 'other'],
        counts: { train: {}, validation: {} },
        unlabeled: 0,
        warnings: [],
      }),
    ),
    publishModels: rec('publishModels', (a: { workflowId: string }) =>
      step({
        models: [
          { role: 'teacher', name: a.workflowId, version: 2, artifactPrefix: 'models/x/v2/teacher' },
          { role: 'student', name: 'cup', version: 2, artifactPrefix: 'models/cup/v2/student' },
        ],
        evaluation,
      }),
    ),
    promoteIfBetter: rec('promoteIfBetter', (a: { workflowId: string; expectedProduction: number | null }) => {
      // rt-race's first promotion loses a race: production moved from v1 to v3 meanwhile.
      if (a.workflowId === 'rt-race' && ++race.promotions === 1) throw new PromotionConflictError('production of "cup" changed while cup@2 was being compared');
      return {
        decision: 'held-back',
        gate: { ...GATE, reason: `held back: video-margin: vs production v${a.expectedProduction}` },
        production: a.expectedProduction,
      };
    }),
    writeRunReport: rec('writeRunReport', (a: { workflowId: string }) => ({
      reportKey: `runs/${a.workflowId}/report.html`,
      bytes: 1,
      charts: 0,
      contactSheets: 0,
      steps: 1,
    })),
  };
  const gpu: Record<keyof TrainingActivities, unknown> = {
    predictFrames: rec('predictFrames', (a: { workflowId: string }) => ({
      model: { name: 'cup', version: 1, role: 'teacher' },
      frames: 5,
      predictionsKey: `runs/${a.workflowId}/label/predictions.json`,
    })),
    trainTeacher: rec('trainTeacher', () => step({ role: 'teacher', epochs: 2, finalLoss: 0.1 })),
    distillStudent: rec('distillStudent', () => step({ role: 'student', epochs: 4, finalLoss: 0.1 })),
    evaluateModels: rec('evaluateModels', () => step(evaluation)),
    predictVideos: rec('predictVideos', () => {
      throw new Error('not a batch predict');
    }),
    evaluateForPromotion: rec('evaluateForPromotion', () => ({ evalVersion: 1, production: race.evaluations++ === 0 ? 1 : 3, gate: GATE })),
  };
  const batch = batchExtraction(video.extractVideo as never);
  video.planExtract = rec('planExtract', batch.planExtract);
  video.extractVideos = rec('extractVideos', batch.extractVideos);
  return { video, gpu };
}

async function withWorkers<T>(m: ReturnType<typeof mocks>, fn: () => Promise<T>): Promise<T> {
  const video = await Worker.create({ connection: env.nativeConnection, taskQueue: 'rt-video', workflowsPath: WORKFLOWS_PATH, activities: m.video as object });
  const gpu = await Worker.create({ connection: env.nativeConnection, taskQueue: 'rt-gpu', activities: m.gpu as object });
  return video.runUntil(gpu.runUntil(fn()));
}

test('nothing changed: a no-op that runs one activity and says so', async () => {
  const calls: Call[] = [];
  const handle = await env.client.workflow.start(retrainWorkflow, { taskQueue: 'rt-video', workflowId: 'rt-noop', args: [{ label: 'cup' }] });
  const r = await withWorkers(
    mocks(calls, () => 'unchanged'),
    () => handle.result(),
  );
  expect(r.outcome).toBe('unchanged');
  expect(r.reasons).toEqual(['unchanged']);
  expect(r.cost.activities).toBe(1);
  expect(calls.map((c) => c.name)).toEqual(['planRetrain']);
  const desc = await handle.describe();
  expect(desc.searchAttributes).toMatchObject({ ReelsetLabel: ['cup'], ReelsetStage: ['unchanged'] });
  // The no-op's history is small: start, one activity, the two search-attribute upserts, completion.
  const events = (await handle.fetchHistory()).events ?? [];
  expect(events.filter((e) => e.activityTaskScheduledEventAttributes)).toHaveLength(1);
  expect(events.length).toBeLessThan(20);
}, 60_000);

test('new videos: only they are extracted, the label dataset is rebuilt, candidates are published', async () => {
  const calls: Call[] = [];
  const r = await withWorkers(
    mocks(calls, () => 'new-videos'),
    () =>
      env.client.workflow.execute(retrainWorkflow, {
        taskQueue: 'rt-video',
        workflowId: 'rt-new',
        args: [{ label: 'cup', overrides: { teacher: { epochs: 3 } } }],
      }),
  );
  expect(r.outcome).toBe('retrained');
  // (The extractVideo calls are the batches' insides, not activities of their own.)
  const own = calls.filter((c) => c.wf === 'rt-new' && c.name !== 'extractVideo').map((c) => c.name);
  expect(own).toEqual([
    'planRetrain',
    'startRun',
    'searchNewVideos',
    'planExtract',
    'extractVideos',
    'extractVideos',
    'finishExtract',
    'embedFrames',
    'dedupeFrames',
    'labelFrames',
    'buildLabelDataset',
    'trainTeacher',
    'distillStudent',
    'evaluateModels',
    'publishModels',
    'evaluateForPromotion',
    'promoteIfBetter',
    'finishRun',
    'writeRunReport',
  ]);
  // Every activity the workflow scheduled itself is counted, the extraction batches included.
  expect(r.cost.activities).toBe(own.length);
  expect(
    calls
      .filter((c) => c.name === 'extractVideo')
      .map((c) => (c.args as { videoId: string }).videoId)
      .sort(),
  ).toEqual(['n1', 'n2', 'neg1']);
  // In two batches (n1 + n2, neg1), activities of the run itself.
  expect(calls.filter((c) => c.name === 'extractVideos').map((c) => (c.args as { videoIds: string[] }).videoIds)).toEqual([['n1', 'n2'], ['neg1']]);
  expect(calls.find((c) => c.name === 'planRetrain')!.args).toMatchObject({ label: 'cup', force: false, overrides: { teacher: { epochs: 3 } } });
  expect(calls.find((c) => c.name === 'startRun')!.args).toMatchObject({ kind: 'retrain', label: 'cup' });
  expect(r.promotion).toMatchObject({ decision: 'held-back', note: 'held back: video-margin: vs production v1', production: 1 });
  expect(calls.find((c) => c.name === 'promoteIfBetter')!.args).toMatchObject({ workflowId: 'rt-new', name: 'cup', version: 2, expectedProduction: 1 });
  expect(r.reportKey).toBe('runs/rt-new/report.html');
  expect(Object.keys(r.run!.steps)).toEqual(['search', 'extract', 'embed', 'dedupe', 'label', 'dataset', 'train', 'distill', 'evaluate', 'publish']);
}, 60_000);

test('automatic promotion: a promotion that lost a race is compared again against the new production model', async () => {
  const calls: Call[] = [];
  const r = await withWorkers(
    mocks(calls, () => 'labels-only'),
    () => env.client.workflow.execute(retrainWorkflow, { taskQueue: 'rt-video', workflowId: 'rt-race', args: [{ label: 'cup' }] }),
  );
  const own = calls.filter((c) => c.wf === 'rt-race').map((c) => c.name);
  expect(own.filter((n) => n === 'evaluateForPromotion' || n === 'promoteIfBetter')).toEqual([
    'evaluateForPromotion',
    'promoteIfBetter',
    'evaluateForPromotion',
    'promoteIfBetter',
  ]);
  expect(calls.filter((c) => c.name === 'promoteIfBetter').map((c) => (c.args as { expectedProduction: number }).expectedProduction)).toEqual([1, 3]);
  expect(r.promotion).toMatchObject({ decision: 'held-back', production: 3 });
}, 60_000);

test('a label people label: only the new frames go to them, through the same labelling child as new-category', async () => {
  const calls: Call[] = [];
  const r = await withWorkers(
    mocks(calls, () => 'new-videos-human'),
    () => env.client.workflow.execute(retrainWorkflow, { taskQueue: 'rt-video', workflowId: 'rt-human', args: [{ label: 'cup' }] }),
  );
  expect(r.outcome).toBe('retrained');
  const own = calls.filter((c) => c.wf === 'rt-human' && c.name !== 'extractVideo').map((c) => c.name);
  expect(own).toEqual([
    'planRetrain',
    'startRun',
    'searchNewVideos',
    'planExtract',
    'extractVideos',
    'extractVideos',
    'finishExtract',
    'embedFrames',
    'dedupeFrames',
    'buildLabelDataset',
    'trainTeacher',
    'distillStudent',
    'evaluateModels',
    'publishModels',
    'evaluateForPromotion',
    'promoteIfBetter',
    'finishRun',
    'writeRunReport',
  ]);
  // The label step is the child `<retrain id>/label`: the published model pre-annotates,
  // the retrain's own (new, deduplicated) frames become tasks, the run waits until they are done.
  const child = calls.filter((c) => c.wf === 'rt-human/label');
  expect(child.map((c) => c.name)).toEqual(['predictFrames', 'prepareLabeling', 'syncLabeling', 'finishLabeling']);
  expect(child.find((c) => c.name === 'prepareLabeling')!.args).toMatchObject({
    workflowId: 'rt-human',
    label: 'cup',
    options: { mode: 'human', deadlineHours: 72, onDeadline: 'proceed' },
    predictionsKey: 'runs/rt-human/label/predictions.json',
  });
  expect(calls.some((c) => c.name === 'labelFrames')).toBe(false);
  expect(r.run!.steps.label!.summary).toMatchObject({ mode: 'human', human: 5, finishedBy: 'complete', projectUrl: 'http://ls/projects/5/data' });
  expect(Object.keys(r.run!.steps)).toEqual(['search', 'extract', 'embed', 'dedupe', 'label', 'dataset', 'train', 'distill', 'evaluate', 'publish']);
}, 60_000);

test('labels changed, no new video: no extraction, the dataset and models are rebuilt', async () => {
  const calls: Call[] = [];
  const r = await withWorkers(
    mocks(calls, () => 'labels-only'),
    () => env.client.workflow.execute(retrainWorkflow, { taskQueue: 'rt-video', workflowId: 'rt-labels', args: [{ label: 'cup' }] }),
  );
  expect(r.outcome).toBe('retrained');
  expect(calls.map((c) => c.name)).toEqual([
    'planRetrain',
    'startRun',
    'searchNewVideos',
    'buildLabelDataset',
    'trainTeacher',
    'distillStudent',
    'evaluateModels',
    'publishModels',
    'evaluateForPromotion',
    'promoteIfBetter',
    'finishRun',
    'writeRunReport',
  ]);
  expect(Object.keys(r.run!.steps)).toEqual(['search', 'dataset', 'train', 'distill', 'evaluate', 'publish']);
}, 60_000);

test('fan-out: every label runs, at most `concurrency` at once; a failing label fails the run after the others finished', async () => {
  const calls: Call[] = [];
  const running = { now: 0, max: 0 };
  const scenario = (l: string): Scenario => (l === 'b' ? 'fails' : l === 'c' ? 'new-videos' : 'unchanged');
  const err = await withWorkers(mocks(calls, scenario, { planDelayMs: 300, running }), () =>
    env.client.workflow.execute(retrainAllWorkflow, { taskQueue: 'rt-video', workflowId: 'rt-all', args: [{ labels: 'all', concurrency: 2 }] }),
  ).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
  expect(cause.type).toBe('RetrainFailedError');
  expect(cause.message).toContain('1 of 4 labels failed');
  expect(cause.message).toContain('b (DatasetError');
  const result = cause.details?.[0] as RetrainAllResult;
  expect(result.counts).toEqual({ retrained: 1, unchanged: 2, failed: 1 });
  expect(result.labels.map((l) => [l.label, l.outcome]).sort()).toEqual([
    ['a', 'unchanged'],
    ['b', 'failed'],
    ['c', 'retrained'],
    ['d', 'unchanged'],
  ]);
  expect(result.labels.find((l) => l.label === 'c')!.workflowId).toBe('rt-all/retrain/c');
  expect(running.max).toBe(2);
  // The failed label was tried once (DatasetError is not retried).
  expect(calls.filter((c) => c.name === 'planRetrain' && (c.args as { label: string }).label === 'b')).toHaveLength(1);
}, 90_000);

test('fan-out with every label unchanged completes; invalid input fails at once naming the field', async () => {
  const calls: Call[] = [];
  const r = await withWorkers(
    mocks(calls, () => 'unchanged'),
    () => env.client.workflow.execute(retrainAllWorkflow, { taskQueue: 'rt-video', workflowId: 'rt-all-ok', args: [{ labels: ['x', 'y', 'x'] }] }),
  );
  expect(r.counts).toEqual({ retrained: 0, unchanged: 2, failed: 0 });
  const err = await withWorkers(
    mocks([], () => 'unchanged'),
    () =>
      env.client.workflow.execute(retrainWorkflow, {
        taskQueue: 'rt-video',
        workflowId: 'rt-bad',
        args: [{ label: 'cup', overrides: { teacher: { epochs: -1 } } } as never],
      }),
  ).catch((e: unknown) => e);
  const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
  expect(cause.type).toBe('InvalidInputError');
  expect(cause.nonRetryable).toBe(true);
  expect(cause.message).toContain('teacher.epochs');
}, 60_000);
