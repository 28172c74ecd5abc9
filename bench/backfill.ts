/**
 * Backfill benchmark: a catalog of `--videos` (10,000) short real-format clips, plus a
 * two-hour video and a broken file, backfilled by the backfill workflow on the real
 * Temporal dev server, with a video worker in this process running the real activities
 * (S3, Postgres, ffmpeg); then `--unbatched` other clips with batching off, side by side.
 *
 * Usage: `npm run bench:backfill -- [--videos 10000] [--baseline 400] [--unbatched 1000]
 * [--concurrency 4] [--page-size 100] [--max-history 8000] [--seconds 1] [--size 128x72]
 * [--keep] [--no-sweep]` (infra/bench.sh installs, starts the services and migrates first).
 *
 * The clips are distinct MP4 files (H.264, `--seconds` long, `--size`, 10 fps), made from
 * six lavfi base clips, each copy with its own number stamped into the container's
 * metadata (`test/helpers/stamped-videos.ts`): every copy has its own bytes and sha256, so
 * its own catalog row, probe, frames and frame keys, and ffmpeg decodes each one in full.
 * What a copy shares with its base is pixels, which the extraction never compares.
 * Registering one file under many ids would not do: frames are keyed by content, so every
 * copy after the first would be "reused", not extracted. The two-hour video (1 fps) gets
 * an activity of its own; the broken file (a cut copy whose catalog entry says 1 s) is
 * batched with clips and fails alone.
 *
 * Measured, side by side in this process:
 * - (b) the baseline: the same `extractVideo` activity called directly (no Temporal) on
 *   `--baseline` other clips, `concurrency` at once: videos per second, and this process's
 *   CPU per video;
 * - (a) the backfill with batching (`extractVideos` activities of short videos) and (c)
 *   with batching off (one extract child workflow per video), each: wall time, videos per
 *   second, runs in its continue-as-new chain and the largest history (read back from the
 *   server), every activity's time summed per type (a worker interceptor), wall / (summed
 *   extraction time / concurrency) (1.00: the extractions back to back in `concurrency`
 *   lanes), time per video against (b), and CPU per video of the Temporal server and of
 *   this process (worker + client), raw and net of their idle cost (sampled for 15 s with
 *   the worker polling and no work, before each run), and beyond (b)'s CPU per video.
 * Ingest (catalog rows, uploads) is timed apart. Everything the bench made (rows, objects)
 * is deleted at the end unless `--keep`; a killed bench's leftovers (videos
 * `bench|benchbase|benchoff-<8 hex>-<n>`, runs of labels `bench|benchoff-<8 hex>`) are
 * removed first unless `--no-sweep`.
 */
import { Client, Connection } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { Command } from 'commander';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createVideoActivities } from '../activities';
import { ingestCatalog, readCatalogFile } from '../activities/catalog';
import { extractionParamsHash } from '../activities/frames';
import { backfillProgressQuery, ExtractOptions, framesManifestKey, type BackfillResult, type VideoExtractSummary } from '../contracts';
import { createActivityDeps } from '../lib/deps';
import { repos } from '../lib/repositories';
import { chainFromLatest, childIds } from '../test/helpers/history';
import { stampedVideos, writeCatalog } from '../test/helpers/stamped-videos';
import { lavfiVideo } from '../test/helpers/videos';
import { backfillWorkflow } from '../workflows/backfill';

const ROOT = path.resolve(__dirname, '..');
/** Seconds the idle cost of a worker and the server is sampled for, before each measured backfill. */
const IDLE_S = 15;

const program = new Command()
  .name('bench:backfill')
  .option('--videos <n>', 'videos in the backfill', (v) => Number(v), 10_000)
  .option('--baseline <n>', 'other videos extracted directly, without Temporal (0: skip)', (v) => Number(v), 400)
  .option('--unbatched <n>', 'other videos backfilled with batching off, one child workflow each (0: skip)', (v) => Number(v), 1000)
  .option('--concurrency <n>', 'extractions at once, in both', (v) => Number(v), 4)
  .option('--page-size <n>', 'videos per page', (v) => Number(v), 100)
  .option('--max-history <n>', 'history bound of a run (events)', (v) => Number(v), 8000)
  .option('--seconds <n>', 'clip length', (v) => Number(v), 1)
  .option('--size <WxH>', 'clip frame size', '128x72')
  .option('--keep', 'keep the videos, frames and runs it made')
  .option('--no-sweep', 'do not first remove what earlier (killed or --keep) bench runs left')
  .parse();
