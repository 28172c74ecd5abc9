/**
 * Backfill benchmark: a catalog of `--videos` (10,000) short real-format clips backfilled
 * by the backfill workflow on the real Temporal dev server, with a video worker in this
 * process running the real activities (S3, Postgres, ffmpeg).
 *
 * Usage: `npm run bench:backfill -- [--videos 10000] [--baseline 400] [--concurrency 4]
 * [--page-size 100] [--max-history 8000] [--seconds 1] [--size 128x72] [--keep] [--no-sweep]`
 * (infra/bench.sh installs, starts the services and migrates first).
 *
 * The clips are `--videos + --baseline` distinct MP4 files (H.264, `--seconds` long,
 * `--size`, 10 fps), made from six lavfi base clips, each copy with its own number
 * stamped into the container's metadata (`test/helpers/stamped-videos.ts`): every copy
 * has its own bytes and sha256, so its own catalog row, probe, frames and frame keys, and
 * ffmpeg decodes each one in full. What a copy shares with its base is pixels, which the
 * extraction never compares. Registering one file under many ids would not do: frames
 * are keyed by content, so every copy after the first would be "reused", not extracted.
 *
 * Measured, side by side in this process:
 * - (a) the backfill: wall time from start to result, videos and frames per second, runs
 *   in its continue-as-new chain and the largest history of any run (events, read back
 *   from the server), and every activity's time summed per type (a worker interceptor);
 *   orchestration overhead = wall / (summed activity time / concurrency): 1.00 would be
 *   the activities back to back in `concurrency` lanes with no time between them;
 * - (b) the baseline: the same `extractVideo` activity called directly (no Temporal) on
 *   `--baseline` other clips of the same kinds, `concurrency` at once: its videos per
 *   second, and (a)'s per-video throughput against it.
 * CPU seconds of this process (worker + client) and of the Temporal server during (a) say
 * where the time went. Ingest (catalog rows, uploads) is timed apart and is not in (a).
 * Everything the bench made (rows, objects) is deleted at the end unless `--keep`. A bench
 * that was killed cannot clean up after itself, and its thousands of labelled clips would
 * then be sampled as negatives by every later search: so the bench first removes what
 * earlier bench runs left (videos `bench-<8 hex>-<n>` / `benchbase-<8 hex>-<n>`, their
 * frames, and the runs of labels `bench-<8 hex>`), unless `--no-sweep`.
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
import { backfillWorkflow } from '../workflows/backfill';

const ROOT = path.resolve(__dirname, '..');

const program = new Command()
  .name('bench:backfill')
  .option('--videos <n>', 'videos in the backfill', (v) => Number(v), 10_000)
  .option('--baseline <n>', 'other videos extracted directly, without Temporal (0: skip)', (v) => Number(v), 400)
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
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-bench-backfill-'));
  const options = ExtractOptions.parse({});
  const ids: string[] = [];
  let workflowId: string | undefined;
  const load0 = os.loadavg();
  console.log(
    `bench:backfill  ${n(args.videos)} videos + ${n(args.baseline)} baseline, ${args.seconds} s ${args.size} H.264 clips, concurrency ${args.concurrency}, pages of ${args.pageSize}, history bound ${n(args.maxHistory)} events`,
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
    const files = await stampedVideos(path.join(tmp, 'v'), args.videos + args.baseline, {
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
    const baseCatalog = await writeCatalog(path.join(tmp, 'v/baseline.json'), files.slice(args.videos), {
      idPrefix: baseLabel,
      labels: [baseLabel],
      seconds: args.seconds,
      width: w,
      height: h,
    });
    const bytes = (await Promise.all(files.slice(0, 50).map((f) => fs.stat(f)))).reduce((a, st) => a + st.size, 0) / Math.min(50, files.length);
    console.log(`clips written: ${n(files.length)} (about ${(bytes / 1024).toFixed(0)} KB each) in ${s(performance.now() - t)}`);
    t = performance.now();
    const entries = [...(await readCatalogFile(catalog)), ...(await readCatalogFile(baseCatalog))];
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
    let baseline: { wallMs: number; perSecond: number } | undefined;
    if (args.baseline > 0) {
      const baseIds = entries.slice(args.videos).map((e) => e.id);
      t = performance.now();
      await pool(baseIds, args.concurrency, async (videoId) => {
        const r = (await new MockActivityEnvironment().run(activities.extractVideo, { videoId, options })) as VideoExtractSummary;
        if (r.reused) throw new Error(`baseline video ${videoId} was reused`);
      });
      const wallMs = performance.now() - t;
      baseline = { wallMs, perSecond: baseIds.length / (wallMs / 1000) };
      console.log(
        `(b) extractVideo called directly, ${args.concurrency} at once: ${n(baseIds.length)} videos in ${s(wallMs)}, ${baseline.perSecond.toFixed(2)} videos/s`,
      );
    }

    // ------------------------------------------------------ (a) the backfill ---
    const taskQueue = `bench-backfill-${nonce}`;
    const activityMs: Record<string, { n: number; ms: number }> = {};
    const nativeConnection = await NativeConnection.connect({ address: deps.config.TEMPORAL_ADDRESS });
    const worker = await Worker.create({
      connection: nativeConnection,
      namespace: deps.config.TEMPORAL_NAMESPACE,
      taskQueue,
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
    });
    const connection = await Connection.connect({ address: deps.config.TEMPORAL_ADDRESS });
    const client = new Client({ connection, namespace: deps.config.TEMPORAL_NAMESPACE });
    workflowId = `bench-backfill-${nonce}`;
    const temporalPid = servicePid('temporal');
    const cpu0 = process.cpuUsage();
    const tcpu0 = processCpuS(temporalPid);
    const pgCpu0 = processCpuS(servicePid('postgres'));
    const s3Cpu0 = processCpuS(servicePid('s3'));
    let result: BackfillResult;
    const started = performance.now();
    await worker.runUntil(async () => {
      const handle = await client.workflow.start(backfillWorkflow, {
        taskQueue,
        workflowId: workflowId!,
        args: [{ label, embed: false, concurrency: args.concurrency, pageSize: args.pageSize, maxHistoryEvents: args.maxHistory }],
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
    const r = result!;

    t = performance.now();
    const runs = await chainFromLatest(client, workflowId);
    const children = runs.reduce((a, x) => a + childIds(x.events).length, 0);
    const largest = Math.max(...runs.map((x) => x.length));
    console.log(`histories read back: ${runs.length} runs in ${s(performance.now() - t)}`);
    await connection.close();
    await nativeConnection.close();

    const extractMs = activityMs['extractVideo']?.ms ?? 0;
    const allMs = Object.values(activityMs).reduce((a, x) => a + x.ms, 0);
    const perSecond = r.total / (wallMs / 1000);
    console.log('');
    console.log(`(a) backfill of ${n(r.total)} videos: ${r.extracted} extracted, ${r.reused} reused, ${r.failed} failed, ${n(r.frames)} frames`);
    console.log(`    wall time                 ${s(wallMs)}  (${(wallMs / 60000).toFixed(1)} min)`);
    console.log(`    videos per second         ${perSecond.toFixed(2)}   frames per second ${(r.frames / (wallMs / 1000)).toFixed(1)}`);
    console.log(`    runs (continue-as-new)    ${runs.length}, history lengths ${runs.map((x) => x.length).join(', ')}`);
    console.log(`    largest history of a run  ${n(largest)} events (bound ${n(args.maxHistory)}; Temporal warns at 10,240)`);
    console.log(`    extract children          ${n(children)}`);
    for (const [type, a] of Object.entries(activityMs).sort((x, y) => y[1].ms - x[1].ms)) {
      console.log(`    activity ${type.padEnd(17)} ${n(a.n).padStart(7)} calls, ${s(a.ms).padStart(9)} summed, ${(a.ms / a.n).toFixed(0).padStart(5)} ms each`);
    }
    console.log(
      `    orchestration overhead    wall / (summed extractVideo time / ${args.concurrency}) = ${(wallMs / (extractMs / args.concurrency)).toFixed(3)}`,
    );
    console.log(
      `                              wall / (summed time of all activities / ${args.concurrency}) = ${(wallMs / (allMs / args.concurrency)).toFixed(3)}`,
    );
    if (baseline) {
      console.log(
        `    against (b)               ${perSecond.toFixed(2)} vs ${baseline.perSecond.toFixed(2)} videos/s: time per video ${(baseline.perSecond / perSecond).toFixed(3)}x the direct calls'`,
      );
    }
    console.log(
      `    CPU during (a)            this process (worker + client) ${ownCpuS.toFixed(0)} s, Temporal server ${temporalCpuS.toFixed(0)} s, PostgreSQL ${pgCpuS.toFixed(0)} s, S3 server ${s3CpuS.toFixed(0)} s; ffmpeg/ffprobe children not counted`,
    );
    console.log(
      `    per video                 Temporal server ${((temporalCpuS * 1000) / r.total).toFixed(1)} ms CPU, this process ${((ownCpuS * 1000) / r.total).toFixed(1)} ms CPU`,
    );
    const load1 = os.loadavg();
    console.log(`machine load average at the end: ${load1.map((x) => x.toFixed(2)).join(' ')}`);
  } finally {
    if (!args.keep) {
      const t = performance.now();
      await cleanup(deps, ids, options, workflowId ? [workflowId] : []).catch((err: unknown) => console.error(`cleanup failed: ${(err as Error).message}`));
      console.log(`cleaned up in ${s(performance.now() - t)} (rows, videos, frames, manifests; Temporal keeps the histories)`);
    }
    await fs.rm(tmp, { recursive: true, force: true });
    await deps.close();
    console.log(`bench:backfill took ${s(performance.now() - t0)} in all`);
  }
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
 * whose ids are `bench-<8 hex>-<n>` or `benchbase-<8 hex>-<n>` and the runs of labels
 * `bench-<8 hex>` (a backfill and its pages), as {@link cleanup} does.
 *
 * @returns how many videos and runs (backfills, not counting their pages) were removed.
 */
async function sweepEarlierRuns(deps: ReturnType<typeof createActivityDeps>, options: ExtractOptions): Promise<{ videos: number; runs: number }> {
  const ids = await repos.videos.idsMatching(deps.pool, '^bench(base)?-[0-9a-f]{8}-[0-9]+$');
  const runIds = await repos.runs.topLevelIdsOfLabelsMatching(deps.pool, '^bench-[0-9a-f]{8}$');
  for (let i = 0; i < Math.max(ids.length, runIds.length); i += 1000) {
    await cleanup(deps, ids.slice(i, i + 1000), options, runIds.slice(i, i + 1000));
  }
  return { videos: ids.length, runs: runIds.length };
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
