import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import {
  frameKey,
  VideoDecodeError,
  type DropCounts,
  type ExtractOptions,
  type FrameRecord,
  type SamplingMode,
  type SamplingPlan,
  type VideoProbe,
} from '../../contracts';
import { FixedSizeSplitter, JpegSplitter, WebpSplitter, type FrameSplitter } from './streams';

/**
 * Version of the extraction code; part of the parameters hash so a change never
 * overwrites old frames. x2: sampling by ffmpeg's `select` on presentation time
 * (variable frame rate safe) with resizing in ffmpeg; x3: images encoded by ffmpeg,
 * quality scored on its luma plane.
 */
export const EXTRACTOR_VERSION = 'x3';

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
}

/** Hash of everything that changes the stored frames (16 hex chars); fields of other modes do not count. */
export function extractionParamsHash(opts: ExtractOptions): string {
  const sampling: Record<SamplingMode, object> = {
    fps: { fps: opts.fps, min: opts.minFramesPerVideo },
    scene: { th: opts.sceneThreshold, gap: opts.minSceneGapS },
    keyframes: {},
    count: { n: opts.count },
  };
  const o = {
    v: EXTRACTOR_VERSION,
    mode: opts.mode,
    ...sampling[opts.mode],
    max: opts.maxFramesPerVideo,
    side: opts.shortSide,
    fmt: opts.format,
    q: opts.quality,
    black: opts.blackLevel,
    white: opts.whiteLevel,
    minS: opts.minSharpness,
  };
  return createHash('sha256').update(JSON.stringify(o)).digest('hex').slice(0, 16);
}

/**
 * The sampling rate for a video in `fps` mode: `fps`, lowered so at most
 * `maxFramesPerVideo` frames spread over the whole duration, raised for short clips to
 * give `minFramesPerVideo` (never above the video's own frame rate, 30 when unknown).
 *
 * @returns frames per second, finite and > 0.
 */
export function planSamplingRate(probe: Pick<VideoProbe, 'durationS' | 'frameRate'>, opts: ExtractOptions): number {
  const d = Math.max(probe.durationS, 1e-3);
  let r = opts.fps;
  if (d * r > opts.maxFramesPerVideo) r = opts.maxFramesPerVideo / d;
  if (d * r < opts.minFramesPerVideo) r = Math.min(opts.minFramesPerVideo / d, probe.frameRate ?? 30);
  return r;
}

/**
 * Plan the sampling of one video so that every mode respects `maxFramesPerVideo`
 * spread over the whole duration (the gap is raised to duration / cap for scene and
 * keyframes, the bucket rate lowered to cap / duration for fps and count).
 */
export function planSampling(probe: Pick<VideoProbe, 'durationS' | 'frameRate'>, opts: ExtractOptions): SamplingPlan {
  const d = Math.max(probe.durationS, 1e-3);
  const cap = opts.maxFramesPerVideo;
  switch (opts.mode) {
    case 'fps': {
      const rate = planSamplingRate(probe, opts);
      return { mode: 'fps', kind: 'bucket', rate, keyframesOnly: false, maxFrames: Math.max(cap, opts.minFramesPerVideo) };
    }
    case 'count': {
      const n = Math.min(opts.count, cap);
      return { mode: 'count', kind: 'bucket', rate: n / d, keyframesOnly: false, maxFrames: n };
    }
    case 'scene':
      return { mode: 'scene', kind: 'gap', gapS: Math.max(opts.minSceneGapS, d / cap), sceneThreshold: opts.sceneThreshold, keyframesOnly: false, maxFrames: cap };
    case 'keyframes':
      return { mode: 'keyframes', kind: 'gap', gapS: Math.max(0.001, d / cap), keyframesOnly: true, maxFrames: cap };
  }
}

/** Format a number for an ffmpeg expression (no exponent notation). */
function num(x: number): string {
  return x.toFixed(9).replace(/\.?0+$/, '') || '0';
}

