/**
 * Frame-extraction benchmark: the `extractVideo` activity as a worker runs it (S3
 * download, cached probe, ffmpeg decode + select + scale + colour conversion, quality
 * scores, JPEG encode, S3 upload, Postgres rows, manifest) against a bare ffmpeg command
 * making the same frames at the same size with the same filters to local disk, side by
 * side in one process.
 *
 * Two tables:
 * 1. every video of the shared corpus (or `samples/`), per video and overall;
 * 2. the stream, colour and scan filters on inputs built here with lavfi (PQ and HLG
 *    tone mapping, BT.2020 SDR, interlaced declared and detected, anamorphic, cover art
 *    first): the same (a)/(b) ratio, plus (b0): bare ffmpeg without the filter (the
 *    plain scale a naive extractor would use), so (b)/(b0) is the filter's own cost, and
 *    the first probe's time (ffprobe, end check and, where needed, the scan).
 *
 * Usage: `npm run bench:extract -- [--repeat 3] [--fps 1] [--max 60] [--catalog path] [--only corpus|filters]`
 * (infra/bench.sh installs, starts the services and migrates first).
 *
 * Ratios (a)/(b): 1.00 = as fast as bare ffmpeg; medians over `--repeat` runs whose
 * order alternates; then where the activity's time went, with (c): the same extraction
 * pipeline with a sink that stores nothing (no S3, no Postgres).
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { Command } from 'commander';
import { execFile } from 'node:child_process';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { catalogFromFolder, ingestCatalog, readCatalogFile, readTaxonomyFile, upsertTaxonomy, type ResolvedEntry } from '../activities/catalog';
import {
  createFrameActivities,
  describeColour,
  encoderArgs,
  extractFrames,
  extractionParamsHash,
  frameFilters,
  planSampling,
  probeVideo,
  targetSize,
} from '../activities/frames';
import type { VideoExtractSummary, VideoProbe } from '../contracts';
import { ExtractOptions } from '../contracts/inputs';
import { corpusPath } from '../infra/corpus';
import { createActivityDeps, type ActivityDeps } from '../lib/deps';
import { repos } from '../lib/repositories';

const ROOT = path.resolve(__dirname, '..');
const run = promisify(execFile);

const program = new Command()
  .name('bench:extract')
  .option('--repeat <n>', 'runs of each side per video (median reported)', (v) => Number(v), 3)
  .option('--fps <n>', 'frames per second sampled', (v) => Number(v), 1)
  .option('--max <n>', 'cap of frames per video', (v) => Number(v), 60)
  .option('--catalog <file>', 'catalog of the corpus', path.join(corpusPath('shared'), 'catalog.json'))
  .option('--only <table>', 'corpus or filters (default: both)')
  .parse();
const args = program.opts<{ repeat: number; fps: number; max: number; catalog: string; only?: 'corpus' | 'filters' }>();

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
const ff = (a: string[]) => run('ffmpeg', ['-nostdin', '-v', 'error', '-y', ...a], { maxBuffer: 16 << 20 });

/** Quality filters off: both sides keep exactly the frames ffmpeg selects. */
const options = ExtractOptions.parse({ fps: args.fps, maxFramesPerVideo: args.max, blackLevel: 0, whiteLevel: 255 });
const paramsHash = extractionParamsHash(options);
const encoder = encoderArgs(options);

