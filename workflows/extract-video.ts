import { ActivityCancellationType, proxyActivities } from '@temporalio/workflow';
import type { VideoActivities } from '../activities';
import { long, type ExtractVideoInput, type VideoExtractSummary } from '../contracts';

/**
 * Child workflow: extract one video's frames (step 2 of new-category).
 *
 * Its id is derived from the parent's (`<parent id>/extract/<video id>`), so a retried
 * or continued parent finds the same child. A video that cannot be decoded fails this
 * child alone with a non-retryable `VideoDecodeError` naming the file and the reason.
 *
 * Cancelled (its parent was), it waits for the activity to finish cancelling (ffmpeg
 * killed, temporary files removed) before it closes, so a parent that awaits its
 * children knows the clean-up is done.
 *
 * @returns counts and the content-addressed frames manifest key.
 */
export async function extractVideoWorkflow(input: ExtractVideoInput): Promise<VideoExtractSummary> {
  const { extractVideo } = proxyActivities<VideoActivities>({
    ...long(input.heartbeatTimeoutS, '1 hour'),
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });
  return extractVideo({ videoId: input.videoId, options: input.options });
}
