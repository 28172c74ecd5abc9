/**
 * Which stream of a file is the video: files carry cover art (an attached picture, often
 * first, as tag editors put it), timed thumbnail tracks, still pictures, preview tracks
 * at a lower size. The main video is chosen by what each stream is, never by its place.
 */
import { VideoDecodeError, type VideoStreamCandidate, type VideoStreamChoice } from '../../contracts';

/** One stream of ffprobe's JSON (`-show_streams`), the fields read here. */
export interface ProbeStream {
  index?: number;
  codec_type?: string;
  codec_name?: string;
  width?: number | string;
  height?: number | string;
  nb_frames?: number | string;
  duration?: number | string;
  avg_frame_rate?: string;
  r_frame_rate?: string;
  disposition?: Record<string, number | undefined>;
  sample_aspect_ratio?: string;
  start_time?: string | number;
  field_order?: string;
  pix_fmt?: string;
  bits_per_raw_sample?: string | number;
  color_range?: string;
  color_space?: string;
  color_transfer?: string;
  color_primaries?: string;
  side_data_list?: Array<Record<string, unknown>>;
  tags?: Record<string, string>;
  [key: string]: unknown;
}

/** Codecs that hold pictures, not video, when a stream has a single frame of them. */
const IMAGE_CODECS = new Set(['mjpeg', 'png', 'bmp', 'gif', 'webp', 'tiff', 'jpeg2000', 'jpegls', 'ljpeg', 'qoi', 'targa']);

function positive(x: unknown): number | undefined {
  const n = Number(x);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

function rate(s: ProbeStream): number | undefined {
  for (const v of [s.avg_frame_rate, s.r_frame_rate]) {
    if (!v) continue;
    const [a, b] = v.split('/').map(Number);
    const r = b === undefined ? a! : a! / b;
    if (Number.isFinite(r) && r > 0 && r <= 1000) return r;
  }
  return undefined;
}

/**
 * Describe one video stream as a candidate, or say why it cannot be the video:
 * an attached picture (cover art) or a timed-thumbnails track (by disposition), a still
 * image (disposition `still_image`, or an image codec with at most one frame), or no
 * frame size.
 *
 * @param formatDurationS the container's duration, used when the stream has none.
 */
export function describeCandidate(s: ProbeStream, formatDurationS: number | undefined): VideoStreamCandidate {
  const width = positive(s.width) ?? 0;
  const height = positive(s.height) ?? 0;
  const durationS = positive(s.duration) ?? formatDurationS;
  const nb = positive(s.nb_frames);
  const r = rate(s);
  const frames = nb ?? (durationS !== undefined && r !== undefined ? Math.round(durationS * r) : undefined);
  const d = s.disposition ?? {};
  const skipped = d.attached_pic
    ? 'attached picture (cover art)'
    : d.timed_thumbnails
      ? 'timed thumbnails'
      : d.still_image || (IMAGE_CODECS.has(s.codec_name ?? '') && (nb ?? 0) <= 1)
        ? 'a still picture'
        : !(width > 0 && height > 0)
          ? 'no frame size'
          : undefined;
  return { index: s.index ?? 0, codec: s.codec_name ?? 'unknown', width, height, frames, durationS, ...(skipped ? { skipped } : {}) };
}

/**
 * Choose the main video stream: among the candidates ({@link describeCandidate}), the one
 * with the most frames, then the longest duration, then the largest area, then the
 * lowest index.
 *
 * @returns the choice, with every video stream and the reason in words.
 * @throws VideoDecodeError naming the file when no stream can be the video: `audio only:
 *   no video stream` (audio and perhaps cover art), `no video stream`, or `no usable video
 *   stream: ...` listing why each was skipped.
 */
export function chooseVideoStream(file: string, streams: ProbeStream[], formatDurationS: number | undefined): VideoStreamChoice {
  const video = streams.filter((s) => s.codec_type === 'video').map((s) => describeCandidate(s, formatDurationS));
  const skipped = video.filter((v) => v.skipped);
  const skippedText = skipped.map((v) => `stream ${v.index}: ${v.skipped}`).join('; ');
  const candidates = video.filter((v) => !v.skipped);
  if (!candidates.length) {
    const hasAudio = streams.some((s) => s.codec_type === 'audio');
    const onlyPictures = skipped.every((v) => v.skipped !== 'no frame size');
    if (hasAudio && onlyPictures) throw new VideoDecodeError(file, `audio only: no video stream${skipped.length ? ` (${skippedText})` : ''}`);
    if (!video.length) throw new VideoDecodeError(file, 'no video stream');
    if (skipped.length === 1 && skipped[0]!.skipped === 'no frame size') {
      throw new VideoDecodeError(file, `video stream has no frame size (${skipped[0]!.width}x${skipped[0]!.height})`);
    }
    throw new VideoDecodeError(file, `no usable video stream (${skippedText})`);
  }
  const ranked = [...candidates].sort(
    (a, b) => (b.frames ?? 0) - (a.frames ?? 0) || (b.durationS ?? 0) - (a.durationS ?? 0) || b.width * b.height - a.width * a.height || a.index - b.index,
  );
  const best = ranked[0]!;
  const facts = `${best.codec} ${best.width}x${best.height}, ${best.frames ?? 'unknown'} frames, ${best.durationS?.toFixed(2) ?? 'unknown'} s`;
  let why =
    candidates.length === 1 ? `the only video stream (${facts})` : `most frames, then longest, then largest of ${candidates.length} video streams (${facts})`;
  if (skipped.length) why += `; skipped ${skippedText}`;
  return { index: best.index, reason: `stream ${best.index}: ${why}`, streams: video };
}
