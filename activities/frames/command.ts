/**
 * The ffmpeg command line of one extraction: inputs, the filter graph (sample, scale,
 * then split into the encoded image and the luma plane) and the two outputs (pipe 1:
 * encoded images; pipe 3: raw luma planes).
 */
import type { ExtractOptions, SamplingPlan } from '../../contracts';
import { ffmpegNumber, selectExpression } from './plan';

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

/** Everything {@link buildExtractCommand} needs. */
export interface ExtractCommandInput {
  /** Local path of the video (passed as a `file:` URL). */
  file: string;
  plan: SamplingPlan;
  /** Output frame size in pixels (even). */
  size: { width: number; height: number };
  format: ExtractOptions['format'];
  quality: number;
  /** Input seek, seconds (0: from the start). */
  seekS: number;
  /** Timestamp of the last frame already handled by an earlier attempt (null: none). */
  afterS: number | null;
  /** Most frames to write. */
  frames: number;
}

/**
 * The filter graph: `select` on presentation time, scale to the output size with square
 * pixels, `showinfo` (the timestamps), then one branch per output converting on its own:
 * the encoder's pixel format (`[enc]`) and full-range 8-bit luma (`[luma]`).
 */
export function extractFilterGraph(input: Pick<ExtractCommandInput, 'plan' | 'size' | 'format' | 'seekS' | 'afterS'>): string {
  return (
    `[0:v:0]select='${selectExpression(input.plan, input.afterS, input.seekS)}',` +
    `scale=${input.size.width}:${input.size.height}:flags=bicubic,setsar=1,showinfo,split=2[e][l];` +
    `[e]format=${input.format === 'webp' ? 'yuv420p' : 'yuvj420p'}[enc];[l]format=gray[luma]`
  );
}

/**
 * The ffmpeg arguments of one extraction (without the binary): encoded images to pipe 1
 * (`image2pipe`), luma planes to pipe 3 (`rawvideo`), each capped at `frames`; keyframes
 * only (`-skip_frame nokey`) when the plan says so; timestamps logged by `showinfo` at
 * level `info` on stderr.
 */
export function buildExtractCommand(input: ExtractCommandInput): string[] {
  const each = ['-fps_mode', 'passthrough', '-frames:v', String(input.frames)];
  return [
    '-nostdin', '-nostats', '-loglevel', 'info',
    ...(input.seekS > 0 ? ['-ss', ffmpegNumber(input.seekS)] : []),
    ...(input.plan.keyframesOnly ? ['-skip_frame', 'nokey'] : []),
    // `file:` so that no name ("a:b.mp4", "-x.mp4") is read as a protocol or an option.
    '-i', `file:${input.file}`,
    '-filter_complex', extractFilterGraph(input),
    '-map', '[enc]', ...each, ...encoderArgs(input), '-f', 'image2pipe', 'pipe:1',
    '-map', '[luma]', ...each, '-f', 'rawvideo', 'pipe:3',
  ];
}