/** The sides of one video, timed. */
function sides(deps: ActivityDeps, acts: ReturnType<typeof createFrameActivities>, tmp: string, entry: ResolvedEntry, sha: string, probe: VideoProbe) {
  const plan = planSampling(probe, options);
  const size = targetSize(probe.displayWidth, probe.displayHeight, options.shortSide);
  const s3Pid = s3ServerPid();
  const bareWith = async (p: Pick<VideoProbe, 'colour' | 'scan' | 'stream'>) => {
    const out = await fs.mkdtemp(path.join(tmp, 'ffmpeg-'));
    const vf = frameFilters({ probe: p, plan, size, seekS: 0, afterS: null });
    const t = performance.now();
    await ff([
      ...(plan.keyframesOnly ? ['-skip_frame', 'nokey'] : []),
      '-i',
      `file:${entry.absPath}`,
      '-map',
      `0:${p.stream.index}`,
      '-vf',
      vf,
      '-fps_mode',
      'passthrough',
      '-frames:v',
      String(plan.maxFrames),
      ...encoder,
      path.join(out, '%06d.jpg'),
    ]);
    const s = (performance.now() - t) / 1000;
    const frames = (await fs.readdir(out)).length;
    await fs.rm(out, { recursive: true, force: true });
    return { s, frames };
  };
  return {
    async activity() {
      await deps.store.deleteMany(await deps.store.list(`frames/${sha}/${paramsHash}/`));
      await repos.frames.removeExtraction(deps.pool, entry.id, paramsHash);
      const cpu0 = process.cpuUsage();
      const s3Cpu0 = processCpuS(s3Pid);
      const t = performance.now();
      const s = (await new MockActivityEnvironment().run(acts.extractVideo, { videoId: entry.id, options })) as VideoExtractSummary;
      const elapsed = (performance.now() - t) / 1000;
      const cpu = process.cpuUsage(cpu0);
      return { s: elapsed, frames: s.frames, timings: s.timingsMs!, cpuS: (cpu.user + cpu.system) / 1e6, s3CpuS: processCpuS(s3Pid) - s3Cpu0 };
    },
    bare: () => bareWith(probe),
    /** Bare ffmpeg without the stream, colour and scan handling: first video stream, plain scale, no deinterlacing. */
    plain: () =>
      bareWith({
        stream: probe.stream,
        colour: { ...describeColour({ pix_fmt: 'yuv420p' }, 480), conversion: 'swscale', matrix: 'smpte170m', range: 'limited' },
        scan: { fieldOrder: 'progressive', interlaced: false, source: 'assumed' },
      }),
    async pipeline() {
      const t = performance.now();
      await extractFrames(entry.absPath, sha, probe, options, { has: () => false, put: async () => undefined });
      return (performance.now() - t) / 1000;
    },
  };
}

/** Inputs for the filters table, built with lavfi (cached in the data directory between runs). */
async function filterInputs(dir: string): Promise<Array<{ file: string; what: string }>> {
  await fs.mkdir(dir, { recursive: true });
  const src = 'testsrc2=size=1280x720:rate=25:d=8';
  const hdr = (t: string) => `format=gbrp,zscale=tin=709:pin=709:rin=full:npl=100:t=${t}:p=2020:m=2020_ncl:r=limited,format=yuv420p10le`;
  const x265 = [
    '-c:v',
    'libx265',
    '-preset',
    'ultrafast',
    '-x265-params',
    'log-level=error',
    '-color_primaries',
    'bt2020',
    '-colorspace',
    'bt2020nc',
    '-color_range',
    'tv',
  ];
  // A picture moving 7 px a frame at 50 frames/s, woven into 25 interlaced frames a second: every vertical edge combs.
  const moving = 'testsrc2=size=720x576:rate=50:d=8,scroll=horizontal=0.01';
  const specs: Array<{ name: string; what: string; make: (file: string) => string[] }> = [
    {
      name: 'pq-1280x720.mkv',
      what: 'PQ 10-bit: zscale + tonemap',
      make: (f) => ['-f', 'lavfi', '-i', src, '-vf', hdr('smpte2084'), ...x265, '-color_trc', 'smpte2084', f],
    },
    {
      name: 'hlg-1280x720.mkv',
      what: 'HLG 10-bit: zscale + tonemap',
      make: (f) => ['-f', 'lavfi', '-i', src, '-vf', hdr('arib-std-b67'), ...x265, '-color_trc', 'arib-std-b67', f],
    },
    {
      name: 'bt2020-sdr-1280x720.mkv',
      what: 'BT.2020 SDR 10-bit: zscale',
      make: (f) => [
        '-f',
        'lavfi',
        '-i',
        src,
        '-vf',
        'format=gbrp,zscale=tin=709:pin=709:rin=full:t=2020_10:p=2020:m=2020_ncl:r=limited,format=yuv420p10le',
        ...x265,
        '-color_trc',
        'bt2020-10',
        f,
      ],
    },
    {
      name: 'interlaced-tff-720x576.mp4',
      what: 'interlaced, declared: bwdif',
      make: (f) => [
        '-f',
        'lavfi',
        '-i',
        `${moving},tinterlace=mode=interleave_top,setfield=tff`,
        '-c:v',
        'libx264',
        '-preset',
        'ultrafast',
        '-flags',
        '+ildct+ilme',
        '-top',
        '1',
        '-pix_fmt',
        'yuv420p',
        f,
      ],
    },
    {
      name: 'interlaced-undeclared-720x576.avi',
      what: 'interlaced, idet-detected: bwdif',
      make: (f) => ['-f', 'lavfi', '-i', `${moving},tinterlace=mode=interleave_top`, '-c:v', 'mpeg4', '-q:v', '2', '-pix_fmt', 'yuv420p', f],
    },
    {
      name: 'anamorphic-720x576.mp4',
      what: 'anamorphic SAR 64:45: display size',
      make: (f) => [
        '-f',
        'lavfi',
        '-i',
        'testsrc2=size=1024x576:rate=25:d=8',
        '-vf',
        'scale=720:576,setsar=64/45',
        '-c:v',
        'libx264',
        '-preset',
        'ultrafast',
        '-pix_fmt',
        'yuv420p',
        f,
      ],
    },
  ];
  const out: Array<{ file: string; what: string }> = [];
  for (const s of specs) {
    const file = path.join(dir, s.name);
    if (!existsSync(file)) await ff(s.make(file));
    out.push({ file, what: s.what });
  }
  const cover = path.join(ROOT, '../shared/data/troubles/cover-art-first.mp4');
  if (existsSync(cover)) {
    await fs.copyFile(cover, path.join(dir, 'cover-art-first.mp4'));
    out.push({ file: path.join(dir, 'cover-art-first.mp4'), what: 'cover art first: stream 0:1' });
  }
  return out;
}

