/**
 * The replay fixtures of `test/workflow/replay.test.ts`: representative executions of
 * every workflow that parses its own input (new-category, retrain with its promotion
 * gate, retrain-all, backfill, batch predict), run under the time-skipping test server
 * with mocked activities, and their histories saved as JSON under `test/fixtures/`.
 *
 * Record them again (after a deliberate change that old histories need not follow, or to
 * add a scenario):
 *
 *     source infra/env.sh && npx tsx test/helpers/replay-fixtures.ts [name ...]
 *
 * With names, only those scenarios are recorded. A fixture is named after the workflow id
 * of its run (`<id>.history.json`; a run of a continue-as-new chain `<id>-run<N>` or
 * `<id>-last`), which the replay needs. A fixture records the workflow code of the commit
 * that recorded it: never re-record a fixture to make a replay failure go away (that is
 * the failure the fixtures are there to catch); guard the new code with a patch
 * (`workflows/patches.ts`) instead.
 */
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { Context } from '@temporalio/activity';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import {
  DatasetError,
  SEARCH_ATTRIBUTES,
  NewCategoryInput,
  PromotionConflictError,
  RegistryError,
  VideoDecodeError,
  type BackfillPagePlan,
  type GateDecision,
  type RetrainPlan,
} from '../../contracts';
import { batchExtraction } from './batch-extraction';
import { chainHistories } from './history';
import { temporalBinaries, WORKFLOWS_PATH } from './temporal';

export const FIXTURES_DIR = path.join(__dirname, '../fixtures');
export const VIDEO_QUEUE = 'replay-video';
export const GPU_QUEUE = 'replay-gpu';

/** One recorded execution: what starts it, how it ends, which of its chain's runs are kept. */
export interface Scenario {
  /** Fixture file prefix and workflow id. */
  name: string;
  /** What the fixture covers, in words. */
  covers: string;
  workflowType: string;
  args: unknown[];
  /** How the run ends (the last run of a continue-as-new chain). */
  ends: 'completed' | 'failed' | 'cancelled';
  /** Cancel the run once this holds (polled every 50 ms). */
  cancelWhen?: (handle: WorkflowHandle) => Promise<boolean>;
  /** Runs of the chain to keep (0 = the first, -1 = the last); default: every run. */
  keepRuns?: number[];
}

const step = <T extends object>(s: T) => ({ ...s, manifestKey: 'runs/x/step/manifest.json', reused: false, durationMs: 1 });
const evaluation = { validationFrames: 2, validationVideos: 1, teacher: null, student: null };
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
  tasks: 2,
  done: 2,
  labelled: 2,
  annotations: 3,
  validation: { tasks: 1, done: 1, pairs: 1, agreement: 1, kappa: null, disagreements: 0 },
};
const frames = (videoId: string, n: number) => ({
  videoId,
  frames: n,
  sampled: n,
  dropped: { nearBlack: 0, nearWhite: 0, blurred: 0 },
  decodeErrorCount: 0,
  manifestKey: `frames/${'a'.repeat(64)}/${'b'.repeat(16)}/manifest.json`,
  reused: videoId.endsWith('-old'),
});
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The workflow id of the calling activity (the parent's for a child's activity is its own id). */
const wfId = () => Context.current().info.workflowExecution?.workflowId ?? '';

/** Which retrain scenario a label plays (retrain-all: one fails, one retrains, the others are unchanged). */
function retrainPlan(label: string): RetrainPlan | Error {
  const scenario = label === 'b' ? 'fails' : label === 'c' || label === 'cup' ? 'new-videos' : 'unchanged';
  if (scenario === 'fails') return new DatasetError(`no catalog video matches label "${label}"`);
  return {
    label,
    changed: scenario !== 'unchanged',
    reasons: [scenario],
    newVideos: { positives: scenario === 'new-videos' ? 2 : 0, negatives: scenario === 'new-videos' ? 1 : 0, positivesLeftForLater: 0, knownUnusable: 0 },
    labels: { labelledFrames: 10, fingerprint: 'f', baseline: null },
    earlierRuns: 1,
    input: NewCategoryInput.parse({ label, gpuTaskQueue: GPU_QUEUE, extractConcurrency: 2, labeling: { mode: 'weak' } }),
    inputFrom: null,
  };
}