const args = program.opts<{
  videos: number;
  baseline: number;
  unbatched: number;
  concurrency: number;
  pageSize: number;
  maxHistory: number;
  seconds: number;
  size: string;
  keep?: boolean;
  sweep: boolean;
}>();

/** CPU seconds (user + system) of a process, from /proc; 0 when it cannot be read. */
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

/** The pid of a local service started by infra/services.sh, when it runs on this machine. */
function servicePid(name: string): number | undefined {
  const file = path.join(process.env.REELSET_RUN_DIR ?? path.join(ROOT, '.data/run'), `${name}.pid`);
  return existsSync(file) ? Number(readFileSync(file, 'utf8').trim()) || undefined : undefined;
}

const n = (x: number) => x.toLocaleString('en-US');
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Run `fn` over items, `limit` at once. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

async function main(): Promise<void> {
  const t0 = performance.now();
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const deps = createActivityDeps('bench-backfill', { ...process.env, REELSET_LOG_LEVEL: 'warn' });
  const nonce = Date.now().toString(16).slice(-8);
  const label = `bench-${nonce}`;
  const baseLabel = `benchbase-${nonce}`;
  const offLabel = `benchoff-${nonce}`;
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-bench-backfill-'));
  const options = ExtractOptions.parse({});
  const ids: string[] = [];
  const workflowIds: string[] = [];
  const load0 = os.loadavg();
  console.log(
    `bench:backfill  ${n(args.videos)} videos (+ a two-hour video and a broken file) batched, ${n(args.unbatched)} with batching off, ${n(args.baseline)} baseline; ${args.seconds} s ${args.size} H.264 clips, concurrency ${args.concurrency}, pages of ${args.pageSize}, history bound ${n(args.maxHistory)} events`,
  );
  console.log(`machine: ${os.cpus().length} cores, load average ${load0.map((x) => x.toFixed(2)).join(' ')}`);
  try {
    let t = performance.now();
    if (args.sweep) {
      const swept = await sweepEarlierRuns(deps, options);
      if (swept.videos || swept.runs)
        console.log(`removed what earlier bench runs left: ${n(swept.videos)} videos, ${n(swept.runs)} runs, in ${s(performance.now() - t)}`);
    }
    // ---------------------------------------------------------------- the catalog ---
    t = performance.now();
    const [w, h] = args.size.split('x').map(Number) as [number, number];
    const files = await stampedVideos(path.join(tmp, 'v'), args.videos + args.baseline + args.unbatched, {
      seconds: args.seconds,
      size: args.size,
      rate: 10,
      prefix: `b${nonce}`,
      nonce,
    });
    const catalog = await writeCatalog(path.join(tmp, 'v/catalog.json'), files.slice(0, args.videos), {
      idPrefix: label,
      labels: [label],
      seconds: args.seconds,
      width: w,
      height: h,
    });
    const offCatalog = await writeCatalog(path.join(tmp, 'v/unbatched.json'), files.slice(args.videos + args.baseline), {
      idPrefix: offLabel,
      labels: [offLabel],
      seconds: args.seconds,
      width: w,
      height: h,
    });
    // In the backfill's catalog too: a two-hour video (an activity of its own) and a broken file (its
    // catalog entry says 1 s, so it is batched with the clips; it fails alone, the batch goes on).
    lavfiVideo(path.join(tmp, 'v/two-hours.mp4'), `testsrc=size=${args.size}:rate=1:d=7200`);
    const brokenFile = path.join(tmp, 'v/broken.mp4');
    await fs.writeFile(brokenFile, (await fs.readFile(files[0]!)).subarray(0, 1024));
    const extraCatalog = path.join(tmp, 'v/extra.json');
    await fs.writeFile(
      extraCatalog,
      JSON.stringify([
        { id: `${label}-9000001`, file: 'two-hours.mp4', labels: [label], video: { codec: 'h264', width: w, height: h, duration_s: 7200, has_audio: false } },
        {
          id: `${label}-9000002`,
          file: 'broken.mp4',
          labels: [label],
          video: { codec: 'h264', width: w, height: h, duration_s: args.seconds, has_audio: false },
        },
      ]),
    );
    const baseCatalog = await writeCatalog(path.join(tmp, 'v/baseline.json'), files.slice(args.videos, args.videos + args.baseline), {
      idPrefix: baseLabel,
      labels: [baseLabel],
      seconds: args.seconds,
      width: w,
      height: h,
    });
    const bytes = (await Promise.all(files.slice(0, 50).map((f) => fs.stat(f)))).reduce((a, st) => a + st.size, 0) / Math.min(50, files.length);
    console.log(`clips written: ${n(files.length)} (about ${(bytes / 1024).toFixed(0)} KB each) in ${s(performance.now() - t)}`);
    t = performance.now();
    const entries = [
      ...(await readCatalogFile(catalog)),
      ...(await readCatalogFile(extraCatalog)),
      ...(await readCatalogFile(baseCatalog)),
      ...(await readCatalogFile(offCatalog)),
    ];
    let failed = 0;
    await pool(entries, 8, async (e) => {
      const r = await ingestCatalog({ ...deps, ffprobePath: deps.config.FFPROBE_PATH }, [e]);
      failed += r.failed.length;
      ids.push(e.id);
    });
    if (failed) throw new Error(`${failed} clips failed to ingest`);
    console.log(`ingested (sha256, upload to videos/<sha256>, catalog rows; 8 at once): ${s(performance.now() - t)}`);

    // ------------------------------------------------ (b) baseline: no Temporal ---
    const activities = createVideoActivities(deps);
    let baseline: { wallMs: number; perSecond: number; cpuMsPerVideo: number } | undefined;
    if (args.baseline > 0) {
      const baseIds = entries.filter((e) => e.id.startsWith(`${baseLabel}-`)).map((e) => e.id);
      t = performance.now();
      const c0 = process.cpuUsage();
      await pool(baseIds, args.concurrency, async (videoId) => {
        const r = (await new MockActivityEnvironment().run(activities.extractVideo, { videoId, options })) as VideoExtractSummary;
        if (r.reused) throw new Error(`baseline video ${videoId} was reused`);
      });
      const wallMs = performance.now() - t;
      const c = process.cpuUsage(c0);
      baseline = { wallMs, perSecond: baseIds.length / (wallMs / 1000), cpuMsPerVideo: (c.user + c.system) / 1000 / baseIds.length };
      console.log(
        `(b) extractVideo called directly, ${args.concurrency} at once: ${n(baseIds.length)} videos in ${s(wallMs)}, ${baseline.perSecond.toFixed(2)} videos/s, ${baseline.cpuMsPerVideo.toFixed(1)} ms CPU of this process per video`,
      );
    }

    // ------------------------------------ (a) the backfill, batched; (c) batching off ---
    const batched = await measureBackfill(deps, activities, label, 'auto', `bench-backfill-${nonce}`);
    workflowIds.push(batched.workflowId);
    printRun('(a) backfill, batching auto', batched, baseline);
    let unbatched: Measured | undefined;
    if (args.unbatched > 0) {
      unbatched = await measureBackfill(deps, activities, offLabel, 'off', `bench-backfill-off-${nonce}`);
      workflowIds.push(unbatched.workflowId);
      printRun('(c) backfill, batching off (one child workflow per video)', unbatched, baseline);
    }
    console.log('');
    console.log('| | (a) batching auto | (c) batching off | goal |');
    console.log('| --- | --- | --- | --- |');
    const row = (name: string, f: (m: Measured) => string, goal = '') =>
      console.log(`| ${name} | ${f(batched)} | ${unbatched ? f(unbatched) : '-'} | ${goal} |`);
    row('videos', (m) => n(m.result.total));
    row('wall time', (m) => s(m.wallMs));
    row('videos per second', (m) => (m.result.total / (m.wallMs / 1000)).toFixed(2));
    row('wall / (summed extraction time / concurrency)', (m) => m.overhead.toFixed(3), '<= 1.10');
    if (baseline) row('time per video / direct calls', (m) => (baseline.perSecond / (m.result.total / (m.wallMs / 1000))).toFixed(3), '<= 1.10');
    row('Temporal server CPU per video', (m) => `${m.temporalMsPerVideo.toFixed(1)} ms`);
    row('worker CPU per video', (m) => `${m.ownMsPerVideo.toFixed(1)} ms`);
    if (baseline) {
      row("worker CPU per video beyond the direct calls'", (m) => `${(m.ownMsPerVideo - baseline.cpuMsPerVideo).toFixed(1)} ms`);
      row(
        'orchestration CPU per video (server + worker beyond direct)',
        (m) => `${(m.temporalMsPerVideo + m.ownMsPerVideo - baseline.cpuMsPerVideo).toFixed(1)} ms`,
        '<= 20 ms',
      );
      row(
        'the same, net of the idle cost (polling, server timers)',
        (m) => `${(m.temporalNetMsPerVideo + m.ownNetMsPerVideo - baseline.cpuMsPerVideo).toFixed(1)} ms`,
        '<= 20 ms',
      );
    }
    row('largest history of a run', (m) => `${n(m.largest)} events`, '<= 10,240');
    row('runs (continue-as-new)', (m) => String(m.runs));
    row('extract child workflows', (m) => n(m.children));
    row('extraction activities', (m) => n(m.extractCalls));
    row('failed videos', (m) => `${m.result.failed} (${[...new Set(m.result.failures.map((f) => f.type))].join(', ') || 'none'})`);
    const load1 = os.loadavg();
    console.log(`machine load average at the end: ${load1.map((x) => x.toFixed(2)).join(' ')}`);
  } finally {
    if (!args.keep) {
      const t = performance.now();
      await cleanup(deps, ids, options, workflowIds).catch((err: unknown) => console.error(`cleanup failed: ${(err as Error).message}`));
      console.log(`cleaned up in ${s(performance.now() - t)} (rows, videos, frames, manifests; Temporal keeps the histories)`);
    }
    await fs.rm(tmp, { recursive: true, force: true });
    await deps.close();
    console.log(`bench:backfill took ${s(performance.now() - t0)} in all`);
  }
}

