/**
 * Embed-step throughput against a bare batched ONNX Runtime forward pass of the same
 * model, side by side in one run:
 *
 * (a) the embed activity itself (`embedFrames` under MockActivityEnvironment): frames
 *     from S3 (fetched one batch ahead), the embedding thread (decode, pixel hash,
 *     resize + blur, ONNX Runtime forward), packs and index written back to S3;
 * (b) its compute path alone: JPEG bytes in memory -> the thread -> vectors back;
 * (c) the bare forward pass: `session.run` on the pixels decoded beforehand, same ONNX
 *     file opened with the same options (`openOnnxSession`), batch as (a) and (b), in this process.
 *
 * It also times the per-frame preprocessing on one core (decode + pixel hash, resize +
 * blur), which is where the gap goes on a machine whose cores the forward pass fills.
 *
 * Frames: as the extract step stores them (JPEG q85, short side 256), `--frames` of them
 * from the videos of ../shared/data (or the repository's samples).
 *
 * Usage: `npx tsx bench/embed.ts [--frames 192] [--batch 16] [--rounds 3] [--backbone efficientnet_lite0]`
 * (`npm run bench:embed -- [options]` installs, starts the services and migrates first).
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { Command } from 'commander';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { createEmbeddingActivities } from '../activities/embeddings';
import { stepManifestKey, type ExtractStepManifest, type VideoFramesManifest } from '../contracts';
import { requireBackboneFiles } from '../domain/backbone/backbones';
import { backboneOptionsFromConfig, BACKBONES, decodePixels, inputFromPixels, type BackboneName } from '../domain/backbone/model';
import { openOnnxSession } from '../domain/backbone/onnx';
import { EmbeddingThread } from '../domain/backbone/thread';
import { createActivityDeps } from '../lib/deps';
import { repos } from '../lib/repositories';

const SHARED = path.resolve(__dirname, '../../shared/data/videos');
const SAMPLES = path.resolve(__dirname, '../samples/videos');

/** `n` frames spread over the given videos, as the extract step stores them. */
function corpusFrames(n: number): Buffer[] {
  const dir = existsSync(SHARED) ? SHARED : SAMPLES;
  const videos = readdirSync(dir)
    .filter((f) => /\.(mp4|avi|mov|mkv)$/i.test(f) && !f.startsWith('traitsui'))
    .sort();
  const per = Math.ceil(n / videos.length);
  const out: Buffer[] = [];
  for (const v of videos) {
    const jpegs = execFileSync(
      'ffmpeg',
      ['-v', 'quiet', '-i', path.join(dir, v), '-vf', `fps=2,scale=-2:256`, '-frames:v', String(per), '-f', 'image2pipe', '-c:v', 'mjpeg', '-q:v', '4', '-'],
      { maxBuffer: 1 << 28 },
    );
    // Split the JPEG stream at SOI markers that follow an EOI.
    let start = 0;
    for (let i = 2; i < jpegs.length - 1; i++) {
      if (jpegs[i] === 0xff && jpegs[i + 1] === 0xd8 && jpegs[i - 2] === 0xff && jpegs[i - 1] === 0xd9) {
        out.push(jpegs.subarray(start, i));
        start = i;
      }
    }
    if (start < jpegs.length) out.push(jpegs.subarray(start));
  }
  return out.slice(0, n);
}

/** Median of timed runs (frames per second). */
async function fps(rounds: number, frames: number, run: () => Promise<unknown>): Promise<{ median: number; all: number[] }> {
  const all: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t = performance.now();
    await run();
    all.push(frames / ((performance.now() - t) / 1000));
  }
  const s = [...all].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)]!, all };
}

