/**
 * Pairing: ffmpeg writes every sampled frame twice (the encoded image on one pipe, the
 * luma plane on another) and logs its timestamp on a third stream (stderr). The three
 * arrive independently; {@link FramePairer} joins them back into whole frames, in order.
 */
import type { FrameSplitter } from './streams';

/** One sampled frame as ffmpeg delivered it. */
export interface DecodedFrame {
  /** 0-based index among the frames of this ffmpeg process. */
  n: number;
  /** Presentation time, seconds (ffmpeg's `pts_time` plus the input seek). */
  timestampS: number;
  /** The encoded image (JPEG or WebP file bytes). */
  encoded: Buffer;
  /** The full-range 8-bit luma plane, width * height bytes. */
  luma: Buffer;
}

/**
 * Joins encoded images, luma planes and timestamps into {@link DecodedFrame}s, in order.
 *
 * Chunks of each pipe go through its splitter; frame `n` is ready once its image, its
 * plane and its timestamp have all arrived. Nothing here does I/O: the caller feeds it.
 */
export class FramePairer {
  private readonly encoded: Buffer[] = [];
  private readonly luma: Buffer[] = [];
  private readonly timestamps = new Map<number, number>();
  private next = 0;

  constructor(
    private readonly splitEncoded: FrameSplitter,
    private readonly splitLuma: FrameSplitter,
  ) {}

  /** A chunk of the encoded-image pipe. @throws what the splitter throws on a malformed stream. */
  pushEncoded(chunk: Buffer): void {
    this.encoded.push(...this.splitEncoded.push(chunk));
  }

  /** A chunk of the luma pipe. */
  pushLuma(chunk: Buffer): void {
    this.luma.push(...this.splitLuma.push(chunk));
  }

  /** The timestamp of frame `n` (seconds). */
  timestamp(n: number, seconds: number): void {
    if (n >= this.next) this.timestamps.set(n, seconds);
  }

  /** Frames whose image and plane have both arrived and that were not taken yet (with or without their timestamp). */
  get paired(): number {
    return Math.min(this.encoded.length, this.luma.length);
  }

  /** The next frame in order when its image, plane and timestamp are all here; else undefined. */
  shift(): DecodedFrame | undefined {
    if (!this.encoded.length || !this.luma.length) return undefined;
    const timestampS = this.timestamps.get(this.next);
    if (timestampS === undefined) return undefined;
    this.timestamps.delete(this.next);
    return { n: this.next++, timestampS, encoded: this.encoded.shift()!, luma: this.luma.shift()! };
  }

  /** Index of the next frame when its image and plane are here but its timestamp is not (once the streams ended: it never will). */
  get waitingForTimestamp(): number | undefined {
    return this.paired > 0 && !this.timestamps.has(this.next) ? this.next : undefined;
  }
}
