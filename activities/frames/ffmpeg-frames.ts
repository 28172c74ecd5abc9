/**
 * The ffmpeg process of one extraction, as an async iterable of whole frames: spawns
 * ffmpeg with a third pipe, reads both output pipes as they fill, parses stderr
 * (`showinfo` timestamps, decoder complaints), pairs them ({@link FramePairer}) and
 * applies backpressure (pipes paused while enough frames wait to be taken).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import { TransientError, VideoDecodeError } from '../../contracts';
import { FramePairer, type DecodedFrame } from './pairing';
import { FixedSizeSplitter, JpegSplitter, WebpSplitter } from './streams';

const SHOWINFO_FRAME = /Parsed_showinfo.*\bn:\s*(\d+)\s+pts:\s*(-?\d+)\s+pts_time:\s*(-?[\d.e+-]+)/;
const SHOWINFO_TIME_BASE = /Parsed_showinfo.*\bconfig in time_base:\s*(\d+)\/(\d+)/;
const STATS = /^\s*frame=\s*\d+/;
const DECODE_ERROR = /error|corrupt|invalid|non[- ]monoton|concealing|missing|illegal/i;
const NOT_AN_ERROR = /^\s*(Stream|Input|Output|Duration|built with|configuration)/;

/**
 * ffmpeg's stderr, line by line: `showinfo` frame lines give each frame's presentation
 * time, computed exactly from its integer `pts` and the time base showinfo logs when it
 * is configured (`pts_time` is printed with 6 significant digits only: 10 ms steps past
 * 1000 s), reported through `onTimestamp(n, seconds)`; lines that look like decoder
 * complaints once decoding has started ("Stream mapping:"; before it ffmpeg probes every
 * stream of the input, cover art included) are counted (the first `keep` kept); the last
 * non-empty line that is not a frame or progress line is kept for error reports.
 */
export class FfmpegLog {
  /** The first decoder complaints, trimmed. */
  readonly decodeErrors: string[] = [];
  decodeErrorCount = 0;
  /** The last non-empty line that is not a `showinfo` frame line or a progress line. */
  lastLine = '';
  /** showinfo's input time base, when logged. */
  timeBase?: { num: number; den: number };
  private rest = '';
  private decoding = false;

  constructor(
    private readonly onTimestamp: (n: number, seconds: number) => void,
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
    const m = SHOWINFO_FRAME.exec(line);
    if (m) {
      const tb = this.timeBase;
      return this.onTimestamp(Number(m[1]), tb ? (Number(m[2]) * tb.num) / tb.den : Number(m[3]));
    }
    const t = SHOWINFO_TIME_BASE.exec(line);
    if (t) {
      this.timeBase = { num: Number(t[1]), den: Number(t[2]) };
      return;
    }
    if (STATS.test(line)) return;
    if (!this.decoding && /^Stream mapping:/.test(line)) this.decoding = true;
    // Before "Stream mapping:" ffmpeg is still probing the input, every stream of it (cover art too).
    if (this.decoding && DECODE_ERROR.test(line) && !NOT_AN_ERROR.test(line)) {
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
  /**
   * Kill ffmpeg when it shows no sign of life (no stderr line, `-stats` progress lines
   * included, and no output byte) for this long, milliseconds (default: never). Time
   * while the pipes are paused (frames waiting on uploads) does not count.
   */
  stallTimeoutMs?: number;
  /** Kill ffmpeg when it runs longer than this, milliseconds (default: never). */
  timeoutMs?: number;
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
 * Bounds: `signal` (cancellation, worker shutdown), `stallTimeoutMs` (no sign of life)
 * and `timeoutMs` (wall clock) each kill ffmpeg with SIGKILL.
 *
 * @throws (from the iteration) what a splitter throws on a malformed pipe;
 *   VideoDecodeError when ffmpeg ended having written a frame without its timestamp;
 *   TransientError (retryable) when ffmpeg could not start, stalled or ran past its limit.
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
  private lastSign = Date.now();
  private paused = false;
  private readonly timers: NodeJS.Timeout[] = [];

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
    this.child.stderr!.on('data', (text: string) => {
      this.lastSign = Date.now();
      this.log.push(text);
    });
    const feed = (push: (chunk: Buffer) => void) => (chunk: Buffer) => {
      this.lastSign = Date.now();
      try {
        push(chunk);
      } catch (err) {
        this.fail(err);
      }
      if (this.pairer.paired >= (opts.maxBuffered ?? 4)) this.flow(false);
      this.notify();
    };
    encodedOut.on(
      'data',
      feed((c) => this.pairer.pushEncoded(c)),
    );
    lumaOut.on(
      'data',
      feed((c) => this.pairer.pushLuma(c)),
    );
    for (const p of this.pipes) {
      p.once('close', () => {
        this.openPipes--;
        this.notify();
      });
    }
    this.child.once('error', (error: Error) => {
      this.exit ??= { code: null, signal: null, error };
      // ffmpeg could not start (missing binary, no memory): nothing to say about the video.
      this.fail(new TransientError(`ffmpeg could not run: ${error.message}`, { cause: error }));
    });
    this.child.once('close', (code, signal) => {
      this.exit ??= { code, signal, ...(code !== 0 ? { error: new Error(`ffmpeg exited with ${signal ?? `code ${code}`}`) } : {}) };
      this.notify();
    });
    opts.signal?.addEventListener('abort', this.onAbort, { once: true });
    const stall = opts.stallTimeoutMs;
    if (stall) {
      const watchdog = setInterval(
        () => {
          // While the pipes are paused the wait is ours (uploads behind), not ffmpeg's.
          if (this.paused || Date.now() - this.lastSign < stall) return;
          this.fail(new TransientError(`ffmpeg showed no progress for ${Math.round(stall / 1000)} s on ${opts.file} and was killed`));
        },
        Math.min(1000, stall / 4),
      );
      this.timers.push(watchdog);
    }
    if (opts.timeoutMs) {
      const limit = opts.timeoutMs;
      this.timers.push(
        setTimeout(() => this.fail(new TransientError(`ffmpeg ran past its ${Math.round(limit / 1000)} s limit on ${opts.file} and was killed`)), limit),
      );
    }
    for (const t of this.timers) t.unref();
  }

  /** Stop with `err` (the first failure wins): ffmpeg is killed, the iteration throws it. */
  fail(err: unknown): void {
    this.failure ??= err;
    this.kill();
    this.notify();
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
          if (this.pairer.paired < (this.opts.maxBuffered ?? 4)) this.flow(true);
          yield frame;
          continue;
        }
        if (this.exit && this.openPipes === 0) {
          const missing = this.pairer.waitingForTimestamp;
          if (missing !== undefined) throw new VideoDecodeError(this.opts.file, `ffmpeg gave frame ${this.opts.firstIndex + missing} without its timestamp`);
          return;
        }
        // Nothing paired yet: make sure the pipes flow, then wait for the next event.
        this.flow(true);
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      this.kill();
      for (const t of this.timers) clearTimeout(t);
      this.opts.signal?.removeEventListener('abort', this.onAbort);
    }
  }

  /** Pause or resume both pipes (backpressure); the watchdog does not count paused time. */
  private flow(on: boolean): void {
    if (on === !this.paused) return;
    this.paused = !on;
    if (on) this.lastSign = Date.now();
    for (const p of this.pipes) {
      if (on) p.resume();
      else p.pause();
    }
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}
