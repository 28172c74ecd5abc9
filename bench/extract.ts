/**
 * Frame-extraction benchmark: the `extractVideo` activity as a worker runs it (S3
 * download, probe and truncation check, ffmpeg decode + select + scale, quality scores,
 * JPEG encode, S3 upload, Postgres rows, manifest) against a bare ffmpeg command making
 * the same frames at the same size to local disk, side by side in one process, on
 * every video of the shared corpus.
 *
 * Usage: `npm run bench:extract -- [--repeat 3] [--fps 1] [--max 60] [--catalog path]`
 * (infra/bench.sh installs, starts the services and migrates first).
 *
 * Prints per video and overall: frames, seconds and frames per second of each, and the
 * time ratio (a)/(b) (1.00 = as fast as bare ffmpeg), medians over `--repeat` runs
 * whose order alternates; then where the activity's time went, with (c): the same
 * extraction pipeline with a sink that stores nothing (no S3, no Postgres), which
 * separates the pipeline's own cost from the cost of the uploads.
 */
import { corpusPath } from '../infra/corpus';
import { execFile } from 'node:child_process';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { MockActivityEnvironment } from '@temporalio/testing';
import { Command } from 'commander';
import { readCatalogFile, readTaxonomyFile } from '../activities/catalog/catalog-file';
import { ingestCatalog, upsertTaxonomy } from '../activities/catalog/ingest';
import { createFrameActivities } from '../activities/frames/activities';
import type { VideoExtractSummary } from '../contracts';
import { encoderArgs, extractFrames, extractionParamsHash, planSampling, selectExpression, targetSize } from '../activities/frames/extract';
import { probeVideo } from '../activities/frames/probe';
import { ExtractOptions } from '../contracts/inputs';
import { createActivityDeps } from '../lib/deps';

const ROOT = path.resolve(__dirname, '..');
const run = promisify(execFile);

const program = new Command()
  .name('bench:extract')
  .option('--repeat <n>', 'runs of each side per video (median reported)', (v) => Number(v), 3)
  .option('--fps <n>', 'frames per second sampled', (v) => Number(v), 1)
  .option('--max <n>', 'cap of frames per video', (v) => Number(v), 60)
  .option('--catalog <file>', 'catalog of the corpus', path.join(corpusPath('shared'), 'catalog.json'))
  .parse();
const args = program.opts<{ repeat: number; fps: number; max: number; catalog: string }>();

