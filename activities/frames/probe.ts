/**
 * What a video file is, before any frame is written: ffprobe's JSON (streams, colour
 * tags, side data, dispositions) normalised into a {@link VideoProbe}, the main video
 * stream chosen by what it is (`stream-choice.ts`), a scan of decoded frames when the tags
 * leave the scan type or the HDR peak open (`scan.ts`), and a check that the end of the
 * file decodes. Every child process is bounded (`lib/media.ts`: timeout, abort signal).
 */
import { promises as fs } from 'node:fs';
import { TransientError, VideoDecodeError, type VideoColour, type VideoProbe, type VideoScanType } from '../../contracts';
import { ffprobeJson, runProcess, type RunOptions } from '../../lib/media';
import { describeColour, lumaToNits, toneMapPeak } from './colour';
import { idetFieldOrder, scanVideo, type ScanResult } from './scan';
import { chooseVideoStream, type ProbeStream } from './stream-choice';

/**
 * Version of {@link probeVideo}'s content; a cached probe of another version is redone.
 * p3: the chosen stream (index and why), colour facts, scan type, sample aspect ratio,
 * start times; ffprobe's JSON through bounded processes.
 */
export const PROBE_VERSION = 'p3';

/** A probe cached with the video's catalog row: the probe, or why the file cannot be used. */
export interface CachedProbe {
  version: string;
  probe?: VideoProbe;
  /** The {@link VideoDecodeError} reason. */
  error?: string;
}

/** Options of {@link probeVideo}. */
export interface ProbeOptions {
  ffprobePath?: string;
  ffmpegPath?: string;
  /** Limit of each child process (ffprobe, the packet count, the scan, the end check), milliseconds (default 120 000). */
  timeoutMs?: number;
  /** Kills the running child process (activity cancellation, worker shutdown). */
  signal?: AbortSignal;
}

/** ffprobe's JSON for one file, loosely typed (the fields read here). */
export interface ProbeJson {
  streams?: ProbeStream[];
  format?: { duration?: string | number; start_time?: string | number; [key: string]: unknown };
}

/** Parse an ffprobe rational like `30000/1001`; undefined for `0/0`, non-finite, or outside (0, 1000]. */
export function parseFrameRate(value: string | number | undefined): number | undefined {
  if (value === undefined) return undefined;
  let n: number;
  if (typeof value === 'number') n = value;
  else {
    const [a, b] = value.split('/');
    n = b === undefined ? Number(a) : Number(a) / Number(b);
  }
  return Number.isFinite(n) && n > 0 && n <= 1000 ? n : undefined;
}

/**
 * Probe a video file: ffprobe, the stream choice, the scan when needed, then a check
 * that its end decodes.
 *
 * Fails before anything is written, with a {@link VideoDecodeError} (never retried)
 * naming the file and the reason, when the file is missing, empty, not a media file,
 * has no usable video stream (audio only, cover art only), has no duration even after
 * counting its packets, or is truncated (no frame decodes in its last seconds:
 * {@link checkEndDecodes}). When a tool cannot run, runs past its timeout or is killed,
 * it throws a retryable {@link TransientError} instead: that says nothing about the file
 * and is never cached as its verdict.
 *
 * @param file local path (passed to the tools as a `file:` URL).
 */
