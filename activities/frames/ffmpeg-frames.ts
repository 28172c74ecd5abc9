/**
 * The ffmpeg process of one extraction, as an async iterable of whole frames: spawns
 * ffmpeg with a third pipe, reads both output pipes as they fill, parses stderr
 * (`showinfo` timestamps, decoder complaints), pairs them ({@link FramePairer}) and
 * applies backpressure (pipes paused while enough frames wait to be taken).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import { VideoDecodeError } from '../../contracts';
import { FramePairer, type DecodedFrame } from './pairing';
import { FixedSizeSplitter, JpegSplitter, WebpSplitter } from './streams';

const SHOWINFO = /Parsed_showinfo.*\bn:\s*(\d+).*\bpts_time:\s*(-?[\d.]+)/;
const DECODE_ERROR = /error|corrupt|invalid|non[- ]monoton|concealing|missing|illegal/i;
const NOT_AN_ERROR = /^\s*(Stream|Input|Output|Duration|built with|configuration)/;

/**
 * ffmpeg's stderr, line by line: `showinfo` frame lines give each frame's `pts_time`
 * (reported through `onTimestamp(n, seconds)`); lines that look like decoder complaints
 * are counted (the first `keep` kept); the last non-empty line is kept for error reports.
 */
export class FfmpegLog {
  /** The first decoder complaints, trimmed. */
  readonly decodeErrors: string[] = [];
  decodeErrorCount = 0;
  /** The last non-empty line that is not a `showinfo` frame line. */
  lastLine = '';
  private rest = '';

  constructor(
    private readonly onTimestamp: (n: number, ptsTimeS: number) => void,
    private readonly keep = 20,
  ) {}

  /** A chunk of stderr text (lines may straddle chunks). */
  push(text: string): void {
    const lines = (this.rest + text).split(/\r?\n|\r/);
    this.rest = lines.pop() ?? '';
    for (const line of lines) this.line(line);
  }

  /** One whole line. */
  line(line: string): void {
    const m = SHOWINFO.exec(line);
    if (m) return this.onTimestamp(Number(m[1]), Number(m[2]));
    if (DECODE_ERROR.test(line) && !NOT_AN_ERROR.test(line)) {
      this.decodeErrorCount++;
      if (this.decodeErrors.length < this.keep) this.decodeErrors.push(line.trim());
    }
    if (line.trim()) this.lastLine = line.trim();
  }
}

/** Options of {@link FfmpegFrames}. */
export interface FfmpegFramesOptions {
  /** Format of the encoded images on pipe 1. */
  format: 'jpeg' | 'webp';
  /** Bytes of one luma plane on pipe 3 (width * height). */
  lumaBytes: number;
  /** Added to every `pts_time` (the input seek, seconds). */
  seekS: number;
  /** Kill ffmpeg when this aborts. */
  signal?: AbortSignal;
  /** Frames paired and not yet taken before the pipes are paused (default 4). */
  maxBuffered?: number;
  /** For error messages: the video file and the index of this process's first frame among the video's. */
  file: string;
  firstIndex: number;
}

/**
 * One running ffmpeg extraction, iterated with `for await`: each {@link DecodedFrame}
 * once its image, luma plane and timestamp have arrived. The iteration ends when ffmpeg
 * has exited and both pipes are drained; leaving it early (break, throw) kills ffmpeg.
 * `exit` tells how ffmpeg ended (`error` set when it could not start or exited non-zero);
 * `log` holds the decoder complaints.
 *
 * Memory: at most `maxBuffered` whole frames plus a partial one per pipe.
 *
 * @throws (from the iteration) what a splitter throws on a malformed pipe, and
 *   VideoDecodeError when ffmpeg ended having written a frame without its timestamp.
 */
export class FfmpegFrames implements AsyncIterable<DecodedFrame> {
  readonly log: FfmpegLog;
  /** How ffmpeg ended; undefined while it runs. */
  exit?: { code: number | null; signal: NodeJS.Signals | null; error?: Error };
  private readonly child: ChildProcess;
  private readonly pipes: Readable[];
  private readonly pairer: FramePairer;
  private failure: unknown;
  private openPipes = 2;
  private wake?: () => void;
  private readonly onAbort = () => this.kill();

  constructor(
    ffmpegPath: string,
    args: string[],
    private readonly opts: FfmpegFramesOptions,
  ) {
    this.pairer = new FramePairer(opts.format === 'webp' ? new WebpSplitter() : new JpegSplitter(), new FixedSizeSplitter(opts.lumaBytes));
    this.log = new FfmpegLog((n, t) => {
      this.pairer.timestamp(n, t + opts.seekS);
      this.notify();
    });
    this.child = spawn(ffmpegPath, args, { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    const encodedOut = this.child.stdout!;
    const lumaOut = this.child.stdio[3] as Readable;
    this.pipes = [encodedOut, lumaOut];
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (text: string) => this.log.push(text));
    const feed = (push: (chunk: Buffer) => void) => (chunk: Buffer) => {
      try {
        push(chunk);
      } catch (err) {
        this.failure ??= err;
        this.kill();
      }
      if (this.pairer.paired >= (opts.maxBuffered ?? 4)) for (const p of this.pipes) p.pause();
      this.notify();
    };
    encodedOut.on('data', feed((c) => this.pairer.pushEncoded(c)));
    lumaOut.on('data', feed((c) => this.pairer.pushLuma(c)));
    for (const p of this.pipes) {
      p.once('close', () => {
        this.openPipes--;
        this.notify();
      });
    }
    this.child.once('error', (error: Error) => {
      this.exit ??= { code: null, signal: null, error };
      this.notify();
    });
    this.child.once('close', (code, signal) => {
      this.exit ??= { code, signal, ...(code !== 0 ? { error: new Error(`ffmpeg exited with ${signal ?? `code ${code}`}`) } : {}) };
      this.notify();
    });
    opts.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /** SIGKILL ffmpeg if it still runs. */
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }

  async *[Symbol.asyncIterator](): AsyncIterator<DecodedFrame> {
    try {
      for (;;) {
        if (this.failure) throw this.failure;
        const frame = this.pairer.shift();
        if (frame) {
          if (this.pairer.paired < (this.opts.maxBuffered ?? 4)) for (const p of this.pipes) p.resume();
          yield frame;
          continue;
        }
        if (this.exit && this.openPipes === 0) {
          const missing = this.pairer.waitingForTimestamp;
          if (missing !== undefined) throw new VideoDecodeError(this.opts.file, `ffmpeg gave frame ${this.opts.firstIndex + missing} without its timestamp`);
          return;
        }
        // Nothing paired yet: make sure the pipes flow, then wait for the next event.
        for (const p of this.pipes) p.resume();
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      this.kill();
      this.opts.signal?.removeEventListener('abort', this.onAbort);
    }
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}
