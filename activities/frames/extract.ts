import { createHash } from 'node:crypto';
import ffmpeg from 'fluent-ffmpeg';
import sharp from 'sharp';
import type { ExtractOptions, SamplingMode } from '../../workflows/input';
import { VideoDecodeError } from '../common/errors';
import type { VideoProbe } from './probe';

/**
 * Version of the extraction code; part of the parameters hash so a change never
 * overwrites old frames. x2: sampling by ffmpeg's `select` on presentation time
 * (variable frame rate safe) with resizing in ffmpeg.
 */
export const EXTRACTOR_VERSION = 'x2';

/** One stored frame. */
export interface FrameRecord {
  /** S3 key: `frames/<video sha256>/<params hash>/<pts ms, 9 digits>.<ext>`. */
  key: string;
  /** 0-based index among the sampled frames of this video (before quality filtering). */
  index: number;
  /** Presentation timestamp in seconds from the start of the video. */
  timestampS: number;
  width: number;
  height: number;
  /** Encoded size in bytes. */
  bytes: number;
  /** sha256 of the encoded bytes. */
  sha256: string;
  /** Variance of the Laplacian of the luma (higher = sharper; Pech-Pacheco et al. 2000). */
  sharpness: number;
  /** Mean luma, 0..255 (BT.601 weights). */
  brightness: number;
}

/** Why sampled frames were not kept. */
export interface DropCounts {
  nearBlack: number;
  nearWhite: number;
  blurred: number;
}

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
 * How frames are picked from one video: the input of {@link selectExpression}.
 *
 * - `bucket`: the first frame of each interval `[k/rate, (k+1)/rate)` (fps and count modes);
 * - `gap`: frames at least `gapS` after the previous pick, and for `scene` only those
 *   whose scene score exceeds `sceneThreshold` (scene and keyframes modes).
 */
