import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { promisify } from 'node:util';
import ffmpeg from 'fluent-ffmpeg';
import { TransientError, VideoDecodeError, type VideoProbe } from '../../contracts';

/** Version of {@link probeVideo}'s checks; a cached probe of another version is redone. */
export const PROBE_VERSION = 'p2';

/** A probe cached with the video's catalog row: the probe, or why the file cannot be used. */
export interface CachedProbe {
  version: string;
  probe?: VideoProbe;
  /** The {@link VideoDecodeError} reason. */
  error?: string;
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

type ProbeData = ffmpeg.FfprobeData;

/**
 * Probe a video file with ffprobe, then check that its end decodes.
 *
 * Fails before anything is written, with a {@link VideoDecodeError} (never retried)
 * naming the file and the reason, when the file is missing, empty, not a media file,
 * has no video stream (audio only), has no duration even after counting its packets,
 * or is truncated (no frame decodes in its last seconds: {@link checkEndDecodes}).
 * When ffprobe itself cannot run (missing binary, out of memory, killed), it throws a
 * retryable {@link TransientError} instead: that says nothing about the file.
 *
 * @param file local path.
 * @param ffprobePath the ffprobe binary.
 * @param ffmpegPath the ffmpeg binary (for the end check).
 */
export async function probeVideo(file: string, ffprobePath = 'ffprobe', ffmpegPath = 'ffmpeg'): Promise<VideoProbe> {
  let stat;
  try {
    stat = await fs.stat(file);
  } catch {
    throw new VideoDecodeError(file, 'file not found');
  }
  if (stat.size === 0) throw new VideoDecodeError(file, 'file is empty (0 bytes)');
  const data = await new Promise<ProbeData>((resolve, reject) => {
    const cmd = ffmpeg(`file:${file}`).setFfprobePath(ffprobePath);
    cmd.ffprobe((err: Error | null, d: ProbeData) => (err ? reject(err) : resolve(d)));
  }).catch((err: Error) => {
    // ffprobe that could not run (missing binary, out of memory, killed) says nothing of
    // the file: retried, and never cached as the file's verdict.
    if (/\bENOENT\b|\bEACCES\b|\bEAGAIN\b|\bENOMEM\b|Cannot find ffprobe|killed with signal/i.test(err.message)) {
      throw new TransientError(`ffprobe could not run on ${file}: ${err.message.split('\n')[0]}`, { cause: err });
    }
    const lines = err.message.split('\n').map((l) => l.trim()).filter(Boolean);
    const reason = lines.find((l) => /invalid data|error|moov atom|no such file/i.test(l)) ?? lines.at(-1) ?? 'ffprobe failed';
    throw new VideoDecodeError(file, `not a readable media file (ffprobe: ${reason.replace(/^\[[^\]]*\]\s*/, '')})`);
  });
  let probe: VideoProbe;
  try {
    probe = describeProbe(file, data);
  } catch (err) {
    // Elementary streams (raw .h264, .mjpeg) carry no duration: count packets (no decode).
    if (!(err instanceof VideoDecodeError && err.reason.startsWith('no duration'))) throw err;
    const packets = await countVideoPackets(file, ffprobePath);
    if (!packets) throw err;
    const video = data.streams.find((s) => s.codec_type === 'video')!;
    const rate = parseFrameRate(video.avg_frame_rate) ?? parseFrameRate(video.r_frame_rate) ?? 25;
    probe = describeProbe(file, { ...data, format: { ...data.format, duration: packets / rate } });
  }
  await checkEndDecodes(file, probe, ffmpegPath);
  return probe;
}

const run = promisify(execFile);

/** Packets of the first video stream, read without decoding; 0 when ffprobe cannot tell. */
export async function countVideoPackets(file: string, ffprobePath = 'ffprobe'): Promise<number> {
  try {
    const { stdout } = await run(ffprobePath, ['-v', 'error', '-select_streams', 'v:0', '-count_packets', '-show_entries', 'stream=nb_read_packets', '-of', 'csv=p=0', `file:${file}`], {
      maxBuffer: 1 << 20,
    });
    const n = Number(stdout.trim().split(/\s+/)[0]);
    return Number.isFinite(n) && n > 0 ? n : 0;
  } catch {
    return 0;
  }
}

/**
 * Truncation check: seek to two seconds before the end and decode one frame. A file cut
 * short (an upload that stopped, a copy that failed) still probes with the duration its
 * header promises, but nothing decodes there and the demuxer complains ("partial
 * file", "File ended prematurely"). A video whose last seconds hold no frame but read
 * cleanly (a held still picture) passes.
 *
 * @throws VideoDecodeError naming the file, where it looked and what ffmpeg said.
 */
export async function checkEndDecodes(file: string, probe: Pick<VideoProbe, 'durationS'>, ffmpegPath = 'ffmpeg'): Promise<void> {
  const at = Math.max(0, probe.durationS - 2);
  let stdout = '';
  let stderr = '';
  try {
    ({ stdout, stderr } = await run(
      ffmpegPath,
      ['-nostdin', '-v', 'warning', '-ss', at.toFixed(3), '-i', `file:${file}`, '-map', '0:v:0', '-frames:v', '1', '-f', 'framecrc', '-'],
      { maxBuffer: 4 << 20 },
    ));
  } catch (err) {
    stderr = (err as { stderr?: string }).stderr ?? String(err);
  }
  const frames = stdout.split('\n').filter((l) => /^\s*\d+,/.test(l)).length;
  // Only the demuxer's own words for "the data stops here" count: a stream that cannot
  // seek (raw H.264) or has corrupt packets is not truncated, and its frames are taken.
  const truncation = stderr
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

/** Normalise ffprobe's JSON for one file (exported for unit tests). */
export function describeProbe(file: string, data: ProbeData): VideoProbe {
  const video = data.streams.find((s) => s.codec_type === 'video' && s.disposition?.attached_pic !== 1);
  const hasAudio = data.streams.some((s) => s.codec_type === 'audio');
  if (!video) throw new VideoDecodeError(file, hasAudio ? 'audio only: no video stream' : 'no video stream');
  const width = Number(video.width);
  const height = Number(video.height);
  if (!(width > 0 && height > 0)) throw new VideoDecodeError(file, `video stream has no frame size (${video.width}x${video.height})`);

  const rotation = readRotation(video);
  const sar = parseSar(video.sample_aspect_ratio);
  let dw = Math.round(width * sar);
  let dh = height;
  if (Math.abs(rotation) % 180 === 90) [dw, dh] = [dh, dw];

  const nbFrames = Number(video.nb_frames);
  const duration =
    firstPositive(Number(data.format.duration), Number(video.duration)) ??
    (nbFrames > 0 ? nbFrames / (parseFrameRate(video.avg_frame_rate) ?? 25) : undefined);
  if (duration === undefined) throw new VideoDecodeError(file, 'no duration: the stream is truncated or holds no frame');

  const frameRate =
    parseFrameRate(video.avg_frame_rate) ??
    parseFrameRate(video.r_frame_rate) ??
    (nbFrames > 0 ? parseFrameRate(nbFrames / duration) : undefined);

  return {
    durationS: duration,
    width,
    height,
    displayWidth: dw,
    displayHeight: dh,
    rotation,
    frameRate,
    codec: video.codec_name ?? 'unknown',
    hasAudio,
  };
}

function firstPositive(...xs: number[]): number | undefined {
  return xs.find((x) => Number.isFinite(x) && x > 0);
}

function parseSar(sar: string | undefined): number {
  if (!sar) return 1;
  const [a, b] = sar.split(':').map(Number);
  const r = (a ?? 0) / (b ?? 0);
  return Number.isFinite(r) && r > 0 ? r : 1;
}

/** Rotation from display-matrix side data (ffprobe >= 5) or the legacy `rotate` tag; degrees, sign as ffprobe gives. */
function readRotation(stream: ffmpeg.FfprobeStream): number {
  const side = (stream as { side_data_list?: Array<{ rotation?: number | string }> }).side_data_list;
  const fromSide = side?.find((s) => s.rotation !== undefined)?.rotation;
  // fluent-ffmpeg parses ffprobe's text output and flattens side data onto the stream.
  const flat = (stream as { rotation?: number | string }).rotation;
  const raw = fromSide ?? flat ?? (stream.tags as Record<string, string> | undefined)?.rotate;
  const n = Number(raw ?? 0);
  return Number.isFinite(n) ? n : 0;
}