async function main(): Promise<void> {
  const o = new Command()
    .option('--frames <n>', 'frames', '192')
    .option('--batch <n>', 'images per forward pass', '16')
    .option('--rounds <n>', 'alternating rounds (median reported)', '3')
    .option('--backbone <name>', "efficientnet_lite0, efficientnet_lite1 or efficientnet_lite2 (default: the embed step's, REELSET_EMBED_BACKBONE)")
    .parse()
    .opts<{ frames: string; batch: string; rounds: string; backbone?: BackboneName }>();
  const batch = Number(o.batch);
  const rounds = Number(o.rounds);
  const deps = createActivityDeps('bench-embed', { ...process.env, REELSET_LOG_LEVEL: 'warn' });
  const spec = BACKBONES[o.backbone ?? deps.config.REELSET_EMBED_BACKBONE];
  const options = backboneOptionsFromConfig(deps.config);
  const frames = corpusFrames(Number(o.frames));
  console.log(
    `# Embed throughput: ${spec.name}, ${frames.length} frames (JPEG q85, short side 256), batch ${batch}, ${rounds} rounds alternating; ${os.cpus().length} cores, load ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );

  // (c) the bare forward pass: same file, same threads, pixels decoded beforehand.
  const found = requireBackboneFiles(spec, [deps.config.REELSET_MODELS_DIR]);
  // Opened as the extractors open theirs (same provider choice, threads and session options).
  const { session } = await openOnnxSession(found, { provider: options.ortProvider, threads: options.ortThreads });
  const s = spec.inputSize;
  const per = s * s * 3;
  const pixels = await Promise.all(frames.map(async (f) => inputFromPixels(await decodePixels(f), spec)));
  const inputs: Uint8Array[] = [];
  for (let i = 0; i < frames.length; i += batch) inputs.push(Buffer.concat(pixels.slice(i, i + batch)));
  const bare = async () => {
    for (const x of inputs) await session.run({ pixels: new ort.Tensor('uint8', x, [x.length / per, s, s, 3]) });
  };

  // (b) the compute path: the embedding thread on encoded frames.
  const thread = new EmbeddingThread(options);
  const info = await thread.model(spec.name);
  // As embedPacks calls it: two calls in flight, so the thread decodes one batch while the other runs.
  const path_ = async () => {
    const inFlight: Promise<unknown>[] = [];
    for (let i = 0; i < frames.length; i += batch) {
      inFlight.push(
        thread.embed(
          frames.slice(i, i + batch).map((f) => new Uint8Array(f)),
          batch,
          spec.name,
        ),
      );
      if (inFlight.length >= 2) await inFlight.shift();
    }
    await Promise.all(inFlight);
  };

  // (a) the activity: frames in S3 under a fake run whose extract manifest lists them.
  let activity: (() => Promise<unknown>) | undefined;
  if (spec.name === deps.config.REELSET_EMBED_BACKBONE) {
    const videoSha256 = createHash('sha256').update('bench-embed').digest('hex');
    const keys = frames.map((_, i) => `bench/embed/frames/${String(i).padStart(6, '0')}.jpg`);
    for (let i = 0; i < frames.length; i++) await deps.store.put(keys[i]!, frames[i]!, 'image/jpeg');
    const fmKey = 'bench/embed/frames/manifest.json';
    await deps.store.putJson(fmKey, {
      videoId: 'bench-embed',
      videoSha256,
      frames: frames.map((f, i) => ({ key: keys[i]!, index: i, sha256: createHash('sha256').update(f).digest('hex') })),
    } as unknown as VideoFramesManifest);
    const acts = createEmbeddingActivities({ ...deps, config: { ...deps.config } });
    let run = 0;
    activity = async () => {
      const wf = `bench-embed-${process.pid}-${run++}`;
      await repos.runs.recordStart(deps.pool, { workflowId: wf, kind: 'bench', label: 'bench', input: {} });
      await deps.store.putJson(stepManifestKey(wf, 'extract'), {
        videos: [{ videoId: 'bench-embed', manifestKey: fmKey, frames: frames.length }],
      } as unknown as ExtractStepManifest);
      // A new frames hash each round (the cache would answer otherwise): salt the content hashes.
      const fm = (await deps.store.getJson<VideoFramesManifest>(fmKey))!;
      await deps.store.putJson(fmKey, {
        ...fm,
        frames: fm.frames.map((f) => ({ ...f, sha256: createHash('sha256').update(`${f.sha256}:${wf}`).digest('hex') })),
      });
      await new MockActivityEnvironment().run(acts.embedFrames, { workflowId: wf, batchSize: batch });
    };
  }

  // Warm up, then alternate.
  await bare();
  await path_();
  if (activity) await activity();
  const results: Record<string, number[]> = { bare: [], path: [], activity: [] };
  for (let r = 0; r < rounds; r++) {
    results['bare']!.push((await fps(1, frames.length, bare)).median);
    results['path']!.push((await fps(1, frames.length, path_)).median);
    if (activity) results['activity']!.push((await fps(1, frames.length, activity)).median);
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const b = med(results['bare']!);
  const p = med(results['path']!);
  console.log(`\nbackend: ${info.backend} (${info.id.runtime}, ${options.ortThreads || 'default'} threads)\n`);
  console.log('| what | frames/s (median) | all rounds | ratio to (c) |\n| --- | --- | --- | --- |');
  if (activity) {
    const a = med(results['activity']!);
    console.log(
      `| (a) embed activity: S3 in and out, thread (decode, pixel hash, resize + blur, forward) | ${a.toFixed(1)} | ${results['activity']!.map((x) => x.toFixed(1)).join(', ')} | **${(a / b).toFixed(3)}** |`,
    );
  }
  console.log(
    `| (b) its compute path: JPEG bytes -> thread -> vectors | ${p.toFixed(1)} | ${results['path']!.map((x) => x.toFixed(1)).join(', ')} | **${(p / b).toFixed(3)}** |`,
  );
  console.log(
    `| (c) bare batched ONNX Runtime forward, pixels decoded beforehand | ${b.toFixed(1)} | ${results['bare']!.map((x) => x.toFixed(1)).join(', ')} | 1.000 |`,
  );

  // Where the gap goes: preprocessing per frame on one core (sharp with one thread).
  sharp.concurrency(1);
  const t0 = performance.now();
  const decoded = [];
  for (const f of frames) {
    const px = await decodePixels(f);
    createHash('sha256').update(px.data).digest('hex');
    decoded.push(px);
  }
  const t1 = performance.now();
  for (const px of decoded) await inputFromPixels(px, spec);
  const t2 = performance.now();
  const n = frames.length;
  console.log(
    `\npreprocessing on one core, ms/frame: decode + pixel hash ${((t1 - t0) / n).toFixed(2)}, resize + blur ${((t2 - t1) / n).toFixed(2)}; ` +
      `the bare forward pass takes ${(1000 / b).toFixed(2)} ms/frame of wall time on all cores`,
  );
  console.log(
    `target: (a) / (c) >= 0.9; load at the end ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  await thread.close();
  await session.release();
  await deps.store.deleteMany([...(await deps.store.list('bench/embed/')), ...(await deps.store.list('runs/bench-embed-'))]);
  await repos.runs.removeLike(deps.pool, 'bench-embed-%');
  await deps.close();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