/** What one measured backfill gives. */
interface Measured {
  workflowId: string;
  result: BackfillResult;
  wallMs: number;
  runs: number;
  largest: number;
  historyLengths: number[];
  children: number;
  extractCalls: number;
  activityMs: Record<string, { n: number; ms: number }>;
  /** wall / (summed extraction activity time / concurrency). */
  overhead: number;
  temporalMsPerVideo: number;
  ownMsPerVideo: number;
  /** Less the idle rate (CPU seconds per second with no work) times the wall time: the marginal cost of the videos. */
  temporalNetMsPerVideo: number;
  ownNetMsPerVideo: number;
  idle: { ownPerS: number; serverPerS: number };
  pgCpuS: number;
  s3CpuS: number;
}

/**
 * Backfill `label` on the real dev server with a video worker in this process (its own
 * task queue), timing every activity (a worker interceptor) and the CPU of this process
 * and of the Temporal server, PostgreSQL and the S3 server (from /proc) while it runs.
 */
async function measureBackfill(
  deps: ReturnType<typeof createActivityDeps>,
  activities: ReturnType<typeof createVideoActivities>,
  label: string,
  mode: 'auto' | 'off',
  workflowId: string,
): Promise<Measured> {
  const activityMs: Record<string, { n: number; ms: number }> = {};
  const nativeConnection = await NativeConnection.connect({ address: deps.config.TEMPORAL_ADDRESS });
  const workerOptions: Parameters<typeof Worker.create>[0] = {
    connection: nativeConnection,
    namespace: deps.config.TEMPORAL_NAMESPACE,
    taskQueue: workflowId,
    workflowsPath: require.resolve('../workflows'),
    activities,
    // The extractions, plus room for the page activities (plan, gather) beside them.
    maxConcurrentActivityTaskExecutions: args.concurrency + 2,
    maxHeartbeatThrottleInterval: '1 second',
    interceptors: {
      activity: [
        (ctx) => ({
          inbound: {
            execute: async (input, next) => {
              const started = performance.now();
              try {
                return await next(input);
              } finally {
                const a = (activityMs[ctx.info.activityType] ??= { n: 0, ms: 0 });
                a.n++;
                a.ms += performance.now() - started;
              }
            },
          },
        }),
      ],
    },
  };
  const worker = await Worker.create(workerOptions);
  const connection = await Connection.connect({ address: deps.config.TEMPORAL_ADDRESS });
  const client = new Client({ connection, namespace: deps.config.TEMPORAL_NAMESPACE });
  const temporalPid = servicePid('temporal');
  // The idle cost first: the worker polling and the server's own timers, with no work, for IDLE_S.
  const idle0 = { own: process.cpuUsage(), server: processCpuS(temporalPid) };
  await worker.runUntil(new Promise((r) => setTimeout(r, IDLE_S * 1000)));
  const idleOwn = process.cpuUsage(idle0.own);
  const idle = { ownPerS: (idleOwn.user + idleOwn.system) / 1e6 / IDLE_S, serverPerS: (processCpuS(temporalPid) - idle0.server) / IDLE_S };
  const worker2 = await Worker.create(workerOptions);
  const cpu0 = process.cpuUsage();
  const tcpu0 = processCpuS(temporalPid);
  const pgCpu0 = processCpuS(servicePid('postgres'));
  const s3Cpu0 = processCpuS(servicePid('s3'));
  let result: BackfillResult;
  const started = performance.now();
  console.log(`${workflowId}: backfill of ${label}, batching ${mode}`);
  await worker2.runUntil(async () => {
    const handle = await client.workflow.start(backfillWorkflow, {
      taskQueue: workflowId,
      workflowId,
      args: [{ label, embed: false, concurrency: args.concurrency, pageSize: args.pageSize, maxHistoryEvents: args.maxHistory, batching: { mode } }],
    });
    const progress = setInterval(() => {
      handle.query(backfillProgressQuery).then(
        (p) =>
          console.log(
            `  ${s(performance.now() - started).padStart(8)}  ${p.phase} ${n(p.done)}/${n(p.total)} videos, ${n(p.frames)} frames, run ${p.run} (history ${n(p.historyLength)} events)`,
          ),
        () => undefined,
      );
    }, 60_000);
    try {
      result = await handle.result();
    } finally {
      clearInterval(progress);
    }
  });
  const wallMs = performance.now() - started;
  const cpu = process.cpuUsage(cpu0);
  const ownCpuS = (cpu.user + cpu.system) / 1e6;
  const temporalCpuS = processCpuS(temporalPid) - tcpu0;
  const pgCpuS = processCpuS(servicePid('postgres')) - pgCpu0;
  const s3CpuS = processCpuS(servicePid('s3')) - s3Cpu0;
  const runs = await chainFromLatest(client, workflowId);
  await connection.close();
  await nativeConnection.close();
  const r = result!;
  const extractMs = (activityMs['extractVideos']?.ms ?? 0) + (activityMs['extractVideo']?.ms ?? 0);
  return {
    workflowId,
    result: r,
    wallMs,
    runs: runs.length,
    largest: Math.max(...runs.map((x) => x.length)),
    historyLengths: runs.map((x) => x.length),
    children: runs.reduce((a, x) => a + childIds(x.events).length, 0),
    extractCalls: (activityMs['extractVideos']?.n ?? 0) + (activityMs['extractVideo']?.n ?? 0),
    activityMs,
    overhead: wallMs / (extractMs / args.concurrency),
    temporalMsPerVideo: (temporalCpuS * 1000) / r.total,
    ownMsPerVideo: (ownCpuS * 1000) / r.total,
    temporalNetMsPerVideo: ((temporalCpuS - idle.serverPerS * (wallMs / 1000)) * 1000) / r.total,
    ownNetMsPerVideo: ((ownCpuS - idle.ownPerS * (wallMs / 1000)) * 1000) / r.total,
    idle,
    pgCpuS,
    s3CpuS,
  };
}

