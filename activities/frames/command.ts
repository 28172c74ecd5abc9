/**
 * The ffmpeg command line of one extraction: inputs, the filter graph (deinterlace,
 * sample, scale and convert to 8-bit BT.709 SDR, then split into the encoded image and
 * the luma plane) and the two outputs (pipe 1: encoded images; pipe 3: raw luma planes).
 */
import type { ExtractOptions, SamplingPlan, VideoProbe } from '../../contracts';
import { colourFilters } from './colour';
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

/** What of the probe the command depends on. */
export type CommandProbe = Pick<VideoProbe, 'colour' | 'scan'> & { stream: Pick<VideoProbe['stream'], 'index'> };

/** Everything {@link buildExtractCommand} needs. */
export interface ExtractCommandInput {
  /** Local path of the video (passed as a `file:` URL). */
  file: string;
  /** The chosen stream, its colour and scan type. */
  probe: CommandProbe;
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
 * The deinterlacer of an interlaced stream, or nothing: `bwdif` (Bob Weaver, motion
 * adaptive, after yadif; one frame out per frame in, timestamps kept) with the field
 * order the probe found, on every frame (idet-detected streams carry no interlaced flag
 * on their frames). It runs before `select`: it needs each frame's neighbours.
 */
export function deinterlaceFilter(scan: VideoProbe['scan']): string {
  if (!scan.interlaced) return '';
  const parity = scan.fieldOrder === 'tt' || scan.fieldOrder === 'tb' ? 'tff' : 'bff';
  return `bwdif=mode=send_frame:parity=${parity}:deint=all,`;
}

/**
 * The filter graph: the chosen stream (`[0:<index>]`), deinterlaced when interlaced,
 * `select` on presentation time, scaled to the output size and converted to 8-bit BT.709
 * SDR as full-range BT.601 YCbCr ({@link colourFilters}), square pixels, `showinfo` (the
 * timestamps), then one branch per output: the encoder's pixel format (`[enc]`) and the
 * luma plane (`[luma]`, the Y plane as it is: full-range 8-bit luma).
 */
export function extractFilterGraph(input: Pick<ExtractCommandInput, 'probe' | 'plan' | 'size' | 'format' | 'seekS' | 'afterS'>): string {
  return (
    `[0:${input.probe.stream.index}]${frameFilters(input)},showinfo,split=2[e][l];` +
    `[e]format=${input.format === 'webp' ? 'yuv420p' : 'yuvj420p'}[enc];[l]extractplanes=y[luma]`
  );
}

/**
 * The filter chain that makes the stored frames from the decoded stream, without the
 * outputs: deinterlace (when interlaced), `select`, scale and colour conversion, square
 * pixels. `bench/extract.ts` gives bare ffmpeg exactly this chain.
 */
export function frameFilters(input: Pick<ExtractCommandInput, 'probe' | 'plan' | 'size' | 'seekS' | 'afterS'>): string {
  return (
    `${deinterlaceFilter(input.probe.scan)}select='${selectExpression(input.plan, input.afterS, input.seekS)}',` +
    `${colourFilters(input.probe.colour, input.size.width, input.size.height)},setsar=1`
  );
}

/**
 * The ffmpeg arguments of one extraction (without the binary): encoded images to pipe 1
 * (`image2pipe`), luma planes to pipe 3 (`rawvideo`), each capped at `frames`; keyframes
 * only (`-skip_frame nokey`) when the plan says so; timestamps logged by `showinfo` and
 * a progress line every half second (`-stats`, the no-progress watchdog's heartbeat) at
 * level `info` on stderr.
 */
export function buildExtractCommand(input: ExtractCommandInput): string[] {
  const each = ['-fps_mode', 'passthrough', '-frames:v', String(input.frames)];
  return [
    '-nostdin',
    '-stats',
    '-stats_period',
    '0.5',
    '-loglevel',
    'info',
    ...(input.seekS > 0 ? ['-ss', ffmpegNumber(input.seekS)] : []),
    ...(input.plan.keyframesOnly ? ['-skip_frame', 'nokey'] : []),
    // `file:` so that no name ("a:b.mp4", "-x.mp4") is read as a protocol or an option.
    '-i',
    `file:${input.file}`,
    '-filter_complex',
    extractFilterGraph(input),
    '-map',
    '[enc]',
    ...each,
    ...encoderArgs(input),
    '-f',
    'image2pipe',
    'pipe:1',
    '-map',
    '[luma]',
    ...each,
    '-f',
    'rawvideo',
    'pipe:3',
  ];
}