/**
 * The ffmpeg `select` filter expression of a plan (without quotes).
 *
 * Time is `t + seekS` (ffmpeg's `t` restarts at 0 after an input seek) and the previous
 * pick is `prev_selected_t + seekS`, or `afterS` before the first pick of this process
 * (a resumed attempt passes the last frame it had; a fresh one, none). Picks are
 * strictly increasing in time, so keys derived from timestamps never collide.
 *
 * @see https://ffmpeg.org/ffmpeg-filters.html#select_002c-aselect
 */
export function selectExpression(plan: SamplingPlan, afterS: number | null = null, seekS = 0): string {
  const T = seekS ? `(t+${num(seekS)})` : 't';
  const prevSel = seekS ? `(prev_selected_t+${num(seekS)})` : 'prev_selected_t';
  if (plan.kind === 'bucket') {
    const r = num(plan.rate!);
    const first = afterS === null ? '-1e12' : `floor(${num(afterS)}*${r})`;
    return `gt(floor(${T}*${r}),if(isnan(prev_selected_t),${first},floor(${prevSel}*${r})))`;
  }
  const prev = `if(isnan(prev_selected_t),${afterS === null ? '-1e12' : num(afterS)},${prevSel})`;
  const gap = `gte(${T}-${prev},${num(plan.gapS!)})`;
  if (plan.mode !== 'scene') return gap;
  const cut = `gt(scene,${num(plan.sceneThreshold!)})*${gap}`;
  // A fresh extraction also keeps the first frame (the opening shot).
  return afterS === null ? `max(isnan(prev_selected_t)*eq(n,0),${cut})` : cut;
}

/** Output size: short side `shortSide` (never upscaled), aspect kept, both even. */
export function targetSize(displayWidth: number, displayHeight: number, shortSide: number): { width: number; height: number } {
  const short = Math.min(displayWidth, displayHeight);
  const scale = Math.min(1, shortSide / short);
  const even = (x: number) => Math.max(2, Math.min(2 * Math.round((x * scale) / 2), 2 * Math.floor(x / 2)));
  return { width: even(displayWidth), height: even(displayHeight) };
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

/**
 * Quality measures of one full-range 8-bit luma plane (`width * height` bytes, e.g.
 * ffmpeg's `gray` output): mean, 1st and 99th percentiles, and the variance of the
 * 4-neighbour Laplacian (Pech-Pacheco et al. 2000, "Diatom autofocusing in brightfield
 * microscopy"). Integer arithmetic in one pass each; about 0.5 ms for 342x256.
 */
export function lumaQuality(luma: Uint8Array, width: number, height: number): FrameQuality {
  const n = width * height;
  const hist = new Uint32Array(256);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const y = luma[i]!;
    hist[y]!++;
    sum += y;
  }
  const percentile = (q: number): number => {
    const target = q * n;
    let acc = 0;
    for (let v = 0; v < 256; v++) {
      acc += hist[v]!;
      if (acc >= target) return v;
    }
    return 255;
  };
  let lsum = 0;
  let lsq = 0;
  for (let y = 1; y < height - 1; y++) {
    const row = y * width;
    for (let i = row + 1, end = row + width - 1; i < end; i++) {
      const l = luma[i - 1]! + luma[i + 1]! + luma[i - width]! + luma[i + width]! - 4 * luma[i]!;
      lsum += l;
      lsq += l * l;
    }
  }
  const m = Math.max(0, width - 2) * Math.max(0, height - 2);
  const mean = m ? lsum / m : 0;
  return { brightness: n ? sum / n : 0, sharpness: m ? lsq / m - mean * mean : 0, p01: percentile(0.01), p99: percentile(0.99) };
}

const SHOWINFO = /Parsed_showinfo.*\bn:\s*(\d+).*\bpts_time:\s*(-?[\d.]+)/;
const DECODE_ERROR = /error|corrupt|invalid|non[- ]monoton|concealing|missing|illegal/i;

/** A sampled frame that is done: stored (`record`) or dropped (`reason`). */
interface Done {
  timestampS: number;
  record?: FrameRecord;
  reason?: keyof DropCounts;
}

/**
 * ffmpeg's mjpeg `-q:v` (2 best .. 31) for a libjpeg-style quality (1..100): matched by
 * file size on the corpus (quality 85 -> 4, 75 -> 6, 50 -> 11).
 */
