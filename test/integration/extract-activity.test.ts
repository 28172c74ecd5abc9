/**
 * The extractVideo activity against real S3 and PostgreSQL: resuming from heartbeat
 * details, cancellation (ffmpeg gone within two seconds, temporary files removed) and
 * bounded memory and temporary disk on a synthetic two-hour video. And extractVideos,
 * the batch: one broken file fails alone, a retried attempt (a worker killed mid-batch)
 * skips the videos it finished, cancellation mid-batch.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { MockActivityEnvironment } from '@temporalio/testing';
import { CancelledFailure } from '@temporalio/common';
import pino from 'pino';
import { createFrameActivities, type ExtractBatchHeartbeat, type ExtractHeartbeat } from '../../activities/frames/activities';
import { failureOf, type ExtractBatchResult, type VideoExtractSummary, type VideoFramesManifest } from '../../contracts';
import { ExtractOptions } from '../../contracts/inputs';
import { requireServices, uniqueSuffix, type Services } from '../helpers/services';
import { lavfiVideo, registerVideo } from '../helpers/videos';
import { processesMentioning } from '../helpers/processes';

jest.setTimeout(300_000);

let svc: Services;
let tmp: string;
const suffix = uniqueSuffix();
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  svc = await requireServices();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-extract-activity-'));
});
afterAll(async () => {
  for (const c of cleanups) await c().catch(() => undefined);
  await svc?.close();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

function activities() {
  return createFrameActivities({ config: svc.config, store: svc.store, pool: svc.pool, logger: pino({ level: 'silent' }) });
}

async function video(name: string, source: string): Promise<{ id: string; sha256: string }> {
  const file = lavfiVideo(path.join(tmp, name), source);
  const id = `${path.parse(name).name}-${suffix}`;
  const v = await registerVideo(svc, file, id);
  cleanups.push(v.remove);
  return { id, sha256: v.sha256 };
}

describe('extractVideo', () => {
  it('a retried attempt resumes after the last heartbeat: nothing uploaded twice, same frames as one clean run', async () => {
    const v = await video('resume.mp4', 'testsrc=size=320x240:rate=10:d=60');
    const options = ExtractOptions.parse({ fps: 2, maxFramesPerVideo: 1000, blackLevel: 0 });
    const acts = activities();
    const put = jest.spyOn(svc.store, 'put');

    // Attempt 1: cancelled once a heartbeat has committed 30 frames.
    const first = new MockActivityEnvironment();
    let last: ExtractHeartbeat | undefined;
    first.on('heartbeat', (d: ExtractHeartbeat) => {
      last = d;
      if (d.progress.sampled >= 30) first.cancel('CANCELLED');
    });
    await expect(first.run(acts.extractVideo, { videoId: v.id, options })).rejects.toBeInstanceOf(CancelledFailure);
    const uploadsBefore = put.mock.calls.filter(([k]) => k.startsWith(`frames/${v.sha256}/`) && k.endsWith('.jpg')).length;
    expect(last!.progress.sampled).toBeGreaterThanOrEqual(30);
    expect(last!.progress.sampled).toBeLessThan(120);
    const rows1 = await svc.pool.query('SELECT count(*)::int AS n FROM frames WHERE video_id = $1', [v.id]);
    expect(rows1.rows[0].n).toBeGreaterThanOrEqual(last!.progress.frames);

    // Attempt 2 starts from the last heartbeat's details, as Temporal hands them over.
    put.mockClear();
    const second = new MockActivityEnvironment({ heartbeatDetails: last });
    const beats: ExtractHeartbeat[] = [];
    second.on('heartbeat', (d: ExtractHeartbeat) => beats.push(d));
    const summary = (await second.run(acts.extractVideo, { videoId: v.id, options })) as VideoExtractSummary;
    const uploadsAfter = put.mock.calls.filter(([k]) => k.startsWith(`frames/${v.sha256}/`) && k.endsWith('.jpg')).length;
    put.mockRestore();

    expect(summary.frames).toBe(120);
    // Every frame uploaded exactly once across the two attempts.
    expect(uploadsBefore + uploadsAfter).toBe(120);
    // The resumed attempt never went back before the committed progress.
    expect(Math.min(...beats.map((b) => b.progress.sampled))).toBeGreaterThanOrEqual(last!.progress.sampled);

    const manifest = (await svc.store.getJson<VideoFramesManifest>(summary.manifestKey))!;
    expect(manifest.frames.map((f) => f.index)).toEqual([...Array(120).keys()]);
    expect(manifest.frames.map((f) => f.timestampS)).toEqual([...Array(120).keys()].map((i) => i / 2));
    const stored = await svc.store.list(`frames/${v.sha256}/${manifest.paramsHash}/`);
    expect(stored.filter((k) => !k.endsWith('manifest.json')).sort()).toEqual(manifest.frames.map((f) => f.key).sort());
    const rows = await svc.pool.query<{ s3_key: string }>('SELECT s3_key FROM frames WHERE video_id = $1 ORDER BY frame_index', [v.id]);
    expect(rows.rows.map((r) => r.s3_key)).toEqual(manifest.frames.map((f) => f.key));

    // The manifest in S3 outlives rows deleted under it: a later run reuses it and puts the rows back.
    await svc.pool.query('DELETE FROM frames WHERE video_id = $1 AND frame_index >= 100', [v.id]);
    const again = (await new MockActivityEnvironment().run(acts.extractVideo, { videoId: v.id, options })) as VideoExtractSummary;
    expect(again).toMatchObject({ reused: true, frames: 120 });
    const restored = await svc.pool.query<{ s3_key: string }>('SELECT s3_key FROM frames WHERE video_id = $1 ORDER BY frame_index', [v.id]);
    expect(restored.rows.map((r) => r.s3_key)).toEqual(manifest.frames.map((f) => f.key));
  });

  it('an unusable file fails naming the catalog file, never the temporary copy: fresh probe and cached verdict alike', async () => {
    const src = lavfiVideo(path.join(tmp, 'whole.mp4'), 'testsrc=size=160x120:rate=10:d=3');
    const file = path.join(tmp, 'cut short.mp4');
    await fs.writeFile(file, (await fs.readFile(src)).subarray(0, 2048));
    const id = `cut-short-${suffix}`;
    const v = await registerVideo(svc, file, id);
    cleanups.push(v.remove);
    await svc.pool.query('UPDATE videos SET probe = NULL WHERE sha256 = $1', [v.sha256]);
    for (const when of ['fresh', 'cached']) {
      const err = await new MockActivityEnvironment()
        .run(activities().extractVideo, { videoId: id, options: ExtractOptions.parse({}) })
        .catch((e: unknown) => e);
      expect({ when, ...failureOf(err) }).toMatchObject({ when, type: 'VideoDecodeError', message: expect.stringContaining(`"cut short.mp4 (video ${id})"`) });
    }
  });

  it('cancellation ends ffmpeg within two seconds and removes the temporary files', async () => {
    const v = await video('cancel.mp4', 'testsrc2=size=960x540:rate=30:d=60');
    const options = ExtractOptions.parse({ fps: 5, maxFramesPerVideo: 10_000 });
    const ownTmp = await fs.mkdtemp(path.join(tmp, 'cancel-tmp-'));
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = ownTmp;
    try {
      const env = new MockActivityEnvironment();
      let cancelledAt = 0;
      env.on('heartbeat', (d: ExtractHeartbeat) => {
        if (!cancelledAt && d.progress.sampled >= 5) {
          cancelledAt = Date.now();
          env.cancel('CANCELLED');
        }
      });
      const run = env.run(activities().extractVideo, { videoId: v.id, options });
      await expect(run).rejects.toBeInstanceOf(CancelledFailure);
      expect(cancelledAt).toBeGreaterThan(0);
      for (;;) {
        if ((await processesMentioning(ownTmp)).length === 0) break;
        expect(Date.now() - cancelledAt).toBeLessThan(2000);
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(Date.now() - cancelledAt).toBeLessThan(2000);
      expect(await fs.readdir(ownTmp)).toEqual([]);
    } finally {
      process.env.TMPDIR = saved;
    }
  });

  it('a two-hour 1 fps video: peak memory and temporary disk stay bounded (compared with a ten-minute one)', async () => {
    const run = async (name: string, seconds: number) => {
      const v = await video(name, `testsrc=size=160x120:rate=1:d=${seconds}`);
      const ownTmp = await fs.mkdtemp(path.join(tmp, 'mem-tmp-'));
      const options = ExtractOptions.parse({ fps: 1, maxFramesPerVideo: 100_000, shortSide: 120, blackLevel: 0 });
      const { stdout } = await promisify(execFile)(
        process.execPath,
        [require.resolve('tsx/cli'), path.join(__dirname, '../helpers/extract-child.ts'), JSON.stringify({ videoId: v.id, options })],
        // A JavaScript heap capped at 128 MB: holding the frames (7,200 JPEG + luma planes
        // ≈ 170 MB, raw RGB ≈ 400 MB) would run out of memory instead of finishing.
        { env: { ...process.env, TMPDIR: ownTmp, NODE_NO_WARNINGS: '1', NODE_OPTIONS: '--max-old-space-size=128' }, maxBuffer: 16 << 20 },
      );
      const out = JSON.parse(stdout.trim().split('\n').at(-1)!) as { summary: { frames: number }; peakRssBytes: number; maxTmpBytes: number };
      const videoBytes = (await fs.stat(path.join(tmp, name))).size;
      return { ...out, videoBytes };
    };
    const short = await run('ten-minutes.mp4', 600);
    const long = await run('two-hours.mp4', 2 * 3600);
    const MB = 1 << 20;
    console.log(
      `extract memory: 10 min video ${short.summary.frames} frames peak RSS ${(short.peakRssBytes / MB).toFixed(0)} MB, ` +
        `2 h video ${long.summary.frames} frames peak RSS ${(long.peakRssBytes / MB).toFixed(0)} MB; ` +
        `temp ${(long.maxTmpBytes / MB).toFixed(1)} MB for a ${(long.videoBytes / MB).toFixed(1)} MB video`,
    );
    expect(short.summary.frames).toBe(600);
    expect(long.summary.frames).toBe(7200);
    // 12x the frames: only the per-frame records grow (and the garbage collector's slack).
    expect(long.peakRssBytes - short.peakRssBytes).toBeLessThan(96 * MB);
    // Temporary disk: the downloaded video and nothing else.
    expect(long.maxTmpBytes).toBeLessThanOrEqual(long.videoBytes + MB);
  });
});

describe('extractVideos (a batch)', () => {
  const frameUploads = (put: jest.SpiedFunction<typeof svc.store.put>, sha256s: string[]) =>
    put.mock.calls.filter(([k]) => sha256s.some((h) => k.startsWith(`frames/${h}/`)) && !k.endsWith('.json')).length;

  it('one undecodable file fails alone; a retried attempt skips the finished videos and resumes the current one', async () => {
    const a = await video('batch-a.mp4', 'testsrc=size=160x120:rate=10:d=4');
    const b = await video('batch-b.mp4', 'testsrc2=size=160x120:rate=10:d=4');
    const c = await video('batch-c.mp4', 'smptebars=size=160x120:rate=10:d=40');
    // Content no other test of this file makes (the catalog refuses one sha256 under two ids).
    const src = lavfiVideo(path.join(tmp, 'batch-whole.mp4'), 'smptebars=size=176x144:rate=10:d=3');
    const brokenFile = path.join(tmp, 'batch broken.mp4');
    await fs.writeFile(brokenFile, (await fs.readFile(src)).subarray(0, 2048));
    const broken = `batch-broken-${suffix}`;
    const bv = await registerVideo(svc, brokenFile, broken);
    cleanups.push(bv.remove);
    const options = ExtractOptions.parse({ fps: 2, maxFramesPerVideo: 1000, blackLevel: 0 });
    const ids = [a.id, broken, b.id, c.id];
    const acts = activities();
    const put = jest.spyOn(svc.store, 'put');

    // Attempt 1: "killed" (cancelled) once it is 20 frames into the third good video, c.
    const first = new MockActivityEnvironment();
    let last: ExtractBatchHeartbeat | undefined;
    first.on('heartbeat', (d: ExtractBatchHeartbeat) => {
      last = d;
      if (d.current?.videoId === c.id && d.current.progress.progress.sampled >= 20) first.cancel('CANCELLED');
    });
    await expect(first.run(acts.extractVideos, { videoIds: ids, options })).rejects.toBeInstanceOf(CancelledFailure);
    // The heartbeat holds the finished videos (the broken one as a failure) and c's committed progress.
    expect(last!.done.map((i) => [i.videoId, i.ok])).toEqual([
      [a.id, true],
      [broken, false],
      [b.id, true],
    ]);
    expect(last!.current!.videoId).toBe(c.id);
    const before = frameUploads(put, [a.sha256, b.sha256, c.sha256]);
    put.mockClear();

    // Attempt 2, from the last heartbeat, as Temporal hands it over.
    const second = new MockActivityEnvironment({ heartbeatDetails: last, attempt: 2 });
    const result = (await second.run(acts.extractVideos, { videoIds: ids, options })) as ExtractBatchResult;
    const after = frameUploads(put, [a.sha256, b.sha256, c.sha256]);
    const reextracted = put.mock.calls.filter(([k]) => k.startsWith(`frames/${a.sha256}/`) || k.startsWith(`frames/${b.sha256}/`)).length;
    put.mockRestore();

    expect(result.resumed).toBe(3);
    expect(result.videos.map((i) => i.videoId)).toEqual(ids);
    expect(result.videos[1]).toMatchObject({ ok: false, failure: { type: 'VideoDecodeError', message: expect.stringContaining('batch broken.mp4') } });
    for (const i of [0, 2, 3]) expect(result.videos[i]).toMatchObject({ ok: true, summary: { reused: false } });
    const frames = result.videos.map((i) => (i.ok ? i.summary.frames : 0));
    expect(frames).toEqual([8, 0, 8, 80]);
    // Nothing of a or b touched again; every frame uploaded exactly once across the two attempts.
    expect(reextracted).toBe(0);
    expect(before + after).toBe(8 + 8 + 80);
    // The same manifests and rows as video-by-video extraction makes: a later extractVideo reuses them.
    const again = (await new MockActivityEnvironment().run(acts.extractVideo, { videoId: c.id, options })) as VideoExtractSummary;
    expect(again).toMatchObject({ reused: true, frames: 80 });
  });

  it('cancellation mid-batch ends ffmpeg within two seconds, removes the temporary files, and starts no further video', async () => {
    const first = await video('batch-cancel-1.mp4', 'testsrc=size=160x120:rate=12:d=2');
    const long = await video('batch-cancel-2.mp4', 'testsrc2=size=960x540:rate=25:d=60');
    const next = await video('batch-cancel-3.mp4', 'rgbtestsrc=size=160x120:rate=10:d=2');
    const options = ExtractOptions.parse({ fps: 5, maxFramesPerVideo: 10_000 });
    const ownTmp = await fs.mkdtemp(path.join(tmp, 'batch-cancel-tmp-'));
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = ownTmp;
    try {
      const env = new MockActivityEnvironment();
      let cancelledAt = 0;
      let last: ExtractBatchHeartbeat | undefined;
      env.on('heartbeat', (d: ExtractBatchHeartbeat) => {
        last = d;
        if (!cancelledAt && d.current?.videoId === long.id && d.current.progress.progress.sampled >= 5) {
          cancelledAt = Date.now();
          env.cancel('CANCELLED');
        }
      });
      await expect(env.run(activities().extractVideos, { videoIds: [first.id, long.id, next.id], options })).rejects.toBeInstanceOf(CancelledFailure);
      expect(cancelledAt).toBeGreaterThan(0);
      for (;;) {
        if ((await processesMentioning(ownTmp)).length === 0) break;
        expect(Date.now() - cancelledAt).toBeLessThan(2000);
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(await fs.readdir(ownTmp)).toEqual([]);
      expect(last!.done.map((i) => i.videoId)).toEqual([first.id]);
      const rows = await svc.pool.query('SELECT count(*)::int AS n FROM frames WHERE video_id = $1', [next.id]);
      expect(rows.rows[0].n).toBe(0);
    } finally {
      process.env.TMPDIR = saved;
    }
  });
});