export async function probeVideo(file: string, opts: ProbeOptions = {}): Promise<VideoProbe> {
  let stat;
  try {
    stat = await fs.stat(file);
  } catch {
    throw new VideoDecodeError(file, 'file not found');
  }
  if (stat.size === 0) throw new VideoDecodeError(file, 'file is empty (0 bytes)');
  const run: RunOptions = { timeoutMs: opts.timeoutMs ?? 120_000, signal: opts.signal };
  const data = await ffprobeJson(file, { ...run, ffprobePath: opts.ffprobePath }).catch((err: unknown) => {
    if (err instanceof TransientError) throw new TransientError(`ffprobe could not run on ${file}: ${err.message}`);
    throw err;
  });
  if ('error' in data) {
    // The most specific line: the demuxer's own words ("moov atom not found") before the generic last one.
    const lines = (data.stderr ?? data.error)
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
    const line =
      lines.find((l) => /moov atom|invalid data|error|no such file/i.test(l) && !/Invalid data found when processing input/.test(l)) ??
      lines.at(-1) ??
      data.error;
    const reason = line.replace(/^\[[^\]]*\]\s*/, '').replace(`file:${file}: `, '');
    throw new VideoDecodeError(file, `not a readable media file (ffprobe: ${reason})`);
  }
  let probe: VideoProbe;
  try {
    probe = describeProbe(file, data as ProbeJson);
  } catch (err) {
    // Elementary streams (raw .h264, .mjpeg) carry no duration: count packets (no decode).
    if (!(err instanceof VideoDecodeError && err.reason.startsWith('no duration'))) throw err;
    const index = chooseVideoStream(file, (data as ProbeJson).streams ?? [], undefined).index;
    const packets = await countVideoPackets(file, index, { ...run, ffprobePath: opts.ffprobePath });
    if (!packets) throw err;
    const stream = (data as ProbeJson).streams!.find((s) => s.index === index)!;
    const r = parseFrameRate(stream.avg_frame_rate) ?? parseFrameRate(stream.r_frame_rate) ?? 25;
    probe = describeProbe(file, { ...(data as ProbeJson), format: { ...(data as ProbeJson).format, duration: packets / r } });
  }
  await checkEndDecodes(file, probe, { ...run, ffmpegPath: opts.ffmpegPath });
  const want = { idet: probe.scan.source === 'assumed', peak: probe.colour.dynamicRange !== 'sdr' };
  if (want.idet || want.peak) {
    const scanned = await scanVideo(file, probe.stream.index, probe.durationS, want, { ...run, ffmpegPath: opts.ffmpegPath });
    probe = applyScan(probe, scanned);
    if (want.peak && probe.colour.hdr?.metadataPeakNits === undefined) {
      const metadata = await hdrMetadataPeak(file, probe.stream.index, { ...run, ffprobePath: opts.ffprobePath });
      if (metadata !== undefined) probe = applyScan(probe, scanned, metadata);
    }
  }
  return probe;
}

/**
 * Fold a scan's measurements into a probe: the field order idet found (when the stream
 * declared none) and the HDR peak (measured, capped by the metadata's).
 */
export function applyScan(probe: VideoProbe, scan: ScanResult, metadataPeakNits = probe.colour.hdr?.metadataPeakNits): VideoProbe {
  let scanType = probe.scan;
  if (scan.idet && probe.scan.source !== 'stream') {
    const order = idetFieldOrder(scan.idet);
    scanType = { fieldOrder: order ?? 'progressive', interlaced: order !== undefined, source: 'idet', idet: scan.idet };
  }
  let colour = probe.colour;
  if (colour.dynamicRange !== 'sdr') {
    const measuredPeakNits =
      scan.lumaMax !== undefined ? Math.round(lumaToNits(scan.lumaMax, colour.bitDepth, colour.range, colour.dynamicRange) * 10) / 10 : undefined;
    const hdr: NonNullable<VideoColour['hdr']> = {
      ...(metadataPeakNits !== undefined ? { metadataPeakNits } : {}),
      ...(measuredPeakNits !== undefined ? { measuredPeakNits } : {}),
      toneMapPeak: toneMapPeak(measuredPeakNits, metadataPeakNits),
    };
    colour = { ...colour, hdr };
  }
  return { ...probe, scan: scanType, colour };
}

/**
 * The HDR peak the file's metadata gives, nits: content light level MaxCLL, else the
 * mastering display's maximum luminance. Read from the stream's side data (container
 * boxes) by {@link describeProbe}, or here from the first frame's (HEVC / AV1 SEI).
 */
export async function hdrMetadataPeak(file: string, index: number, opts: RunOptions & { ffprobePath?: string }): Promise<number | undefined> {
  const data = await ffprobeJson(file, {
    ...opts,
    extraArgs: ['-select_streams', String(index), '-read_intervals', '%+#1', '-show_frames', '-show_entries', 'frame=side_data_list'],
  });
  if ('error' in data) return undefined;
  const frames = (data as { frames?: Array<{ side_data_list?: SideData[] }> }).frames ?? [];
  return peakFromSideData(frames[0]?.side_data_list);
}

