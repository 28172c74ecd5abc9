/**
 * The extraction pipeline's parts on their own: command line, stderr parsing, pairing of
 * images with luma planes and timestamps, scoring, the bounded upload pool and the
 * in-order commit tracker.
 */
import { ExtractOptions } from '../../contracts/inputs';
import { buildExtractCommand, extractFilterGraph } from '../../activities/frames/command';
import { describeColour } from '../../activities/frames/colour';
import { CommitTracker } from '../../activities/frames/commit-tracker';
import { FfmpegLog } from '../../activities/frames/ffmpeg-frames';
import { FramePairer } from '../../activities/frames/pairing';
import { planSampling } from '../../activities/frames/plan';
import { judgeFrame } from '../../activities/frames/quality';
import { FixedSizeSplitter } from '../../activities/frames/streams';
import { emptyProgress, type ExtractProgress } from '../../activities/frames/types';
import { UploadPool } from '../../activities/frames/upload-pool';
import type { FrameRecord } from '../../contracts';

const defaults = ExtractOptions.parse({});
const sha = 'a'.repeat(64);

describe('buildExtractCommand', () => {
  const plan = planSampling({ durationS: 10, frameRate: 25 }, defaults);
  const probe = {
    stream: { index: 1 },
    colour: describeColour({ pix_fmt: 'yuv420p' }, 480),
    scan: { fieldOrder: 'progressive' as const, interlaced: false, source: 'stream' as const },
  };
  const base = {
    file: '/v/-odd:name.mp4',
    probe,
    plan,
    size: { width: 342, height: 256 },
    format: 'jpeg' as const,
    quality: 85,
    seekS: 0,
    afterS: null,
    frames: 10,
  };

  it('reads the file as a file: URL, writes images to pipe 1 and luma planes to pipe 3, each capped', () => {
    const args = buildExtractCommand(base);
    expect(args[args.indexOf('-i') + 1]).toBe('file:/v/-odd:name.mp4');
    expect(args).not.toContain('-ss');
    expect(args).not.toContain('-skip_frame');
    expect(args.filter((a) => a === '-frames:v')).toHaveLength(2);
    expect(args[args.indexOf('-frames:v') + 1]).toBe('10');
    expect(args.join(' ')).toMatch(/-map \[enc\] .* -c:v mjpeg -q:v 4 -f image2pipe pipe:1 -map \[luma\] .* -f rawvideo pipe:3$/);
  });

  it('seeks and passes the resume point into select; keyframes mode skips non-keyframes', () => {
    const args = buildExtractCommand({ ...base, seekS: 12.5, afterS: 12.5 });
    expect(args.slice(args.indexOf('-ss'), args.indexOf('-ss') + 2)).toEqual(['-ss', '12.5']);
    expect(args.indexOf('-ss')).toBeLessThan(args.indexOf('-i'));
    expect(args[args.indexOf('-filter_complex') + 1]).toContain('(t+12.5)');
    const kf = buildExtractCommand({ ...base, plan: planSampling({ durationS: 10, frameRate: 25 }, { ...defaults, mode: 'keyframes' }) });
    expect(kf.slice(kf.indexOf('-skip_frame'), kf.indexOf('-skip_frame') + 2)).toEqual(['-skip_frame', 'nokey']);
  });

  it('the graph maps the chosen stream, converts with its matrix and range, logs timestamps, and splits image and luma', () => {
    const g = extractFilterGraph(base);
    expect(g).toMatch(
      /^\[0:1\]select='[^']+',scale=342:256:flags=bicubic:in_color_matrix=bt601:in_range=tv:out_color_matrix=bt601:out_range=pc,format=yuvj420p,setsar=1,showinfo,split=2\[e\]\[l\];\[e\]format=yuvj420p\[enc\];\[l\]extractplanes=y\[luma\]$/,
    );
    expect(extractFilterGraph({ ...base, format: 'webp' })).toContain('[e]format=yuv420p[enc]');
  });

  it('deinterlaces an interlaced stream before select, with its field order', () => {
    const g = extractFilterGraph({ ...base, probe: { ...probe, scan: { fieldOrder: 'bb', interlaced: true, source: 'idet' } } });
    expect(g).toMatch(/^\[0:1\]bwdif=mode=send_frame:parity=bff:deint=all,select=/);
  });

  it('tone-maps PQ through linear light with the probed peak', () => {
    const colour = {
      ...describeColour({ pix_fmt: 'yuv420p10le', color_space: 'bt2020nc', color_transfer: 'smpte2084', color_primaries: 'bt2020', color_range: 'tv' }, 2160),
      hdr: { toneMapPeak: 1.5 },
    };
    const g = extractFilterGraph({ ...base, probe: { ...probe, colour } });
    expect(g).toContain(
      'zscale=w=342:h=256:f=bicubic:min=2020_ncl:rin=limited:pin=2020:tin=smpte2084:t=linear:npl=100,format=gbrpf32le,zscale=p=709,tonemap=mobius:desat=0:peak=1.5,zscale=t=709:m=170m:r=full,format=yuvj420p',
    );
  });
});

