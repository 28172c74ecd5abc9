/**
 * End to end on the real services (Temporal dev server, PostgreSQL, the S3 server,
 * ffmpeg) with real worker processes, on a tiny catalog of lavfi-made videos registered
 * by the test under a label of its own:
 *
 * 1. new-category makes dataset v1 and the first candidates;
 * 2. retrain with nothing new is a no-op: one activity, no run row, no dataset;
 * 3. a new video of the label: the retrain extracts only it, builds v2 from everything
 *    labelled so far (v1's frames and the new ones), publishes candidates and a report;
 * 4. again: a no-op (the video is now used);
 * 5. a person relabels a frame: the retrain extracts nothing and builds v3 with the
 *    person's label;
 * 6. the fan-out over the label: unchanged;
 * then `reelset runs list|show|report` on those runs, and the Prometheus metrics scraped
 * from both worker processes.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { main } from '../../cli/reelset';
import type { DatasetManifest, NewCategoryRequest, NewCategoryResult, RetrainAllResult, RetrainResult, TrainStepManifest } from '../../contracts';
import { requireServices, uniqueSuffix, type Services } from '../helpers/services';
import { tinyCatalog, TINY_SOURCES, type TinyCatalog } from '../helpers/tiny-catalog';
import { startWorker, type WorkerProcess } from '../helpers/workers';

jest.setTimeout(900_000);

const suffix = uniqueSuffix();
const LABEL = `rt-${suffix}`.slice(0, 40);
const queues = { REELSET_VIDEO_TASK_QUEUE: `rt-video-${suffix}`, REELSET_GPU_TASK_QUEUE: `rt-gpu-${suffix}` };
let svc: Services;
let connection: Connection;
let client: Client;
let dir: string;
const workers: WorkerProcess[] = [];
let catalog: TinyCatalog | undefined;

/** Run the CLI in this process; returns its exit code and what it printed on stdout. */
async function cli(...args: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const write = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += chunk.toString();
    return true;
  });
  const log = jest.spyOn(console, 'log').mockImplementation((...a: unknown[]) => {
    out += `${a.join(' ')}\n`;
  });
  try {
    const code = await main(['node', 'reelset', ...args]);
    process.exitCode = undefined;
    return { code, out };
  } finally {
    write.mockRestore();
    log.mockRestore();
  }
}

async function retrain(id: string, overrides: Record<string, unknown> = {}): Promise<{ r: RetrainResult; ms: number }> {
  const t = Date.now();
  const r = (await client.workflow.execute('retrainWorkflow', {
    taskQueue: queues.REELSET_VIDEO_TASK_QUEUE,
    workflowId: id,
    args: [{ label: LABEL, overrides }],
  })) as RetrainResult;
  return { r, ms: Date.now() - t };
}

const versions = async () =>
  (await svc.pool.query<{ version: number }>('SELECT version FROM datasets WHERE name = $1 ORDER BY version', [LABEL])).rows.map((r) => r.version);
const metricsUrl = (w: WorkerProcess) => /metrics at (http:\/\/\S+\/metrics)/.exec(w.output())?.[1];
/** The sum of a metric's series whose labels contain all of `has` (undefined when none). */
function metric(text: string, name: string, ...has: string[]): number | undefined {
  const lines = text.split('\n').filter((l) => l.startsWith(name) && (l[name.length] === '{' || l[name.length] === ' ') && has.every((h) => l.includes(h)));
  return lines.length ? lines.reduce((a, l) => a + Number(l.trim().split(/\s+/).at(-1)), 0) : undefined;
}

beforeAll(async () => {
  svc = await requireServices();
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-retrain-'));
  catalog = await tinyCatalog(svc, LABEL, dir);
  const env = { ...queues, REELSET_VIDEO_METRICS_PORT: '0', REELSET_GPU_METRICS_PORT: '0' };
  workers.push(await startWorker('video', env), await startWorker('gpu', env));
  connection = await Connection.connect({ address: svc.config.TEMPORAL_ADDRESS });
  client = new Client({ connection, namespace: svc.config.TEMPORAL_NAMESPACE });
}, 300_000);

