/**
 * Batch predict: a published student classifies a selection of the catalog and the
 * results are recorded as `model` labels (pre-annotations for the labelling step).
 */
import {
  CancellationScope,
  ContinueAsNew,
  continueAsNew,
  executeChild,
  isCancellation,
  patched,
  proxyActivities,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { TrainingActivities, VideoActivities } from '../activities';
import {
  BACKFILL_EVENTS_PER_VIDEO,
  BACKFILL_EVENTS_RESERVE,
  BatchPredictInput,
  extractChildWorkflowId,
  failureOf,
  LABEL_ATTRIBUTE,
  long,
  SHORT,
  STAGE_ATTRIBUTE,
  type BatchPredictRequest,
  type BatchPredictResult,
  type VideoExtractSummary,
} from '../contracts';
import { extractVideoWorkflow } from './extract-video';
import { fanOut, FanOutPool } from './fan-out';
import { parseInput } from './parse-input';
import { BATCH_PREDICT_FAN_OUT_PATCH } from './patches';

/** The batch's model and videos, as `planBatchPredict` fixed them. */
type BatchPlan = Awaited<ReturnType<VideoActivities['planBatchPredict']>>;

/** One video's extraction, as `predictVideos` takes it: its frames manifest, or why there is none. */
export interface BatchVideo {
  videoId: string;
  manifestKey: string | null;
  error?: { type: string; message: string };
}

/** What a batch predict carries through continue-as-new (during its extraction): the plan, a cursor, the videos done. */
export interface BatchPredictState {
  plan: BatchPlan;
  /** Index in `plan.videoIds` of the next video to extract. */
  cursor: number;
  /** Videos extracted (or failed) so far, in the order they finished: S3 keys and errors only. */
  videos: BatchVideo[];
}

/**
 * 1. `planBatchPredict` (video queue): the model's version is fixed, the videos chosen, the run recorded.
 * 2. One extraction child per video (`<id>/extract/<video>`, `concurrency` at once, the
 *    next as soon as one finishes: `./fan-out.ts`): frames already extracted with the
 *    same options are reused; a video that cannot be decoded is reported and the others
 *    go on. Before its history reaches `maxHistoryEvents` (or when Temporal suggests it)
 *    the run waits for its running children and continues as new with the plan, a cursor
 *    and the videos done ({@link BatchPredictState}).
 * 3. `predictVideos` (training queue): frames classified, out-of-scope frames `unknown`,
 *    each video aggregated by the mean probability, `model` labels upserted.
 * 4. `finishRun`.
 *
 * Invalid input fails at once (`InvalidInputError`). Selections are bounded by `maxVideos`
 * (at most `BATCH_PREDICT_MAX_VIDEOS`: `predictVideos` takes every video in one input);
 * `predictVideos` is one activity that heartbeats per video and, retried, starts over (its
 * label rows are upserts). Histories recorded before the shared fan-out (chunks of
 * `concurrency` children, no continue-as-new) replay their old branch
 * ({@link BATCH_PREDICT_FAN_OUT_PATCH}).
 *
 * @param state carried by continue-as-new only.
 */
export async function batchPredictWorkflow(request: BatchPredictRequest, state?: BatchPredictState): Promise<BatchPredictResult> {
  const input = parseInput(BatchPredictInput, request, 'batch predict');
  const { workflowId } = workflowInfo();
  const cpu = proxyActivities<VideoActivities>(SHORT);
  const gpu = proxyActivities<TrainingActivities>(long(input.heartbeatTimeoutS, '4 hours', input.gpuTaskQueue));
  let plan = state?.plan;
  if (!plan) {
    upsertSearchAttributes([{ key: STAGE_ATTRIBUTE, value: 'search' }]);
    plan = await cpu.planBatchPredict({
      workflowId,
      model: input.model,
      videoIds: input.videoIds,
      ...(input.catalogLabel ? { catalogLabel: input.catalogLabel } : {}),
      maxVideos: input.maxVideos,
    });
  }
  upsertSearchAttributes([
    { key: LABEL_ATTRIBUTE, value: plan.model.name },
    { key: STAGE_ATTRIBUTE, value: 'extract' },
  ]);
  try {
    const videos = patched(BATCH_PREDICT_FAN_OUT_PATCH) ? await extractAll(request, input, plan, state) : await extractInChunks(input, plan);
    upsertSearchAttributes([{ key: STAGE_ATTRIBUTE, value: 'predict' }]);
    const result = await gpu.predictVideos({ workflowId, plan, videos });
    await cpu.finishRun({ workflowId, status: 'completed', result });
    upsertSearchAttributes([{ key: STAGE_ATTRIBUTE, value: 'done' }]);
    return result;
  } catch (err) {
    if (err instanceof ContinueAsNew) throw err;
    // Recorded also when the run is being cancelled (`reelset cancel`): `cancelled`, not `failed`.
    const status = isCancellation(err) ? 'cancelled' : 'failed';
    await CancellationScope.nonCancellable(() => cpu.finishRun({ workflowId, status, result: { error: failureOf(err) } }));
    upsertSearchAttributes([{ key: STAGE_ATTRIBUTE, value: 'failed' }]);
    throw err;
  }
}

/** Start one video's extraction child. */
function extractChild(input: BatchPredictInput, videoId: string): Promise<VideoExtractSummary> {
  return executeChild(extractVideoWorkflow, {
    workflowId: extractChildWorkflowId(workflowInfo().workflowId, videoId),
    args: [{ videoId, options: input.extract, heartbeatTimeoutS: input.heartbeatTimeoutS }],
  });
}

/** A finished extraction as `predictVideos` takes it: a video without a usable frame has no manifest. */
function batchVideo(videoId: string, r: VideoExtractSummary): BatchVideo {
  return { videoId, manifestKey: r.frames > 0 ? r.manifestKey : null, ...(r.frames > 0 ? {} : { error: { type: 'NoFrames', message: 'no usable frame' } }) };
}

/**
 * Every video of the plan through the fan-out, from the state's cursor; continues as new
 * when the history is full (this run's children all settled first).
 *
 * @returns every video of the plan, in the plan's order.
 */
async function extractAll(
  request: BatchPredictRequest,
  input: BatchPredictInput,
  plan: BatchPlan,
  state: BatchPredictState | undefined,
): Promise<BatchVideo[]> {
  const videos: BatchVideo[] = [...(state?.videos ?? [])];
  const pool = new FanOutPool<string, VideoExtractSummary>({
    concurrency: input.concurrency,
    start: (videoId) => extractChild(input, videoId),
    onSuccess: (videoId, r) => videos.push(batchVideo(videoId, r)),
    onFailure: (videoId, err) => videos.push({ videoId, manifestKey: null, error: failureOf(err) }),
  });
  // An extract child costs its parent as many events as a backfill's.
  const historyBound = { maxEvents: input.maxHistoryEvents, eventsPerItem: BACKFILL_EVENTS_PER_VIDEO, reserve: BACKFILL_EVENTS_RESERVE };
  const out = await fanOut(pool, plan.videoIds, { cursor: state?.cursor ?? 0, historyBound });
  if (!out.done) await continueAsNew<typeof batchPredictWorkflow>(request, { plan, cursor: out.cursor, videos });
  const order = new Map(plan.videoIds.map((id, i) => [id, i]));
  return videos.sort((a, b) => order.get(a.videoId)! - order.get(b.videoId)!);
}

/** The extraction of histories recorded before {@link BATCH_PREDICT_FAN_OUT_PATCH}: chunks of `concurrency` children, each awaited whole. */
async function extractInChunks(input: BatchPredictInput, plan: BatchPlan): Promise<BatchVideo[]> {
  const videos: BatchVideo[] = [];
  for (let i = 0; i < plan.videoIds.length; i += input.concurrency) {
    const chunk = plan.videoIds.slice(i, i + input.concurrency);
    const done = await Promise.all(
      chunk.map((videoId) =>
        extractChild(input, videoId)
          .then((r) => batchVideo(videoId, r))
          .catch((err: unknown): BatchVideo => ({ videoId, manifestKey: null, error: failureOf(err) })),
      ),
    );
    videos.push(...done);
  }
  return videos;
}
