/**
 * Child processes with bounds (ffprobe, ffmpeg and any other tool): every call has a
 * timeout and an abort signal, and a process that outlives either is killed (SIGKILL),
 * so a hung tool can never hang an activity or outlive a cancelled one.
 */
import { spawn } from 'node:child_process';
import { TransientError } from '../contracts';

/** Options of {@link runProcess}. */
export interface RunOptions {
  /** Kill the process after this many milliseconds (default 60 000). */
  timeoutMs?: number;
  /** Kill the process when this signal aborts (activity cancellation, worker shutdown). */
  signal?: AbortSignal;
  /** Most bytes kept of stdout and of stderr each (default 8 MiB); the rest is dropped. */
  maxBuffer?: number;
}

/** What a finished process left. */
export interface RunResult {
  stdout: string;
  stderr: string;
  /** Exit code, or null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * Run a program to its end and collect its output. A non-zero exit is *not* an error
 * here (callers read stderr to decide what it means).
 *
 * @throws TransientError (retryable) when the program cannot be started (ENOENT,
 *   EACCES, EAGAIN) or runs past `timeoutMs` (it is killed first): neither says
 *   anything about the input, so neither may be cached as its verdict.
 * @throws the signal's reason when `signal` aborts (the process is killed first).
 */
export function runProcess(command: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const max = opts.maxBuffer ?? 8 << 20;
  opts.signal?.throwIfAborted();
  return new Promise<RunResult>((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    child.stdout.on('data', (b: Buffer) => {
      if (outLen < max) out.push(b);
      outLen += b.length;
    });
    child.stderr.on('data', (b: Buffer) => {
      if (errLen < max) err.push(b);
      errLen += b.length;
    });
    let timedOut = false;
    const kill = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, timeoutMs);
    const onAbort = () => kill();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const done = () => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    child.once('error', (e: NodeJS.ErrnoException) => {
      done();
      reject(new TransientError(`${command} could not run: ${e.code ?? ''} ${e.message}`.trim(), { cause: e }));
    });
    child.once('close', (code, signal) => {
      done();
      if (opts.signal?.aborted) return reject(opts.signal.reason);
      if (timedOut) {
        return reject(new TransientError(`${command} ran past its ${timeoutMs} ms timeout and was killed (${args.slice(-1)[0] ?? ''})`));
      }
      resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), code, signal });
    });
  });
}

/** ffprobe's JSON (`-show_format -show_streams`), as far as reelset reads it. */
export interface FfprobeJson {
  format?: { duration?: string; format_name?: string; start_time?: string; tags?: Record<string, string> };
  streams?: Array<Record<string, unknown> & { index: number; codec_type?: string; codec_name?: string }>;
}

/**
 * ffprobe a local file and parse its JSON answer.
 *
 * @param file local path (passed as a `file:` URL, so no name is read as a protocol or an option).
 * @returns the parsed JSON, or `{ error, stderr }` with ffprobe's last complaint (and all it said) when it could not read the file.
 * @throws TransientError when ffprobe cannot start, times out (see {@link runProcess}) or is killed by a signal.
 */
export async function ffprobeJson(
  file: string,
  opts: RunOptions & { ffprobePath?: string; extraArgs?: string[] } = {},
): Promise<FfprobeJson | { error: string; stderr?: string }> {
  const r = await runProcess(
    opts.ffprobePath ?? 'ffprobe',
    ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', ...(opts.extraArgs ?? []), `file:${file}`],
    { timeoutMs: opts.timeoutMs ?? 30_000, signal: opts.signal, maxBuffer: opts.maxBuffer },
  );
  // Killed from outside (out of memory, an operator): says nothing about the file.
  if (r.signal) throw new TransientError(`ffprobe was killed by ${r.signal} (${file})`);
  if (r.code !== 0) return { error: r.stderr.trim().split('\n').filter(Boolean).at(-1) ?? `ffprobe exited with ${r.code ?? r.signal}`, stderr: r.stderr };
  try {
    return JSON.parse(r.stdout) as FfprobeJson;
  } catch {
    return { error: 'ffprobe printed no JSON' };
  }
}
