/**
 * Scale out: two video worker processes with different identities poll the same task
 * queue of the same Temporal server (as two machines would); a backfill's extractions are
 * spread over both: with batching off, its children and the extract activities inside
 * them (read back from the children's histories: `identity` of the workflow and activity
 * task started events); with batching, its `extractVideos` activities (read back from the
 * backfill's own history).
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { catalogFromFolder } from '../../activities/catalog/catalog-file';
import { ingestCatalog } from '../../activities/catalog/ingest';
import { createLogger } from '../../lib/logger';
import type { BackfillResult } from '../../contracts';
import { backfillWorkflow } from '../../workflows/backfill';
import { removeVideosLike } from '../helpers/cleanup';
import { childIds, chainFromLatest } from '../helpers/history';
import { requireServices, uniqueSuffix, type Services } from '../helpers/services';
import { stampedVideos } from '../helpers/stamped-videos';
import { startWorker, type WorkerProcess } from '../helpers/workers';

jest.setTimeout(400_000);

let svc: Services;
let connection: Connection;
let client: Client;
let tmp: string;
const workers: WorkerProcess[] = [];
const suffix = uniqueSuffix();
const queue = `e2e-scale-${suffix}`;
/** File prefixes of the clips each test made (their catalog rows are removed at the end). */
const prefixes: string[] = [];

beforeAll(async () => {
  svc = await requireServices();
  connection = await Connection.connect({ address: svc.config.TEMPORAL_ADDRESS });
  client = new Client({ connection, namespace: svc.config.TEMPORAL_NAMESPACE });
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-scale-'));
});

afterAll(async () => {
  for (const w of workers) await w.kill();
  if (svc) for (const p of prefixes) await removeVideosLike(svc, `${p}-%`).catch(() => undefined);
  await connection?.close();
  await svc?.close();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

test.each(['off', 'auto'] as const)('two video workers with different identities share the extractions of one backfill (batching %s)', async (mode) => {
  // Its own clips, folder and label (the folder is ingested whole; the search also matches title words).
  const own = uniqueSuffix();
  const label = `so-${own}`;
  prefixes.push(`so${own}`);
  const dir = path.join(tmp, `videos-${mode}`);
  await stampedVideos(dir, 24, { seconds: 1, size: '128x72', rate: 10, prefix: `so${own}` });
  const report = await ingestCatalog(
    { ...svc, logger: createLogger('silent', 'test'), ffprobePath: svc.config.FFPROBE_PATH },
    await catalogFromFolder(dir, [label]),
  );
  expect(report.failed).toEqual([]);

  // Each worker runs at most 3 activities at once, and the backfill runs 6 children at once:
  // neither worker can take all of them.
  const identities = [`video-a-${suffix}`, `video-b-${suffix}`];
  if (workers.length === 0)
    for (const identity of identities) {
      workers.push(await startWorker('video', { REELSET_VIDEO_TASK_QUEUE: queue, REELSET_WORKER_IDENTITY: identity, REELSET_MAX_CONCURRENT_ACTIVITIES: '3' }));
    }
  const workflowId = `scale-out-${mode}-${suffix}`;
  const result: BackfillResult = await client.workflow.execute(backfillWorkflow, {
    taskQueue: queue,
    workflowId,
    args: [{ label, embed: false, concurrency: 6, pageSize: 12, batching: { mode } }],
  });
  expect(result).toMatchObject({ total: 24, extracted: 24, failed: 0 });
  if (mode === 'auto') {
    // Batches (two videos each: 12 a page over 6 lanes): the backfill's own extractVideos activities, on both workers.
    const by: Record<string, number> = {};
    for (const run of await chainFromLatest(client, workflowId)) {
      const typeOf = new Map(run.events.map((e) => [String(e.eventId), e.activityTaskScheduledEventAttributes?.activityType?.name]));
      for (const e of run.events) {
        const a = e.activityTaskStartedEventAttributes;
        if (a?.identity && typeOf.get(String(a.scheduledEventId)) === 'extractVideos') by[a.identity] = (by[a.identity] ?? 0) + 1;
      }
    }
    console.log(`extraction batches per worker: ${JSON.stringify(by)}`);
    expect(Object.keys(by).sort()).toEqual(identities);
    expect(Object.values(by).reduce((a, b) => a + b, 0)).toBe(12);
    expect((await chainFromLatest(client, workflowId)).flatMap((r) => childIds(r.events))).toEqual([]);
    return;
  }

  const children = (await chainFromLatest(client, workflowId)).flatMap((r) => childIds(r.events));
  expect(children).toHaveLength(24);
  const activityBy: Record<string, number> = {};
  const workflowTaskBy: Record<string, number> = {};
  for (const id of children) {
    const events = (await client.workflow.getHandle(id).fetchHistory()).events ?? [];
    for (const e of events) {
      const a = e.activityTaskStartedEventAttributes?.identity;
      if (a) activityBy[a] = (activityBy[a] ?? 0) + 1;
      const w = e.workflowTaskStartedEventAttributes?.identity;
      if (w) workflowTaskBy[w] = (workflowTaskBy[w] ?? 0) + 1;
    }
  }
  console.log(`extract activities per worker: ${JSON.stringify(activityBy)}; child workflow tasks per worker: ${JSON.stringify(workflowTaskBy)}`);
  expect(Object.keys(activityBy).sort()).toEqual(identities);
  for (const identity of identities) expect(activityBy[identity]).toBeGreaterThanOrEqual(3);
  expect(Object.values(activityBy).reduce((a, b) => a + b, 0)).toBe(24);
  // Workflow tasks (the children's own code) ran on both workers too.
  expect(Object.keys(workflowTaskBy).sort()).toEqual(identities);
});
