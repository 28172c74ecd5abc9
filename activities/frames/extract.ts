/**
 * Frame extraction of one local video file, as a short pipeline of named parts:
 *
 * 1. plan (`plan.ts`): parameters hash, sampling plan, output size;
 * 2. command (`command.ts`): ffmpeg's arguments and filter graph;
 * 3. process (`ffmpeg-frames.ts`): ffmpeg with its two output pipes and stderr, whose
 *    frames, images paired with luma planes and timestamps (`pairing.ts`), are iterated;
 * 4. scoring and dropping (`quality.ts`);
 * 5. the bounded upload pool (`upload-pool.ts`);
 * 6. the in-order commit tracker (`commit-tracker.ts`), which advances the committed
 *    prefix a retried attempt resumes from.
 *
 * {@link extractFrames} wires them together. The parts' public names are re-exported
 * here so callers import one module.
 */
import { VideoDecodeError, type ExtractOptions, type FrameRecord, type VideoFramesManifest, type VideoProbe } from '../../contracts';
import { buildExtractCommand } from './command';
import { CommitTracker } from './commit-tracker';
import { FfmpegFrames } from './ffmpeg-frames';
import { extractionParamsHash, planSampling, targetSize } from './plan';
import { judgeFrame } from './quality';
import { defaultFfmpegTimeoutMs, emptyProgress, type ExtractHooks, type ExtractionResult, type ExtractProgress, type FrameSink } from './types';
import { UploadPool } from './upload-pool';

export { buildExtractCommand, deinterlaceFilter, encoderArgs, extractFilterGraph, frameFilters, mjpegQscale } from './command';
export { extractionParamsHash, EXTRACTOR_VERSION, ffmpegNumber, planSampling, planSamplingRate, selectExpression, targetSize } from './plan';
export { dropReason, judgeFrame, lumaQuality, type FrameQuality } from './quality';
export {
  defaultFfmpegTimeoutMs,
  type ExtractHooks,
  type ExtractionResult,
  type ExtractProgress,
  type ExtractResume,
  type FrameOutcome,
  type FrameSink,
} from './types';

/**
 * Sample, resize, encode and store the frames of one local video file.
 *
 * One ffmpeg process decodes the probe's chosen stream (`0:<index>`; display rotation
 * applied; keyframes only in `keyframes` mode), deinterlaces it when the probe says it is
 * interlaced, picks frames with the `select` filter on presentation time
 * (`selectExpression`), scales them to `targetSize` (display aspect: sample aspect ratio
 * applied) and converts them to 8-bit BT.709 SDR (`colourFilters`: the source's matrix
 * and range, PQ / HLG tone-mapped), and writes each frame twice: encoded (JPEG by
 * ffmpeg's mjpeg encoder, or WebP by libwebp) to pipe 1, and its full-range luma plane to
 * pipe 3, from which `lumaQuality` scores it. Frames that pass the quality filters go to
 * `sink.put`, at most `uploadConcurrency` at a time. Memory holds a few frames plus the
 * uploads in flight and the small per-frame records, whatever the video's length; nothing
 * is written to disk. Timestamps are the stream's presentation times on the file's
 * timeline (see `VideoProbe`), exact from showinfo's `pts` and time base.
 *
 * Progress is committed in sample order ({@link FrameSink.commit}); `hooks.resume`
 * continues after a committed prefix (input seek to its last timestamp) without
 * decoding or uploading that prefix again.
 *
 * ffmpeg is spawned directly (it writes to a third pipe) and bounded: killed on
 * `hooks.signal`, after `stallTimeoutMs` without a sign of progress, and after
 * `timeoutMs`.
 *
 * @throws VideoDecodeError when ffmpeg fails before producing any frame.
 * @throws TransientError (retryable) when ffmpeg cannot start, stalls or runs past its limit.
 * @throws the signal's reason when `hooks.signal` aborts (ffmpeg is killed first).
 */
