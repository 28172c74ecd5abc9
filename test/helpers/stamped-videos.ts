/**
 * Many distinct, real, playable videos, fast: a few base clips are encoded once with
 * ffmpeg (H.264 in MP4, lavfi sources, a fixed-length placeholder in the container's
 * `comment` tag), then each copy gets its own number written over the placeholder.
 * Every copy is a valid MP4 with its own bytes, so its own sha256: the catalog, the
 * frame keys and the frames manifests see N different videos, and ffmpeg decodes each
 * one in full (the pixels of copies of one base are the same, which the extraction
 * never looks at). A random nonce in the stamp keeps two calls' copies apart (the
 * catalog refuses the same content under two ids). 10,000 copies take seconds to write.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

const PLACEHOLDER = 'RSSTAMP-0000000000000000';

/** lavfi sources of the base clips (varied content: bars, gradients, fractals, noise). */
const BASES = [
  'testsrc2=size={size}:rate={rate}',
  'smptehdbars=size={size}:rate={rate}',
  'mandelbrot=size={size}:rate={rate}',
  'cellauto=size={size}:rate={rate}:rule=110',
  'life=size={size}:rate={rate}:mold=10:ratio=0.2:death_color=#330000:life_color=#00ff88',
  'rgbtestsrc=size={size}:rate={rate}',
];

/** Options of {@link stampedVideos}. */
export interface StampOptions {
  /** Clip length, seconds (default 2). */
  seconds?: number;
  /** Frame size, `WxH` (default `192x108`). */
  size?: string;
  /** Frames per second (default 12). */
  rate?: number;
  /** Base clips to cycle through, 1..6 (default 6). */
  bases?: number;
  /** First base clip, 0..5 (default 0): calls with different ranges make visually different videos. */
  firstBase?: number;
  /** Own lavfi sources for the base clips instead of the built-in six (`{size}` and `{rate}` are filled in). */
  sources?: string[];
  /** File name prefix (default `clip`): `<prefix>-000001.mp4`. */
  prefix?: string;
  /** 8 hex digits stamped into every copy beside its number (default random), so two calls never make the same bytes. */
  nonce?: string;
}

/**
 * Write `n` distinct MP4 videos into `dir` (created if needed).
 *
 * @returns absolute paths, in order (`<prefix>-000001.mp4` ...).
 * @throws Error when ffmpeg fails or the placeholder is not found once in a base clip.
 */
export async function stampedVideos(dir: string, n: number, opts: StampOptions = {}): Promise<string[]> {
  const { seconds = 2, size = '192x108', rate = 12, firstBase = 0, prefix = 'clip', nonce = randomBytes(4).toString('hex') } = opts;
  const sources = opts.sources ?? BASES;
  const bases = opts.bases ?? sources.length;
  if (!/^[0-9a-f]{8}$/.test(nonce)) throw new Error(`nonce must be 8 hex digits, got ${JSON.stringify(nonce)}`);
  await fs.mkdir(dir, { recursive: true });
  const clips: Buffer[] = [];
  for (let b = firstBase; b < Math.min(firstBase + bases, sources.length); b++) {
    const file = path.join(dir, `.base-${b}.mp4`);
    const src = sources[b]!.replace('{size}', size).replace('{rate}', String(rate));
    execFileSync(
      'ffmpeg',
      [
        '-nostdin',
        '-v',
        'error',
        '-y',
        '-f',
        'lavfi',
        '-i',
        src,
        '-t',
        String(seconds),
        '-c:v',
        'libx264',
        '-preset',
        'ultrafast',
        '-pix_fmt',
        'yuv420p',
        '-g',
        String(rate),
        '-metadata',
        `comment=${PLACEHOLDER}`,
        file,
      ],
      { stdio: 'pipe' },
    );
    const buf = await fs.readFile(file);
    await fs.rm(file);
    const at = buf.indexOf(PLACEHOLDER);
    if (at < 0 || buf.indexOf(PLACEHOLDER, at + 1) >= 0) throw new Error(`base clip ${b}: placeholder not found exactly once`);
    clips.push(buf);
  }
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const base = clips[i % clips.length]!;
    const copy = Buffer.from(base);
    const stamp = `RSSTAMP-${nonce}${String(i + 1).padStart(8, '0')}`;
    copy.write(stamp, base.indexOf(PLACEHOLDER), 'latin1');
    const file = path.join(dir, `${prefix}-${String(i + 1).padStart(6, '0')}.mp4`);
    await fs.writeFile(file, copy);
    out.push(file);
  }
  return out;
}

/**
 * Write a catalog file (the `catalog.json` format) for `files`, every entry with
 * `labels`, ids `<idPrefix>-<n>`, and the video block filled in (duration and size),
 * so that ingest does not run ffprobe on each.
 *
 * @returns the catalog file's path.
 */
export async function writeCatalog(
  file: string,
  files: string[],
  opts: { idPrefix: string; labels: string[]; seconds?: number; width?: number; height?: number },
): Promise<string> {
  const entries = files.map((f, i) => ({
    id: `${opts.idPrefix}-${String(i + 1).padStart(6, '0')}`,
    file: path.relative(path.dirname(file), f),
    labels: opts.labels,
    description: `stamped clip ${i + 1}`,
    video: { codec: 'h264', width: opts.width ?? 192, height: opts.height ?? 108, duration_s: opts.seconds ?? 2, has_audio: false },
  }));
  await fs.writeFile(file, JSON.stringify(entries));
  return file;
}