/** One measured backfill, in full. */
function printRun(title: string, m: Measured, baseline: { perSecond: number } | undefined): void {
  const r = m.result;
  const perSecond = r.total / (m.wallMs / 1000);
  console.log('');
  console.log(`${title}: ${n(r.total)} videos: ${n(r.extracted)} extracted, ${r.reused} reused, ${r.failed} failed, ${n(r.frames)} frames`);
  console.log(`    wall time                 ${s(m.wallMs)}  (${(m.wallMs / 60000).toFixed(1)} min)`);
  console.log(`    videos per second         ${perSecond.toFixed(2)}   frames per second ${(r.frames / (m.wallMs / 1000)).toFixed(1)}`);
  console.log(`    runs (continue-as-new)    ${m.runs}, history lengths ${m.historyLengths.join(', ')}`);
  console.log(`    largest history of a run  ${n(m.largest)} events (bound ${n(args.maxHistory)}; Temporal warns at 10,240)`);
  console.log(`    extract children          ${n(m.children)}`);
  for (const [type, a] of Object.entries(m.activityMs).sort((x, y) => y[1].ms - x[1].ms)) {
    console.log(`    activity ${type.padEnd(17)} ${n(a.n).padStart(7)} calls, ${s(a.ms).padStart(9)} summed, ${(a.ms / a.n).toFixed(0).padStart(6)} ms each`);
  }
  console.log(`    orchestration overhead    wall / (summed extraction time / ${args.concurrency}) = ${m.overhead.toFixed(3)}`);
  if (baseline) console.log(`    against (b)               time per video ${(baseline.perSecond / perSecond).toFixed(3)}x the direct calls'`);
  console.log(
    `    CPU per video             Temporal server ${m.temporalMsPerVideo.toFixed(1)} ms, this process (worker + client) ${m.ownMsPerVideo.toFixed(1)} ms; PostgreSQL ${m.pgCpuS.toFixed(0)} s, S3 server ${m.s3CpuS.toFixed(0)} s in all; ffmpeg/ffprobe children not counted`,
  );
  console.log(
    `    idle cost (no work, ${IDLE_S} s)  this process ${(m.idle.ownPerS * 1000).toFixed(1)} ms/s, Temporal server ${(m.idle.serverPerS * 1000).toFixed(1)} ms/s; net of it per video: server ${m.temporalNetMsPerVideo.toFixed(1)} ms, this process ${m.ownNetMsPerVideo.toFixed(1)} ms`,
  );
  for (const f of r.failures.slice(0, 3)) console.log(`    failed: ${f.videoId}: ${f.type}: ${f.message.slice(0, 120)}`);
}