export async function extractFrames(
  file: string,
  videoSha256: string,
  probe: VideoProbe,
  opts: ExtractOptions,
  sink: FrameSink,
  hooks: ExtractHooks = {},
): Promise<ExtractionResult> {
  const paramsHash = extractionParamsHash(opts);
  const plan = planSampling(probe, opts);
  const size = targetSize(probe.displayWidth, probe.displayHeight, opts.shortSide);
  const resume = hooks.resume;
  const start = resume?.progress ?? emptyProgress();
  const seekS = start.lastTimestampS != null && start.lastTimestampS > 0 ? start.lastTimestampS : 0;
  const remaining = plan.maxFrames - start.sampled;
  const decodeErrorsBefore = resume?.decodeErrors ?? [];
  const result = (progress: ExtractProgress, frames: FrameRecord[], errors: string[], errorCount: number): ExtractionResult => ({
    paramsHash,
    plan,
    sampled: progress.sampled,
    frames,
    dropped: progress.dropped,
    decodeErrors: [...decodeErrorsBefore, ...errors].slice(0, 20),
    decodeErrorCount: start.decodeErrorCount + errorCount,
    resumed: Boolean(resume),
  });
  if (remaining <= 0) return result(start, resume?.frames ?? [], [], 0);

  const args = buildExtractCommand({
    file,
    probe,
    plan,
    size,
    format: opts.format,
    quality: opts.quality,
    seekS,
    afterS: start.lastTimestampS,
    frames: remaining,
  });
  const ffmpeg = new FfmpegFrames(hooks.ffmpegPath ?? 'ffmpeg', args, {
    format: opts.format,
    lumaBytes: size.width * size.height,
    seekS,
    signal: hooks.signal,
    file,
    firstIndex: start.sampled,
    stallTimeoutMs: hooks.stallTimeoutMs ?? 60_000,
    timeoutMs: hooks.timeoutMs ?? defaultFfmpegTimeoutMs(probe.durationS),
  });
  let failure: unknown;
  const fail = (err: unknown) => {
    failure ??= err;
    tracker.stop();
    ffmpeg.kill();
  };
  const tracker = new CommitTracker({
    start,
    frames: resume?.frames ?? [],
    commit: sink.commit?.bind(sink),
    every: hooks.commitEvery ?? 50,
    intervalMs: hooks.commitIntervalMs ?? 2000,
    decodeErrorCount: () => start.decodeErrorCount + ffmpeg.log.decodeErrorCount,
    onError: fail,
  });
  const uploads = new UploadPool(hooks.uploadConcurrency ?? 8, fail);
  const naming = { videoSha256, paramsHash, ext: opts.format === 'webp' ? ('webp' as const) : ('jpg' as const), ...size };
  let handled = 0;

  try {
    for await (const frame of ffmpeg) {
      if (failure || hooks.signal?.aborted) break;
      if (frame.n >= remaining) continue;
      const index = start.sampled + frame.n;
      handled++;
      hooks.onFrame?.({ frames: index + 1, timestampS: frame.timestampS });
      const outcome = judgeFrame(index, frame.timestampS, frame.encoded, frame.luma, naming, opts);
      if (outcome.reason) hooks.onDropped?.({ index, timestampS: outcome.timestampS, reason: outcome.reason, quality: outcome.quality });
      if (!outcome.record || sink.has(outcome.record.key)) {
        tracker.done(index, outcome);
        continue;
      }
      await uploads.run(async () => {
        await sink.put(outcome.record, frame.encoded);
        tracker.done(index, outcome);
      });
    }
    await uploads.settle();
    await tracker.settle();
    hooks.signal?.throwIfAborted();
    if (failure) throw failure;
    await tracker.flush();
  } catch (err) {
    ffmpeg.kill();
    await uploads.settle();
    await tracker.settle();
    throw err;
  }

  if (handled === 0 && ffmpeg.exit?.error && !resume) {
    throw new VideoDecodeError(file, `ffmpeg decoded no frame: ${ffmpeg.log.lastLine || ffmpeg.exit.error.message}`);
  }
  return result(tracker.current, tracker.committed, ffmpeg.log.decodeErrors, ffmpeg.log.decodeErrorCount);
}

/** The frames manifest of one extraction (`framesManifestKey` in S3, `manifest.json` of `reelset frames`). */
export function framesManifest(
  video: { videoId: string; videoSha256: string; options: ExtractOptions; probe: VideoProbe },
  result: ExtractionResult,
): VideoFramesManifest {
  return {
    videoId: video.videoId,
    videoSha256: video.videoSha256,
    paramsHash: result.paramsHash,
    options: video.options,
    probe: video.probe,
    plan: result.plan,
    sampled: result.sampled,
    frames: result.frames,
    dropped: result.dropped,
    decodeErrors: result.decodeErrors,
    decodeErrorCount: result.decodeErrorCount,
  };
}