describe('FfmpegLog', () => {
  const showinfo = (n: number, t: string) =>
    `[Parsed_showinfo_2 @ 0x5581d0b0e2c0] n:${String(n).padStart(4)} pts:  12800 pts_time:${t}  duration:    512 fmt:gray sar:1/1 s:342x256 i:P iskey:1 type:I\n`;

  it('computes timestamps exactly from pts and the logged time base (pts_time has 6 significant digits)', () => {
    const seen: Array<[number, number]> = [];
    const log = new FfmpegLog((n, t) => seen.push([n, t]));
    log.push('[Parsed_showinfo_3 @ 0x55] config in time_base: 1/1000, frame_rate: 25/1\n');
    log.push('[Parsed_showinfo_3 @ 0x55] n:   0 pts:12345660 pts_time:12345.7 duration:     40 fmt:yuvj420p\n');
    log.push('[Parsed_showinfo_3 @ 0x55] n:   1 pts:12345700 pts_time:12345.7 duration:     40 fmt:yuvj420p\n');
    expect(seen).toEqual([
      [0, 12345.66],
      [1, 12345.7],
    ]);
    expect(log.timeBase).toEqual({ num: 1, den: 1000 });
  });

  it('reports showinfo timestamps, also when a line straddles chunks', () => {
    const seen: Array<[number, number]> = [];
    const log = new FfmpegLog((n, t) => seen.push([n, t]));
    const text = showinfo(0, '0') + showinfo(1, '1.04') + showinfo(2, '-0.5');
    log.push(text.slice(0, 50));
    log.push(text.slice(50, 130));
    log.push(text.slice(130));
    expect(seen).toEqual([
      [0, 0],
      [1, 1.04],
      [2, -0.5],
    ]);
    expect(log.decodeErrorCount).toBe(0);
  });

  it('counts decoder complaints, keeps the first ones, ignores stream descriptions, and keeps the last line', () => {
    const log = new FfmpegLog(() => undefined, 2);
    log.push('[mjpeg @ 0x2] EOI missing, emulating\n'); // probing the input (cover art): not counted
    log.push('  Stream #0:0: Video: h264, invalid-looking but only a description\n');
    log.push('Stream mapping:\n');
    log.push('frame=   12 fps=0.0 q=4.0 size=N/A time=00:00:04.00 bitrate=N/A speed=7.9x    \r');
    for (let i = 0; i < 5; i++) log.push(`[h264 @ 0x1] error while decoding MB ${i} 3, bytestream -5\r`);
    log.push('[h264 @ 0x1] concealing 20 DC errors in P frame\nlast words\n');
    expect(log.decodeErrorCount).toBe(6);
    expect(log.decodeErrors).toEqual(['[h264 @ 0x1] error while decoding MB 0 3, bytestream -5', '[h264 @ 0x1] error while decoding MB 1 3, bytestream -5']);
    expect(log.lastLine).toBe('last words');
  });
});