/** CPU seconds (user + system) a process has used, from /proc; 0 when it cannot be read. */
function processCpuS(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** The local S3 server's pid (infra/services.sh writes it), when it runs on this machine. */
function s3ServerPid(): number | undefined {
  const file = path.join(process.env.REELSET_RUN_DIR ?? path.join(ROOT, '.data/run'), 's3.pid');
  return existsSync(file) ? Number(readFileSync(file, 'utf8').trim()) || undefined : undefined;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const pad = (s: string | number, n: number) => String(s).padStart(n);

async function main(): Promise<void> {
  const catalogFile = existsSync(args.catalog) ? args.catalog : path.join(ROOT, 'samples/catalog.json');
  const deps = createActivityDeps('bench-extract', { ...process.env, REELSET_LOG_LEVEL: 'warn' });
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-bench-'));
  try {
    await upsertTaxonomy(deps.pool, await readTaxonomyFile(path.join(ROOT, 'infra/taxonomy.json')));
    const entries = await readCatalogFile(catalogFile);
    const report = await ingestCatalog(deps, entries);
    if (report.failed.length) throw new Error(`ingest failed: ${JSON.stringify(report.failed)}`);

    // Quality filters off: both sides keep exactly the frames ffmpeg selects.
    const options = ExtractOptions.parse({ fps: args.fps, maxFramesPerVideo: args.max, blackLevel: 0, whiteLevel: 255 });
    const paramsHash = extractionParamsHash(options);
    const acts = createFrameActivities(deps);
    // The same encoder and settings as the activity (ffmpeg's mjpeg at the mapped -q:v).
    const encoder = encoderArgs(options);

    console.log(`corpus ${catalogFile}: ${entries.length} videos; fps ${options.fps}, cap ${options.maxFramesPerVideo}, short side ${options.shortSide}, JPEG q${options.quality} (${encoder.join(' ')}); ${args.repeat} runs each, medians`);
    console.log(`${'video'.padEnd(28)}${pad('frames', 7)}${pad('(a) s', 9)}${pad('(b) s', 9)}${pad('(a) fps', 9)}${pad('(b) fps', 9)}${pad('(a)/(b)', 9)}${pad('(c)/(b)', 9)}`);
    let totalA = 0;
    let totalB = 0;
    let totalC = 0;
    let totalFrames = 0;
    const phases = { download: 0, probe: 0, extract: 0, manifest: 0 };
    const s3Pid = s3ServerPid();
    let s3CpuS = 0;
    let ownCpuS = 0;
    for (const entry of entries) {
      const row = await deps.pool.query<{ sha256: string }>('SELECT sha256 FROM videos WHERE id = $1', [entry.id]);
      const sha = row.rows[0]!.sha256;
      const probe = await probeVideo(entry.absPath);
      const plan = planSampling(probe, options);
      const size = targetSize(probe.displayWidth, probe.displayHeight, options.shortSide);
      const vf = `select='${selectExpression(plan)}',scale=${size.width}:${size.height}:flags=bicubic,setsar=1`;

      const activity = async () => {
        const prefix = `frames/${sha}/${paramsHash}/`;
        await deps.store.deleteMany(await deps.store.list(prefix));
        await deps.pool.query('DELETE FROM frames WHERE video_id = $1 AND params_hash = $2', [entry.id, paramsHash]);
        const cpu0 = process.cpuUsage();
        const s3Cpu0 = processCpuS(s3Pid);
        const t = performance.now();
        const s = (await new MockActivityEnvironment().run(acts.extractVideo, { videoId: entry.id, options })) as VideoExtractSummary;
        const elapsed = (performance.now() - t) / 1000;
        const cpu = process.cpuUsage(cpu0);
        ownCpuS += (cpu.user + cpu.system) / 1e6;
        s3CpuS += processCpuS(s3Pid) - s3Cpu0;
        return { s: elapsed, frames: s.frames, timings: s.timingsMs! };
      };
      const bare = async () => {
        const out = await fs.mkdtemp(path.join(tmp, 'ffmpeg-'));
        const input = plan.keyframesOnly ? ['-skip_frame', 'nokey'] : [];
        const t = performance.now();
        await run('ffmpeg', ['-nostdin', '-v', 'error', ...input, '-i', entry.absPath, '-map', '0:v:0', '-vf', vf, '-fps_mode', 'passthrough', '-frames:v', String(plan.maxFrames), ...encoder, path.join(out, '%06d.jpg')]);
        const s = (performance.now() - t) / 1000;
        const frames = (await fs.readdir(out)).length;
        await fs.rm(out, { recursive: true, force: true });
        return { s, frames };
      };

      const pipelineOnly = async () => {
        const t = performance.now();
        await extractFrames(entry.absPath, sha, probe, options, { has: () => false, put: async () => undefined });
        return (performance.now() - t) / 1000;
      };

      const a: number[] = [];
      const b: number[] = [];
      const c: number[] = [];
      let framesA = 0;
      let framesB = 0;
      let timings = { download: 0, probe: 0, extract: 0, manifest: 0 };
      for (let r = 0; r < args.repeat; r++) {
        const order = r % 2 === 0 ? ['a', 'b'] : ['b', 'a'];
        for (const side of order) {
          if (side === 'a') {
            const x = await activity();
            a.push(x.s);
            framesA = x.frames;
            timings = x.timings;
          } else {
            const x = await bare();
            b.push(x.s);
            framesB = x.frames;
          }
        }
        c.push(await pipelineOnly());
      }
      if (framesA !== framesB) console.warn(`  ${entry.file}: activity stored ${framesA} frames, ffmpeg wrote ${framesB}`);
      const ma = median(a);
      const mb = median(b);
      const mc = median(c);
      totalA += ma;
      totalB += mb;
      totalC += mc;
      totalFrames += framesA;
      for (const k of Object.keys(phases) as Array<keyof typeof phases>) phases[k] += timings[k];
      console.log(
        `${entry.file.slice(0, 27).padEnd(28)}${pad(framesA, 7)}${pad(ma.toFixed(3), 9)}${pad(mb.toFixed(3), 9)}${pad((framesA / ma).toFixed(1), 9)}${pad((framesB / mb).toFixed(1), 9)}${pad((ma / mb).toFixed(2), 9)}${pad((mc / mb).toFixed(2), 9)}`,
      );
    }
    console.log(
      `${'overall'.padEnd(28)}${pad(totalFrames, 7)}${pad(totalA.toFixed(3), 9)}${pad(totalB.toFixed(3), 9)}${pad((totalFrames / totalA).toFixed(1), 9)}${pad((totalFrames / totalB).toFixed(1), 9)}${pad((totalA / totalB).toFixed(2), 9)}${pad((totalC / totalB).toFixed(2), 9)}`,
    );
    console.log(
      `during (a), per pass over the corpus: this process ${(ownCpuS / args.repeat).toFixed(2)} s of CPU (JavaScript, S3 client, pipes), ` +
        (s3Pid
          ? `the local S3 server ${(s3CpuS / args.repeat).toFixed(2)} s (${((1000 * s3CpuS) / args.repeat / totalFrames).toFixed(1)} ms per stored frame), on the same cores as ffmpeg`
          : 'S3 server not local'),
    );
    const sum = Object.values(phases).reduce((x, y) => x + y, 0);
    console.log(
      `activity time by phase (last run of each video): ` +
        Object.entries(phases)
          .map(([k, v]) => `${k} ${(v / 1000).toFixed(2)} s (${((100 * v) / sum).toFixed(0)}%)`)
          .join(', '),
    );
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
    await deps.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
