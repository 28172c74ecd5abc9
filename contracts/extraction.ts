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