/**
 * Mocked activities of every workflow. Video ids decide what extraction does: `*-bad`
 * (and backfill's `v<i>` with i % 50 == 3) cannot be decoded, `*-empty` has no usable
 * frame, `*-old` is reused; a workflow id containing `slow` extracts until cancelled.
 */
export function replayActivities() {
  let races = 0;
  let evaluations = 0;
  const video = {
    startRun: async () => undefined,
    finishRun: async () => undefined,
    searchVideos: async () => step({ label: 'cup', positives: 5, negatives: 1, videoIds: ['v-a', 'v-bad', 'v-c', 'v-old', 'v-e', 'v-n'] }),
    searchNewVideos: async (a: { label: string }) =>
      step({ label: a.label, positives: 2, negatives: 1, videoIds: retrainPlan(a.label) instanceof Error ? [] : ['n1', 'n-bad', 'neg1'] }),
    extractVideo: async (a: { videoId: string }) => {
      if (wfId().includes('slow')) {
        const ctx = Context.current();
        for (;;) {
          ctx.heartbeat();
          if (ctx.cancellationSignal.aborted) {
            await wait(200);
            throw ctx.cancellationSignal.reason;
          }
          await wait(50);
        }
      }
      // Batch videos `b<i>` finish one after another (150 ms apart), each in a workflow task of its own.
      const b = /^b(\d+)/.exec(a.videoId);
      await wait(b ? 150 * Number(b[1]) : 5);
      const n = /^v(\d+)$/.exec(a.videoId);
      if (a.videoId.endsWith('-bad') || (n && Number(n[1]) % 50 === 3)) throw new VideoDecodeError(`${a.videoId}.mp4`, 'moov atom not found');
      return frames(a.videoId, a.videoId.endsWith('-empty') ? 0 : 3);
    },
    finishExtract: async (a: { failures: unknown[] }) =>
      step({
        videos: 6,
        succeeded: 6 - a.failures.length,
        failed: a.failures.length,
        frames: 15,
        dropped: { nearBlack: 0, nearWhite: 0, blurred: 0 },
        decodeErrorCount: 0,
      }),
    embedFrames: async () => step({ frames: 15, computed: 10, cached: 5, forwardPasses: 10, dim: 1280, model: 'm', backend: 'wasm' }),
    dedupeFrames: async () => step({ frames: 15, clusters: 6, duplicates: 9, threshold: 0.79, crossVideoClusters: 0 }),
    labelFrames: async () => step({ source: 'weak', frames: 6, perLabel: { cup: 3, other: 3 } }),
    prepareLabeling: async (a: { deadline: string }) => ({
      projectId: 5,
      projectUrl: 'http://ls/projects/5/data',
      tasks: 2,
      created: 2,
      reused: 0,
      inherited: 0,
      validationTasks: 1,
      deadline: a.deadline,
      model: null,
    }),
    syncLabeling: async () => ({ ...labelCounts, syncedAt: '2026-01-01T00:00:00.000Z' }),
    finishLabeling: async (a: { finishedBy: string }) =>
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
    closeLabeling: async () => undefined,
    buildDataset: async () =>
      step({
        name: 'cup',
        version: 1,
        datasetKey: 'datasets/cup/v1/manifest.json',
        labels: ['cup', 'other'],
        counts: { train: { cup: 2 }, validation: { cup: 1 } },
        unlabeled: 4,
        warnings: [],
      }),
    publishModels: async (a: { workflowId: string }) =>
      step({
        models: [
          { role: 'teacher', name: 'cup', version: 2, artifactPrefix: `models/${a.workflowId}/teacher` },
          { role: 'student', name: 'cup', version: 2, artifactPrefix: 'models/cup/v2/student' },
        ],
        evaluation,
      }),
    writeRunReport: async (a: { workflowId: string }) => ({ reportKey: `runs/${a.workflowId}/report.html`, bytes: 1, charts: 0, contactSheets: 0, steps: 10 }),
    planRetrain: async (a: { label: string }) => {
      await wait(20);
      const p = retrainPlan(a.label);
      if (p instanceof Error) throw p;
      return p;
    },
    listRetrainLabels: async (a: { labels: 'all' | string[] }) => (a.labels === 'all' ? ['a', 'b', 'c', 'd'] : a.labels),
    buildLabelDataset: async (a: { label: string }) =>
      step({
        name: a.label,
        version: 2,
        datasetKey: `datasets/${a.label}/v2/manifest.json`,
        labels: [a.label, 'other'],
        counts: { train: {}, validation: {} },
        unlabeled: 0,
        warnings: [],
      }),
    promoteIfBetter: async (a: { workflowId: string; expectedProduction: number | null }) => {
      // The standalone retrain's first promotion loses a race: production moved meanwhile.
      if (a.workflowId === 'replay-retrain' && ++races === 1) throw new PromotionConflictError('production of "cup" changed while cup@2 was being compared');
      return {
        decision: 'held-back',
        gate: { ...GATE, reason: `held back: video-margin: vs production v${a.expectedProduction}` },
        production: a.expectedProduction,
      };
    },
    selectBackfill: async (a: { pageSize: number }) => {
      const total = wfId().includes('slow') ? 20 : 60;
      return step({
        label: 'cup',
        total,
        pages: Math.ceil(total / a.pageSize),
        pageSize: a.pageSize,
        digest: 'd',
        missing: [],
        notOfLabel: [],
        missingCount: 0,
        notOfLabelCount: 0,
      });
    },
    planBackfillPage: async (a: { page: number; batching?: unknown }): Promise<BackfillPagePlan> => {
      const pageSize = 10;
      const ids = Array.from({ length: pageSize }, (_, k) => a.page * pageSize + k);
      const reused = ids.filter((i) => i % 7 === 0);
      const toExtract = ids.filter((i) => i % 7 !== 0).map((i) => `v${i}`);
      const batches = a.batching ? [toExtract.slice(0, 3), toExtract.slice(3, 6), toExtract.slice(6)].filter((b) => b.length) : undefined;
      return { page: a.page, videos: ids.length, toExtract, ...(batches ? { batches } : {}), reused: reused.length, reusedFrames: 3 * reused.length };
    },
    planBatchPredict: async (a: { workflowId: string; model: string; videoIds: string[]; maxVideos: number }) => {
      if (a.model === 'nope') throw new RegistryError('no model "nope"');
      return { model: { name: 'cup', version: 3, stage: 'production', studentPrefix: 'models/cup/v3/student' }, videoIds: a.videoIds.slice(0, a.maxVideos) };
    },
  };
  const gpu = {
    predictFrames: async () => ({ model: null, frames: 0, predictionsKey: null }),
    trainTeacher: async () => step({ role: 'teacher', epochs: 2, finalLoss: 0.1 }),
    distillStudent: async () => step({ role: 'student', epochs: 4, finalLoss: 0.1 }),
    evaluateModels: async () => step(evaluation),
    evaluateForPromotion: async () => ({ evalVersion: 1, production: evaluations++ === 0 ? 1 : 3, gate: GATE }),
    predictVideos: async (a: {
      workflowId: string;
      plan: { model: { name: string; version: number; stage: string } };
      videos: Array<{ videoId: string; manifestKey: string | null }>;
    }) => {
      if (a.workflowId.includes('predict-fails')) throw new RegistryError('student of cup@3 is missing');
      const ok = a.videos.filter((v) => v.manifestKey);
      return {
        workflowId: a.workflowId,
        model: a.plan.model,
        videos: a.videos.length,
        failed: a.videos.length - ok.length,
        perLabel: { cup: ok.length },
        frameLabels: 3 * ok.length,
        predictionsKey: `runs/${a.workflowId}/predict/predictions.json`,
      };
    },
  };
  // Batches (the extract-batches patch): two videos a batch, each video through the mock above.
  Object.assign(video, batchExtraction(video.extractVideo as never, 2));
  return { video, gpu };
}