export interface SamplingPlan {
  mode: SamplingMode;
  kind: 'bucket' | 'gap';
  /** Buckets per second (`bucket`). */
  rate?: number;
  /** Seconds between picks at least (`gap`). */
  gapS?: number;
  /** Scene-change score threshold, 0..1 (`scene`). */
  sceneThreshold?: number;
  /** Decode keyframes only (`-skip_frame nokey`). */
  keyframesOnly: boolean;
  /** Frames sampled at most. */
  maxFrames: number;
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

/** Key of a frame: content (video sha256), parameters hash and presentation time in ms. */
export function frameKey(videoSha256: string, paramsHash: string, timestampS: number, ext: string): string {
  const ms = Math.round(timestampS * 1000);
  return `frames/${videoSha256}/${paramsHash}/${ms < 0 ? 'm' : ''}${String(Math.abs(ms)).padStart(9, '0')}.${ext}`;
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

/** Luma statistics of a packed RGB image (`width * height * 3` bytes). */
export function frameQuality(rgb: Buffer, width: number, height: number): FrameQuality {
  const n = width * height;
  const luma = new Float32Array(n);
  const hist = new Uint32Array(256);
  let sum = 0;
  for (let i = 0, p = 0; i < n; i++, p += 3) {
    const y = 0.299 * rgb[p]! + 0.587 * rgb[p + 1]! + 0.114 * rgb[p + 2]!;
    luma[i] = y;
    hist[Math.min(255, Math.round(y))]!++;
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
  let m = 0;
  for (let y = 1; y < height - 1; y++) {
    for (let x = 1; x < width - 1; x++) {
      const i = y * width + x;
      const l = luma[i - 1]! + luma[i + 1]! + luma[i - width]! + luma[i + width]! - 4 * luma[i]!;
      lsum += l;
      lsq += l * l;
      m++;
    }
  }
  const mean = m ? lsum / m : 0;
  return { brightness: sum / n, sharpness: m ? lsq / m - mean * mean : 0, p01: percentile(0.01), p99: percentile(0.99) };
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
 * Sample, resize, encode and store the frames of one local video file.
 *
 * ffmpeg decodes (display rotation applied; keyframes only in `keyframes` mode), picks
 * frames with the `select` filter on presentation time ({@link selectExpression}),
 * scales them to {@link targetSize} and writes raw RGB to a pipe; each frame is scored
 * ({@link frameQuality}), filtered, encoded by sharp and handed to `sink.put` with at
 * most `uploadConcurrency` in flight. Memory holds one raw frame plus the uploads in
 * flight and the small per-frame records, whatever the video's length; nothing is
 * written to disk. Timestamps are those ffmpeg's `showinfo` filter reports.
 *
 * Progress is committed in sample order ({@link FrameSink.commit}); `hooks.resume`
 * continues after a committed prefix (input seek to its last timestamp) without
 * decoding or uploading that prefix again.
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
  const frameBytes = size.width * size.height * 3;
  const ext = opts.format === 'webp' ? 'webp' : 'jpg';
  const resume = hooks.resume;
  const start = resume?.progress;
  const seekS = start?.lastTimestampS != null && start.lastTimestampS > 0 ? start.lastTimestampS : 0;
  const remaining = plan.maxFrames - (start?.sampled ?? 0);

  const committedFrames: FrameRecord[] = [...(resume?.frames ?? [])];
  let progress: ExtractProgress = start
    ? { ...start, dropped: { ...start.dropped } }
    : { sampled: 0, frames: 0, lastTimestampS: null, dropped: { nearBlack: 0, nearWhite: 0, blurred: 0 }, decodeErrorCount: 0 };
  const decodeErrors: string[] = [...(resume?.decodeErrors ?? [])];
  let decodeErrorCount = progress.decodeErrorCount;
  if (remaining <= 0) {
    return { paramsHash, plan, sampled: progress.sampled, frames: committedFrames, dropped: progress.dropped, decodeErrors, decodeErrorCount, resumed: true };
  }

  const timestamps: number[] = [];
  let lastStderr = '';
  const vf = [
    `select='${selectExpression(plan, start?.lastTimestampS ?? null, seekS)}'`,
    `scale=${size.width}:${size.height}:flags=bicubic`,
    'setsar=1',
    'showinfo',
  ].join(',');
  const input = ['-nostdin'];
  if (seekS > 0) input.push('-ss', num(seekS));
  if (plan.keyframesOnly) input.push('-skip_frame', 'nokey');
  const command = ffmpeg(file)
    .setFfmpegPath(hooks.ffmpegPath ?? 'ffmpeg')
    .inputOptions(input)
    .outputOptions(['-map', '0:v:0', '-an', '-sn', '-dn', '-vf', vf, '-fps_mode', 'passthrough', '-frames:v', String(remaining), '-pix_fmt', 'rgb24', '-f', 'rawvideo', '-loglevel', 'info'])
    .on('stderr', (line: string) => {
      const m = SHOWINFO.exec(line);
      if (m) {
        timestamps[Number(m[1])] = Number(m[2]) + seekS;
        return;
      }
      if (DECODE_ERROR.test(line) && !/^\s*(Stream|Input|Output|Duration|built with|configuration)/.test(line)) {
        decodeErrorCount++;
        if (decodeErrors.length < 20) decodeErrors.push(line.trim());
      }
      if (line.trim()) lastStderr = line.trim();
    });

  let ffmpegError: Error | undefined;
  let ffmpegDone = false;
  const ended = new Promise<void>((resolve) => {
    command.on('error', (err: Error) => {
      ffmpegError = err;
      ffmpegDone = true;
      resolve();
    });
    command.on('end', () => {
      ffmpegDone = true;
      resolve();
    });
  });
  const onAbort = () => command.kill('SIGKILL');
  hooks.signal?.addEventListener('abort', onAbort, { once: true });

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
  let uploadError: unknown;
  let index = progress.sampled;
  /** Index of this process's first frame (showinfo counts from 0 in every ffmpeg run). */
  const first = index;

  const handle = async (raw: Buffer, i: number): Promise<void> => {
    const ts = timestamps[i - first]!;
    hooks.onFrame?.({ frames: i + 1, timestampS: ts });
    const q = frameQuality(raw, size.width, size.height);
    const reason: keyof DropCounts | undefined =
      q.p99 < opts.blackLevel ? 'nearBlack' : q.p01 > opts.whiteLevel ? 'nearWhite' : q.sharpness < opts.minSharpness ? 'blurred' : undefined;
    if (reason) {
      done.set(i, { timestampS: ts, reason });
      return advance();
    }
    const key = frameKey(videoSha256, paramsHash, ts, ext);
    const img = sharp(raw, { raw: { width: size.width, height: size.height, channels: 3 } });
    const encoded = await (opts.format === 'webp' ? img.webp({ quality: opts.quality }) : img.jpeg({ quality: opts.quality })).toBuffer();
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
    const p = sink
      .put(record, encoded)
      .then(() => {
        done.set(i, { timestampS: ts, record });
        advance();
      })
      .catch((e: unknown) => {
        uploadError ??= e;
      })
      .finally(() => inflight.delete(p));
    inflight.add(p);
    if (inflight.size >= limit) await Promise.race(inflight);
  };

  const stream = command.pipe();
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      pending.push(chunk);
      pendingBytes += chunk.length;
      while (pendingBytes >= frameBytes) {
        const all = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
        const raw = Buffer.from(all.subarray(0, frameBytes));
        const rest = all.subarray(frameBytes);
        pending = rest.length ? [rest] : [];
        pendingBytes = rest.length;
        if (index - first >= remaining) break;
        // showinfo logs a frame before ffmpeg writes it, but stderr and stdout are
        // separate pipes: wait for the line, so a retried attempt derives the same key.
        while (timestamps[index - first] === undefined && !ffmpegDone) await new Promise((r) => setTimeout(r, 2));
        if (timestamps[index - first] === undefined) throw new VideoDecodeError(file, `ffmpeg gave frame ${index} without its timestamp`);
        await handle(raw, index++);
        if (uploadError) throw uploadError;
        hooks.signal?.throwIfAborted();
        await commit(false);
      }
    }
    await ended;
    hooks.signal?.throwIfAborted();
    await Promise.all(inflight);
    if (uploadError) throw uploadError;
    await commit(true);
  } catch (err) {
    command.kill('SIGKILL');
    await Promise.allSettled(inflight);
    throw err;
  } finally {
    hooks.signal?.removeEventListener('abort', onAbort);
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
