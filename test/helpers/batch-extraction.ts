/**
 * Mock `planExtract` and `extractVideos` for workflow tests, built on a test's mock
 * `extractVideo`: batches of `batchSize` videos in the order given; each video of a batch
 * runs the mock `extractVideo`, and a non-retryable failure becomes the video's failed
 * item (as the real activity does) while any other failure fails the whole batch.
 */
import { failureOf, isNonRetryable, type ExtractBatchItem, type ExtractBatchResult } from '../../contracts';

type ExtractMock = (a: { videoId: string; options: unknown }) => unknown;

export function batchExtraction(extractVideo: ExtractMock, batchSize = 2) {
  return {
    planExtract: async (a: { videoIds: string[] }): Promise<string[][]> => {
      const out: string[][] = [];
      for (let i = 0; i < a.videoIds.length; i += batchSize) out.push(a.videoIds.slice(i, i + batchSize));
      return out;
    },
    extractVideos: async (a: { videoIds: string[]; options: unknown }): Promise<ExtractBatchResult> => {
      const videos: ExtractBatchItem[] = [];
      for (const videoId of a.videoIds) {
        try {
          const s = (await extractVideo({ videoId, options: a.options })) as { frames: number; sampled: number; decodeErrorCount: number; reused: boolean };
          videos.push({ videoId, ok: true, summary: { frames: s.frames, sampled: s.sampled, decodeErrorCount: s.decodeErrorCount, reused: s.reused } });
        } catch (err) {
          const failure = failureOf(err);
          if (!isNonRetryable(failure.type)) throw err;
          videos.push({ videoId, ok: false, failure });
        }
      }
      return { videos, resumed: 0 };
    },
  };
}