describe('FramePairer', () => {
  const pairer = () => new FramePairer(new FixedSizeSplitter(3), new FixedSizeSplitter(2));

  it('gives a frame only once its image, its plane and its timestamp are all there, in order', () => {
    const p = pairer();
    p.pushEncoded(Buffer.from([1, 1, 1, 2]));
    expect(p.shift()).toBeUndefined();
    p.pushLuma(Buffer.from([9, 9, 8]));
    expect(p.paired).toBe(1);
    expect(p.waitingForTimestamp).toBe(0);
    expect(p.shift()).toBeUndefined();
    p.timestamp(1, 0.5); // out of order: frame 1's timestamp first
    expect(p.shift()).toBeUndefined();
    p.timestamp(0, 0);
    expect(p.shift()).toEqual({ n: 0, timestampS: 0, encoded: Buffer.from([1, 1, 1]), luma: Buffer.from([9, 9]) });
    expect(p.shift()).toBeUndefined(); // frame 1's image is incomplete
    p.pushEncoded(Buffer.from([2, 2]));
    p.pushLuma(Buffer.from([8]));
    expect(p.shift()).toEqual({ n: 1, timestampS: 0.5, encoded: Buffer.from([2, 2, 2]), luma: Buffer.from([8, 8]) });
    expect(p.paired).toBe(0);
    expect(p.waitingForTimestamp).toBeUndefined();
  });
});

