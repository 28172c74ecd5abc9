import {
  ApplicationFailure,
  CancellationScope,
  condition,
  ContinueAsNew,
  continueAsNew,
  defineQuery,
  executeChild,
  log,
  proxyActivities,
  setHandler,
  TemporalFailure,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { TrainingActivities, VideoActivities } from '../activities';
import type { VideoExtractSummary, VideoFailure } from '../activities/frames/activities';
import type { PublishSummary } from '../activities/training/activities';
import { extractVideoWorkflow } from './extract-video';
import { NewCategoryInput, type NewCategoryRequest } from './input';
import { long, SEARCH_ATTRIBUTES, SHORT } from './policies';

/** The pipeline's steps, in order; also the values of the `ReelsetStage` search attribute. */
export const STEPS = ['search', 'extract', 'embed', 'dedupe', 'label', 'dataset', 'train', 'distill', 'evaluate', 'publish'] as const;
export type Step = (typeof STEPS)[number];

/** Answer of the {@link progressQuery}. */
export interface Progress {
  label: string;
  stage: Step | 'done' | 'failed';
  stepsDone: Step[];
  videos: { total: number; extracted: number; failed: number; running: number };
}

/** Query: where the run is (stage, steps done, videos extracted). */
export const progressQuery = defineQuery<Progress>('progress');

/** One step's line in the result: its duration and its small summary. */
export interface StepReport {
  durationMs: number;
  reused: boolean;
  manifestKey: string;
  summary: Record<string, unknown>;
}

/** Result of the new-category workflow: small, for the history and the CLI. */
export interface NewCategoryResult {
  workflowId: string;
  label: string;
  /** `runs/<workflowId>` in the bucket: every step's manifest is under it. */
  runPrefix: string;
  steps: Partial<Record<Step, StepReport>>;
  /** Videos whose extraction failed (the run went on without them). */
  failures: VideoFailure[];
  dataset: { name: string; version: number; datasetKey: string; counts: Record<string, Record<string, number>>; warnings: string[] };
  models: PublishSummary['models'];
  evaluation: PublishSummary['evaluation'];
}

/** State carried through continue-as-new during the extraction fan-out. */
export interface ContinueState {
  /** Index of the next video to extract. */
  cursor: number;
  failures: VideoFailure[];
  extracted: number;
}

/**
 * The new-category workflow: from a label to a labelled, deduplicated dataset and a
 * trained, distilled, evaluated and registered classifier.
 *
 * Input is validated first; a bad field fails the run at once with a non-retryable
 * `InvalidInputError` naming the field. Every step is an activity that checkpoints its
 * manifest under `runs/<workflowId>/<step>/` and returns it when it finds it, so a
 * reset or retried run resumes where it was. Extraction fans out to one child
 * workflow per video (bounded by `extractConcurrency`); a video that fails is reported
 * in the result and the run goes on. When the history grows large during the fan-out
 * the run continues as new, carrying only a cursor and the failures.
 *
 * Training, distillation and evaluation run on the GPU task queue.
 */
export async function newCategoryWorkflow(request: NewCategoryRequest, state?: ContinueState): Promise<NewCategoryResult> {
  const parsed = NewCategoryInput.safeParse(request);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw ApplicationFailure.create({
      type: 'InvalidInputError',
      nonRetryable: true,
      message: `invalid new-category input: field "${issue.path.join('.') || '(root)'}": ${issue.message}`,
      details: [parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }))],
    });
  }
  const input = parsed.data;
  const { workflowId } = workflowInfo();
  const cpu = proxyActivities<VideoActivities>(SHORT);
  const cpuLong = proxyActivities<VideoActivities>(long(input.heartbeatTimeoutS, '2 hours'));
  const gpu = proxyActivities<TrainingActivities>(long(input.heartbeatTimeoutS, '4 hours', input.gpuTaskQueue));

  const progress: Progress = {
    label: input.label,
    stage: 'search',
    stepsDone: [],
    videos: { total: 0, extracted: state?.extracted ?? 0, failed: state?.failures.length ?? 0, running: 0 },
  };
  setHandler(progressQuery, () => progress);
  const steps: NewCategoryResult['steps'] = {};
  const stage = (s: Step) => {
    progress.stage = s;
    upsertSearchAttributes({ [SEARCH_ATTRIBUTES.label]: [input.label], [SEARCH_ATTRIBUTES.stage]: [s] });
  };
  const done = (s: Step, r: { durationMs: number; reused: boolean; manifestKey: string } & object) => {
    const { durationMs, reused, manifestKey, ...summary } = r;
    steps[s] = { durationMs, reused, manifestKey, summary: summary as Record<string, unknown> };
    progress.stepsDone.push(s);
  };

  try {
    stage('search');
    await cpu.startRun({ workflowId, kind: 'new-category', label: input.label, input });
    const search = await cpu.searchVideos({
      workflowId,
      label: input.label,
      maxPositiveVideos: input.maxPositiveVideos,
      maxNegativeVideos: input.maxNegativeVideos,
      seed: input.seed,
    });
    done('search', search);

    stage('extract');
    const ids = search.videoIds;
    progress.videos.total = ids.length;
    const failures: VideoFailure[] = [...(state?.failures ?? [])];
    const started = Date.now();
    let cursor = state?.cursor ?? 0;
    const children: Promise<void>[] = [];
    while (cursor < ids.length) {
      await condition(() => progress.videos.running < input.extractConcurrency);
      if (workflowInfo().continueAsNewSuggested) {
        await condition(() => progress.videos.running === 0);
        await Promise.all(children);
        await continueAsNew<typeof newCategoryWorkflow>(request, { cursor, failures, extracted: progress.videos.extracted });
      }
      const videoId = ids[cursor++]!;
      progress.videos.running++;
      children.push(
        executeChild(extractVideoWorkflow, {
          workflowId: `${workflowId}/extract/${videoId}`,
          args: [{ videoId, options: input.extract, heartbeatTimeoutS: input.heartbeatTimeoutS }],
        })
          .then((r: VideoExtractSummary) => {
            progress.videos.extracted++;
            log.info('video extracted', { videoId, frames: r.frames, reused: r.reused });
          })
          .catch((err: unknown) => {
            const failure = describeFailure(videoId, err);
            failures.push(failure);
            progress.videos.failed++;
            log.warn('video failed; the run goes on without it', { ...failure });
          })
          .finally(() => progress.videos.running--),
      );
    }
    await Promise.all(children);
    const extract = await cpu.finishExtract({ workflowId, options: input.extract, failures });
    done('extract', { ...extract, durationMs: extract.reused ? extract.durationMs : Date.now() - started });
    if (extract.frames === 0) {
      throw ApplicationFailure.create({
        type: 'DatasetError',
        nonRetryable: true,
        message: `no usable frame in any of the ${ids.length} videos for "${input.label}" (failures: ${failures.map((f) => f.videoId).join(', ') || 'none'})`,
      });
    }

    stage('embed');
    done('embed', await cpuLong.embedFrames({ workflowId }));
    stage('dedupe');
    done('dedupe', await cpuLong.dedupeFrames({ workflowId, threshold: input.dedupeThreshold, labelBudget: input.labelBudget }));
    stage('label');
    done('label', await cpu.labelFrames({ workflowId, source: 'weak' }));
    stage('dataset');
    const dataset = await cpu.buildDataset({ workflowId, validationFraction: input.validationFraction, seed: input.seed });
    done('dataset', dataset);

    stage('train');
    done('train', await gpu.trainTeacher({ workflowId, teacher: input.teacher, seed: input.seed }));
    stage('distill');
    done('distill', await gpu.distillStudent({ workflowId, teacher: input.teacher, student: input.student, seed: input.seed }));
    stage('evaluate');
    done('evaluate', await gpu.evaluateModels({ workflowId }));
    stage('publish');
    const publish = await cpu.publishModels({ workflowId });
    done('publish', publish);

    const result: NewCategoryResult = {
      workflowId,
      label: input.label,
      runPrefix: search.manifestKey.replace(/\/search\/manifest\.json$/, ''),
      steps,
      failures,
      dataset: {
        name: dataset.name,
        version: dataset.version,
        datasetKey: dataset.datasetKey,
        counts: dataset.counts,
        warnings: dataset.warnings,
      },
      models: publish.models,
      evaluation: publish.evaluation,
    };
    progress.stage = 'done';
    await cpu.finishRun({ workflowId, status: 'completed', result });
    return result;
  } catch (err) {
    if (err instanceof ContinueAsNew) throw err;
    const failedAt = progress.stage;
    progress.stage = 'failed';
    const message = err instanceof TemporalFailure || err instanceof Error ? err.message : String(err);
    // Record the failure even when the run was cancelled.
    await CancellationScope.nonCancellable(() =>
      cpu.finishRun({ workflowId, status: 'failed', result: { stage: failedAt, error: message, steps } }),
    ).catch(() => undefined);
    throw err;
  }
}

/** The innermost application failure of a child's error: its type and message. */
function describeFailure(videoId: string, err: unknown): VideoFailure {
  let e: unknown = err;
  let type = 'Error';
  let message = err instanceof Error ? err.message : String(err);
  while (e instanceof Error) {
    if (e instanceof ApplicationFailure) {
      type = e.type ?? type;
      message = e.message;
    }
    e = (e as { cause?: unknown }).cause;
  }
  return { videoId, type, message };
}