type SideData = Record<string, unknown> & { side_data_type?: string };

function ratio(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v !== 'string') return undefined;
  const [a, b] = v.split('/').map(Number);
  const x = b === undefined ? a! : a! / b;
  return Number.isFinite(x) ? x : undefined;
}

/** MaxCLL, else the mastering display's maximum luminance, in nits; undefined when neither is there or sane. */
export function peakFromSideData(side: SideData[] | undefined): number | undefined {
  const cll = ratio(side?.find((s) => /content light level/i.test(s.side_data_type ?? ''))?.max_content);
  if (cll !== undefined && cll > 0) return cll;
  const mastering = ratio(side?.find((s) => /mastering display/i.test(s.side_data_type ?? ''))?.max_luminance);
  return mastering !== undefined && mastering > 0 ? mastering : undefined;
}

/** Packets of stream `index`, read without decoding; 0 when ffprobe cannot tell. @throws TransientError when ffprobe cannot run or times out. */
export async function countVideoPackets(file: string, index: number, opts: RunOptions & { ffprobePath?: string } = {}): Promise<number> {
  const r = await runProcess(
    opts.ffprobePath ?? 'ffprobe',
    ['-v', 'error', '-select_streams', String(index), '-count_packets', '-show_entries', 'stream=nb_read_packets', '-of', 'csv=p=0', `file:${file}`],
    { timeoutMs: opts.timeoutMs, signal: opts.signal, maxBuffer: 1 << 20 },
  );
  const n = Number(r.stdout.trim().split(/\s+/)[0]);
  return r.code === 0 && Number.isFinite(n) && n > 0 ? n : 0;
}

/**
 * Truncation check: seek to two seconds before the end and decode one frame of the chosen
 * stream (`0:<index>`). A file cut short (an upload that stopped, a copy that failed)
 * still probes with the duration its header promises, but nothing decodes there and the
 * demuxer complains ("partial file", "File ended prematurely"). A video whose last
 * seconds hold no frame but read cleanly (a held still picture) passes.
 *
 * @throws VideoDecodeError naming the file, where it looked and what ffmpeg said.
 * @throws TransientError when ffmpeg cannot run, times out or is killed.
 */
export async function checkEndDecodes(
  file: string,
  probe: Pick<VideoProbe, 'durationS'> & { stream: { index: number } },
  opts: RunOptions & { ffmpegPath?: string } = {},
): Promise<void> {
  const at = Math.max(0, probe.durationS - 2);
  const r = await runProcess(
    opts.ffmpegPath ?? 'ffmpeg',
    ['-nostdin', '-v', 'warning', '-ss', at.toFixed(3), '-i', `file:${file}`, '-map', `0:${probe.stream.index}`, '-frames:v', '1', '-f', 'framecrc', '-'],
    { timeoutMs: opts.timeoutMs, signal: opts.signal, maxBuffer: 4 << 20 },
  );
  if (r.signal) throw new TransientError(`ffmpeg's end check of ${file} was killed by ${r.signal}`);
  const frames = r.stdout.split('\n').filter((l) => /^\s*\d+,/.test(l)).length;
  // Only the demuxer's own words for "the data stops here" count: a stream that cannot
  // seek (raw H.264) or has corrupt packets is not truncated, and its frames are taken.
  const truncation = r.stderr
    .split('\n')
    .map((l) => l.replace(/^\[[^\]]*\]\s*/, '').trim())
    .find((l) => /partial file|ended prematurely|unexpected end|truncat/i.test(l));
  if (frames === 0 && truncation) {
    throw new VideoDecodeError(
      file,
      `truncated: no frame decodes after ${at.toFixed(2)} s of the ${probe.durationS.toFixed(2)} s its header gives (ffmpeg: ${truncation})`,
    );
  }
}

const FIELD_ORDERS = new Set(['progressive', 'tt', 'bb', 'tb', 'bt']);