async function main(): Promise<void> {
  const catalogFile = existsSync(args.catalog) ? args.catalog : path.join(ROOT, 'samples/catalog.json');
  const deps = createActivityDeps('bench-extract', { ...process.env, REELSET_LOG_LEVEL: 'warn' });
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-bench-'));
  try {
    await upsertTaxonomy(deps.pool, await readTaxonomyFile(path.join(ROOT, 'infra/taxonomy.json')));
    const acts = createFrameActivities(deps);
    const shaOf = async (id: string) => (await repos.videos.sha256Of(deps.pool, id))!;
    console.log(
      `uptime: ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')} (load averages, ${os.cpus().length} cores)`,
    );

    if (args.only !== 'filters') {
      const entries = await readCatalogFile(catalogFile);
      const report = await ingestCatalog(deps, entries);
      if (report.failed.length) throw new Error(`ingest failed: ${JSON.stringify(report.failed)}`);
      console.log(
        `\n(1) corpus ${catalogFile}: ${entries.length} videos; fps ${options.fps}, cap ${options.maxFramesPerVideo}, short side ${options.shortSide}, JPEG q${options.quality} (${encoder.join(' ')}); ${args.repeat} runs each, medians`,
      );
      console.log(
        `${'video'.padEnd(28)}${pad('frames', 7)}${pad('(a) s', 9)}${pad('(b) s', 9)}${pad('(a) fps', 9)}${pad('(b) fps', 9)}${pad('(a)/(b)', 9)}${pad('(c)/(b)', 9)}`,
      );
      let totalA = 0;
      let totalB = 0;
      let totalC = 0;
      let totalFrames = 0;
      const phases = { download: 0, probe: 0, extract: 0, manifest: 0 };
      let ownCpuS = 0;
      let s3CpuS = 0;
      for (const entry of entries) {
        const sha = await shaOf(entry.id);
        const probe = await probeVideo(entry.absPath);
        const side = sides(deps, acts, tmp, entry, sha, probe);
        await side.activity(); // caches the probe, as any later extraction of the video finds it
        const a: number[] = [];
        const b: number[] = [];
        const c: number[] = [];
        let framesA = 0;
        let framesB = 0;
        let timings = { download: 0, probe: 0, extract: 0, manifest: 0 };
        for (let r = 0; r < args.repeat; r++) {
          for (const which of r % 2 === 0 ? ['a', 'b'] : ['b', 'a']) {
            if (which === 'a') {
              const x = await side.activity();
              a.push(x.s);
              framesA = x.frames;
              timings = x.timings;
              ownCpuS += x.cpuS;
              s3CpuS += x.s3CpuS;
            } else {
              const x = await side.bare();
              b.push(x.s);
              framesB = x.frames;
            }
          }
          c.push(await side.pipeline());
        }
        if (framesA !== framesB) console.warn(`  ${entry.file}: activity stored ${framesA} frames, ffmpeg wrote ${framesB}`);
        const [ma, mb, mc] = [median(a), median(b), median(c)];
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
      const perPass = (x: number) => x / args.repeat;
      console.log(
        `during (a), per pass over the corpus: this process ${perPass(ownCpuS).toFixed(2)} s of CPU (${((1000 * perPass(ownCpuS)) / totalFrames).toFixed(1)} ms per stored frame: JavaScript, S3 client, pipes), ` +
          (s3ServerPid()
            ? `the local S3 server ${perPass(s3CpuS).toFixed(2)} s (${((1000 * perPass(s3CpuS)) / totalFrames).toFixed(1)} ms per stored frame), on the same cores as ffmpeg`
            : 'S3 server not local'),
      );
      const sum = Object.values(phases).reduce((x, y) => x + y, 0);
      console.log(
        `activity time by phase (last run of each video): ${Object.entries(phases)
          .map(([k, v]) => `${k} ${(v / 1000).toFixed(2)} s (${((100 * v) / sum).toFixed(0)}%)`)
          .join(', ')}`,
      );
    }

    if (args.only !== 'corpus') {
      const inputs = await filterInputs(path.join(process.env.REELSET_DATA_DIR ?? path.join(ROOT, '.data'), 'bench-inputs'));
      const dir = path.dirname(inputs[0]!.file);
      const entries = (await catalogFromFolder(dir)).map((e) => ({ ...e, id: `bench-${e.id}` }));
      const report = await ingestCatalog(deps, entries);
      if (report.failed.length) throw new Error(`ingest failed: ${JSON.stringify(report.failed)}`);
      console.log(
        `\n(2) stream, colour and scan filters on lavfi inputs (${dir}); (b0): bare ffmpeg with a plain scale instead of the filter; ${args.repeat} runs each, medians`,
      );
      console.log(
        `${'input'.padEnd(36)}${'what the probe found'.padEnd(44)}${pad('frames', 7)}${pad('probe s', 9)}${pad('(a) s', 8)}${pad('(b) s', 8)}${pad('(b0) s', 8)}${pad('(a)/(b)', 9)}${pad('(b)/(b0)', 10)}`,
      );
      for (const input of inputs) {
        const entry = entries.find((e) => e.absPath === input.file)!;
        const sha = await shaOf(entry.id);
        const t = performance.now();
        const probe = await probeVideo(input.file);
        const probeS = (performance.now() - t) / 1000;
        const side = sides(deps, acts, tmp, entry, sha, probe);
        await side.activity(); // caches the probe, as any later extraction of the video finds it
        const size = targetSize(probe.displayWidth, probe.displayHeight, options.shortSide);
        const found = [
          probe.colour.conversion === 'zscale+tonemap' ? `tonemap peak ${probe.colour.hdr?.toneMapPeak}` : probe.colour.conversion,
          probe.scan.interlaced ? `bwdif ${probe.scan.fieldOrder} (${probe.scan.source})` : '',
          probe.sampleAspectRatio !== '1:1' ? `SAR ${probe.sampleAspectRatio}` : '',
          `0:${probe.stream.index}`,
          `${size.width}x${size.height}`,
        ]
          .filter(Boolean)
          .join(', ');
        const a: number[] = [];
        const b: number[] = [];
        const b0: number[] = [];
        let frames = 0;
        for (let r = 0; r < args.repeat; r++) {
          for (const which of r % 2 === 0 ? ['a', 'b', 'p'] : ['p', 'b', 'a']) {
            if (which === 'a') {
              const x = await side.activity();
              a.push(x.s);
              frames = x.frames;
            } else if (which === 'b') b.push((await side.bare()).s);
            else b0.push((await side.plain()).s);
          }
        }
        const [ma, mb, mp] = [median(a), median(b), median(b0)];
        console.log(
          `${path.basename(input.file).slice(0, 35).padEnd(36)}${found.slice(0, 43).padEnd(44)}${pad(frames, 7)}${pad(probeS.toFixed(2), 9)}${pad(ma.toFixed(2), 8)}${pad(mb.toFixed(2), 8)}${pad(mp.toFixed(2), 8)}${pad((ma / mb).toFixed(2), 9)}${pad((mb / mp).toFixed(2), 10)}`,
        );
      }
    }
    console.log(
      `\nuptime: ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
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
