/**
 * Extraction in batches, for the fan-outs that extract (the extract step of new-category
 * and the retrain, `./pipeline.ts`; the backfill's pages, `./backfill.ts`): one
 * `extractVideos` activity per batch of short videos (the batches come from
 * `planExtractBatches`, `contracts/extraction.ts`), instead of one child workflow per
 * video. A batch costs its parent one activity's events, and the Temporal server one
 * activity, whatever its size; a long video is a batch of its own.
 *
 * One failure per video still: the activity reports a video that cannot be used in its
 * item and goes on. A batch that fails as a whole (its retries spent on something other
 * than one video's content) is run again one video per activity, so that only the video
 * at fault fails. Cancelled, the activity is cancelled and awaited
 * (`WAIT_CANCELLATION_COMPLETED`: its ffmpeg is killed and its temporary copy removed
 * before the workflow goes on).
 */
import { ActivityCancellationType, isCancellation, log, proxyActivities } from '@temporalio/workflow';
import type { VideoActivities } from '../activities';
import { failureOf, long, type ExtractBatchItem, type ExtractOptions } from '../contracts';

/** What {@link batchExtractor} needs. */
export interface BatchExtractorOptions {
  options: ExtractOptions;
  heartbeatTimeoutS: number;
  /** Wrap the activity proxy (the pipeline counts its activities: `counted` in `./pipeline.ts`). */
  wrap?: (proxy: Pick<VideoActivities, 'extractVideos'>) => Pick<VideoActivities, 'extractVideos'>;
}

/**
 * A function that extracts one batch and resolves to one item per video (in the batch's
 * order), never rejecting but for a cancellation.
 */
export function batchExtractor(opts: BatchExtractorOptions): (videoIds: string[]) => Promise<ExtractBatchItem[]> {
  const proxy = proxyActivities<VideoActivities>({
    ...long(opts.heartbeatTimeoutS, '2 hours'),
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });
  const { extractVideos } = opts.wrap ? opts.wrap(proxy) : proxy;
  const one = async (videoId: string): Promise<ExtractBatchItem> => {
    try {
      return (await extractVideos({ videoIds: [videoId], options: opts.options })).videos[0]!;
    } catch (err) {
      if (isCancellation(err)) throw err;
      return { videoId, ok: false, failure: failureOf(err) };
    }
  };
  return async (videoIds) => {
    try {
      return (await extractVideos({ videoIds, options: opts.options })).videos;
    } catch (err) {
      if (isCancellation(err)) throw err;
      if (videoIds.length === 1) return [{ videoId: videoIds[0]!, ok: false, failure: failureOf(err) }];
      log.warn('extract batch failed as a whole; extracting its videos one by one', { videos: videoIds.length, ...failureOf(err) });
      const out: ExtractBatchItem[] = [];
      for (const id of videoIds) out.push(await one(id));
      return out;
    }
  };
}
