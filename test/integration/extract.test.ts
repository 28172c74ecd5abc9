import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { TransientError, VideoDecodeError } from '../../contracts';
import { extractFrames, extractionParamsHash, type FrameSink } from '../../activities/frames/extract';
import type { FrameRecord } from '../../contracts';
import { probeVideo } from '../../activities/frames/probe';
import { sha256File } from '../../lib/hash';
import { ExtractOptions } from '../../contracts/inputs';
import { SHARED_VIDEOS } from '../helpers/services';
import { rejectionOf } from '../helpers/errors';

jest.setTimeout(60_000);

const opts = ExtractOptions.parse({});
let tmp: string;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-extract-test-'));
});
afterAll(async () => {
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

/** An in-memory sink that records every put. */
function memorySink(has: (key: string) => boolean = () => false) {
  const stored = new Map<string, { frame: FrameRecord; bytes: Buffer }>();
  const put = jest.fn(async (frame: FrameRecord, bytes: Buffer) => {
    stored.set(frame.key, { frame, bytes });
  });
  const sink: FrameSink = { has, put };
  return { sink, stored, put };
}

async function extract(file: string, o = opts, sinkHas?: (key: string) => boolean) {
  const probe = await probeVideo(file);
  const sha = await sha256File(file);
  const mem = memorySink(sinkHas);
  const result = await extractFrames(file, sha, probe, o, mem.sink);
  return { probe, sha, result, ...mem };
}

function expectWellFormed(result: Awaited<ReturnType<typeof extract>>['result'], sha: string) {
  const ts = result.frames.map((f) => f.timestampS);
  for (let i = 1; i < ts.length; i++) expect(ts[i]!).toBeGreaterThan(ts[i - 1]!);
  const keys = result.frames.map((f) => f.key);
  expect(new Set(keys).size).toBe(keys.length);
  for (const f of result.frames) {
    expect(f.key).toMatch(new RegExp(`^frames/${sha}/${result.paramsHash}/\\d{9}\\.jpg$`));
    expect(f.width % 2).toBe(0);
    expect(f.height % 2).toBe(0);
    expect(f.bytes).toBeGreaterThan(0);
  }
  expect(result.frames.length + result.dropped.nearBlack + result.dropped.nearWhite + result.dropped.blurred).toBe(result.sampled);
}

const decodeError = (p: Promise<unknown>) => rejectionOf(p, VideoDecodeError);

describe('extractFrames on the shared sample videos', () => {
  it('box.mp4 (broken h264 stream) still yields frames and reports decode errors', async () => {
    const file = path.join(SHARED_VIDEOS, 'box.mp4');
    const { result, sha, stored, put, probe } = await extract(file);
    expect(probe.codec).toBe('h264');
    expect(result.frames.length).toBeGreaterThanOrEqual(10);
    expect(result.decodeErrorCount).toBeGreaterThan(0);
    expect(result.decodeErrors.length).toBeGreaterThan(0);
    expect(result.decodeErrors.length).toBeLessThanOrEqual(20);
    expect(result.paramsHash).toBe(extractionParamsHash(opts));
    expectWellFormed(result, sha);
    expect(put).toHaveBeenCalledTimes(result.frames.length);
    // Stored bytes are the JPEG the record describes.
    const first = result.frames[0]!;
    const bytes = stored.get(first.key)!.bytes;
    expect(bytes.length).toBe(first.bytes);
    const meta = await sharp(bytes).metadata();
    expect(meta.format).toBe('jpeg');
    expect([meta.width, meta.height]).toEqual([first.width, first.height]);
    expect([first.width, first.height]).toEqual([342, 256]);
  });

  it('a second extraction whose sink already has every key uploads nothing, same frames', async () => {
    const file = path.join(SHARED_VIDEOS, 'g1.avi');
    const a = await extract(file);
    expect(a.result.frames.length).toBeGreaterThan(0);
    expect(a.put).toHaveBeenCalledTimes(a.result.frames.length);
    const b = await extract(file, opts, () => true);
    expect(b.put).toHaveBeenCalledTimes(0);
    expect(b.result.frames.map((f) => f.key)).toEqual(a.result.frames.map((f) => f.key));
    // g1 is 0.64 s at 25 fps: the rate is raised to give minFramesPerVideo frames.
    expect(a.result.sampled).toBe(opts.minFramesPerVideo);
    expectWellFormed(a.result, a.sha);
  });

  it('DualDiscs.mov (odd height 465) gives even dimensions', async () => {
    const file = path.join(SHARED_VIDEOS, 'DualDiscs.mov');
    const { probe, result, sha, stored } = await extract(file);
    expect([probe.width, probe.height]).toEqual([640, 465]);
    expect(result.frames.length).toBeGreaterThan(0);
    expectWellFormed(result, sha);
    for (const f of result.frames) {
      expect(f.height).toBe(256);
      expect(f.width).toBe(352);
      const meta = await sharp(stored.get(f.key)!.bytes).metadata();
      expect([meta.width, meta.height]).toEqual([352, 256]);
    }
  });

  it('traitsui-test.mp4 (one white, one black frame) keeps nothing: 1 near-black, 1 near-white', async () => {
    const file = path.join(SHARED_VIDEOS, 'traitsui-test.mp4');
    const { result, put } = await extract(file);
    expect(result.sampled).toBe(2);
    expect(result.frames).toEqual([]);
    expect(result.dropped).toEqual({ nearBlack: 1, nearWhite: 1, blurred: 0 });
    expect(put).not.toHaveBeenCalled();
    // With the filters off both frames are kept.
    const all = await extract(file, { ...opts, blackLevel: 0, whiteLevel: 255 });
    expect(all.result.frames).toHaveLength(2);
    expect(all.result.frames.map((f) => f.timestampS)).toEqual([0, 1]);
  });

  it('the cap spreads frames over a long video', async () => {
    const file = path.join(SHARED_VIDEOS, 'vtest.avi');
    const { result, probe, sha } = await extract(file, { ...opts, maxFramesPerVideo: 8, shortSide: 64 });
    expect(result.sampled).toBe(8);
    expectWellFormed(result, sha);
    const last = result.frames.at(-1)!.timestampS;
    expect(last).toBeGreaterThan(probe.durationS * 0.7);
  });

  it('uploads run with bounded concurrency', async () => {
    const file = path.join(SHARED_VIDEOS, 'vtest.avi');
    const probe = await probeVideo(file);
    let inFlight = 0;
    let most = 0;
    const sink: FrameSink = {
      has: () => false,
      put: async () => {
        most = Math.max(most, ++inFlight);
        await new Promise((r) => setTimeout(r, 20));
        inFlight--;
      },
    };
    const result = await extractFrames(file, 'b'.repeat(64), probe, { ...opts, shortSide: 64, blackLevel: 0 }, sink, { uploadConcurrency: 3 });
    expect(result.frames.length).toBe(60);
    expect(most).toBe(3);
  });

  it('reports progress and stops on abort', async () => {
    const file = path.join(SHARED_VIDEOS, 'box.mp4');
    const probe = await probeVideo(file);
    const ac = new AbortController();
    const progress: number[] = [];
    const { sink } = memorySink();
    await expect(
      extractFrames(file, 'a'.repeat(64), probe, opts, sink, {
        signal: ac.signal,
        onFrame: (p) => {
          progress.push(p.frames);
          if (p.frames === 2) ac.abort(new Error('cancelled by test'));
        },
      }),
    ).rejects.toThrow('cancelled by test');
    expect(progress.slice(0, 2)).toEqual([1, 2]);
    expect(progress.length).toBeLessThan(5);
  });
});

describe('probeVideo on bad inputs', () => {
  it('a missing file', async () => {
    const file = path.join(tmp, 'nope.mp4');
    const err = await decodeError(probeVideo(file));
    expect(err.message).toContain(file);
    expect(err.reason).toBe('file not found');
  });

  it('an empty file', async () => {
    const file = path.join(tmp, 'empty.mp4');
    await fs.writeFile(file, '');
    const err = await decodeError(probeVideo(file));
    expect(err.message).toContain(file);
    expect(err.message).toContain('empty');
  });

  it('a text file', async () => {
    const file = path.join(tmp, 'notes.mp4');
    await fs.writeFile(file, 'this is not a video\n'.repeat(50));
    const err = await decodeError(probeVideo(file));
    expect(err.message).toContain(file);
    expect(err.reason).toMatch(/not a readable media file/);
  });

  it('a truncated mp4 (first 2 KB of cup.mp4)', async () => {
    const file = path.join(tmp, 'truncated.mp4');
    const head = (await fs.readFile(path.join(SHARED_VIDEOS, 'cup.mp4'))).subarray(0, 2048);
    await fs.writeFile(file, head);
    const err = await decodeError(probeVideo(file));
    expect(err.message).toContain(file);
    expect(err.reason.length).toBeGreaterThan(5);
    expect(err.reason).toMatch(/not a readable media file|no duration|no video stream|no frame size/);
  });

  it('an ffprobe that cannot run is a retryable TransientError, not a verdict on the file', async () => {
    const err = await rejectionOf(probeVideo(path.join(SHARED_VIDEOS, 'g1.avi'), { ffprobePath: '/nonexistent/ffprobe' }), TransientError);
    expect(err.message).toContain('g1.avi');
    expect(err.message).toMatch(/ffprobe could not run/);
  });

  it('an audio-only file', async () => {
    const file = path.join(tmp, 'out.m4a');
    execFileSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'sine=d=1', '-y', file]);
    const err = await decodeError(probeVideo(file));
    expect(err.message).toContain(file);
    expect(err.message).toContain('audio only');
  });
});

