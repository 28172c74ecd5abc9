/**
 * The probe's scan: one bounded ffmpeg pass over a sample of decoded frames of the chosen
 * stream, run only when the stream's own tags leave a question open:
 *
 * - scan type, when the stream does not declare a field order: ffmpeg's `idet` filter
 *   (interlace detection by comparing each field with its neighbours; multi-frame counts);
 * - HDR peak, for PQ and HLG streams: the brightest luma (`signalstats` YMAX) of every
 *   fourth frame averaged over 4x4-pixel blocks (area scaling; a single pixel's coding
 *   overshoot on a sharp edge reads 50-70% brighter than the white around it), so the
 *   tone mapping starts from the signal's real peak rather than a guess.
 *
 * @see https://ffmpeg.org/ffmpeg-filters.html#idet, #signalstats
 */
import { TransientError } from '../../contracts';
import { runProcess, type RunOptions } from '../../lib/media';
import { ffmpegNumber } from './plan';

/** Frames decoded by the scan at most. */
export const SCAN_FRAMES = 120;

/** What the scan measured. */
export interface ScanResult {
  /** idet's multi-frame detection counts (when asked). */
  idet?: { tff: number; bff: number; progressive: number; undetermined: number };
  /** Largest luma code value over the frames read (when asked); undefined when none was read. */
  lumaMax?: number;
  /** ffmpeg's complaint when the scan ended badly (the probe then keeps what the tags say). */
  error?: string;
}

/**
 * The ffmpeg arguments of a scan of stream `index`: `SCAN_FRAMES` frames from `startS`.
 */
export function scanArgs(file: string, index: number, startS: number, want: { idet: boolean; peak: boolean }): string[] {
  const filters = [
    ...(want.idet ? ['idet'] : []),
    ...(want.peak ? ["select='not(mod(n\\,4))'", 'scale=w=iw/4:h=ih/4:flags=area', 'signalstats', 'metadata=print:key=lavfi.signalstats.YMAX'] : []),
  ];
  return [
    '-nostdin',
    '-nostats',
    '-loglevel',
    'info',
    ...(startS > 0 ? ['-ss', ffmpegNumber(startS)] : []),
    '-i',
    `file:${file}`,
    '-filter_complex',
    `[0:${index}]${filters.join(',')}[out]`,
    '-map',
    '[out]',
    '-frames:v',
    String(want.peak ? Math.ceil(SCAN_FRAMES / 4) : SCAN_FRAMES),
    '-f',
    'null',
    '-',
  ];
}

/** Read idet's multi-frame summary and the YMAX lines from a scan's stderr. */
export function parseScan(stderr: string): Omit<ScanResult, 'error'> {
  const out: Omit<ScanResult, 'error'> = {};
  // ffmpeg configures the graph once before decoding: that instance logs zeros first; the last summary counts.
  const m = [...stderr.matchAll(/Multi frame detection:\s*TFF:\s*(\d+)\s*BFF:\s*(\d+)\s*Progressive:\s*(\d+)\s*Undetermined:\s*(\d+)/g)].at(-1);
  if (m) out.idet = { tff: Number(m[1]), bff: Number(m[2]), progressive: Number(m[3]), undetermined: Number(m[4]) };
  for (const y of stderr.matchAll(/lavfi\.signalstats\.YMAX=(\d+)/g)) out.lumaMax = Math.max(out.lumaMax ?? 0, Number(y[1]));
  return out;
}

/**
 * Interlaced by idet's counts: fields in a definite order outnumber progressive frames,
 * and at least 8 frames say so (static or flat content is left alone: it does not comb).
 *
 * @returns `tt` / `bb` for interlaced, else undefined.
 */
export function idetFieldOrder(idet: NonNullable<ScanResult['idet']>): 'tt' | 'bb' | undefined {
  const fields = idet.tff + idet.bff;
  if (fields < 8 || fields <= idet.progressive) return undefined;
  return idet.tff >= idet.bff ? 'tt' : 'bb';
}

/**
 * Run the scan. Starts at a fifth of the video when it is over 30 s long (openings are
 * often black or still), else at the start.
 *
 * @throws TransientError when ffmpeg cannot start, runs past `timeoutMs` or is killed (never cached).
 */
export async function scanVideo(
  file: string,
  index: number,
  durationS: number,
  want: { idet: boolean; peak: boolean },
  opts: RunOptions & { ffmpegPath?: string },
): Promise<ScanResult> {
  const startS = durationS > 30 ? durationS / 5 : 0;
  const r = await runProcess(opts.ffmpegPath ?? 'ffmpeg', scanArgs(file, index, startS, want), {
    timeoutMs: opts.timeoutMs,
    signal: opts.signal,
    maxBuffer: 4 << 20,
  });
  if (r.signal) throw new TransientError(`ffmpeg's scan of ${file} was killed by ${r.signal}`);
  const parsed = parseScan(r.stderr);
  if (r.code !== 0) return { ...parsed, error: r.stderr.trim().split('\n').at(-1) ?? `ffmpeg exited with ${r.code ?? r.signal}` };
  return parsed;
}