describe('judgeFrame', () => {
  const naming = { videoSha256: sha, paramsHash: 'b'.repeat(16), ext: 'jpg' as const, width: 4, height: 4 };
  it('drops near-black and near-white planes, keeps others with a content-addressed record', () => {
    expect(judgeFrame(0, 1, Buffer.from('x'), Buffer.alloc(16, 3), naming, defaults)).toEqual({
      timestampS: 1,
      reason: 'nearBlack',
      quality: { brightness: 3, sharpness: 0, p01: 3, p99: 3 },
    });
    expect(judgeFrame(0, 1, Buffer.from('x'), Buffer.alloc(16, 250), naming, defaults)).toMatchObject({ timestampS: 1, reason: 'nearWhite' });
    const plane = Buffer.from([...Array(16).keys()].map((i) => (i % 2 ? 200 : 40)));
    expect(judgeFrame(0, 1, Buffer.from('x'), plane, naming, { ...defaults, minSharpness: 1e9 })).toMatchObject({ timestampS: 1, reason: 'blurred' });
    const kept = judgeFrame(7, 2.0000004, Buffer.from('jpeg bytes'), plane, naming, defaults);
    expect(kept.record).toMatchObject({ index: 7, timestampS: 2, width: 4, height: 4, bytes: 10, key: `frames/${sha}/${'b'.repeat(16)}/000002000.jpg` });
    expect(kept.record!.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(kept.record!.brightness).toBe(120);
  });
});

describe('UploadPool', () => {
  it('runs at most `limit` tasks at once; run() waits for a slot; settle() waits for all', async () => {
    const errors: unknown[] = [];
    const pool = new UploadPool(2, (e) => errors.push(e));
    let running = 0;
    let most = 0;
    let finished = 0;
    const task = () => async () => {
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
      finished++;
    };
    for (let i = 0; i < 7; i++) await pool.run(task());
    expect(pool.size).toBeLessThanOrEqual(2);
    await pool.settle();
    expect(finished).toBe(7);
    expect(most).toBe(2);
    expect(errors).toEqual([]);
  });

  it('a failed task goes to onError (once per failure) and rejects nothing else', async () => {
    const errors: unknown[] = [];
    const pool = new UploadPool(3, (e) => errors.push(e));
    await pool.run(async () => {
      throw new Error('put failed');
    });
    await pool.run(() => {
      throw new Error('thrown synchronously');
    });
    await pool.settle();
    expect(errors.map((e) => (e as Error).message).sort()).toEqual(['put failed', 'thrown synchronously']);
    expect(() => new UploadPool(0, () => undefined)).toThrow(RangeError);
  });
});

describe('CommitTracker', () => {
  const rec = (i: number): FrameRecord => ({ key: `k${i}`, index: i, timestampS: i, width: 2, height: 2, bytes: 1, sha256: 's', sharpness: 0, brightness: 0 });
  function tracker(o: { every?: number; intervalMs?: number; now?: () => number; start?: ExtractProgress; failWith?: Error } = {}) {
    const commits: Array<{ keys: string[]; progress: ExtractProgress }> = [];
    const errors: unknown[] = [];
    const t = new CommitTracker({
      start: o.start ?? emptyProgress(),
      frames: [],
      commit: async (frames, progress) => {
        if (o.failWith) throw o.failWith;
        commits.push({ keys: frames.map((f) => f.key), progress });
      },
      every: o.every ?? 2,
      intervalMs: o.intervalMs ?? 1e9,
      decodeErrorCount: () => 3,
      onError: (e) => errors.push(e),
      now: o.now,
    });
    return { t, commits, errors };
  }

  it('advances the prefix over consecutive done frames only, whatever order they finish in', async () => {
    const { t, commits } = tracker({ every: 100 });
    t.done(1, { timestampS: 1, record: rec(1) });
    t.done(2, { timestampS: 2, reason: 'nearBlack', quality: { brightness: 0, sharpness: 0, p01: 0, p99: 0 } });
    expect(t.prefix).toBe(0);
    t.done(0, { timestampS: 0, record: rec(0) });
    expect(t.prefix).toBe(3);
    expect(t.current.lastTimestampS).toBe(2);
    await t.flush();
    expect(commits).toEqual([
      { keys: ['k0', 'k1'], progress: { sampled: 3, frames: 2, lastTimestampS: 2, dropped: { nearBlack: 1, nearWhite: 0, blurred: 0 }, decodeErrorCount: 3 } },
    ]);
    expect(t.committed.map((f) => f.key)).toEqual(['k0', 'k1']);
  });

  it('commits every `every` frames, one commit at a time, and the rest on flush (an empty batch too)', async () => {
    const { t, commits } = tracker({ every: 2 });
    for (let i = 0; i < 5; i++) t.done(i, { timestampS: i, record: rec(i) });
    await t.settle();
    // 0,1 committed at once; 2..4 arrived while it ran, then one more commit of 2,3 (4 waits for the threshold).
    await t.flush();
    await t.flush();
    const all = commits.flatMap((c) => c.keys);
    expect(all).toEqual(['k0', 'k1', 'k2', 'k3', 'k4']);
    expect(commits.at(-1)!.keys).toEqual([]);
    expect(commits.at(-1)!.progress.sampled).toBe(5);
    for (let i = 1; i < commits.length; i++) expect(commits[i]!.progress.sampled).toBeGreaterThanOrEqual(commits[i - 1]!.progress.sampled);
  });

  it('commits after `intervalMs` even below `every`', async () => {
    let now = 0;
    const { t, commits } = tracker({ every: 100, intervalMs: 1000, now: () => now });
    t.done(0, { timestampS: 0, record: rec(0) });
    await t.settle();
    expect(commits).toHaveLength(0);
    now = 1500;
    t.done(1, { timestampS: 1, record: rec(1) });
    await t.settle();
    expect(commits.map((c) => c.keys)).toEqual([['k0', 'k1']]);
  });

  it('continues from a resumed prefix; a failed commit goes to onError; stop() ends commits', async () => {
    const start = { ...emptyProgress(), sampled: 10, frames: 4, lastTimestampS: 9 };
    const { t, errors } = tracker({ start, every: 1, failWith: new Error('db down') });
    t.done(10, { timestampS: 10, record: rec(10) });
    await t.settle();
    expect(errors.map((e) => (e as Error).message)).toEqual(['db down']);
    const ok = tracker({ start, every: 1 });
    ok.t.stop();
    ok.t.done(10, { timestampS: 10, record: rec(10) });
    await ok.t.settle();
    expect(ok.commits).toEqual([]);
    expect(ok.t.prefix).toBe(11);
  });
});
