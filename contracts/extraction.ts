/**
 * How frames are extracted from a video: the sampling mode and the options of one video's
 * extraction. Its own module so that the step manifests (`manifests.ts`) and the workflow
 * inputs (`inputs.ts`) both use it without importing each other.
 *
 * Pure: imports nothing but zod, so it is safe in the workflow sandbox.
 */
import { z } from 'zod';

/**
 * How frames are picked from a video:
 * - `fps`: the first frame of every 1/fps-second interval of presentation time (variable
 *   frame rate safe: no frame is repeated to fill a gap);
 * - `scene`: frames whose ffmpeg scene-change score exceeds `sceneThreshold`, at least
 *   `minSceneGapS` apart, plus the first frame;
 * - `keyframes`: only the stream's keyframes (the decoder skips every other frame);
 * - `count`: `count` frames spread evenly over the duration.
 */
export const SamplingMode = z.enum(['fps', 'scene', 'keyframes', 'count']);
export type SamplingMode = z.infer<typeof SamplingMode>;

/** Frame sampling, resizing, encoding and quality filters for one video. */
export const ExtractOptions = z.object({
  mode: SamplingMode.default('fps'),
  /** `fps` mode: frames sampled per second of video. */
  fps: z.number().positive().max(60).default(1),
  /** `scene` mode: ffmpeg scene score (0..1) above which a frame starts a new shot. */
  sceneThreshold: z.number().min(0).max(1).default(0.3),
  /** `scene` mode: seconds between two sampled frames at least. */
  minSceneGapS: z.number().min(0.001).max(3600).default(1),
  /** `count` mode: frames spread evenly over the video. */
  count: z.number().int().positive().max(100_000).default(16),
  /** At most this many frames per video, in every mode; the sampling spreads them over the whole video. */
  maxFramesPerVideo: z.number().int().positive().max(100_000).default(60),
  /** `fps` mode: at least this many frames for short clips (rate raised, never above the video's own rate). */
  minFramesPerVideo: z.number().int().nonnegative().max(1000).default(4),
  /** Short side of the stored frame in pixels (aspect kept, even dimensions, never upscaled). */
  shortSide: z.number().int().min(32).max(4096).default(256),
  /** Image encoding of stored frames. */
  format: z.enum(['jpeg', 'webp']).default('jpeg'),
  /** Encoder quality, 1..100. */
  quality: z.number().int().min(1).max(100).default(85),
  /** Frames whose 99th-percentile luma (0..255) is below this are dropped as near-black (0 keeps all). */
  blackLevel: z.number().min(0).max(256).default(32),
  /** Frames whose 1st-percentile luma (0..255) is above this are dropped as near-white (255 keeps all). */
  whiteLevel: z.number().min(0).max(255).default(232),
  /** Frames whose variance of the Laplacian is below this are dropped as blurred (0 keeps all). */
  minSharpness: z.number().min(0).default(0),
});
export type ExtractOptions = z.infer<typeof ExtractOptions>;

/**
 * How extraction work is cut into activities (issue: orchestration that costs less than
 * the work it orchestrates). `auto`: short videos go several to one `extractVideos`
 * activity, a batch closed when one more video would pass any of the limits below; a
 * video that alone reaches a limit (a long film) gets a batch, so an activity, of its
 * own. `off`: one extract child workflow per video, as before batching existed.
 *
 * Not part of the extraction parameters (`ExtractOptions`, whose hash keys the frames):
 * frames, manifests and keys are the same either way.
 */
export const ExtractBatching = z.object({
  mode: z.enum(['auto', 'off']).default('auto'),
  /** Seconds of video per batch at most (the catalog's `duration_s`; a video of unknown duration goes alone). */
  maxSeconds: z.number().positive().max(86_400).default(300),
  /** Bytes of video files per batch at most (the catalog's `bytes`). */
  maxBytes: z
    .number()
    .int()
    .positive()
    .default(512 * 1024 * 1024),
  /** Frames per batch at most, as the sampling would take them ({@link expectedFrames}). */
  maxFrames: z.number().int().positive().max(1_000_000).default(2000),
  /** Videos per batch at most: bounds the batch's result, its heartbeat and the work a failed attempt repeats. */
  maxVideos: z.number().int().min(1).max(500).default(25),
});
export type ExtractBatching = z.infer<typeof ExtractBatching>;

