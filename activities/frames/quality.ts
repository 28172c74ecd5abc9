/**
 * Scoring and dropping: quality measures of a frame's luma plane, the quality filters'
 * verdict, and the record of a frame that is kept.
 */
import { createHash } from 'node:crypto';
import { frameKey, type DropCounts, type ExtractOptions, type FrameRecord } from '../../contracts';
import type { FrameOutcome, FrameQuality } from './types';

export type { FrameQuality } from './types';

/**
 * Quality measures of one full-range 8-bit luma plane (`width * height` bytes, e.g.
 * ffmpeg's `gray` output): mean, 1st and 99th percentiles, and the variance of the
 * 4-neighbour Laplacian (Pech-Pacheco et al. 2000, "Diatom autofocusing in brightfield
 * microscopy"). Integer arithmetic in one pass each; about 0.4 ms for 342x256 on a quiet core.
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
    let i = y * width + 1;
    const end = i + width - 2;
    // Left and centre carried along the row: three loads a pixel instead of five.
    let left = luma[i - 1]!;
    let centre = luma[i]!;
    for (; i < end; i++) {
      const right = luma[i + 1]!;
      const l = left + right + luma[i - width]! + luma[i + width]! - 4 * centre;
      lsum += l;
      lsq += l * l;
      left = centre;
      centre = right;
    }
  }
  const m = Math.max(0, width - 2) * Math.max(0, height - 2);
  const mean = m ? lsum / m : 0;
  return { brightness: n ? sum / n : 0, sharpness: m ? lsq / m - mean * mean : 0, p01: percentile(0.01), p99: percentile(0.99) };
}

/**
 * Which quality filter drops a frame, or undefined when it is kept: `nearBlack` when its
 * 99th-percentile luma is below `blackLevel`, `nearWhite` when its 1st percentile is above
 * `whiteLevel`, `blurred` when its sharpness is below `minSharpness` (checked in that order).
 */
export function dropReason(q: FrameQuality, opts: Pick<ExtractOptions, 'blackLevel' | 'whiteLevel' | 'minSharpness'>): keyof DropCounts | undefined {
  return q.p99 < opts.blackLevel ? 'nearBlack' : q.p01 > opts.whiteLevel ? 'nearWhite' : q.sharpness < opts.minSharpness ? 'blurred' : undefined;
}

/** Where a video's kept frames are named and how large they are. */
export interface FrameNaming {
  videoSha256: string;
  paramsHash: string;
  ext: 'jpg' | 'webp';
  width: number;
  height: number;
}

/**
 * Score one sampled frame and decide: dropped by the quality filters ({@link dropReason}),
 * or kept with its record (content-addressed key from its timestamp, sha256 of the
 * encoded bytes, sharpness and brightness rounded to 3 decimals, timestamp to 1 µs).
 *
 * @param index the frame's 0-based index among the video's sampled frames.
 * @param timestampS its presentation time, seconds.
 * @param encoded the encoded image as it will be stored.
 * @param luma its full-range luma plane, `naming.width * naming.height` bytes.
 */
export function judgeFrame(
  index: number,
  timestampS: number,
  encoded: Buffer,
  luma: Uint8Array,
  naming: FrameNaming,
  filters: Pick<ExtractOptions, 'blackLevel' | 'whiteLevel' | 'minSharpness'>,
): FrameOutcome {
  const q = lumaQuality(luma, naming.width, naming.height);
  const reason = dropReason(q, filters);
  if (reason) return { timestampS, reason, quality: q };
  const record: FrameRecord = {
    key: frameKey(naming.videoSha256, naming.paramsHash, timestampS, naming.ext),
    index,
    timestampS: Math.round(timestampS * 1e6) / 1e6,
    width: naming.width,
    height: naming.height,
    bytes: encoded.length,
    sha256: createHash('sha256').update(encoded).digest('hex'),
    sharpness: Math.round(q.sharpness * 1000) / 1000,
    brightness: Math.round(q.brightness * 1000) / 1000,
  };
  return { timestampS, record };
}