afterAll(async () => {
  for (const w of workers) await w.kill();
  await catalog?.remove();
  await connection?.close();
  await svc?.close();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

let v1: DatasetManifest;
let retrained: RetrainResult;
let relabelled: RetrainResult;

test('new-category, then retrain: no-op, new video, no-op, relabelled frame, fan-out', async () => {
  // 1. The label's first model. Negatives: the test's two videos (and whatever else the
  // catalog holds, sampled the same way).
  const request: NewCategoryRequest = {
    label: LABEL,
    maxNegativeVideos: 2,
    extract: { mode: 'count', count: 4 },
    validationFraction: 0.34,
    teacher: { epochs: 3, cutmixPerFrame: 0 },
    student: { epochsFactor: 1 },
    heartbeatTimeoutS: 10,
    gpuTaskQueue: queues.REELSET_GPU_TASK_QUEUE,
    // Weak labels: nobody labels in this test (its retrains take the same mode).
    labeling: { mode: 'weak' },
  };
  const nc = (await client.workflow.execute('newCategoryWorkflow', {
    taskQueue: queues.REELSET_VIDEO_TASK_QUEUE,
    workflowId: `${LABEL}-nc`,
    args: [request],
  })) as NewCategoryResult;
  expect(nc.dataset.version).toBe(1);
  v1 = (await svc.store.getJson<DatasetManifest>(nc.dataset.datasetKey))!;
  // The new-category run wrote its report too.
  expect(await svc.store.head(`runs/${LABEL}-nc/report.html`)).toBeGreaterThan(10_000);

  // 2. Nothing new: a no-op.
  const noop = await retrain(`${LABEL}-rt1`);
  expect(noop.r).toMatchObject({ outcome: 'unchanged', label: LABEL, newVideos: { positives: 0, negatives: 0 }, labelledFrames: v1.frames.length });
  expect(noop.r.cost.activities).toBe(1);
  expect(noop.r.reasons.join(' ')).toContain(`nothing new since dataset ${LABEL} v1`);
  expect(await versions()).toEqual([1]);
  expect((await svc.pool.query('SELECT 1 FROM runs WHERE workflow_id = $1', [`${LABEL}-rt1`])).rowCount).toBe(0);
  console.log(`retrain no-op: ${noop.ms} ms client-side, ${noop.r.cost.wallMs} ms workflow clock, ${noop.r.cost.activities} activity`);

  // 3. A new video of the label: only it is extracted (no new negatives asked for).
  await catalog!.add(`${LABEL}-p4`, TINY_SOURCES.extraPositive, LABEL);
  const rt2 = await retrain(`${LABEL}-rt2`, { maxNegativeVideos: 0 });
  retrained = rt2.r;
  expect(retrained.outcome).toBe('retrained');
  expect(retrained.newVideos).toMatchObject({ positives: 1, negatives: 0 });
  const steps = retrained.run!.steps;
  expect(steps.search!.summary).toMatchObject({ positives: 1, negatives: 0, videoIds: [`${LABEL}-p4`] });
  expect(steps.extract!.summary).toMatchObject({ videos: 1, succeeded: 1 });
  expect(retrained.run!.dataset.version).toBe(2);
  expect(retrained.run!.models.map((m) => m.version)).toEqual([2, 2]);
  // The label has no fixed evaluation set: the gate holds the candidate back and says so.
  expect(retrained.promotion?.decision).toBe('held-back');
  expect(retrained.promotion?.note).toMatch(/no fixed evaluation set/);
  const v2 = (await svc.store.getJson<DatasetManifest & { sources: Record<string, number> }>(retrained.run!.dataset.datasetKey))!;
  const v2keys = new Set(v2.frames.map((f) => f.key));
  for (const f of v1.frames) expect(v2keys.has(f.key)).toBe(true); // everything labelled so far
  expect(v2.frames.some((f) => f.videoId === `${LABEL}-p4`)).toBe(true);
  expect(v2.frames.length).toBeGreaterThan(v1.frames.length);
  // Training history has the validation accuracy of every epoch.
  const train = (await svc.store.getJson<TrainStepManifest>(steps.train!.manifestKey))!;
  expect(train.history).toHaveLength(3);
  for (const h of train.history) expect(h.valAccuracy).toEqual(expect.any(Number));
  // The run's report: charts, contact sheets, counts.
  expect(retrained.reportKey).toBe(`runs/${LABEL}-rt2/report.html`);
  const html = (await svc.store.get(retrained.reportKey!))!.toString('utf8');
  expect(html).toContain('<svg');
  for (const text of [
    'Training loss per epoch',
    'Validation accuracy per epoch',
    'confusion matrix (frames)',
    'Precision and recall per label',
    'data:image/jpeg;base64,',
    `${LABEL} v2`,
  ])
    expect(html).toContain(text);

  // 4. Nothing new again.
  const again = await retrain(`${LABEL}-rt3`);
  expect(again.r.outcome).toBe('unchanged');
  expect(again.r.cost.activities).toBe(1);
  console.log(`retrain no-op after the ledger grew: ${again.ms} ms client-side, ${again.r.cost.wallMs} ms workflow clock`);

  // 5. A person relabels one frame of the label as "other": the rows the Label Studio
  // mirror writes for one annotation (activities/labeling/mirror.ts), made directly here
  // (this test runs without Label Studio; test/e2e/human-labeling.test.ts goes through it).
  const frame = v2.frames.find((f) => f.label === LABEL)!;
  const annotationId = Date.now();
  await svc.pool.query(
    `INSERT INTO labeling_annotations (annotation_id, task_id, project_id, frame_key, annotator, annotator_id, label, ls_updated_at)
     VALUES ($1, $1, 0, $2, 'person@example.com', 1, 'other', now())`,
    [annotationId, frame.key],
  );
  await svc.pool.query(
    `INSERT INTO frame_labels (frame_key, workflow_id, label, source, confidence, annotator, annotation_id) VALUES ($1, $2, 'other', 'human', 1, 'person@example.com', $3)`,
    [frame.key, `${LABEL}-rt2`, annotationId],
  );
  const rt4 = await retrain(`${LABEL}-rt4`);
  relabelled = rt4.r;
  expect(relabelled.outcome).toBe('retrained');
  expect(relabelled.reasons.join(' ')).toContain(`labelled frames changed since dataset ${LABEL} v2`);
  expect(Object.keys(relabelled.run!.steps)).toEqual(['search', 'dataset', 'train', 'distill', 'evaluate', 'publish']);
  const v3 = (await svc.store.getJson<DatasetManifest & { sources: Record<string, number> }>(relabelled.run!.dataset.datasetKey))!;
  expect(v3.version).toBe(3);
  expect(v3.frames.find((f) => f.key === frame.key)!.label).toBe('other');
  expect(v3.sources.human).toBe(1);

  // 6. The fan-out over the label: nothing new since v3.
  const all = (await client.workflow.execute('retrainAllWorkflow', {
    taskQueue: queues.REELSET_VIDEO_TASK_QUEUE,
    workflowId: `${LABEL}-all`,
    args: [{ labels: [LABEL] }],
  })) as RetrainAllResult;
  expect(all.counts).toEqual({ retrained: 0, unchanged: 1, failed: 0 });
  expect(all.labels[0]!.workflowId).toBe(`${LABEL}-all/retrain/${LABEL}`);
  expect(await versions()).toEqual([1, 2, 3]);
});

test('reelset runs list | show | report on those runs', async () => {
  const list = await cli('runs', 'list', '--label', LABEL, '--limit', '50', '--json');
  expect(list.code).toBe(0);
  const rows = (JSON.parse(list.out) as { runs: Array<{ workflowId: string; type: string; stage: string; status: string }> }).runs;
  const byId = new Map(rows.map((r) => [r.workflowId, r]));
  expect(byId.get(`${LABEL}-nc`)).toMatchObject({ type: 'newCategoryWorkflow', stage: 'done', status: 'completed' });
  expect(byId.get(`${LABEL}-rt1`)).toMatchObject({ type: 'retrainWorkflow', stage: 'unchanged', status: 'completed' });
  expect(byId.get(`${LABEL}-rt2`)).toMatchObject({ type: 'retrainWorkflow', stage: 'done', status: 'completed' });
  expect(rows.some((r) => r.workflowId.includes('/extract/'))).toBe(false);
  const failed = await cli('runs', 'list', '--label', LABEL, '--status', 'failed', '--json');
  expect(JSON.parse(failed.out).runs).toEqual([]);
  expect((await cli('runs', 'list', '--status', 'exploded')).code).toBe(2);

  const show = await cli('runs', 'show', `${LABEL}-rt2`, '--json');
  expect(show.code).toBe(0);
  const view = JSON.parse(show.out);
  expect(view.steps.map((s: { step: string }) => s.step)).toEqual([
    'search',
    'extract',
    'embed',
    'dedupe',
    'label',
    'dataset',
    'train',
    'distill',
    'evaluate',
    'publish',
  ]);
  for (const s of view.steps) expect(s.durationMs).toEqual(expect.any(Number));
  expect(view.artefacts.models).toHaveLength(2);
  expect(view.artefacts.report).toContain(`runs/${LABEL}-rt2/report.html`);
  expect(view.where.temporalUi).toContain(encodeURIComponent(`${LABEL}-rt2`));
  const text = await cli('runs', 'show', `${LABEL}-rt1`);
  expect(text.out).toContain('outcome: unchanged');
  expect(text.out).toContain('cost:');
  expect((await cli('runs', 'show', `${LABEL}-no-such-run`)).code).toBe(2);

  const out = path.join(dir, 'report.html');
  const report = await cli('runs', 'report', `${LABEL}-rt4`, '--out', out, '--no-open', '--json');
  expect(report.code).toBe(0);
  expect(JSON.parse(report.out)).toMatchObject({ reportKey: `runs/${LABEL}-rt4/report.html`, file: out, opened: false, steps: 6 });
  const html = await fs.readFile(out, 'utf8');
  expect(html).toContain(`${LABEL} v3`);
  expect(html).toContain('label sources');
});

test('Prometheus metrics scraped from both real workers', async () => {
  const [video, gpu] = workers;
  const vurl = metricsUrl(video!);
  const gurl = metricsUrl(gpu!);
  expect(vurl).toBeDefined();
  expect(gurl).toBeDefined();
  const v = await (await fetch(vurl!)).text();
  const g = await (await fetch(gurl!)).text();
  // The SDK's own runtime metrics.
  expect(metric(v, 'temporal_worker_task_slots_available', `task_queue="${queues.REELSET_VIDEO_TASK_QUEUE}"`)).toEqual(expect.any(Number));
  expect(metric(v, 'temporal_activity_execution_latency_count', 'activity_type="planRetrain"')).toBeGreaterThanOrEqual(5);
  expect(metric(g, 'temporal_activity_execution_latency_count', 'activity_type="trainTeacher"')).toBeGreaterThanOrEqual(3);
  // reelset's.
  expect(metric(v, 'reelset_frames_extracted_total')).toBeGreaterThan(0);
  expect(metric(v, 'reelset_frames_embedded_total')).toBeGreaterThan(0);
  expect(metric(v, 'reelset_embedding_frames_per_second')).toBeGreaterThan(0);
  expect(metric(v, 'reelset_dedupe_clusters_total')).toBeGreaterThan(0);
  expect(metric(v, 'reelset_activity_duration_seconds_count', 'activity="planRetrain"', 'outcome="ok"')).toBeGreaterThanOrEqual(5);
  expect(metric(v, 'reelset_step_duration_seconds_count', 'step="dataset"')).toBeGreaterThanOrEqual(3);
  expect(v).toContain('# TYPE reelset_labelling_queue_depth gauge');
  expect(metric(g, 'reelset_step_duration_seconds_count', 'step="train"')).toBeGreaterThanOrEqual(3);
  expect(metric(g, 'process_resident_memory_bytes')).toBeGreaterThan(0);
});