const batchVideos = ['b1', 'b2', 'b3-bad', 'b4', 'b5-empty', 'b6', 'b7', 'b8-old'];

export const SCENARIOS: Scenario[] = [
  {
    name: 'replay-new-category',
    covers: 'new-category, weak labels: 6 videos 2 at a time, one cannot be decoded (a failing child), one reused; completed with its report',
    workflowType: 'newCategoryWorkflow',
    args: [{ label: 'cup', gpuTaskQueue: GPU_QUEUE, extractConcurrency: 2, labeling: { mode: 'weak' } }],
    ends: 'completed',
  },
  {
    name: 'replay-new-category-batched',
    covers: 'new-category with extraction in batches (extract-batches patch): planExtract, extractVideos of two videos, one cannot be decoded',
    workflowType: 'newCategoryWorkflow',
    args: [{ label: 'cup', gpuTaskQueue: GPU_QUEUE, extractConcurrency: 2, labeling: { mode: 'weak' }, extractBatching: { mode: 'auto' } }],
    ends: 'completed',
  },
  {
    name: 'replay-new-category-human',
    covers: 'new-category, human labels: the labelling child <id>/label (human-labeling patch), run report',
    workflowType: 'newCategoryWorkflow',
    args: [{ label: 'cup', gpuTaskQueue: GPU_QUEUE, extractConcurrency: 3 }],
    ends: 'completed',
  },
  {
    name: 'replay-retrain',
    covers:
      'retrain of one label: new videos (one failing child), weak labels, promotion gate whose first promotion loses a race (promotion-gate patch), run report',
    workflowType: 'retrainWorkflow',
    args: [{ label: 'cup' }],
    ends: 'completed',
  },
  {
    name: 'replay-retrain-all',
    covers: 'retrain-all: 4 label children 2 at a time, one fails (a failing child), the run fails with RetrainFailedError after the others',
    workflowType: 'retrainAllWorkflow',
    args: [{ labels: 'all', concurrency: 2 }],
    ends: 'failed',
  },
  {
    name: 'replay-backfill',
    covers:
      'backfill of 60 videos in pages of 10 (every 7th reused, v3 and v53 fail): the history bound makes it continue as new; the first run (continued as new) and the last (completed) are kept',
    workflowType: 'backfillWorkflow',
    args: [{ label: 'cup', pageSize: 10, maxHistoryEvents: 500, concurrency: 3, heartbeatTimeoutS: 10 }],
    ends: 'completed',
    keepRuns: [0, -1],
  },
  {
    name: 'replay-backfill-batched',
    covers: 'backfill of 60 videos in pages of 10 with extraction in batches (extract-batches patch): three batches a page, v3 and v53 fail inside theirs',
    workflowType: 'backfillWorkflow',
    args: [{ label: 'cup', pageSize: 10, maxHistoryEvents: 300, concurrency: 3, heartbeatTimeoutS: 10, batching: { mode: 'auto' } }],
    ends: 'completed',
    keepRuns: [0, -1],
  },
  {
    name: 'replay-backfill-slow-cancel',
    covers: 'backfill cancelled while 3 extract children run: children cancelled and awaited, the run recorded cancelled',
    workflowType: 'backfillWorkflow',
    args: [{ label: 'cup', pageSize: 10, concurrency: 3, heartbeatTimeoutS: 2 }],
    ends: 'cancelled',
    cancelWhen: async (h) => {
      const events = (await h.fetchHistory()).events ?? [];
      return events.filter((e) => e.childWorkflowExecutionStartedEventAttributes).length >= 3;
    },
  },
  {
    name: 'replay-batch-predict',
    covers: 'batch predict of 8 videos 3 at a time: one cannot be decoded (a failing child), one has no frame, one reused; completed',
    workflowType: 'batchPredictWorkflow',
    args: [{ model: 'cup', videoIds: batchVideos, concurrency: 3, gpuTaskQueue: GPU_QUEUE }],
    ends: 'completed',
  },
  {
    name: 'replay-batch-predict-long',
    covers:
      'batch predict of 40 videos 4 at a time whose request carries maxHistoryEvents: 200 (code before the field existed ignored it): ' +
      'code that continues as new on that bound replays it only behind the batch-predict-fan-out patch',
    workflowType: 'batchPredictWorkflow',
    args: [{ model: 'cup', videoIds: Array.from({ length: 40 }, (_, i) => `c${i + 1}`), concurrency: 4, gpuTaskQueue: GPU_QUEUE, maxHistoryEvents: 200 }],
    ends: 'completed',
  },
  {
    name: 'replay-batch-predict-fails',
    covers: 'batch predict whose predictVideos fails (non-retryable): recorded failed',
    workflowType: 'batchPredictWorkflow',
    args: [{ model: 'cup', videoIds: ['b1', 'b2'], concurrency: 2, gpuTaskQueue: GPU_QUEUE }],
    ends: 'failed',
  },
  {
    name: 'replay-batch-predict-invalid',
    covers: 'batch predict with invalid input: fails at once with InvalidInputError',
    workflowType: 'batchPredictWorkflow',
    args: [{ model: '', concurrency: 0 }],
    ends: 'failed',
  },
];

