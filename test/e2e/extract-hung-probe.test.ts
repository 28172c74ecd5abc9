/**
 * A probe that never returns, for real: a video worker whose ffprobe hangs on its first
 * call (a script that sleeps, FFPROBE_PATH) runs an extraction under the Temporal dev
 * server. The probe must be killed at FFPROBE_TIMEOUT_S, fail the attempt with a retryable
 * TransientError that is never cached as the file's verdict, and Temporal's retry must
 * then extract the video.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { VideoExtractSummary } from '../../contracts';
import { ExtractOptions } from '../../contracts/inputs';
import { PROBE_VERSION, type CachedProbe } from '../../activities/frames/probe';
import { processesMentioning } from '../helpers/processes';
import { requireServices, uniqueSuffix, type Services } from '../helpers/services';
import { lavfiVideo, registerVideo } from '../helpers/videos';
import { startWorker, type WorkerProcess } from '../helpers/workers';

jest.setTimeout(240_000);

let svc: Services;
let connection: Connection;
let tmp: string;
const workers: WorkerProcess[] = [];
const suffix = uniqueSuffix();
let removeVideo: (() => Promise<void>) | undefined;

beforeAll(async () => {
  svc = await requireServices();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-hung-probe-'));
  connection = await Connection.connect({ address: svc.config.TEMPORAL_ADDRESS });
});

afterAll(async () => {
  for (const w of workers) await w.kill();
  await removeVideo?.().catch(() => undefined);
  await connection?.close();
  await svc?.close();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

test('a hung ffprobe is killed at its timeout, the attempt fails with a TransientError (not cached), and the retry extracts the video', async () => {
  const file = lavfiVideo(path.join(tmp, 'clip.mp4'), 'testsrc=size=320x240:rate=10:d=4');
  const videoId = `hung-probe-${suffix}`;
  const v = await registerVideo(svc, file, videoId);
  removeVideo = v.remove;
  await svc.pool.query('UPDATE videos SET probe = NULL WHERE sha256 = $1', [v.sha256]);

  // The first call hangs (exec'd, so the process to kill is the one that hangs); later calls are the real ffprobe.
  const tag = `reelset-hung-ffprobe-${suffix}`;
  const marker = path.join(tmp, 'hung-once');
  const fake = path.join(tmp, 'ffprobe');
  await fs.writeFile(fake, `#!/bin/bash\nif [ ! -e '${marker}' ]; then touch '${marker}'; exec -a ${tag} sleep 600; fi\nexec ffprobe "$@"\n`, { mode: 0o755 });

  const queue = `e2e-hung-probe-${suffix}`;
  workers.push(await startWorker('video', { REELSET_VIDEO_TASK_QUEUE: queue, FFPROBE_PATH: fake, FFPROBE_TIMEOUT_S: '2', TMPDIR: tmp }));
  const client = new Client({ connection, namespace: svc.config.TEMPORAL_NAMESPACE });
  const started = Date.now();
  const handle = await client.workflow.start('extractVideoWorkflow', {
    taskQueue: queue,
    workflowId: `hung-probe-${suffix}`,
    args: [{ videoId, options: ExtractOptions.parse({ fps: 2 }), heartbeatTimeoutS: 10 }],
  });

  // While the first attempt waits on the hung probe, its process exists; it is gone by the timeout.
  for (let i = 0; i < 100 && (await processesMentioning(tag)).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
  expect((await processesMentioning(tag)).length).toBe(1);
  const seen = Date.now();
  while ((await processesMentioning(tag)).length > 0 && Date.now() - seen < 10_000) await new Promise((r) => setTimeout(r, 50));
  const killedAfterMs = Date.now() - seen;
  console.log(`hung ffprobe gone ${killedAfterMs} ms after it was seen (timeout 2 s)`);
  expect(killedAfterMs).toBeLessThan(3500);

  const summary = (await handle.result()) as VideoExtractSummary;
  console.log(`extraction done ${Date.now() - started} ms after start, after a retried probe`);
  expect(summary.frames).toBe(8);

  // The history shows the second attempt and why the first failed.
  const history = await handle.fetchHistory();
  const startedEvents = (history.events ?? []).filter((e) => e.activityTaskStartedEventAttributes);
  const last = startedEvents.at(-1)!.activityTaskStartedEventAttributes!;
  expect(last.attempt).toBe(2);
  expect(last.lastFailure?.applicationFailureInfo?.type).toBe('TransientError');
  expect(last.lastFailure?.applicationFailureInfo?.nonRetryable).toBeFalsy();
  expect(last.lastFailure?.message).toMatch(/ffprobe could not run .*ran past its 2000 ms timeout/);

  // What is cached is the second attempt's probe, never the timeout.
  const row = await svc.pool.query<{ probe: CachedProbe }>('SELECT probe FROM videos WHERE id = $1', [videoId]);
  expect(row.rows[0]!.probe.version).toBe(PROBE_VERSION);
  expect(row.rows[0]!.probe.error).toBeUndefined();
  expect(row.rows[0]!.probe.probe!.stream.index).toBe(0);
});
