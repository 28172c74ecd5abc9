/**
 * What a nightly retrain costs when nothing changed, against the real services (Temporal
 * dev server, PostgreSQL, the S3 server), side by side in one process, alternating:
 *
 *   (a) `retrainWorkflow` for a label with nothing new (the no-op: its plan activity);
 *   (b) the baseline: a workflow that runs one activity doing nothing (Temporal's floor);
 *   (c) the same retrain forced (`force: true`): dataset, teacher, student, evaluation,
 *       publish and report for the same tiny label, i.e. what the no-op saves.
 *
 * For each: median wall time from start to result as a client sees it, the activities the
 * workflow scheduled, its history events; ratios to (b). Then (a) again after the forced
 * retrains grew the label's runs, to show the plan does not grow with history.
 *
 * Setup: a label of its own on a tiny lavfi catalog (5 videos of 3 s), one new-category run
 * so the label has a published model; workers in this process on queues of their own.
 *
 * Usage: `npx tsx bench/retrain-noop.ts [--repeat 9] [--forced 3]`
 * (`npm run bench:retrain` installs, starts the services and migrates first).
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createTrainingActivities, createVideoActivities } from '../activities';
import type { NewCategoryRequest, RetrainResult } from '../contracts';
import { createActivityDeps } from '../lib/deps';
import { requireServices, uniqueSuffix } from '../test/helpers/services';
import { tinyCatalog } from '../test/helpers/tiny-catalog';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? Number(process.argv[i + 1]) : fallback;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

interface Sample {
  ms: number;
  activities: number;
  events: number;
}

async function main(): Promise<void> {
  const repeat = arg('repeat', 9);
  const forced = arg('forced', 3);
  const svc = await requireServices();
  const suffix = uniqueSuffix();
  const label = `bench-rt-${suffix}`.slice(0, 40);
  const video = `bench-rt-video-${suffix}`;
  const gpuQ = `bench-rt-gpu-${suffix}`;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-bench-retrain-'));
  const catalog = await tinyCatalog(svc, label, dir);
  const deps = createActivityDeps('bench-retrain', { ...process.env, REELSET_LOG_LEVEL: 'warn' });
  const native = await NativeConnection.connect({ address: svc.config.TEMPORAL_ADDRESS });
  const connection = await Connection.connect({ address: svc.config.TEMPORAL_ADDRESS });
  const client = new Client({ connection, namespace: svc.config.TEMPORAL_NAMESPACE });
  const videoWorker = await Worker.create({
    connection: native,
    namespace: svc.config.TEMPORAL_NAMESPACE,
    taskQueue: video,
    workflowsPath: require.resolve('./workflows'),
    activities: { ...createVideoActivities(deps), benchNoop: async () => undefined },
  });
  const gpuWorker = await Worker.create({
    connection: native,
    namespace: svc.config.TEMPORAL_NAMESPACE,
    taskQueue: gpuQ,
    activities: createTrainingActivities(deps),
    maxConcurrentActivityTaskExecutions: 1,
  });

  try {
    await videoWorker.runUntil(
      gpuWorker.runUntil(async () => {
        const request: NewCategoryRequest = {
          label,
          maxNegativeVideos: 2,
          extract: { mode: 'count', count: 4 },
          validationFraction: 0.34,
          teacher: { epochs: 3, cutmixPerFrame: 0 },
          student: { epochsFactor: 1 },
          gpuTaskQueue: gpuQ,
          // Weak labels: nobody labels in a benchmark (and its retrains take the same mode).
          labeling: { mode: 'weak' },
        };
        const t0 = Date.now();
        await client.workflow.execute('newCategoryWorkflow', { taskQueue: video, workflowId: `${label}-nc`, args: [request] });
        console.log(`setup: new-category for ${label} on 5 lavfi videos in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

        let n = 0;
        const events = async (id: string) => ((await client.workflow.getHandle(id).fetchHistory()).events ?? []).length;
        const noop = async (): Promise<Sample> => {
          const id = `${label}-noop-${n++}`;
          const t = performance.now();
          const r = (await client.workflow.execute('retrainWorkflow', { taskQueue: video, workflowId: id, args: [{ label }] })) as RetrainResult;
          const ms = performance.now() - t;
          if (r.outcome !== 'unchanged') throw new Error(`expected a no-op, got ${r.outcome}: ${r.reasons.join('; ')}`);
          return { ms, activities: r.cost.activities, events: await events(id) };
        };
        const baseline = async (): Promise<Sample> => {
          const id = `${label}-base-${n++}`;
          const t = performance.now();
          await client.workflow.execute('oneActivityWorkflow', { taskQueue: video, workflowId: id });
          return { ms: performance.now() - t, activities: 1, events: await events(id) };
        };
        const force = async (): Promise<Sample> => {
          const id = `${label}-forced-${n++}`;
          const t = performance.now();
          const r = (await client.workflow.execute('retrainWorkflow', { taskQueue: video, workflowId: id, args: [{ label, force: true }] })) as RetrainResult;
          return { ms: performance.now() - t, activities: r.cost.activities, events: await events(id) };
        };
        // Warm-up: workflow bundle, connections, the plan's first reads.
        await noop();
        await baseline();
        const a: Sample[] = [];
        const b: Sample[] = [];
        for (let i = 0; i < repeat; i++) {
          a.push(await noop());
          b.push(await baseline());
        }
        const c: Sample[] = [];
        for (let i = 0; i < forced; i++) {
          c.push(await force());
          a.push(await noop());
          b.push(await baseline());
        }
        const after: Sample[] = [];
        for (let i = 0; i < 3; i++) after.push(await noop());
        const base = median(b.map((s) => s.ms));
        const row = (name: string, s: Sample[]) =>
          `${name.padEnd(52)} | ${String(s.length).padStart(3)} | ${median(s.map((x) => x.ms))
            .toFixed(0)
            .padStart(7)} | ${median(s.map((x) => x.activities))
            .toString()
            .padStart(10)} | ${median(s.map((x) => x.events))
            .toString()
            .padStart(6)} | ${(median(s.map((x) => x.ms)) / base).toFixed(2).padStart(6)}`;
        console.log(
          `\nload average at the end: ${os
            .loadavg()
            .map((x) => x.toFixed(2))
            .join(' ')} on ${os.cpus().length} cores`,
        );
        console.log(`${'run'.padEnd(52)} |   n | ms (med) | activities | events | ratio to (b)`);
        console.log(row('(a) retrain, nothing changed (no-op)', a));
        console.log(row('(b) baseline: one no-op activity', b));
        console.log(row('(c) retrain forced (dataset, train, distill, ...)', c));
        console.log(row(`(a') no-op after ${forced} more runs of the label`, after));
      }),
    );
  } finally {
    await native.close();
    await connection.close();
    await deps.close();
    await catalog.remove();
    await svc.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
