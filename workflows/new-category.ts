import {
  CancellationScope,
  condition,
  ContinueAsNew,
  continueAsNew,
  executeChild,
  log,
  patched,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { TrainingActivities, VideoActivities } from '../activities';
import {
  DatasetError,
  extractChildWorkflowId,
  HUMAN_LABELING_PATCH,
  failureOf,
  fieldIssues,
  formatIssues,
  InvalidInputError,
  LABEL_ATTRIBUTE,
  labelingChildWorkflowId,
  long,
  NewCategoryInput,
  progressQuery,
  runPrefix,
  SHORT,
  STAGE_ATTRIBUTE,
  type ContinueState,
  type NewCategoryRequest,
  type NewCategoryResult,
  type Progress,
  type Stage,
  type Step,
  type VideoExtractSummary,
  type VideoFailure,
} from '../contracts';
import { extractVideoWorkflow } from './extract-video';
import { labelingWorkflow } from './labeling';

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
    throw new InvalidInputError(`invalid new-category input: ${formatIssues(parsed.error)}`, { details: [fieldIssues(parsed.error)] });
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
  const stage = (s: Stage) => {
    progress.stage = s;
    upsertSearchAttributes([
      { key: LABEL_ATTRIBUTE, value: input.label },
      { key: STAGE_ATTRIBUTE, value: s },
    ]);
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
          workflowId: extractChildWorkflowId(workflowId, videoId),
          args: [{ videoId, options: input.extract, heartbeatTimeoutS: input.heartbeatTimeoutS }],
        })
          .then((r: VideoExtractSummary) => {
            progress.videos.extracted++;
            log.info('video extracted', { videoId, frames: r.frames, reused: r.reused });
          })
          .catch((err: unknown) => {
            const failed: VideoFailure = { videoId, ...failureOf(err) };
            failures.push(failed);
            progress.videos.failed++;
            log.warn('video failed; the run goes on without it', { ...failed });
          })
          .finally(() => progress.videos.running--),
      );
    }
    await Promise.all(children);
    const extract = await cpu.finishExtract({ workflowId, options: input.extract, failures });
    done('extract', { ...extract, durationMs: extract.reused ? extract.durationMs : Date.now() - started });
    if (extract.frames === 0) {
      throw new DatasetError(
        `no usable frame in any of the ${ids.length} videos for "${input.label}" (failures: ${failures.map((f) => f.videoId).join(', ') || 'none'})`,
      );
    }

    stage('embed');
    done('embed', await cpuLong.embedFrames({ workflowId }));
    stage('dedupe');
    done('dedupe', await cpuLong.dedupeFrames({ workflowId, threshold: input.dedupeThreshold, labelBudget: input.labelBudget }));
    stage('label');
    // People label in Label Studio; the child waits for them durably (workflows/labeling.ts).
    // `patched`: histories recorded before human labelling existed replay their labelFrames call.
    if (input.labeling.mode === 'human' && patched(HUMAN_LABELING_PATCH)) {
      done('label', await executeChild(labelingWorkflow, {
        workflowId: labelingChildWorkflowId(workflowId),
        args: [{
          runWorkflowId: workflowId, label: input.label, options: input.labeling, validationFraction: input.validationFraction,
          seed: input.seed, gpuTaskQueue: input.gpuTaskQueue, heartbeatTimeoutS: input.heartbeatTimeoutS,
        }],
      }));
    } else {
      done('label', await cpu.labelFrames({ workflowId, source: 'weak' }));
    }
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
      runPrefix: runPrefix(workflowId),
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
    stage('done');
    await cpu.finishRun({ workflowId, status: 'completed', result });
    return result;
  } catch (err) {
    if (err instanceof ContinueAsNew) throw err;
    const failedAt = progress.stage;
    stage('failed');
    const { type, message } = failureOf(err);
    // Record the failure even when the run was cancelled.
    await CancellationScope.nonCancellable(() =>
      cpu.finishRun({ workflowId, status: 'failed', result: { stage: failedAt, type, error: message, steps } }),
    ).catch(() => undefined);
    throw err;
  }
}