/**
 * A time-skipping test server with reelset's search attributes (`ReelsetLabel`,
 * `ReelsetStage`) registered, as the workflows that set them need.
 */
export async function timeSkippingEnvironment(): Promise<TestWorkflowEnvironment> {
  const env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: temporalBinaries().testServer } } });
  const KEYWORD = temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
  await env.connection.operatorService.addSearchAttributes({
    namespace: env.namespace ?? 'default',
    searchAttributes: { [SEARCH_ATTRIBUTES.label]: KEYWORD, [SEARCH_ATTRIBUTES.stage]: KEYWORD },
  });
  return env;
}

/** Run one scenario to its end and return the histories of the runs it keeps, with their file names. */
export async function recordScenario(client: Client, s: Scenario): Promise<Array<{ file: string; json: string; events: number }>> {
  const handle = await client.workflow.start(s.workflowType, { taskQueue: VIDEO_QUEUE, workflowId: s.name, args: s.args });
  if (s.cancelWhen) {
    for (let i = 0; i < 400 && !(await s.cancelWhen(handle)); i++) await wait(50);
    await handle.cancel();
  }
  const outcome = await handle.result().then(
    () => 'completed',
    (err: unknown) => ((err as { cause?: unknown }).cause instanceof CancelledFailure ? 'cancelled' : 'failed'),
  );
  if (outcome !== s.ends) throw new Error(`${s.name} ended ${outcome}, expected ${s.ends}`);
  const runs = await chainHistories(client, s.name, handle.firstExecutionRunId);
  const keep = (s.keepRuns ?? runs.map((_, i) => i)).map((i) => (i < 0 ? runs.length + i : i));
  return [...new Set(keep)].map((i) => {
    const suffix = runs.length === 1 ? '' : i === runs.length - 1 ? '-last' : `-run${i + 1}`;
    const history = { events: runs[i]!.events };
    return { file: `${s.name}${suffix}.history.json`, json: JSON.stringify(history), events: runs[i]!.events.length };
  });
}

async function main(names: string[]): Promise<void> {
  const chosen = names.length ? SCENARIOS.filter((s) => names.includes(s.name)) : SCENARIOS;
  if (chosen.length !== (names.length || SCENARIOS.length)) throw new Error(`unknown scenario among ${names.join(', ')}`);
  const env = await timeSkippingEnvironment();
  try {
    const m = replayActivities();
    const video = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: VIDEO_QUEUE,
      workflowsPath: WORKFLOWS_PATH,
      activities: m.video,
      maxConcurrentActivityTaskExecutions: 16,
    });
    const gpu = await Worker.create({ connection: env.nativeConnection, taskQueue: GPU_QUEUE, activities: m.gpu });
    await video.runUntil(
      gpu.runUntil(async () => {
        for (const s of chosen) {
          for (const f of await recordScenario(env.client, s)) {
            writeFileSync(path.join(FIXTURES_DIR, f.file), f.json);
            console.log(`${f.file}: ${f.events} events (${s.covers})`);
          }
        }
      }),
    );
  } finally {
    await env.teardown();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