describe('awkward files', () => {
  it("file names with spaces, '%', '#', '&', ':', a leading '-' and non-ASCII characters extract fine", async () => {
    for (const name of ['my clip 100% #1 & ünïcødé 视频 %d.mp4', 'http:like a protocol.mp4', '-looks like an option.mp4']) {
      const file = path.join(tmp, name);
      await fs.copyFile(path.join(SHARED_VIDEOS, 'realshort.mp4'), file);
      const { probe, result, sha } = await extract(file);
      expect([probe.width, probe.height]).toEqual([320, 240]);
      expect(result.frames.length).toBeGreaterThan(0);
      expectWellFormed(result, sha);
    }
  });

  it('a rotated video: probe reports display 240x320 and the frames come out portrait', async () => {
    const plain = path.join(tmp, 'a.mp4');
    const rotated = path.join(tmp, 'r.mp4');
    execFileSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=5:d=2', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-y', plain]);
    // ffmpeg >= 6 has `-display_rotation`; 5.x sets the display matrix from the legacy rotate tag.
    try {
      execFileSync('ffmpeg', ['-v', 'error', '-display_rotation', '-90', '-i', plain, '-c', 'copy', '-y', rotated], { stdio: 'pipe' });
    } catch {
      execFileSync('ffmpeg', ['-v', 'error', '-i', plain, '-c', 'copy', '-metadata:s:v', 'rotate=90', '-y', rotated]);
    }
    const probe = await probeVideo(rotated);
    expect([probe.width, probe.height]).toEqual([320, 240]);
    expect([probe.displayWidth, probe.displayHeight]).toEqual([240, 320]);
    expect(Math.abs(probe.rotation)).toBe(90);

    const mem = memorySink();
    const result = await extractFrames(rotated, await sha256File(rotated), probe, { ...opts, shortSide: 240 }, mem.sink);
    expect(result.frames.length).toBeGreaterThan(0);
    for (const f of result.frames) {
      expect([f.width, f.height]).toEqual([240, 320]);
      const meta = await sharp(mem.stored.get(f.key)!.bytes).metadata();
      expect([meta.width, meta.height]).toEqual([240, 320]);
    }

    // The pixels are rotated, not stretched: the first frame matches ffmpeg's own
    // autorotated decode far better than the unrotated picture squeezed to portrait.
    const rgb = (args: string[]) => execFileSync('ffmpeg', ['-v', 'error', ...args, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-']);
    const upright = rgb(['-i', rotated]);
    const squeezed = rgb(['-i', plain, '-vf', 'scale=240:320']);
    expect(upright.length).toBe(240 * 320 * 3);
    const ours = await sharp(mem.stored.get(result.frames[0]!.key)!.bytes).removeAlpha().raw().toBuffer();
    const mad = (a: Buffer, b: Buffer) => {
      let s = 0;
      for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
      return s / a.length;
    };
    expect(mad(ours, upright)).toBeLessThan(12);
    expect(mad(ours, squeezed)).toBeGreaterThan(mad(ours, upright) * 2);
  });
});
