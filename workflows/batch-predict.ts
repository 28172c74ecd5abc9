/**
 * Batch predict: a published student classifies a selection of the catalog and the
 * results are recorded as `model` labels (pre-annotations for the labelling step).
 */
import { CancellationScope, executeChild, isCancellation, proxyActivities, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { TrainingActivities, VideoActivities } from '../activities';
import {
  BatchPredictInput,
  extractChildWorkflowId,
  failureOf,
  fieldIssues,
  formatIssues,
  InvalidInputError,
  LABEL_ATTRIBUTE,
  long,
  SHORT,
  STAGE_ATTRIBUTE,
  type BatchPredictRequest,
  type BatchPredictResult,
} from '../contracts';
import { extractVideoWorkflow } from './extract-video';

/**
 * 1. `planBatchPredict` (video queue): the model's version is fixed, the videos chosen, the run recorded.
 * 2. One extraction child per video (`<id>/extract/<video>`, `concurrency` at once): frames
 *    already extracted with the same options are reused; a video that cannot be decoded
 *    is reported and the others go on.
 * 3. `predictVideos` (training queue): frames classified, out-of-scope frames `unknown`,
 *    each video aggregated by the mean probability, `model` labels upserted.
 * 4. `finishRun`.
 *
 * Invalid input fails at once (`InvalidInputError`). Selections are bounded by
 * `maxVideos` (at most 2,000: the history holds one child per video, no continue-as-new yet);
 * `predictVideos` is one activity that heartbeats per video and, retried, starts over
 * (its label rows are upserts).
 */
export async function batchPredictWorkflow(request: BatchPredictRequest): Promise<BatchPredictResult> {
  const parsed = BatchPredictInput.safeParse(request);
  if (!parsed.success) throw new InvalidInputError(`invalid batch predict input: ${formatIssues(parsed.error)}`, { details: [fieldIssues(parsed.error)] });
  const input = parsed.data;
  const { workflowId } = workflowInfo();
  const cpu = proxyActivities<VideoActivities>(SHORT);
  const gpu = proxyActivities<TrainingActivities>(long(input.heartbeatTimeoutS, '4 hours', input.gpuTaskQueue));
  upsertSearchAttributes([{ key: STAGE_ATTRIBUTE, value: 'search' }]);
  const plan = await cpu.planBatchPredict({ workflowId, model: input.model, videoIds: input.videoIds, ...(input.catalogLabel ? { catalogLabel: input.catalogLabel } : {}), maxVideos: input.maxVideos });
  upsertSearchAttributes([
    { key: LABEL_ATTRIBUTE, value: plan.model.name },
    { key: STAGE_ATTRIBUTE, value: 'extract' },
  ]);
  const videos: Array<{ videoId: string; manifestKey: string | null; error?: { type: string; message: string } }> = [];
  try {
    for (let i = 0; i < plan.videoIds.length; i += input.concurrency) {
      const chunk = plan.videoIds.slice(i, i + input.concurrency);
      const done = await Promise.all(
        chunk.map((videoId) =>
          executeChild(extractVideoWorkflow, { workflowId: extractChildWorkflowId(workflowId, videoId), args: [{ videoId, options: input.extract, heartbeatTimeoutS: input.heartbeatTimeoutS }] })
            .then((r) => ({ videoId, manifestKey: r.frames > 0 ? r.manifestKey : null, ...(r.frames > 0 ? {} : { error: { type: 'NoFrames', message: 'no usable frame' } }) }))
            .catch((err: unknown) => ({ videoId, manifestKey: null, error: failureOf(err) })),
        ),
      );
      videos.push(...done);
    }
    upsertSearchAttributes([{ key: STAGE_ATTRIBUTE, value: 'predict' }]);
    const result = await gpu.predictVideos({ workflowId, plan, videos });
    await cpu.finishRun({ workflowId, status: 'completed', result });
    upsertSearchAttributes([{ key: STAGE_ATTRIBUTE, value: 'done' }]);
    return result;
  } catch (err) {
    // Recorded also when the run is being cancelled (`reelset cancel`): `cancelled`, not `failed`.
    const status = isCancellation(err) ? 'cancelled' : 'failed';
    await CancellationScope.nonCancellable(() => cpu.finishRun({ workflowId, status, result: { error: failureOf(err) } }));
    upsertSearchAttributes([{ key: STAGE_ATTRIBUTE, value: 'failed' }]);
    throw err;
  }
}