/** What batching knows of a video: from the catalog row. */
export interface BatchableVideo {
  videoId: string;
  /** Seconds; null when the catalog does not know it. */
  durationS: number | null;
  /** Bytes of the file; null when unknown. */
  bytes: number | null;
}

/**
 * Frames the sampling takes from a video of `durationS` seconds with `options` (an upper
 * estimate: before the quality filters drop any). `scene` and `keyframes` depend on the
 * content: counted at `maxFramesPerVideo`. Unknown duration: `maxFramesPerVideo`.
 */
export function expectedFrames(durationS: number | null, options: ExtractOptions): number {
  const cap = options.maxFramesPerVideo;
  if (durationS === null || !(durationS >= 0)) return cap;
  if (options.mode === 'count') return Math.min(cap, options.count);
  if (options.mode === 'fps') return Math.min(cap, Math.max(options.minFramesPerVideo, Math.ceil(durationS * options.fps)));
  return cap;
}

/**
 * Cut videos into extraction batches, in the order given (so batches follow the
 * caller's paging): greedy, a batch closed when the next video would take it past
 * `maxSeconds`, `maxBytes`, `maxFrames` or `maxVideos`. A video that alone reaches a limit
 * (or whose duration or size is unknown) is a batch of its own. Pure and deterministic.
 * With `mode: 'off'`, every video is a batch of its own.
 *
 * @param lanes extractions the caller runs at once: batches hold at most
 *   `ceil(videos / lanes)` videos, so that a short list still fills every lane.
 * @returns batches of video ids, every video exactly once, order kept.
 */
export function planExtractBatches(videos: readonly BatchableVideo[], options: ExtractOptions, batching: ExtractBatching, lanes = 1): string[][] {
  const maxVideos = Math.max(1, Math.min(batching.maxVideos, Math.ceil(videos.length / Math.max(1, lanes))));
  const out: string[][] = [];
  let cur: string[] = [];
  let seconds = 0;
  let bytes = 0;
  let frames = 0;
  const close = () => {
    if (cur.length) out.push(cur);
    cur = [];
    seconds = bytes = frames = 0;
  };
  for (const v of videos) {
    const f = expectedFrames(v.durationS, options);
    const alone =
      batching.mode === 'off' ||
      v.durationS === null ||
      v.bytes === null ||
      v.durationS >= batching.maxSeconds ||
      v.bytes >= batching.maxBytes ||
      f >= batching.maxFrames;
    if (alone) {
      close();
      out.push([v.videoId]);
      continue;
    }
    if (cur.length >= maxVideos || seconds + v.durationS! > batching.maxSeconds || bytes + v.bytes! > batching.maxBytes || frames + f > batching.maxFrames)
      close();
    cur.push(v.videoId);
    seconds += v.durationS!;
    bytes += v.bytes!;
    frames += f;
  }
  close();
  return out;
}

/** One video of an `extractVideos` batch: its summary, or why it failed (the others go on). */
export type ExtractBatchItem =
  { videoId: string; ok: true; summary: ExtractBatchVideoSummary } | { videoId: string; ok: false; failure: { type: string; message: string } };

/** A video's extraction summary as a batch returns it (no timings: the batch's result stays small). */
export interface ExtractBatchVideoSummary {
  frames: number;
  sampled: number;
  decodeErrorCount: number;
  reused: boolean;
}

/** Result of the `extractVideos` activity: one item per video of the batch, in its order. */
export interface ExtractBatchResult {
  videos: ExtractBatchItem[];
  /** Videos a retried attempt found finished by an earlier attempt (its heartbeat), not extracted again. */
  resumed: number;
}
