/**
 * The shapes the extraction pipeline's parts pass between them and to their caller:
 * where frames go ({@link FrameSink}), committed progress ({@link ExtractProgress}) and
 * how a retried attempt resumes ({@link ExtractResume}), the hooks of one extraction and
 * what it returns. Types only.
 */
import type { DropCounts, FrameRecord, SamplingPlan } from '../../contracts';

/** What one extraction produced. */
export interface ExtractionResult {
  paramsHash: string;
  /** The sampling actually used (after the cap and the video's own duration). */
  plan: SamplingPlan;
  /** Frames sampled from the video (kept + dropped). */
  sampled: number;
  frames: FrameRecord[];
  dropped: DropCounts;
  /** Decoder complaints (first 20) for streams that still decode, e.g. h264 slice errors. */
  decodeErrors: string[];
  decodeErrorCount: number;
  /** True when this attempt resumed after an earlier attempt's committed progress. */
  resumed: boolean;
}

/**
 * Committed progress of one extraction: a prefix, in sample order, of frames that are
 * stored (and committed through {@link FrameSink.commit}) or dropped. A retried attempt
 * resumes after `lastTimestampS` with the next index `sampled`.
 */
export interface ExtractProgress {
  /** Sampled frames handled so far (stored or dropped); also the next frame's index. */
  sampled: number;
  /** Frames stored among them. */
  frames: number;
  /** Timestamp of the last handled frame in seconds; null before the first. */
  lastTimestampS: number | null;
  dropped: DropCounts;
  decodeErrorCount: number;
}

/** Where an earlier attempt stopped: its committed progress and the records of its stored frames. */
export interface ExtractResume {
  progress: ExtractProgress;
  /** Records of the `progress.frames` frames stored, in index order. */
  frames: FrameRecord[];
  decodeErrors?: string[];
}

/** Where frames go: the caller stores bytes (S3) and rows (Postgres). */
export interface FrameSink {
  /** True when this key is already stored (a retried attempt skips the upload). */
  has(key: string): boolean;
  /** Store one frame's bytes; called with bounded concurrency. */
  put(frame: FrameRecord, bytes: Buffer): Promise<void>;
  /**
   * Record a batch of stored frames (index order, each `put` finished) and the progress
   * they complete; called one batch at a time, every `commitEvery` frames or
   * `commitIntervalMs`, and once at the end.
   */
  commit?(frames: FrameRecord[], progress: ExtractProgress): Promise<void>;
}

/** Progress, resumption and cancellation hooks (heartbeats in the activity). */
export interface ExtractHooks {
  /** Every sampled frame: how far the decode has got (seconds of video) and frames sampled. */
  onFrame?: (done: { frames: number; timestampS: number }) => void;
  /** Every frame the quality filters drop: its index, timestamp, why, and its measures. */
  onDropped?: (drop: { index: number; timestampS: number; reason: keyof DropCounts; quality: FrameQuality }) => void;
  signal?: AbortSignal;
  /** Concurrent `sink.put` calls (default 8). */
  uploadConcurrency?: number;
  ffmpegPath?: string;
  /** Continue after an earlier attempt's committed progress instead of starting over. */
  resume?: ExtractResume;
  /** Commit at least every this many sampled frames (default 50)... */
  commitEvery?: number;
  /** ...or this often, milliseconds (default 2000). */
  commitIntervalMs?: number;
  /** Kill ffmpeg (a retryable TransientError) after this long without a sign of life, milliseconds (default 60 000). */
  stallTimeoutMs?: number;
  /** Kill ffmpeg (a retryable TransientError) after this long, milliseconds (default {@link defaultFfmpegTimeoutMs}). */
  timeoutMs?: number;
}

/**
 * The wall-clock limit of one extraction's ffmpeg by default: 5 minutes plus 20 times the
 * video's duration (decoding 8K on two cores runs at a few frames a second). A backstop:
 * the no-progress watchdog catches a hung ffmpeg much sooner.
 */
export function defaultFfmpegTimeoutMs(durationS: number): number {
  return Math.round((300 + 20 * Math.max(0, durationS)) * 1000);
}

/** Luma statistics of one frame, all on the 0..255 scale except sharpness. */
export interface FrameQuality {
  /** Mean luma (BT.601 weights). */
  brightness: number;
  /** Variance of the 4-neighbour Laplacian of the luma (Pech-Pacheco et al. 2000). */
  sharpness: number;
  /** 1st and 99th percentiles of luma. */
  p01: number;
  p99: number;
}

/** The verdict on one sampled frame: kept (`record`, to be stored) or dropped (`reason`, with the measures that decided it). */
export type FrameOutcome =
  { timestampS: number; record: FrameRecord; reason?: undefined } | { timestampS: number; reason: keyof DropCounts; quality: FrameQuality; record?: undefined };

/** Progress before the first frame. */
export function emptyProgress(): ExtractProgress {
  return { sampled: 0, frames: 0, lastTimestampS: null, dropped: { nearBlack: 0, nearWhite: 0, blurred: 0 }, decodeErrorCount: 0 };
}
