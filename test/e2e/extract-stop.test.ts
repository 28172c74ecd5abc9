/**
 * Stopping an extraction for real: a video worker process polling the Temporal dev
 * server gets SIGTERM, or the workflow is cancelled, in the middle of an extraction.
 * ffmpeg must be gone within two seconds, the temporary files removed, and after a
 * restart the extraction resumes and completes with every frame exactly once.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import type { VideoExtractSummary } from '../../contracts';
import { ExtractOptions } from '../../contracts/inputs';
import { requireServices, uniqueSuffix, type Services } from '../helpers/services';
import { lavfiVideo, registerVideo } from '../helpers/videos';
import { startWorker, type WorkerProcess } from '../helpers/workers';
import { processesMentioning } from '../helpers/processes';

jest.setTimeout(300_000);

let svc: Services;
let connection: Connection;
let client: Client;
let tmp: string;
const workers: WorkerProcess[] = [];
const suffix = uniqueSuffix();
const queue = `e2e-stop-${suffix}`;
let videoId: string;
let removeVideo: (() => Promise<void>) | undefined;

beforeAll(async () => {
  svc = await requireServices();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-stop-'));
  const file = lavfiVideo(path.join(tmp, 'long take.mp4'), 'testsrc2=size=960x540:rate=30:d=60');
  videoId = `stop-${suffix}`;
  removeVideo = (await registerVideo(svc, file, videoId)).remove;
  connection = await Connection.connect({ address: svc.config.TEMPORAL_ADDRESS });
  client = new Client({ connection, namespace: svc.config.TEMPORAL_NAMESPACE });
});

afterAll(async () => {
  for (const w of workers) await w.kill();
  await removeVideo?.().catch(() => undefined);
  await connection?.close();
  await svc?.close();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** ffmpeg processes reading from under `dir`. */
const ffmpegUnder = async (dir: string) => (await processesMentioning(dir)).filter((p) => /ffmpeg/.test(p.cmdline));

/** Milliseconds until no ffmpeg reads from under `dir` (polled every 20 ms, gives up at 10 s). */
async function msUntilNoFfmpeg(dir: string, since: number): Promise<number> {
  while ((await ffmpegUnder(dir)).length > 0 && Date.now() - since < 10_000) await new Promise((r) => setTimeout(r, 20));
  return Date.now() - since;
}

async function startExtraction(options: ExtractOptions, id: string) {
  return client.workflow.start('extractVideoWorkflow', {
    taskQueue: queue,
    workflowId: id,
    args: [{ videoId, options, heartbeatTimeoutS: 10 }],
  });
}

test('SIGTERM to the worker ends ffmpeg within 2 s and cleans up; a new worker resumes and finishes', async () => {
  const workerTmp = await fs.mkdtemp(path.join(tmp, 'worker-'));
  const env = { REELSET_VIDEO_TASK_QUEUE: queue, TMPDIR: workerTmp };
  const worker = await startWorker('video', env);
  workers.push(worker);
  const options = ExtractOptions.parse({ fps: 2, maxFramesPerVideo: 10_000, quality: 81 });
  const handle = await startExtraction(options, `stop-sigterm-${suffix}`);
  await waitFor('ffmpeg running and first frames recorded', async () => {
    if ((await ffmpegUnder(workerTmp)).length === 0) return false;
    const r = await svc.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM frames WHERE video_id = $1', [videoId]);
    return r.rows[0]!.n > 0;
  });

  // SIGTERM to the worker process only (not its group: ffmpeg must be stopped by the worker).
  const sent = Date.now();
  process.kill(worker.proc.pid!, 'SIGTERM');
  const ms = await msUntilNoFfmpeg(workerTmp, sent);
  console.log(`SIGTERM -> no ffmpeg left: ${ms} ms`);
  expect(ms).toBeLessThan(2000);
  await waitFor('the worker to exit', async () => worker.proc.exitCode !== null || worker.proc.signalCode !== null, 30_000);
  expect((await fs.readdir(workerTmp)).filter((n) => n.startsWith('reelset-extract-'))).toEqual([]);

  // A new worker takes the retried activity and resumes from the last heartbeat.
  workers.push(await startWorker('video', env));
  const summary = (await handle.result()) as VideoExtractSummary;
  expect(summary.frames).toBe(120);
  const rows = await svc.pool.query<{ n: number; distinct_ts: number }>(
    'SELECT count(*)::int AS n, count(DISTINCT timestamp_s)::int AS distinct_ts FROM frames WHERE video_id = $1 AND params_hash = $2',
    [videoId, (await svc.store.getJson<{ paramsHash: string }>(summary.manifestKey))!.paramsHash],
  );
  expect(rows.rows[0]).toEqual({ n: 120, distinct_ts: 120 });
});

test('cancelling the workflow ends ffmpeg within 2 s and removes the temporary files', async () => {
  const workerTmp = await fs.mkdtemp(path.join(tmp, 'worker-'));
  workers.push(await startWorker('video', { REELSET_VIDEO_TASK_QUEUE: `${queue}-c`, TMPDIR: workerTmp }));
  const handle = await client.workflow.start('extractVideoWorkflow', {
    taskQueue: `${queue}-c`,
    workflowId: `stop-cancel-${suffix}`,
    args: [{ videoId, options: ExtractOptions.parse({ fps: 3, maxFramesPerVideo: 10_000, quality: 79 }), heartbeatTimeoutS: 10 }],
  });
  await waitFor('ffmpeg running', async () => (await ffmpegUnder(workerTmp)).length > 0);
  await new Promise((r) => setTimeout(r, 500));
  const sent = Date.now();
  await handle.cancel();
  const ms = await msUntilNoFfmpeg(workerTmp, sent);
  console.log(`workflow cancel -> no ffmpeg left: ${ms} ms`);
  expect(ms).toBeLessThan(2000);
  await expect(handle.result()).rejects.toBeInstanceOf(WorkflowFailedError);
  // (tsx keeps its own cache under TMPDIR too.)
  await waitFor('temporary files removed', async () => (await fs.readdir(workerTmp)).every((n) => !n.startsWith('reelset-extract-')), 2000);
});
