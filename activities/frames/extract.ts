import { createHash } from 'node:crypto';
import ffmpeg from 'fluent-ffmpeg';
import sharp from 'sharp';
import type { ExtractOptions } from '../../workflows/input';
import { VideoDecodeError } from '../common/errors';
import type { VideoProbe } from './probe';

/** Version of the extraction code; part of the parameters hash so a change never overwrites old frames. */
export const EXTRACTOR_VERSION = 'x1';

/** One stored frame. */
export interface FrameRecord {
  /** S3 key: `frames/<video sha256>/<params hash>/<pts ms, 9 digits>.<ext>`. */
  key: string;
  /** 0-based index among the sampled frames of this video (before quality filtering). */
  index: number;
  /** Presentation timestamp in seconds. */
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
  /** Sampling rate actually used, frames per second. */
  sampledFps: number;
  /** Frames sampled from the video (kept + dropped). */
  sampled: number;
  frames: FrameRecord[];
  dropped: DropCounts;
  /** Decoder complaints (first 20) for streams that still decode, e.g. h264 slice errors. */
  decodeErrors: string[];
  decodeErrorCount: number;
}

/** Where frames go: the caller stores bytes (S3) and rows (Postgres). */
export interface FrameSink {
  /** True when this key is already stored (a retried attempt skips the upload). */
  has(key: string): boolean;
  /** Store one frame; called with bounded concurrency. */
  put(frame: FrameRecord, bytes: Buffer): Promise<void>;
}

/** Progress and cancellation hooks (heartbeats in the activity). */
export interface ExtractHooks {
  onFrame?: (done: { frames: number; timestampS: number }) => void;
  signal?: AbortSignal;
  /** Concurrent `sink.put` calls (default 8). */
  uploadConcurrency?: number;
  ffmpegPath?: string;
}

/** Hash of everything that changes the stored frames (16 hex chars). */
export function extractionParamsHash(opts: ExtractOptions): string {
  const o = {
    v: EXTRACTOR_VERSION,
    fps: opts.fps,
    max: opts.maxFramesPerVideo,
    min: opts.minFramesPerVideo,
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
 * The sampling rate for a video: `fps`, lowered so at most `maxFramesPerVideo` frames
 * spread over the whole duration, raised for short clips to give `minFramesPerVideo`
 * (never above the video's own frame rate).
 *
 * @returns frames per second, > 0.
 */
export function planSamplingRate(probe: Pick<VideoProbe, 'durationS' | 'frameRate'>, opts: ExtractOptions): number {
  const d = Math.max(probe.durationS, 1e-3);
  let r = opts.fps;
  if (d * r > opts.maxFramesPerVideo) r = opts.maxFramesPerVideo / d;
  if (d * r < opts.minFramesPerVideo) r = Math.min(opts.minFramesPerVideo / d, probe.frameRate ?? 30);
  return r;
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

/**
 * Sample, resize, encode and store the frames of one local video file.
 *
 * ffmpeg decodes (display rotation applied) and samples at {@link planSamplingRate};
 * raw RGB frames stream through a pipe (one frame in memory at a time, plus the
 * uploads in flight) to sharp, which resizes and encodes them; `sink.put` stores them.
 * Timestamps are the presentation times ffmpeg's `showinfo` filter reports.
 * Frames that fail the quality filters are counted, not stored. A stream with decode
 * errors yields what decodes, with the errors reported.
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
  const rate = planSamplingRate(probe, opts);
  const maxFrames = Math.max(opts.maxFramesPerVideo, opts.minFramesPerVideo);
  const W = probe.displayWidth;
  const H = probe.displayHeight;
  const frameBytes = W * H * 3;
  const size = targetSize(W, H, opts.shortSide);
  const ext = opts.format === 'webp' ? 'webp' : 'jpg';

  const timestamps: number[] = [];
  const decodeErrors: string[] = [];
  let decodeErrorCount = 0;
  let lastStderr = '';

  const filters = [`fps=${rate.toFixed(6)}`, `scale=${W}:${H}:flags=bicubic`, 'setsar=1', 'showinfo'].join(',');
  const command = ffmpeg(file)
    .setFfmpegPath(hooks.ffmpegPath ?? 'ffmpeg')
    .inputOptions(['-nostdin'])
    .outputOptions(['-map', '0:v:0', '-an', '-sn', '-vf', filters, '-frames:v', String(maxFrames), '-pix_fmt', 'rgb24', '-f', 'rawvideo', '-loglevel', 'info'])
    .on('stderr', (line: string) => {
      const m = SHOWINFO.exec(line);
      if (m) {
        timestamps[Number(m[1])] = Number(m[2]);
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

  const frames: FrameRecord[] = [];
  const dropped: DropCounts = { nearBlack: 0, nearWhite: 0, blurred: 0 };
  const inflight = new Set<Promise<void>>();
  const limit = hooks.uploadConcurrency ?? 8;
  let uploadError: unknown;
  let index = 0;

  const handle = async (raw: Buffer, i: number): Promise<void> => {
    const ts = timestamps[i] ?? i / rate;
    const resized = await sharp(raw, { raw: { width: W, height: H, channels: 3 } })
      .resize(size.width, size.height, { fit: 'fill', kernel: 'lanczos3' })
      .raw()
      .toBuffer();
    const q = frameQuality(resized, size.width, size.height);
    hooks.onFrame?.({ frames: i + 1, timestampS: ts });
    if (q.p99 < opts.blackLevel) return void dropped.nearBlack++;
    if (q.p01 > opts.whiteLevel) return void dropped.nearWhite++;
    if (q.sharpness < opts.minSharpness) return void dropped.blurred++;
    const key = `frames/${videoSha256}/${paramsHash}/${String(Math.round(ts * 1000)).padStart(9, '0')}.${ext}`;
    const img = sharp(resized, { raw: { width: size.width, height: size.height, channels: 3 } });
    const encoded = await (opts.format === 'webp' ? img.webp({ quality: opts.quality }) : img.jpeg({ quality: opts.quality })).toBuffer();
    const rec: FrameRecord = {
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
    frames.push(rec);
    if (sink.has(key)) return;
    const p = sink
      .put(rec, encoded)
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
        if (index >= maxFrames) break;
        // showinfo logs a frame before ffmpeg writes it, but stderr and stdout are
        // separate pipes: wait for the line, so a retried attempt derives the same key.
        while (timestamps[index] === undefined && !ffmpegDone) await new Promise((r) => setTimeout(r, 2));
        await handle(raw, index++);
        if (uploadError) throw uploadError;
        hooks.signal?.throwIfAborted();
      }
    }
    await ended;
    hooks.signal?.throwIfAborted();
    await Promise.all(inflight);
    if (uploadError) throw uploadError;
  } catch (err) {
    command.kill('SIGKILL');
    await Promise.allSettled(inflight);
    throw err;
  } finally {
    hooks.signal?.removeEventListener('abort', onAbort);
  }

  if (index === 0 && ffmpegError) {
    throw new VideoDecodeError(file, `ffmpeg decoded no frame: ${lastStderr || ffmpegError.message}`);
  }
  frames.sort((a, b) => a.index - b.index);
  return { paramsHash, sampledFps: rate, sampled: index, frames, dropped, decodeErrors, decodeErrorCount };
}
