/**
 * Splitters that cut the byte streams of ffmpeg's output pipes into frames: one encoded
 * image per frame (`image2pipe` muxer: concatenated JPEG or WebP files) or one raw
 * plane of fixed size.
 */
import { TransientError } from '../../contracts';

/** Cuts a byte stream into whole frames; `push` returns the frames completed by a chunk. */
export interface FrameSplitter {
  push(chunk: Buffer): Buffer[];
  /** Bytes held that do not make a whole frame yet. */
  readonly pending: number;
}

/** Accumulates chunks and asks `frameEnd(buffer)` where the first frame ends (undefined: not yet). */
abstract class BufferedSplitter implements FrameSplitter {
  private buf: Buffer = Buffer.alloc(0);

  get pending(): number {
    return this.buf.length;
  }

  push(chunk: Buffer): Buffer[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Buffer[] = [];
    for (;;) {
      const end = this.buf.length ? this.frameEnd(this.buf) : undefined;
      if (end === undefined) break;
      // A copy, so the frame does not pin the (possibly large) chunk it came from.
      out.push(Buffer.from(this.buf.subarray(0, end)));
      this.buf = this.buf.subarray(end);
    }
    return out;
  }

  protected abstract frameEnd(buf: Buffer): number | undefined;
}

/**
 * Raw frames of `frameBytes` bytes each (e.g. a `gray` plane: width * height). Each byte
 * is copied once, from the chunk straight into its frame's buffer.
 */
export class FixedSizeSplitter implements FrameSplitter {
  private frame: Buffer | undefined;
  private filled = 0;

  constructor(private readonly frameBytes: number) {
    if (!(frameBytes > 0)) throw new RangeError(`frame size must be positive, got ${frameBytes}`);
  }

  get pending(): number {
    return this.filled;
  }

  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let at = 0;
    while (at < chunk.length) {
      this.frame ??= Buffer.allocUnsafe(this.frameBytes);
      const n = chunk.copy(this.frame, this.filled, at, Math.min(chunk.length, at + this.frameBytes - this.filled));
      this.filled += n;
      at += n;
      if (this.filled === this.frameBytes) {
        out.push(this.frame);
        this.frame = undefined;
        this.filled = 0;
      }
    }
    return out;
  }
}

/**
 * Concatenated baseline JPEG files (ffmpeg's mjpeg encoder through `image2pipe`).
 *
 * Walks the marker segments (ITU T.81 B.1): length-prefixed segments up to SOS, then
 * entropy-coded data, in which 0xFF is always followed by 0x00 (stuffing) or a restart
 * marker, until the EOI marker (FF D9). Table bytes that happen to read FF D9 are inside
 * length-prefixed segments and are skipped.
 *
 * @throws Error when the stream is not JPEG (no SOI where a frame starts).
 */
export class JpegSplitter extends BufferedSplitter {
  protected frameEnd(buf: Buffer): number | undefined {
    if (buf.length < 2) return undefined;
    if (buf[0] !== 0xff || buf[1] !== 0xd8)
      throw new TransientError(`JPEG stream from ffmpeg: expected SOI (FF D8), got ${buf.subarray(0, 2).toString('hex')}`);
    let p = 2;
    for (;;) {
      if (p + 2 > buf.length) return undefined;
      if (buf[p] !== 0xff) throw new TransientError(`JPEG stream from ffmpeg: expected a marker at byte ${p}, got ${buf[p]!.toString(16)}`);
      const m = buf[p + 1]!;
      if (m === 0xff) {
        p++; // fill byte
        continue;
      }
      if (m === 0xd9) return p + 2;
      if ((m >= 0xd0 && m <= 0xd7) || m === 0x01) {
        p += 2;
        continue;
      }
      if (p + 4 > buf.length) return undefined;
      const len = buf.readUInt16BE(p + 2);
      p += 2 + len;
      if (m !== 0xda) continue;
      // Entropy-coded data after SOS: find the next marker that is not stuffing or RSTn.
      for (;;) {
        const ff = buf.indexOf(0xff, p);
        if (ff < 0 || ff + 1 >= buf.length) return undefined;
        const next = buf[ff + 1]!;
        if (next === 0x00 || (next >= 0xd0 && next <= 0xd7)) {
          p = ff + 2;
          continue;
        }
        p = ff;
        break;
      }
    }
  }
}

/** Concatenated WebP files: RIFF size header, padded to an even length. */
export class WebpSplitter extends BufferedSplitter {
  protected frameEnd(buf: Buffer): number | undefined {
    if (buf.length < 12) return undefined;
    if (buf.toString('latin1', 0, 4) !== 'RIFF' || buf.toString('latin1', 8, 12) !== 'WEBP') {
      throw new TransientError(`WebP stream from ffmpeg: expected a RIFF/WEBP header, got ${buf.subarray(0, 12).toString('hex')}`);
    }
    const size = buf.readUInt32LE(4);
    const end = 8 + size + (size % 2);
    return buf.length >= end ? end : undefined;
  }
}
