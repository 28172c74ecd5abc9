/**
 * The pipeline's shared workflow code: the parts new-category and retrain both run, so
 * that neither copies the other. Plain functions called from a workflow (not workflows
 * themselves): they issue the same commands, in the same order, as the code they were
 * taken from, so histories recorded before the split replay unchanged
 * (`test/workflow/replay.test.ts`).
 *
 * - {@link trackRun}: the progress query, the `ReelsetLabel` / `ReelsetStage` search
 *   attributes and the per-step report of the result;
 * - {@link extractStep}: the extraction fan-out (one child per video, bounded, continue-as-new
 *   when the history grows: `./fan-out.ts`) and the extract step's manifest;
 * - {@link embedAndDedupe}: steps 3 and 4;
 * - {@link labelStep}: step 5, by people in Label Studio (a child workflow) or weak labels;
 * - {@link trainAndPublish}: steps 7 to 10 (teacher, student, evaluation, candidates);
 * - {@link finishFailedRun} and {@link writeReport}: the end of a run.
 */
import { CancellationScope, executeChild, isCancellation, log, patched, proxyActivities, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import type { TrainingActivities, VideoActivities } from '../activities';
import {
  ExtractBatching,
  extractChildWorkflowId,
  failureOf,
  LABEL_ATTRIBUTE,
  labelingChildWorkflowId,
  long,
  progressQuery,
  SHORT,
  STAGE_ATTRIBUTE,
  type ContinueState,
  type ExtractBatchItem,
  type ExtractStepSummary,
  type NewCategoryInput,
  type NewCategoryResult,
  type Progress,
  type PublishSummary,
  type Stage,
  type Step,
  type StepResult,
  type VideoExtractSummary,
  type VideoFailure,
} from '../contracts';
import { batchExtractor } from './extract-batch';
import { extractVideoWorkflow } from './extract-video';
import { fanOut, FanOutPool } from './fan-out';
import { labelingWorkflow } from './labeling';
import { EXTRACT_BATCHES_PATCH, HUMAN_LABELING_PATCH, RUN_REPORT_PATCH } from './patches';

/** The run's progress and step reports, and the two calls that move them. */
export interface RunTracker {
  /** What the `progress` query answers (mutated in place). */
  progress: Progress;
  /** Step reports for the result, in the order the steps finished. */
  steps: NewCategoryResult['steps'];
  /** Enter a stage: the progress query and the `ReelsetStage` (and `ReelsetLabel`) search attributes say so. */
  stage(s: Stage): void;
  /** Record a finished step's duration, reuse, manifest key and summary. */
  done(s: Step, r: { durationMs: number; reused: boolean; manifestKey: string } & object): void;
  /** Activities scheduled so far by the helpers of this module (and by proxies wrapped with {@link counted}). */
  counter: ActivityCounter;
}

/** A count of scheduled activities. */
export interface ActivityCounter {
  n: number;
}

/**
 * Wrap an activity proxy so that every call adds one to `counter` (the retrain reports
 * what it cost). Deterministic: the count follows the code path.
 */
export function counted<T extends object>(proxy: T, counter: ActivityCounter): T {
  return new Proxy(proxy, {
    get(target, prop, receiver) {
      const fn = Reflect.get(target, prop, receiver) as unknown;
      if (typeof fn !== 'function') return fn;
      return (...args: unknown[]) => {
        counter.n++;
        return (fn as (...a: unknown[]) => unknown)(...args);
      };
    },
  });
}

/**
 * Start tracking a run: registers the `progress` query handler (answered at once) and
 * returns the tracker. Issues no command until the first `stage()`.
 *
 * @param label the run's label, as the search attribute shows it.
 * @param state the extraction state carried through continue-as-new, if any.
 * @param counter where activity calls are counted (a fresh count by default).
 */
export function trackRun(label: string, state?: ContinueState, counter: ActivityCounter = { n: 0 }): RunTracker {
  const progress: Progress = {
    label,
    stage: 'search',
    stepsDone: [],
    videos: { total: 0, extracted: state?.extracted ?? 0, failed: state?.failures.length ?? 0, running: 0 },
  };
  setHandler(progressQuery, () => progress);
  const steps: NewCategoryResult['steps'] = {};
  return {
    progress,
    steps,
    counter,
    stage(s) {
      progress.stage = s;
      upsertSearchAttributes([
        { key: LABEL_ATTRIBUTE, value: label },
        { key: STAGE_ATTRIBUTE, value: s },
      ]);
    },
    done(s, r) {
      const { durationMs, reused, manifestKey, ...summary } = r;
      steps[s] = { durationMs, reused, manifestKey, summary: summary as Record<string, unknown> };
      progress.stepsDone.push(s);
    },
  };
}

/** Options of {@link extractStep}. */
export interface ExtractStepOptions {
  workflowId: string;
  /** Videos to extract, in order. */
  videoIds: string[];
  input: Pick<NewCategoryInput, 'extract' | 'extractBatching' | 'extractConcurrency' | 'heartbeatTimeoutS'>;
  /** Where an earlier run of this chain stopped (continue-as-new). */
  state?: ContinueState;
  /** Continue the calling workflow as new with this extraction state (its own args). */
  continueAsNew: (state: ContinueState) => Promise<never>;
}

/**
 * Step 2: the videos cut into batches (`planExtract`), one `extractVideos` activity per
 * batch (`./extract-batch.ts`), at most `extractConcurrency` at once; with
 * `extractBatching.mode` `off` (or replaying a history from before batches), one
 * `extractVideoWorkflow` child per video, ids `<workflowId>/extract/<video>`. A video
 * that fails is reported and the run goes on. When Temporal suggests it (history growing), waits for running children and
 * continues as new with the cursor. Then `finishExtract` writes the step's manifest.
 *
 * @returns the extract step's result and the videos that failed.
 */
export async function extractStep(run: RunTracker, opts: ExtractStepOptions): Promise<{ extract: StepResult<ExtractStepSummary>; failures: VideoFailure[] }> {
  const { workflowId, input, state } = opts;
  const cpu = counted(proxyActivities<VideoActivities>(SHORT), run.counter);
  const ids = opts.videoIds;
  const progress = run.progress;
  progress.videos.total = ids.length;
  const failures: VideoFailure[] = [...(state?.failures ?? [])];
  const started = state?.startedAtMs ?? Date.now();
  let reusedVideos = state?.reusedVideos ?? 0;
  const cursor = state?.cursor ?? 0;
  // Batches (one activity for several short videos) unless the input says `off` or the history predates them.
  // An input recorded before batching existed (a retrain's plan in an old history) has no `extractBatching`.
  const batching = input.extractBatching ?? ExtractBatching.parse({});
  if (batching.mode === 'auto' && patched(EXTRACT_BATCHES_PATCH)) {
    // The cursor counts videos: a continued run plans batches of the videos it has left.
    const batches = await cpu.planExtract({ videoIds: ids.slice(cursor), options: input.extract, batching, lanes: input.extractConcurrency });
    const extract = batchExtractor({ options: input.extract, heartbeatTimeoutS: input.heartbeatTimeoutS, wrap: (p) => counted(p, run.counter) });
    const pool = new FanOutPool<string[], ExtractBatchItem[]>({
      concurrency: input.extractConcurrency,
      start: (batch) => {
        progress.videos.running += batch.length;
        return extract(batch);
      },
      onSuccess: (_batch, items) => {
        for (const item of items) {
          if (item.ok) {
            progress.videos.extracted++;
            if (item.summary.reused) reusedVideos++;
          } else {
            failures.push({ videoId: item.videoId, ...item.failure });
            progress.videos.failed++;
            log.warn('video failed; the run goes on without it', { videoId: item.videoId, ...item.failure });
          }
        }
        log.info('batch extracted', { videos: items.length, failed: items.filter((i) => !i.ok).length });
      },
      // Only a cancellation reaches here (batchExtractor reports every other failure per video).
      onFailure: (batch, err) => {
        for (const videoId of batch) failures.push({ videoId, ...failureOf(err) });
        progress.videos.failed += batch.length;
      },
      onSettled: (batch) => {
        progress.videos.running -= batch.length;
      },
    });
    const out = await fanOut(pool, batches);
    if (!out.done) {
      const next = cursor + batches.slice(0, out.cursor).reduce((a, b) => a + b.length, 0);
      await opts.continueAsNew({ cursor: next, failures, extracted: progress.videos.extracted, reusedVideos, startedAtMs: started });
    }
  } else {
    const pool = new FanOutPool<string, VideoExtractSummary>({
      concurrency: input.extractConcurrency,
      start: (videoId) => {
        progress.videos.running++;
        return executeChild(extractVideoWorkflow, {
          workflowId: extractChildWorkflowId(workflowId, videoId),
          args: [{ videoId, options: input.extract, heartbeatTimeoutS: input.heartbeatTimeoutS }],
        });
      },
      onSuccess: (videoId, r) => {
        progress.videos.extracted++;
        if (r.reused) reusedVideos++;
        log.info('video extracted', { videoId, frames: r.frames, reused: r.reused });
      },
      onFailure: (videoId, err) => {
        const failed: VideoFailure = { videoId, ...failureOf(err) };
        failures.push(failed);
        progress.videos.failed++;
        log.warn('video failed; the run goes on without it', { ...failed });
      },
      onSettled: () => progress.videos.running--,
    });
    const out = await fanOut(pool, ids, { cursor });
    if (!out.done) {
      await opts.continueAsNew({ cursor: out.cursor, failures, extracted: progress.videos.extracted, reusedVideos, startedAtMs: started });
    }
  }
  // The step's duration is recorded from its start here (run_steps, the report), not from finishExtract's own start.
  const extract = await cpu.finishExtract({ workflowId, options: input.extract, failures, startedAtMs: started });
  // reusedVideos: videos whose frames an earlier run (or attempt) had made, found by content.
  const report = { ...extract, reusedVideos };
  run.done('extract', report);
  return { extract, failures };
}

/** Steps 3 and 4: embed the run's frames, then cluster them with the label's earlier frames. */
export async function embedAndDedupe(
  run: RunTracker,
  workflowId: string,
  input: Pick<NewCategoryInput, 'heartbeatTimeoutS' | 'dedupeThreshold' | 'labelBudget'>,
): Promise<void> {
  const cpuLong = counted(proxyActivities<VideoActivities>(long(input.heartbeatTimeoutS, '2 hours')), run.counter);
  run.stage('embed');
  run.done('embed', await cpuLong.embedFrames({ workflowId }));
  run.stage('dedupe');
  run.done('dedupe', await cpuLong.dedupeFrames({ workflowId, threshold: input.dedupeThreshold, labelBudget: input.labelBudget }));
}

/**
 * Step 5, label: the representatives the dedupe step sent on get a label.
 *
 * - `labeling.mode` `human`: people label them in the label's Label Studio project; the
 *   run waits durably in the child workflow `<workflowId>/label` (`./labeling.ts`: webhook
 *   signals, reconciliation, deadline with its policy, finish signal), whose result is the
 *   step's. Frames a person already labelled in an earlier run of the label are not sent
 *   again, so a retrain sends only its new unique frames.
 * - `weak`: `labelFrames` copies the search's weak labels; nothing waits.
 *
 * The human branch is behind `patched(HUMAN_LABELING_PATCH)`: histories recorded before
 * it existed (their label step was `labelFrames`) replay unchanged. The same code serves
 * new-category and retrain, so both take the same `labeling` input.
 *
 * @param input the run's pipeline input (`label` is the canonical label for a retrain).
 */
export async function labelStep(
  run: RunTracker,
  workflowId: string,
  input: Pick<NewCategoryInput, 'label' | 'labeling' | 'validationFraction' | 'seed' | 'gpuTaskQueue' | 'heartbeatTimeoutS'>,
): Promise<void> {
  const cpu = counted(proxyActivities<VideoActivities>(SHORT), run.counter);
  run.stage('label');
  if (input.labeling.mode === 'human' && patched(HUMAN_LABELING_PATCH)) {
    run.done(
      'label',
      await executeChild(labelingWorkflow, {
        workflowId: labelingChildWorkflowId(workflowId),
        args: [
          {
            runWorkflowId: workflowId,
            label: input.label,
            options: input.labeling,
            validationFraction: input.validationFraction,
            seed: input.seed,
            gpuTaskQueue: input.gpuTaskQueue,
            heartbeatTimeoutS: input.heartbeatTimeoutS,
          },
        ],
      }),
    );
  } else {
    run.done('label', await cpu.labelFrames({ workflowId, source: 'weak' }));
  }
}

/**
 * Steps 7 to 10 on the run's dataset step: teacher and student on the GPU task queue,
 * their evaluation, then both published as candidates (`models` rows, `models/<label>/v<N>/`).
 *
 * @returns the publish step's result (models and evaluation).
 */
export async function trainAndPublish(
  run: RunTracker,
  workflowId: string,
  input: Pick<NewCategoryInput, 'heartbeatTimeoutS' | 'gpuTaskQueue' | 'teacher' | 'student' | 'seed'>,
): Promise<StepResult<PublishSummary>> {
  const cpu = counted(proxyActivities<VideoActivities>(SHORT), run.counter);
  const gpu = counted(proxyActivities<TrainingActivities>(long(input.heartbeatTimeoutS, '4 hours', input.gpuTaskQueue)), run.counter);
  run.stage('train');
  run.done('train', await gpu.trainTeacher({ workflowId, teacher: input.teacher, seed: input.seed }));
  run.stage('distill');
  run.done('distill', await gpu.distillStudent({ workflowId, teacher: input.teacher, student: input.student, seed: input.seed }));
  run.stage('evaluate');
  run.done('evaluate', await gpu.evaluateModels({ workflowId }));
  run.stage('publish');
  const publish = await cpu.publishModels({ workflowId });
  run.done('publish', publish);
  return publish;
}

/**
 * The end of a run that failed or was cancelled: stage `failed`, and the end recorded in
 * Postgres (`runs.status` `cancelled` when the run was cancelled (`reelset cancel`, the
 * Temporal UI), else `failed`; the stage it stopped at, the failure's type and message),
 * also while the run is being cancelled. Never throws.
 */
export async function finishFailedRun(run: RunTracker, workflowId: string, err: unknown): Promise<void> {
  const cpu = counted(proxyActivities<VideoActivities>(SHORT), run.counter);
  const failedAt = run.progress.stage;
  run.stage('failed');
  const { type, message } = failureOf(err);
  // Record the end even when the run was cancelled.
  const status = isCancellation(err) ? 'cancelled' : 'failed';
  await CancellationScope.nonCancellable(() =>
    cpu.finishRun({ workflowId, status, result: { stage: failedAt, type, error: message, steps: run.steps } }),
  ).catch(() => undefined);
}

/**
 * Write the run's HTML report (`runs/<id>/report.html`) as the run's last activity, also
 * when it failed or was cancelled. Best effort: a report that cannot be written is
 * logged and never fails the run. Guarded by {@link RUN_REPORT_PATCH}.
 *
 * @returns the report's key, or undefined when it was not written.
 */
export async function writeReport(workflowId: string, counter: ActivityCounter = { n: 0 }): Promise<string | undefined> {
  if (!patched(RUN_REPORT_PATCH)) return undefined;
  counter.n++;
  const cpu = proxyActivities<VideoActivities>({
    ...SHORT,
    startToCloseTimeout: '5 minutes',
    scheduleToCloseTimeout: '15 minutes',
    retry: { ...SHORT.retry, maximumAttempts: 3 },
  });
  try {
    const r = await CancellationScope.nonCancellable(() => cpu.writeRunReport({ workflowId }));
    return r.reportKey;
  } catch (err) {
    log.warn('run report not written', { ...failureOf(err) });
    return undefined;
  }
}