/**
 * Delete what the bench made: frames (objects, manifests, rows), videos (objects, rows),
 * the backfill runs (rows, their pages' rows, and every manifest under `runs/<id>`).
 */
async function cleanup(deps: ReturnType<typeof createActivityDeps>, ids: string[], options: ExtractOptions, workflowIds: string[]): Promise<void> {
  const paramsHash = extractionParamsHash(options);
  const videos = await repos.videos.contentOf(deps.pool, ids);
  const frames = await repos.frames.keysOfVideos(deps.pool, ids);
  const keys = [...frames, ...videos.flatMap((v) => [v.s3_key, framesManifestKey(v.sha256, paramsHash)])];
  for (const id of workflowIds) keys.push(...(await deps.store.list(`runs/${id}`)));
  await deps.store.deleteMany(keys);
  if (workflowIds.length) await repos.runs.removeWithParts(deps.pool, workflowIds);
  await repos.videos.remove(deps.pool, ids);
}

/**
 * Remove what earlier bench runs left (a killed bench never reaches its clean-up): videos
 * whose ids are `bench-<8 hex>-<n>`, `benchbase-<8 hex>-<n>` or `benchoff-<8 hex>-<n>` and the
 * runs of labels `bench-<8 hex>` and `benchoff-<8 hex>` (a backfill and its pages), as
 * {@link cleanup} does.
 *
 * @returns how many videos and runs (backfills, not counting their pages) were removed.
 */
async function sweepEarlierRuns(deps: ReturnType<typeof createActivityDeps>, options: ExtractOptions): Promise<{ videos: number; runs: number }> {
  const ids = await repos.videos.idsMatching(deps.pool, '^bench(base|off)?-[0-9a-f]{8}-[0-9]+$');
  const runIds = await repos.runs.topLevelIdsOfLabelsMatching(deps.pool, '^bench(off)?-[0-9a-f]{8}$');
  for (let i = 0; i < Math.max(ids.length, runIds.length); i += 1000) {
    await cleanup(deps, ids.slice(i, i + 1000), options, runIds.slice(i, i + 1000));
  }
  return { videos: ids.length, runs: runIds.length };
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