/**
 * Normalise ffprobe's JSON for one file (pure; exported for unit tests): the chosen
 * stream ({@link chooseVideoStream}), duration, display geometry (sample aspect ratio,
 * then rotation), frame rate, start times, colour facts ({@link describeColour}) and the
 * declared scan type (`assumed` progressive when the stream declares none: the scan then
 * measures it).
 *
 * @throws VideoDecodeError when there is no usable video stream, no frame size or no duration.
 */
export function describeProbe(file: string, data: ProbeJson): VideoProbe {
  const streams = (data.streams ?? []).map((s, i) => ({ ...s, index: s.index ?? i }));
  const format = data.format ?? {};
  const formatDuration = firstPositive(Number(format.duration));
  const stream = chooseVideoStream(file, streams, formatDuration);
  const video = streams.find((s) => s.index === stream.index)!;
  const hasAudio = streams.some((s) => s.codec_type === 'audio');
  const width = Number(video.width);
  const height = Number(video.height);

  const rotation = readRotation(video);
  const sar = parseSar(video.sample_aspect_ratio);
  let dw = Math.round((width * sar.num) / sar.den);
  let dh = height;
  if (Math.abs(rotation) % 180 === 90) [dw, dh] = [dh, dw];

  const nbFrames = Number(video.nb_frames);
  const duration =
    firstPositive(Number(format.duration), Number(video.duration)) ?? (nbFrames > 0 ? nbFrames / (parseFrameRate(video.avg_frame_rate) ?? 25) : undefined);
  if (duration === undefined) throw new VideoDecodeError(file, 'no duration: the stream is truncated or holds no frame');

  const frameRate =
    parseFrameRate(video.avg_frame_rate) ?? parseFrameRate(video.r_frame_rate) ?? (nbFrames > 0 ? parseFrameRate(nbFrames / duration) : undefined);

  const startTimeS = finite(Number(format.start_time)) ?? 0;
  const streamStart = finite(Number(video.start_time));
  const fieldOrder = String(video.field_order ?? '');
  const scan: VideoScanType = FIELD_ORDERS.has(fieldOrder)
    ? { fieldOrder: fieldOrder as VideoScanType['fieldOrder'], interlaced: fieldOrder !== 'progressive', source: 'stream' }
    : { fieldOrder: 'progressive', interlaced: false, source: 'assumed' };
  const colour = describeColour(video, height);
  const metadataPeakNits = peakFromSideData(video.side_data_list);
  if (colour.hdr && metadataPeakNits !== undefined) colour.hdr = { metadataPeakNits, toneMapPeak: toneMapPeak(undefined, metadataPeakNits) };

  return {
    durationS: duration,
    width,
    height,
    displayWidth: dw,
    displayHeight: dh,
    sampleAspectRatio: `${sar.num}:${sar.den}`,
    rotation,
    frameRate,
    codec: video.codec_name ?? 'unknown',
    hasAudio,
    startTimeS,
    streamStartS: streamStart !== undefined ? Math.round((streamStart - startTimeS) * 1e6) / 1e6 : 0,
    stream,
    colour,
    scan,
  };
}

function firstPositive(...xs: number[]): number | undefined {
  return xs.find((x) => Number.isFinite(x) && x > 0);
}

function finite(x: number): number | undefined {
  return Number.isFinite(x) ? x : undefined;
}

function parseSar(sar: string | undefined): { num: number; den: number } {
  const [a, b] = (sar ?? '').split(':').map(Number);
  return a! > 0 && b! > 0 && Number.isFinite(a! / b!) ? { num: a!, den: b! } : { num: 1, den: 1 };
}

/** Rotation from display-matrix side data (ffprobe >= 5) or the legacy `rotate` tag; degrees, sign as ffprobe gives. */
function readRotation(stream: ProbeStream): number {
  const side = stream.side_data_list as Array<{ rotation?: number | string }> | undefined;
  const fromSide = side?.find((s) => s.rotation !== undefined)?.rotation;
  // Older tools (fluent-ffmpeg's parse of the text output) flatten side data onto the stream.
  const flat = stream.rotation as number | string | undefined;
  const raw = fromSide ?? flat ?? stream.tags?.rotate;
  const n = Number(raw ?? 0);
  return Number.isFinite(n) ? n : 0;
}
