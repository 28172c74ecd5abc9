/**
 * Each kind of trouble real video brings, on a small input built here with ffmpeg's
 * lavfi sources (or a byte-level edit of one), and every video of the shared corpus.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { VideoDecodeError } from '../../contracts';
import { extractFrames, type ExtractProgress, type FrameSink } from '../../activities/frames/extract';
import type { FrameRecord } from '../../contracts';
import { probeVideo } from '../../activities/frames/probe';
import { sha256File } from '../../lib/hash';
import { ExtractOptions, type SamplingMode } from '../../contracts/inputs';
import { SHARED_VIDEOS } from '../helpers/services';
import { rejectionOf } from '../helpers/errors';

jest.setTimeout(120_000);

const defaults = ExtractOptions.parse({});
/** Quality filters off: these tests are about sampling and decoding. */
const keepAll = { ...defaults, blackLevel: 0, whiteLevel: 255 };
let tmp: string;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-troubles-'));
});
afterAll(async () => {
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

/** Run ffmpeg quietly; throws with its stderr on failure. */
function ff(args: string[]): void {
  execFileSync('ffmpeg', ['-nostdin', '-v', 'error', '-y', ...args], { stdio: 'pipe' });
}

/** Build a test video from a lavfi source graph. */
function lavfi(name: string, source: string, extra: string[] = ['-c:v', 'libx264', '-pix_fmt', 'yuv420p']): string {
  const file = path.join(tmp, name);
  ff(['-f', 'lavfi', '-i', source, ...extra, file]);
  return file;
}

async function extract(file: string, o: Partial<ExtractOptions> = {}) {
  const probe = await probeVideo(file);
  const sha = await sha256File(file);
  const stored = new Map<string, { frame: FrameRecord; bytes: Buffer }>();
  const sink: FrameSink = {
    has: () => false,
    put: async (frame, bytes) => void stored.set(frame.key, { frame, bytes }),
  };
  const result = await extractFrames(file, sha, probe, { ...keepAll, ...o }, sink);
  const ts = result.frames.map((f) => f.timestampS);
  for (let i = 1; i < ts.length; i++) expect(ts[i]!).toBeGreaterThan(ts[i - 1]!);
  expect(ts.every(Number.isFinite)).toBe(true);
  expect(new Set(result.frames.map((f) => f.key)).size).toBe(result.frames.length);
  expect(stored.size).toBe(result.frames.length);
  return { probe, result, stored, ts };
}

const decodeError = (p: Promise<unknown>) => rejectionOf(p, VideoDecodeError);

describe('sampling modes', () => {
  it('fps on a variable-frame-rate video follows the real timestamps, no frame padded into a gap', async () => {
    // 10 fps with no frame between 2.0 s and 4.5 s.
    const file = lavfi('vfr.mkv', 'testsrc=size=160x120:rate=10:d=6', [
      '-vf',
      "select='not(between(t,2,4.45))'",
      '-fps_mode',
      'passthrough',
      '-c:v',
      'libx264',
      '-pix_fmt',
      'yuv420p',
    ]);
    const { ts, result } = await extract(file, { fps: 1 });
    expect(ts).toEqual([0, 1, 4.5, 5]);
    // testsrc changes every frame: a repeated frame would repeat a hash.
    expect(new Set(result.frames.map((f) => f.sha256)).size).toBe(4);
  });

  it('scene keeps the first frame and one per shot change, at least minSceneGapS apart', async () => {
    const file = path.join(tmp, 'shots.mp4');
    ff([
      '-f',
      'lavfi',
      '-i',
      'testsrc=size=160x120:rate=10:d=2',
      '-f',
      'lavfi',
      '-i',
      'mandelbrot=size=160x120:rate=10,trim=duration=2',
      '-f',
      'lavfi',
      '-i',
      'smptebars=size=160x120:rate=10:d=2',
      '-filter_complex',
      '[0:v][1:v][2:v]concat=n=3:v=1[v]',
      '-map',
      '[v]',
      '-c:v',
      'libx264',
      '-pix_fmt',
      'yuv420p',
      file,
    ]);
    const { ts } = await extract(file, { mode: 'scene', sceneThreshold: 0.3, minSceneGapS: 0.5 });
    expect(ts).toEqual([0, 2, 4]);
    // The cap spreads: 2 frames at most, so picks are at least 6 / 2 = 3 s apart.
    const capped = await extract(file, { mode: 'scene', sceneThreshold: 0.3, minSceneGapS: 0.5, maxFramesPerVideo: 2 });
    expect(capped.ts).toEqual([0, 4]);
  });

  it('keyframes takes only the keyframes (here every 2.5 s), spread by the cap', async () => {
    const file = lavfi('gop.mp4', 'testsrc=size=160x120:rate=10:d=10', [
      '-c:v',
      'libx264',
      '-pix_fmt',
      'yuv420p',
      '-g',
      '25',
      '-keyint_min',
      '25',
      '-sc_threshold',
      '0',
    ]);
    const { ts, result } = await extract(file, { mode: 'keyframes' });
    expect(ts).toEqual([0, 2.5, 5, 7.5]);
    expect(result.plan.keyframesOnly).toBe(true);
    const capped = await extract(file, { mode: 'keyframes', maxFramesPerVideo: 2 });
    expect(capped.ts).toEqual([0, 5]);
  });

  it('count spreads N frames evenly, capped by maxFramesPerVideo', async () => {
    const file = lavfi('ten.mp4', 'testsrc=size=160x120:rate=10:d=10');
    expect((await extract(file, { mode: 'count', count: 5 })).ts).toEqual([0, 2, 4, 6, 8]);
    expect((await extract(file, { mode: 'count', count: 5, maxFramesPerVideo: 2 })).ts).toEqual([0, 5]);
  });

  it.each<[SamplingMode, Partial<ExtractOptions>]>([
    ['fps', { fps: 10 }],
    ['scene', { sceneThreshold: 0, minSceneGapS: 0.001 }],
    ['keyframes', {}],
    ['count', { count: 1000 }],
  ])('%s mode respects the cap per video', async (mode, o) => {
    const file = lavfi(`cap-${mode}.mp4`, 'testsrc=size=160x120:rate=10:d=10', ['-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-g', '1']);
    const { result } = await extract(file, { mode, ...o, maxFramesPerVideo: 7 });
    expect(result.sampled).toBeLessThanOrEqual(7);
    expect(result.sampled).toBeGreaterThanOrEqual(5);
  });

  it('JPEG or WebP at the configured quality and short side', async () => {
    const file = lavfi('fmt.mp4', 'testsrc=size=640x360:rate=5:d=2');
    const webp = await extract(file, { format: 'webp', quality: 60, shortSide: 128 });
    const f = webp.result.frames[0]!;
    expect(f.key).toMatch(/\.webp$/);
    expect([f.width, f.height]).toEqual([228, 128]);
    expect((await sharp(webp.stored.get(f.key)!.bytes).metadata()).format).toBe('webp');
    const lo = await extract(file, { quality: 20 });
    const hi = await extract(file, { quality: 95 });
    expect(lo.result.frames[0]!.bytes).toBeLessThan(hi.result.frames[0]!.bytes);
    expect(lo.result.frames[0]!.key).not.toBe(hi.result.frames[0]!.key);
  });
});

describe('frame rates that ffprobe gets wrong', () => {
  it('zero frame durations (avg_frame_rate 1/0) and every pts at 0: a finite rate, no NaN', async () => {
    const src = lavfi('z.mp4', 'testsrc=size=160x120:rate=10:d=2', ['-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-bf', '0']);
    const bytes = await fs.readFile(src);
    const stts = bytes.indexOf('stts');
    expect(stts).toBeGreaterThan(0);
    const entries = bytes.readUInt32BE(stts + 8);
    for (let k = 0; k < entries; k++) bytes.writeUInt32BE(0, stts + 16 + 8 * k);
    const file = path.join(tmp, 'zero-durations.mp4');
    await fs.writeFile(file, bytes);
    const raw = execFileSync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=r_frame_rate', '-of', 'csv=p=0', file])
      .toString()
      .trim();
    expect(raw).toBe('1/0');
    const { probe, result } = await extract(file);
    expect(probe.frameRate === undefined || Number.isFinite(probe.frameRate)).toBe(true);
    expect(result.frames.length).toBeGreaterThanOrEqual(1);
  });

  it('an elementary stream with no duration: packets are counted', async () => {
    const file = lavfi('raw.h264', 'testsrc=size=160x120:rate=10:d=3', ['-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-f', 'h264']);
    const { probe, ts } = await extract(file, { minFramesPerVideo: 0 });
    expect(probe.durationS).toBeCloseTo(3, 1);
    expect(ts).toEqual([0, 1, 2]);
  });
});

describe('rotation from display-matrix side data', () => {
  // A white box in the top-left corner of the coded picture shows where "up" went.
  // ffprobe's `rotation` is counter-clockwise: +90 takes the top-left corner to the
  // bottom-left, -90 (clockwise) to the top-right.
  it.each([
    ['90', 90, 'bottom-left'],
    ['270', -90, 'top-right'],
  ])('rotate tag %s (display matrix %i): frames come out upright, portrait, box %s', async (tag, rotation, corner) => {
    const plain = lavfi(`box-${tag}.mp4`, 'color=black:size=320x240:rate=5:d=2,drawbox=x=0:y=0:w=80:h=60:color=white:t=fill');
    const file = path.join(tmp, `rot-${tag}.mp4`);
    ff(['-i', plain, '-c', 'copy', '-metadata:s:v', `rotate=${tag}`, file]);
    const streams = execFileSync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_streams', file]).toString();
    expect(streams).toContain('Display Matrix');
    expect(streams).toContain(`rotation=${rotation}`);
    const { probe, result, stored } = await extract(file, { shortSide: 240 });
    expect(probe.rotation).toBe(rotation);
    expect([probe.displayWidth, probe.displayHeight]).toEqual([240, 320]);
    const f = result.frames[0]!;
    expect([f.width, f.height]).toEqual([240, 320]);
    const rgb = await sharp(stored.get(f.key)!.bytes).removeAlpha().raw().toBuffer();
    const mean = (x0: number, y0: number) => {
      let s = 0;
      for (let y = y0; y < y0 + 40; y++) for (let x = x0; x < x0 + 40; x++) s += rgb[(y * 240 + x) * 3]!;
      return s / 1600;
    };
    const corners = { 'top-left': mean(0, 0), 'top-right': mean(200, 0), 'bottom-left': mean(0, 280), 'bottom-right': mean(200, 280) };
    for (const [name, v] of Object.entries(corners)) {
      if (name === corner) expect(v).toBeGreaterThan(200);
      else expect(v).toBeLessThan(50);
    }
  });
});

describe('odd sizes, broken streams, long and large videos', () => {
  it('odd width and height (321x243) give even output dimensions, aspect kept', async () => {
    const file = lavfi('odd.mp4', 'testsrc=size=321x243:rate=5:d=2', ['-c:v', 'libx264', '-pix_fmt', 'yuv444p']);
    const { probe, result } = await extract(file, { shortSide: 121 });
    expect([probe.width, probe.height]).toEqual([321, 243]);
    for (const f of result.frames) {
      expect(f.width % 2).toBe(0);
      expect(f.height % 2).toBe(0);
      expect(Math.abs(f.width / f.height - 321 / 243)).toBeLessThan(0.02);
    }
  });

  it('a stream with corrupted packets: what decodes is taken, the errors are reported', async () => {
    const file = lavfi('damaged.ts', 'testsrc=size=320x240:rate=10:d=6', ['-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-g', '10', '-f', 'mpegts']);
    const bytes = await fs.readFile(file);
    // Garble 20 TS packets' payloads in the middle (keep the 4-byte headers).
    for (let p = 0; p < 20; p++) {
      const off = Math.floor(bytes.length / 2 / 188) * 188 + p * 188 * 3;
      for (let i = 4; i < 188; i++) bytes[off + i] = (i * 7 + p) & 0xff;
    }
    await fs.writeFile(file, bytes);
    const { result } = await extract(file);
    expect(result.frames.length).toBeGreaterThanOrEqual(4);
    expect(result.decodeErrorCount).toBeGreaterThan(0);
    expect(result.decodeErrors[0]).toMatch(/error|corrupt|invalid|concealing|missing/i);
  });

  it('timestamps that jump backwards (two streams spliced): picks stay strictly increasing', async () => {
    const a = lavfi('a.ts', 'testsrc=size=160x120:rate=10:d=3', ['-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-f', 'mpegts']);
    const b = lavfi('b.ts', 'testsrc=size=160x120:rate=10:d=3', ['-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-output_ts_offset', '1', '-f', 'mpegts']);
    const file = path.join(tmp, 'spliced.ts');
    await fs.writeFile(file, Buffer.concat([await fs.readFile(a), await fs.readFile(b)]));
    const { result } = await extract(file);
    expect(result.frames.length).toBeGreaterThanOrEqual(3);
    expect(result.decodeErrorCount).toBeGreaterThan(0);
  });

  it('a very large frame size (7680x4320) streams to 456x256 frames', async () => {
    const file = lavfi('8k.mp4', 'testsrc2=size=7680x4320:rate=2:d=2', ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p']);
    const { probe, result } = await extract(file);
    expect([probe.width, probe.height]).toEqual([7680, 4320]);
    expect(result.frames.length).toBeGreaterThanOrEqual(2);
    expect([result.frames[0]!.width, result.frames[0]!.height]).toEqual([456, 256]);
  });
});

describe('files that cannot be used fail before any frame, naming the file and the reason', () => {
  const full = () => lavfi('full.mp4', 'testsrc=size=320x240:rate=10:d=10', ['-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-movflags', '+faststart']);

  it.each([
    ['truncated mp4, index first (faststart)', 'cut-faststart.mp4', true, /truncated: no frame decodes.*partial file/],
    ['truncated mp4, index last', 'cut-indexlast.mp4', false, /not a readable media file.*moov atom not found/],
  ])('%s', async (_name, out, faststart, reason) => {
    const src = faststart ? full() : lavfi('full-last.mp4', 'testsrc=size=320x240:rate=10:d=10');
    const bytes = await fs.readFile(src);
    const file = path.join(tmp, out);
    await fs.writeFile(file, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    const err = await decodeError(probeVideo(file));
    expect(err.message).toContain(file);
    expect(err.reason).toMatch(reason);
  });

  it('a truncated Matroska file', async () => {
    const src = lavfi('full.mkv', 'testsrc=size=320x240:rate=10:d=10');
    const file = path.join(tmp, 'cut.mkv');
    const bytes = await fs.readFile(src);
    await fs.writeFile(file, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    const err = await decodeError(probeVideo(file));
    expect(err.reason).toMatch(/truncated: no frame decodes.*ended prematurely/i);
  });

  it('empty, not a video, audio only', async () => {
    const empty = path.join(tmp, 'empty.mov');
    await fs.writeFile(empty, '');
    expect((await decodeError(probeVideo(empty))).reason).toBe('file is empty (0 bytes)');
    const text = path.join(tmp, 'readme.avi');
    await fs.writeFile(text, 'hello\n'.repeat(100));
    expect((await decodeError(probeVideo(text))).reason).toMatch(/not a readable media file/);
    const audio = lavfi('tone.mp4', 'sine=d=1', ['-c:a', 'aac']);
    expect((await decodeError(probeVideo(audio))).reason).toBe('audio only: no video stream');
  });
});

describe('the shared corpus', () => {
  it('every video extracts: frames or a reasoned drop, never an error', async () => {
    const names = (await fs.readdir(SHARED_VIDEOS)).sort();
    expect(names.length).toBeGreaterThanOrEqual(20);
    for (const name of names) {
      const { result } = await extract(path.join(SHARED_VIDEOS, name), { ...defaults, shortSide: 64 });
      const kept = result.frames.length;
      const dropped = result.dropped.nearBlack + result.dropped.nearWhite + result.dropped.blurred;
      expect({ name, ok: result.sampled >= 2 && kept + dropped === result.sampled }).toEqual({ name, ok: true });
      if (name !== 'traitsui-test.mp4') expect({ name, kept: kept > 0 }).toEqual({ name, kept: true });
    }
  });
});

describe('resuming after committed progress', () => {
  it.each<[SamplingMode, Partial<ExtractOptions>]>([
    ['fps', { fps: 2 }],
    ['count', { count: 12 }],
    ['keyframes', {}],
    ['scene', { sceneThreshold: 0.3, minSceneGapS: 0.5 }],
  ])('%s: an interrupted extraction resumed from its last commit gives the same frames as one clean run', async (mode, o) => {
    const file = path.join(tmp, `resume-${mode}.mp4`);
    ff([
      '-f',
      'lavfi',
      '-i',
      'testsrc=size=160x120:rate=10:d=4',
      '-f',
      'lavfi',
      '-i',
      'smptebars=size=160x120:rate=10:d=4',
      '-f',
      'lavfi',
      '-i',
      'mandelbrot=size=160x120:rate=10,trim=duration=4',
      '-filter_complex',
      '[0:v][1:v][2:v]concat=n=3:v=1[v]',
      '-map',
      '[v]',
      '-c:v',
      'libx264',
      '-pix_fmt',
      'yuv420p',
      '-g',
      '15',
      '-sc_threshold',
      '0',
      file,
    ]);
    const options = { ...keepAll, mode, ...o, maxFramesPerVideo: 100 };
    const probe = await probeVideo(file);
    const sha = await sha256File(file);
    const clean = await extractFrames(file, sha, probe, options, { has: () => false, put: async () => undefined });
    expect(clean.frames.length).toBeGreaterThanOrEqual(3);

    // Interrupted: aborted once a commit covers at least 2 frames.
    const ac = new AbortController();
    let last: { progress: ExtractProgress; frames: FrameRecord[] } = { progress: undefined as never, frames: [] };
    const committed: FrameRecord[] = [];
    const puts: string[] = [];
    const sink: FrameSink = {
      has: () => false,
      put: async (f) => void puts.push(f.key),
      commit: async (frames, progress) => {
        committed.push(...frames);
        last = { progress, frames: [...committed] };
        if (progress.sampled >= 2) ac.abort(new Error('stop'));
      },
    };
    await expect(extractFrames(file, sha, probe, options, sink, { signal: ac.signal, commitEvery: 1 })).rejects.toThrow('stop');
    const before = new Set(last.frames.map((f) => f.key));
    const resumedPuts: string[] = [];
    const resumed = await extractFrames(file, sha, probe, options, { has: () => false, put: async (f) => void resumedPuts.push(f.key) }, { resume: last });
    expect(resumed.resumed).toBe(true);
    expect(resumed.frames.map((f) => [f.index, f.key])).toEqual(clean.frames.map((f) => [f.index, f.key]));
    // Nothing committed before is decoded or uploaded again.
    expect(resumedPuts.filter((k) => before.has(k))).toEqual([]);
    expect(resumed.sampled).toBe(clean.sampled);
  });
});
