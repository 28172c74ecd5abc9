/**
 * The backfill, as a user runs it (`reelset backfill`, `reelset cancel`), on the real
 * services (Temporal dev server, PostgreSQL, the S3 server, ffmpeg) with a real video
 * worker process:
 * - a folder of 120 real clips, in pages of 10 with a small history bound: every run's
 *   history stays under it through continue-as-new, every video gets its frames; the
 *   same command again attaches and does nothing; a forced second backfill starts no
 *   extraction; a new file makes a new run that extracts only it;
 * - an S3 prefix of another bucket: ingested (a bad file reported, an unchanged object
 *   not downloaded twice), then backfilled;
 * - Ctrl-C detaches and the backfill goes on; `reelset cancel` stops it cleanly (no
 *   ffmpeg, no temporary files, the record says cancelled); the same command resumes it.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import type { BackfillResult } from '../../contracts';
import { ObjectStore } from '../../lib/s3';
import { runCli, startCli } from '../helpers/cli';
import { removeVideosLike } from '../helpers/cleanup';
import { chainFromLatest, childIds, scheduledActivities } from '../helpers/history';
import { processesMentioning } from '../helpers/processes';
import { deleteBucket, requireServices, uniqueSuffix, type Services } from '../helpers/services';
import { stampedVideos } from '../helpers/stamped-videos';
import { startWorker, type WorkerProcess } from '../helpers/workers';

jest.setTimeout(600_000);

let svc: Services;
let connection: Connection;
let client: Client;
let tmp: string;
let workerTmp: string;
const workers: WorkerProcess[] = [];
const suffix = uniqueSuffix();
const env = { REELSET_VIDEO_TASK_QUEUE: `e2e-backfill-${suffix}` };

beforeAll(async () => {
  svc = await requireServices();
  connection = await Connection.connect({ address: svc.config.TEMPORAL_ADDRESS });
  client = new Client({ connection, namespace: svc.config.TEMPORAL_NAMESPACE });
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-e2e-backfill-'));
  workerTmp = await fs.mkdtemp(path.join(tmp, 'worker-'));
  workers.push(await startWorker('video', { ...env, TMPDIR: workerTmp }));
});

afterAll(async () => {
  for (const w of workers) await w.kill();
  // Leave the catalog as it was (other tests sample negatives from every labelled video).
  for (const like of [`bf${suffix}-%`, `bfc${suffix}-%`, `incoming-${suffix}%`]) {
    if (svc) await removeVideosLike(svc, like).catch(() => undefined);
  }
  await connection?.close();
  await svc?.close();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

const json = <T>(stdout: string): T => JSON.parse(stdout) as T;
const startedId = (stderr: string) => /(?:started backfill|attached to existing backfill) (\S+)/.exec(stderr)?.[1];

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('a folder of 120 clips: bounded history through continue-as-new, then a second backfill does nothing', async () => {
  const label = `bf-${suffix}`;
  const folder = path.join(tmp, 'folder');
  await stampedVideos(folder, 120, { seconds: 1, size: '128x72', rate: 10, prefix: `bf${suffix}` });
  const args = ['backfill', label, '--folder', folder, '--no-embed', '--input', '{"pageSize":10,"maxHistoryEvents":400}', '--json'];

  const first = await runCli(args, env);
  if (first.code !== 0) console.log(`first backfill exited ${first.code}:\n${first.stdout.slice(-4000)}\n${first.stderr.slice(-4000)}`);
  expect(first.stderr).toContain('started backfill');
  expect(first.code).toBe(0);
  const r = json<BackfillResult>(first.stdout);
  expect(r.ingest).toMatchObject({ listed: 120, inserted: 120, failed: 0 });
  expect(r).toMatchObject({ total: 120, extracted: 120, reused: 0, failed: 0, pages: 12, pagesDone: 12 });

  // Every run's history under the bound; several runs.
  const runs = await chainFromLatest(client, r.workflowId);
  console.log(`backfill of 120 real clips: ${runs.length} runs, history lengths ${runs.map((x) => x.length).join(', ')}`);
  expect(runs.length).toBe(r.runs);
  expect(runs.length).toBeGreaterThanOrEqual(2);
  for (const x of runs) expect(x.length).toBeLessThan(400);
  // Extraction in batches: no child workflow, fewer extraction activities than videos.
  expect(runs.flatMap((x) => childIds(x.events))).toEqual([]);
  const batches = runs.flatMap((x) => scheduledActivities(x.events)).filter((a) => a === 'extractVideos').length;
  expect(batches).toBeGreaterThanOrEqual(12);
  expect(batches).toBeLessThan(120);

  // Frames for every video, in Postgres as in the result.
  const rows = await svc.pool.query<{ videos: number; frames: number }>(
    `SELECT count(DISTINCT video_id)::int AS videos, count(*)::int AS frames FROM frames WHERE video_id LIKE $1`,
    [`bf${suffix}-%`],
  );
  expect(rows.rows[0]).toEqual({ videos: 120, frames: r.frames });
  const record = await svc.pool.query<{ status: string; n: number }>(
    `SELECT status, count(*)::int AS n FROM runs WHERE workflow_id = $1 OR parent_id = $1 GROUP BY status`,
    [r.workflowId],
  );
  expect(record.rows).toEqual([{ status: 'completed', n: 13 }]);

  // The same command again: same id, attached to the finished run, nothing new.
  const again = await runCli(args, env);
  expect(again.code).toBe(0);
  expect(again.stderr).toContain(`attached to existing backfill ${r.workflowId}`);
  expect(json<BackfillResult>(again.stdout)).toEqual(r);
  expect(await chainFromLatest(client, r.workflowId)).toHaveLength(runs.length);

  // A second backfill forced under another id: everything reused, no extraction started.
  const forced = await runCli([...args, '--id', `${r.workflowId}-forced`], env);
  expect(forced.code).toBe(0);
  const f = json<BackfillResult>(forced.stdout);
  expect(f).toMatchObject({ total: 120, extracted: 0, reused: 120, framesReused: r.frames, failed: 0 });
  expect(f.ingest).toMatchObject({ unchanged: 120, skippedUnchanged: 120, uploaded: 0 });
  const forcedRuns = await chainFromLatest(client, f.workflowId);
  expect(forcedRuns.flatMap((x) => childIds(x.events))).toEqual([]);
  expect(forcedRuns.flatMap((x) => scheduledActivities(x.events))).not.toContain('extractVideos');

  // A new clip in the folder: a new run (new id) that extracts it alone.
  await stampedVideos(path.join(tmp, 'one-more'), 1, { seconds: 1, size: '128x72', rate: 10, prefix: 'x' });
  await fs.rename(path.join(tmp, 'one-more/x-000001.mp4'), path.join(folder, `bf${suffix}-000121.mp4`));
  const third = await runCli(args, env);
  expect(third.code).toBe(0);
  const t = json<BackfillResult>(third.stdout);
  expect(t.workflowId).not.toBe(r.workflowId);
  expect(t).toMatchObject({ total: 121, extracted: 1, reused: 120, failed: 0 });
});

test('an S3 prefix of another bucket: ingested (bad file reported, unchanged objects not read again), then backfilled', async () => {
  const label = `bfs-${suffix}`;
  const bucket = `incoming-${suffix}`.slice(0, 63);
  const from = new ObjectStore(bucket, svc.store.client);
  await svc.store.client.send(new CreateBucketCommand({ Bucket: bucket }));
  try {
    const files = await stampedVideos(path.join(tmp, 'prefix'), 3, { seconds: 1, size: '128x72', rate: 10 });
    for (const f of files) await from.put(`new/cam 1/${path.basename(f)}`, await fs.readFile(f), 'video/mp4');
    await from.put('new/notes.txt', 'not a video');
    // A truncated file (its first 2 KB, and this run's suffix so no other run has the same bytes).
    await from.put('new/broken.mp4', Buffer.concat([(await fs.readFile(files[0]!)).subarray(0, 2048), Buffer.from(suffix)]), 'video/mp4');
    await from.put('old/elsewhere.mp4', await fs.readFile(files[1]!), 'video/mp4');
    const args = ['backfill', label, '--prefix', `s3://${bucket}/new/`, '--no-embed', '--json'];

    const first = await runCli(args, env);
    expect(first.code).toBe(1); // one video failed
    const r = json<BackfillResult>(first.stdout);
    expect(r.ingest).toMatchObject({ source: `s3://${bucket}/new/`, listed: 4, inserted: 4, failed: 0, uploaded: 4 });
    expect(r).toMatchObject({ total: 4, extracted: 3, failed: 1 });
    expect(r.failures[0]).toMatchObject({ type: 'VideoDecodeError', message: expect.stringContaining('broken.mp4') });
    // Ids come from the keys under the prefix, and the objects are in the catalog with their source.
    const ids = await svc.pool.query<{ id: string; uri: string }>(
      `SELECT v.id, v.source->'s3'->>'uri' AS uri FROM videos v JOIN video_labels l ON l.video_id = v.id WHERE l.label = $1 ORDER BY uri`,
      [label],
    );
    expect(ids.rows.map((x) => x.uri)).toEqual([`s3://${bucket}/new/broken.mp4`, ...files.map((f) => `s3://${bucket}/new/cam 1/${path.basename(f)}`)]);
    expect(ids.rows.every((x) => /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(x.id))).toBe(true);

    // One more object: a new run; the four known objects are not downloaded again.
    const extra = await stampedVideos(path.join(tmp, 'prefix2'), 1, { seconds: 1, size: '128x72', rate: 10 });
    await from.put('new/later.mp4', await fs.readFile(extra[0]!), 'video/mp4');
    const second = await runCli(args, env);
    const s = json<BackfillResult>(second.stdout);
    expect(s.workflowId).not.toBe(r.workflowId);
    expect(s.ingest).toMatchObject({ listed: 5, inserted: 1, skippedUnchanged: 4, uploaded: 1 });
    expect(s).toMatchObject({ total: 5, extracted: 1, reused: 3, failed: 1 });
  } finally {
    await deleteBucket(from);
  }
});

test('Ctrl-C detaches and the backfill goes on; reelset cancel stops it cleanly; the same command resumes it', async () => {
  const label = `bfc-${suffix}`;
  const dir = path.join(tmp, 'long');
  await stampedVideos(dir, 3, { seconds: 90, size: '640x360', rate: 25, bases: 1, prefix: `bfc${suffix}` });
  const args = [
    'backfill',
    label,
    '--folder',
    dir,
    '--no-embed',
    '--concurrency',
    '2',
    '--input',
    '{"extract":{"fps":8,"maxFramesPerVideo":1000},"heartbeatTimeoutS":10}',
  ];

  const cli = startCli(args, env);
  await waitFor('ffmpeg extracting under the worker', async () => (await processesMentioning(workerTmp)).some((p) => /ffmpeg/.test(p.cmdline)));
  await waitFor('a progress line', async () => /extract \|/.test(cli.stderr()), 30_000);
  cli.proc.kill('SIGINT');
  const detached = await cli.done;
  expect(detached.code).toBe(0);
  expect(detached.stderr).toContain('detached: the backfill goes on');
  const workflowId = startedId(detached.stderr)!;
  expect(workflowId).toMatch(/^backfill-bfc-/);
  expect((await client.workflow.getHandle(workflowId).describe()).status.name).toBe('RUNNING');

  const cancel = await runCli(['cancel', workflowId, '--json'], env);
  expect(cancel.code).toBe(0);
  const report = json<{ before: string; after: string; record: string; waitedMs: number }>(cancel.stdout);
  expect(report).toMatchObject({ before: 'RUNNING', after: 'CANCELLED', record: 'cancelled' });
  console.log(`reelset cancel: run closed after ${report.waitedMs} ms`);
  // The run closes only after its extractions finished cancelling: ffmpeg and temp files are already gone.
  expect((await processesMentioning(workerTmp)).filter((p) => /ffmpeg/.test(p.cmdline))).toEqual([]);
  expect((await fs.readdir(workerTmp)).filter((n) => n.startsWith('reelset-'))).toEqual([]);
  const pages = await svc.pool.query<{ status: string }>('SELECT status FROM runs WHERE parent_id = $1', [workflowId]);
  expect(pages.rows).toEqual([{ status: 'cancelled' }]);
  // Cancelling again: nothing to do, and it says so.
  const twice = await runCli(['cancel', workflowId], env);
  expect(twice.code).toBe(0);
  expect(twice.stdout).toContain('not running (status CANCELLED, record cancelled)');

  // The same command starts the cancelled backfill again under the same id and finishes it.
  const resumed = await runCli([...args, '--json'], env);
  expect(resumed.code).toBe(0);
  const r = json<BackfillResult>(resumed.stdout);
  expect(r.workflowId).toBe(workflowId);
  expect(r.extracted + r.reused).toBe(3);
  const run = await svc.pool.query<{ status: string }>('SELECT status FROM runs WHERE workflow_id = $1', [workflowId]);
  expect(run.rows).toEqual([{ status: 'completed' }]);
});

test('bad usage exits 2 before anything starts, naming the option', async () => {
  const two = await runCli(['backfill', 'x', '--since', '2026-01-01', '--videos', 'a'], env);
  expect(two.code).toBe(2);
  expect(two.stderr).toContain('at most one of --since, --videos');
  const missing = await runCli(['backfill', 'cup', '--videos', `nope-${suffix}`], env);
  expect(missing.code).toBe(2);
  expect(missing.stderr).toContain(`not in the catalog: nope-${suffix}`);
  const date = await runCli(['backfill', 'cup', '--since', 'yesterday'], env);
  expect(date.code).toBe(2);
  expect(date.stderr).toContain('since');
  const none = await runCli(['cancel', `no-such-run-${suffix}`], env);
  expect(none.code).toBe(2);
  expect(none.stderr).toContain('no workflow with id');
});