export function mjpegQscale(quality: number): number {
  return Math.max(2, Math.min(31, Math.round(1 + (100 - quality) / 5)));
}

/** The ffmpeg encoder options of the stored image format. */
export function encoderArgs(opts: Pick<ExtractOptions, 'format' | 'quality'>): string[] {
  return opts.format === 'webp'
    ? ['-c:v', 'libwebp', '-quality', String(opts.quality), '-compression_level', '4']
    : ['-c:v', 'mjpeg', '-q:v', String(mjpegQscale(opts.quality))];
}

/**
 * Sample, resize, encode and store the frames of one local video file.
 *
 * One ffmpeg process decodes (display rotation applied; keyframes only in `keyframes`
 * mode), picks frames with the `select` filter on presentation time
 * ({@link selectExpression}), scales them to {@link targetSize}, and writes each frame
 * twice: encoded (JPEG by ffmpeg's mjpeg encoder, or WebP by libwebp) to pipe 1, and its
 * full-range luma plane to pipe 3, from which {@link lumaQuality} scores it. Frames that
 * pass the quality filters go to `sink.put`, at most `uploadConcurrency` at a time.
 * Memory holds a few frames plus the uploads in flight and the small per-frame records,
 * whatever the video's length; nothing is written to disk. Timestamps are those
 * ffmpeg's `showinfo` filter reports.
 *
 * Progress is committed in sample order ({@link FrameSink.commit}); `hooks.resume`
 * continues after a committed prefix (input seek to its last timestamp) without
 * decoding or uploading that prefix again.
 *
 * ffmpeg is spawned directly (not through fluent-ffmpeg) because it writes to a third
 * pipe.
 *
 * @throws VideoDecodeError when ffmpeg fails before producing any frame.
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
  const ext = opts.format === 'webp' ? 'webp' : 'jpg';
  const resume = hooks.resume;
  const start = resume?.progress;
  const seekS = start?.lastTimestampS != null && start.lastTimestampS > 0 ? start.lastTimestampS : 0;
  const remaining = plan.maxFrames - (start?.sampled ?? 0);

  const committedFrames: FrameRecord[] = [...(resume?.frames ?? [])];
  const progress: ExtractProgress = start
    ? { ...start, dropped: { ...start.dropped } }
    : { sampled: 0, frames: 0, lastTimestampS: null, dropped: { nearBlack: 0, nearWhite: 0, blurred: 0 }, decodeErrorCount: 0 };
  const decodeErrors: string[] = [...(resume?.decodeErrors ?? [])];
  let decodeErrorCount = progress.decodeErrorCount;
  if (remaining <= 0) {
    return { paramsHash, plan, sampled: progress.sampled, frames: committedFrames, dropped: progress.dropped, decodeErrors, decodeErrorCount, resumed: true };
  }

  const graph =
    `[0:v:0]select='${selectExpression(plan, start?.lastTimestampS ?? null, seekS)}',` +
    `scale=${size.width}:${size.height}:flags=bicubic,setsar=1,showinfo,split=2[e][l];` +
    // Each branch converts on its own: the encoder's pixel format, full-range luma.
    `[e]format=${opts.format === 'webp' ? 'yuv420p' : 'yuvj420p'}[enc];[l]format=gray[luma]`;
  const each = ['-fps_mode', 'passthrough', '-frames:v', String(remaining)];
  const args = [
    '-nostdin', '-nostats', '-loglevel', 'info',
    ...(seekS > 0 ? ['-ss', num(seekS)] : []),
    ...(plan.keyframesOnly ? ['-skip_frame', 'nokey'] : []),
    // `file:` so that no name ("a:b.mp4", "-x.mp4") is read as a protocol or an option.
    '-i', `file:${file}`,
    '-filter_complex', graph,
    '-map', '[enc]', ...each, ...encoderArgs(opts), '-f', 'image2pipe', 'pipe:1',
    '-map', '[luma]', ...each, '-f', 'rawvideo', 'pipe:3',
  ];
  const child = spawn(hooks.ffmpegPath ?? 'ffmpeg', args, { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
  const encodedOut = child.stdout!;
  const lumaOut = child.stdio[3] as Readable;

  // showinfo logs a frame before ffmpeg writes it, but stderr and stdout are separate
  // pipes: a frame's processing waits for its line, so a retried attempt derives the same key.
  const timestamps: number[] = [];
  const waiters = new Map<number, () => void>();
  const wakeAll = () => {
    for (const w of waiters.values()) w();
    waiters.clear();
  };
  let lastStderr = '';
  let stderrRest = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (text: string) => {
    const lines = (stderrRest + text).split(/\r?\n|\r/);
    stderrRest = lines.pop() ?? '';
    for (const line of lines) {
      const m = SHOWINFO.exec(line);
      if (m) {
        const n = Number(m[1]);
        timestamps[n] = Number(m[2]) + seekS;
        waiters.get(n)?.();
        waiters.delete(n);
        continue;
      }
      if (DECODE_ERROR.test(line) && !/^\s*(Stream|Input|Output|Duration|built with|configuration)/.test(line)) {
        decodeErrorCount++;
        if (decodeErrors.length < 20) decodeErrors.push(line.trim());
      }
      if (line.trim()) lastStderr = line.trim();
    }
  });

  let ffmpegError: Error | undefined;
  let ffmpegDone = false;
  const ended = new Promise<void>((resolve) => {
    child.once('error', (err: Error) => {
      ffmpegError = err;
      ffmpegDone = true;
      wakeAll();
      resolve();
    });
    child.once('close', (code, signal) => {
      if (code !== 0 && !ffmpegError) ffmpegError = new Error(`ffmpeg exited with ${signal ?? `code ${code}`}`);
      ffmpegDone = true;
      wakeAll();
      resolve();
    });
  });
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  hooks.signal?.addEventListener('abort', kill, { once: true });

  // Frames done out of order (uploads finish in any order) wait here until the prefix reaches them.
  const done = new Map<number, Done>();
  let prefix = progress.sampled;
  let batch: FrameRecord[] = [];
  const advance = () => {
    for (let d = done.get(prefix); d; d = done.get(prefix)) {
      done.delete(prefix);
      if (d.record) batch.push(d.record);
      else progress.dropped[d.reason!]++;
      progress.lastTimestampS = d.timestampS;
      progress.sampled = ++prefix;
    }
  };
  const commitEvery = hooks.commitEvery ?? 50;
  const commitIntervalMs = hooks.commitIntervalMs ?? 2000;
  let lastCommit = Date.now();
  let committedSampled = progress.sampled;
  let committing: Promise<void> | undefined;
  const commit = async (force: boolean) => {
    if (!force && prefix - committedSampled < commitEvery && Date.now() - lastCommit < commitIntervalMs) return;
    if (prefix === committedSampled && !force) return;
    const frames = batch;
    batch = [];
    progress.frames += frames.length;
    progress.decodeErrorCount = decodeErrorCount;
    const snapshot: ExtractProgress = { ...progress, dropped: { ...progress.dropped } };
    await sink.commit?.(frames, snapshot);
    committedFrames.push(...frames);
    committedSampled = snapshot.sampled;
    lastCommit = Date.now();
  };

  const inflight = new Set<Promise<void>>();
  const limit = hooks.uploadConcurrency ?? 8;
  let failure: unknown;
  let index = progress.sampled;
  /** Index of this process's first frame (showinfo counts from 0 in every ffmpeg run). */
  const first = index;

  const handle = async (encoded: Buffer, luma: Buffer, i: number): Promise<void> => {
    const n = i - first;
    if (timestamps[n] === undefined && !ffmpegDone) await new Promise<void>((r) => waiters.set(n, r));
    const ts = timestamps[n];
    if (ts === undefined) throw new VideoDecodeError(file, `ffmpeg gave frame ${i} without its timestamp`);
    hooks.onFrame?.({ frames: i + 1, timestampS: ts });
    const q = lumaQuality(luma, size.width, size.height);
    const reason: keyof DropCounts | undefined =
      q.p99 < opts.blackLevel ? 'nearBlack' : q.p01 > opts.whiteLevel ? 'nearWhite' : q.sharpness < opts.minSharpness ? 'blurred' : undefined;
    if (reason) {
      done.set(i, { timestampS: ts, reason });
      return advance();
    }
    const key = frameKey(videoSha256, paramsHash, ts, ext);
    const record: FrameRecord = {
      key,
      index: i,
      timestampS: Math.round(ts * 1e6) / 1e6,
      width: size.width,
      height: size.height,
      bytes: encoded.length,
      sha256: createHash('sha256').update(encoded).digest('hex'),
      sharpness: Math.round(q.sharpness * 1000) / 1000,
      brightness: Math.round(q.brightness * 1000) / 1000,
    };
    if (sink.has(key)) {
      done.set(i, { timestampS: ts, record });
      return advance();
    }
    while (inflight.size >= limit) await Promise.race(inflight);
    const p: Promise<void> = sink
      .put(record, encoded)
      .then(() => {
        done.set(i, { timestampS: ts, record });
        advance();
      })
      .catch((e: unknown) => {
        failure ??= e;
        kill();
      })
      .finally(() => inflight.delete(p));
    inflight.add(p);
  };

  // Both pipes are read as they fill (ffmpeg writes them in turn, so neither can stall
  // the other); a frame is handled once its image and its luma plane have both arrived.
  // At most `parallel` frames are handled at once: beyond that the pipes are paused.
  const parallel = 4;
  const processing = new Set<Promise<void>>();
  const encodedQ: Buffer[] = [];
  const lumaQ: Buffer[] = [];
  const splitEncoded: FrameSplitter = opts.format === 'webp' ? new WebpSplitter() : new JpegSplitter();
  const splitLuma = new FixedSizeSplitter(size.width * size.height);
  const pump = () => {
    while (encodedQ.length && lumaQ.length && !failure) {
      const encoded = encodedQ.shift()!;
      const luma = lumaQ.shift()!;
      if (index - first >= remaining) continue;
      const i = index++;
      const p: Promise<void> = handle(encoded, luma, i)
        .catch((e: unknown) => {
          failure ??= e;
          kill();
        })
        .finally(() => {
          processing.delete(p);
          if (processing.size < parallel) {
            encodedOut.resume();
            lumaOut.resume();
          }
          void commitSoon();
        });
      processing.add(p);
    }
    if (processing.size >= parallel) {
      encodedOut.pause();
      lumaOut.pause();
    }
  };
  const commitSoon = async () => {
    if (committing || failure) return;
    committing = commit(false)
      .catch((e: unknown) => {
        failure ??= e;
        kill();
      })
      .finally(() => (committing = undefined));
  };
  const onData = (q: Buffer[], split: FrameSplitter) => (chunk: Buffer) => {
    try {
      q.push(...split.push(chunk));
    } catch (e) {
      failure ??= e;
      kill();
      return;
    }
    pump();
  };
  encodedOut.on('data', onData(encodedQ, splitEncoded));
  lumaOut.on('data', onData(lumaQ, splitLuma));
  const streamsClosed = Promise.all([
    new Promise<void>((r) => encodedOut.once('close', () => r())),
    new Promise<void>((r) => lumaOut.once('close', () => r())),
  ]);

  try {
    await ended;
    await streamsClosed;
    pump();
    await Promise.allSettled(processing);
    await Promise.allSettled(inflight);
    await committing;
    hooks.signal?.throwIfAborted();
    if (failure) throw failure;
    await commit(true);
  } catch (err) {
    kill();
    wakeAll();
    await Promise.allSettled(processing);
    await Promise.allSettled(inflight);
    await committing?.catch(() => undefined);
    throw err;
  } finally {
    hooks.signal?.removeEventListener('abort', kill);
  }

  if (index === first && ffmpegError && !resume) {
    throw new VideoDecodeError(file, `ffmpeg decoded no frame: ${lastStderr || ffmpegError.message}`);
  }
  return {
    paramsHash,
    plan,
    sampled: progress.sampled,
    frames: committedFrames,
    dropped: progress.dropped,
    decodeErrors,
    decodeErrorCount,
    resumed: Boolean(resume),
  };
}
