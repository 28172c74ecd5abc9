/**
 * End to end, human labelling: a new-category run in `human` mode on real videos
 * (../shared/data), with the real Temporal dev server, PostgreSQL, S3 server and Label
 * Studio, and real worker processes (video, training, labelling gateway).
 *
 * The run sends its frames to a fresh label's Label Studio project and waits. A person
 * labels one frame in a real browser (Debian's chromium driven by playwright-core) and
 * the run sees it. Then two people label the rest through Label Studio's API, as the
 * labelling page does: validation frames by both (one disagreement, settled by a third
 * person), one label changed, one extra annotation deleted, and one annotation made while
 * the gateway is down and the video worker killed, so that only the reconciliation poll
 * can find it. The run completes, and its dataset holds exactly the people's labels.
 * A second run inherits them; then a retrain of the label, after a new video arrived,
 * takes its labelling mode from the label's last run and sends people the new video's
 * frames only.
 */
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { chromium, type Browser } from 'playwright-core';
import { readCatalogFile, readTaxonomyFile } from '../../activities/catalog/catalog-file';
import { ingestCatalog, upsertTaxonomy } from '../../activities/catalog/ingest';
import {
  labelingChildWorkflowId,
  labelingProgressQuery,
  progressQuery,
  type DatasetManifest,
  type LabelingProgress,
  type NewCategoryRequest,
  type NewCategoryResult,
  type RetrainResult,
  type SearchManifest,
} from '../../contracts';
import { cohenKappa } from '../../domain/agreement';
import type { LabelStudioClient } from '../../lib/label-studio';
import { createLogger } from '../../lib/logger';
import { choose, signUp, type Person } from '../helpers/label-studio';
import { requireLabelStudio, requireServices, SHARED_CATALOG, uniqueSuffix, type Services } from '../helpers/services';
import { startWorker, type WorkerProcess } from '../helpers/workers';

jest.setTimeout(900_000);

const s = uniqueSuffix();
const LABEL = `e2e-${s}`;
const CHILD = `${LABEL}-leaf`;
const ROOT = path.resolve(__dirname, '../..');
let svc: Services;
let admin: LabelStudioClient;
let connection: Connection;
let client: Client;
let browser: Browser | undefined;
let a: Person;
let b: Person;
let env: Record<string, string>;
const workers: Record<string, WorkerProcess> = {};
const workflowId = `e2e-human-${s}`;
/** What each task must end up as: the label the people gave, by frame key. */
const expected = new Map<string, string>();
let browserAnnotation: { id: number; task: number } | undefined;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 300_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const childProgress = () => client.workflow.getHandle(labelingChildWorkflowId(workflowId)).query(labelingProgressQuery);

async function humanRow(annotationId: number) {
  const r = await svc.pool.query<{ label: string; annotator: string; frame_key: string }>(
    `SELECT label, annotator, frame_key FROM frame_labels WHERE source = 'human' AND annotation_id = $1`,
    [annotationId],
  );
  return r.rows[0];
}

beforeAll(async () => {
  svc = await requireServices();
  admin = await requireLabelStudio();
  const logger = createLogger('silent', 'e2e');
  await upsertTaxonomy(svc.pool, await readTaxonomyFile(path.join(ROOT, 'infra/taxonomy.json')));
  const report = await ingestCatalog({ ...svc, logger }, await readCatalogFile(SHARED_CATALOG));
  expect(report.failed).toEqual([]);
  // A label of its own (a fresh project, no earlier frames to inherit), with a child, on two real videos.
  await svc.pool.query(`INSERT INTO labels (name, synonyms) VALUES ($1, '{greenery}')`, [LABEL]);
  await svc.pool.query(`INSERT INTO labels (name, parent, synonyms) VALUES ($1, $2, '{leaves}')`, [CHILD, LABEL]);
  await svc.pool.query(`INSERT INTO video_labels (video_id, label, source) VALUES ('tree', $1, 'e2e'), ('realshort', $1, 'e2e')`, [LABEL]);
  a = await signUp(admin, `a-${s}@reelset.test`, `pw-a-${s}`);
  b = await signUp(admin, `b-${s}@reelset.test`, `pw-b-${s}`);
  // The test's own gateway on a port of its own: the webhook of this label's project points there.
  const port = await freePort();
  env = {
    REELSET_VIDEO_TASK_QUEUE: `e2e-h-video-${s}`,
    REELSET_GPU_TASK_QUEUE: `e2e-h-gpu-${s}`,
    LABEL_STUDIO_GATEWAY_PORT: String(port),
    LABEL_STUDIO_WEBHOOK_URL: `http://127.0.0.1:${port}/webhooks/label-studio`,
  };
  [workers.video, workers.gpu, workers.gateway] = await Promise.all([startWorker('video', env), startWorker('gpu', env), startWorker('gateway', env)]);
  connection = await Connection.connect({ address: svc.config.TEMPORAL_ADDRESS });
  client = new Client({ connection, namespace: svc.config.TEMPORAL_NAMESPACE });
});

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  // A failed test leaves no run waiting behind it.
  for (const id of [workflowId, `${workflowId}-retrain`])
    await client?.workflow
      .getHandle(id)
      .terminate('e2e test ended')
      .catch(() => undefined);
  for (const w of Object.values(workers)) await w.kill();
  if (svc) {
    const p = await svc.pool.query<{ project_id: string }>(`SELECT project_id FROM labeling_projects WHERE label = $1`, [LABEL]).catch(() => ({ rows: [] }));
    for (const r of p.rows) await admin?.deleteProject(Number(r.project_id)).catch(() => undefined);
    await svc.pool.query(`DELETE FROM video_labels WHERE label = $1`, [LABEL]);
    await svc.pool.query(`DELETE FROM labeling_projects WHERE label = $1`, [LABEL]);
    await svc.pool.query(`DELETE FROM labels WHERE name = ANY($1)`, [[CHILD, LABEL]]);
  }
  await connection?.close();
  await svc?.close();
});

test('the run waits for people; a person labels a frame in Label Studio in a browser and the run sees it', async () => {
  const request: NewCategoryRequest = {
    label: LABEL,
    maxNegativeVideos: 3,
    extract: { mode: 'count', count: 3 },
    labeling: { mode: 'human', reconcileIntervalS: 3, deadlineHours: 2 },
    teacher: { epochs: 5, cutmixPerFrame: 0 },
    student: { epochsFactor: 1 },
    heartbeatTimeoutS: 10,
    gpuTaskQueue: env.REELSET_GPU_TASK_QUEUE!,
  };
  await client.workflow.start('newCategoryWorkflow', { taskQueue: env.REELSET_VIDEO_TASK_QUEUE!, workflowId, args: [request] });
  const p = await waitFor('the run to send its frames to people', async () => {
    const q = await childProgress().catch(() => undefined);
    return q?.state === 'waiting' && q.lastSyncAt !== null ? q : undefined;
  });
  expect(p.tasks).toBeGreaterThan(0);
  expect(p.projectUrl).toMatch(new RegExp(`^${svc.config.LABEL_STUDIO_URL}/projects/\\d+/data$`));
  expect(Date.parse(p.deadline!) - Date.now()).toBeGreaterThan(1.9 * 3_600_000);
  // The run waits: a while later it is still at the label step.
  await new Promise((r) => setTimeout(r, 3000));
  expect((await client.workflow.getHandle(workflowId).query(progressQuery)).stage).toBe('label');

  // A person: log in, open the project's labelling stream, pick the child label, submit.
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.setDefaultTimeout(90_000);
  await page.goto(`${svc.config.LABEL_STUDIO_URL}/user/login/`);
  await page.fill('input[name="email"]', a.email);
  await page.fill('input[name="password"]', a.password);
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/user/login')), page.click('button[type="submit"]')]);
  const image = page.waitForResponse((r) => r.url().includes('/resolve/?fileuri=') && r.status() === 200);
  await page.goto(`${p.projectUrl}?labeling=1`);
  expect((await image).headers()['content-type']).toMatch(/^image\//);
  await page.keyboard.press('Escape'); // the instructions open first
  const choice = page.locator('label', { hasText: CHILD });
  await choice.click();
  const submitted = page.waitForResponse((r) => /\/api\/tasks\/\d+\/annotations/.test(r.url()) && r.request().method() === 'POST');
  await page.getByTestId('bottombar-submit-button').click();
  const res = await submitted;
  expect(res.status()).toBe(201);
  browserAnnotation = (await res.json()) as { id: number; task: number };
  await browser.close();
  browser = undefined;

  // The run sees it: the label is in Postgres under the person's name, and the waiting workflow counts it.
  const row = await waitFor('the browser label in Postgres', () => humanRow(browserAnnotation!.id), 60_000);
  expect(row).toMatchObject({ label: CHILD, annotator: a.email });
  const seen = await waitFor(
    'the run to count the browser label',
    async () => {
      const q = await childProgress();
      return q.annotations >= 1 ? q : undefined;
    },
    60_000,
  );
  expect(seen.state).toBe('waiting');
  expected.set(row!.frame_key, CHILD);
});

test('two people label the rest through the API (one annotation while the gateway is down); the dataset holds exactly their labels', async () => {
  expect(browserAnnotation).toBeDefined();
  const tasks = (
    await svc.pool.query<{ task_id: string; frame_key: string; split: string; weak_label: string }>(
      `SELECT task_id, frame_key, split, weak_label FROM labeling_tasks WHERE workflow_id = $1 ORDER BY task_id`,
      [workflowId],
    )
  ).rows.map((t) => ({ id: Number(t.task_id), key: t.frame_key, split: t.split, weak: t.weak_label }));
  const validation = tasks.filter((t) => t.split === 'validation');
  const train = tasks.filter((t) => t.split === 'train' && t.id !== browserAnnotation!.task);
  expect(train.length).toBeGreaterThanOrEqual(2);
  expect(validation.length).toBeGreaterThanOrEqual(1);
  const flip = (l: string) => (l === 'other' ? LABEL : 'other');
  const pairs: Array<[string, string]> = [];

  // Validation frames: both people. The first one they disagree on; a third person settles
  // it. Another frame of a video of the label (when there is one), both put under `other`:
  // a frame goes where the people put it (that video stays in validation in the next run:
  // same positive videos, same seed).
  const outlier = validation.slice(1).find((t) => t.weak === LABEL && t.id !== browserAnnotation!.task);
  for (const [i, t] of validation.entries()) {
    const byA = t.id === browserAnnotation!.task ? CHILD : t === outlier ? 'other' : t.weak;
    if (t.id !== browserAnnotation!.task) await a.client.createAnnotation(t.id, { result: choose(byA), lead_time: 2 });
    const byB = i === 0 ? flip(byA) : byA;
    await b.client.createAnnotation(t.id, { result: choose(byB), lead_time: 3 });
    pairs.push([byA, byB]);
    expected.set(t.key, byA);
  }
  const disputed = validation[0]!;
  await waitFor(
    'a third person to be asked about the disputed frame',
    async () => ((await admin.getTask(disputed.id))!.overlap === 3 ? true : undefined),
    60_000,
  );
  await admin.createAnnotation(disputed.id, { result: choose(pairs[0]![0]) });

  // Training frames: one person, who confirms the search's label (the training split holds
  // a video of the label and videos of others, so training has two classes, and so do the
  // next run's and the retrain's, which inherit these labels). A changes one label; B's
  // extra annotation is deleted.
  const want = new Map(train.map((t) => [t.id, t.weak]));
  const [first, second, ...rest] = train;
  const wrong = await a.client.createAnnotation(first!.id, { result: choose(flip(want.get(first!.id)!)) });
  await new Promise((r) => setTimeout(r, 50));
  await a.client.updateAnnotation(wrong.id, { result: choose(want.get(first!.id)!) });
  expected.set(first!.key, want.get(first!.id)!);
  const extra = await b.client.createAnnotation(first!.id, { result: choose(flip(want.get(first!.id)!)) });
  await waitFor('the extra annotation mirrored', () => humanRow(extra.id), 60_000);
  await b.client.deleteAnnotation(extra.id);
  await waitFor('the deleted annotation gone from Postgres', async () => ((await humanRow(extra.id)) ? undefined : true), 60_000);
  expect(await humanRow(wrong.id)).toMatchObject({ label: want.get(first!.id), annotator: a.email });
  for (const t of rest) {
    await a.client.createAnnotation(t.id, { result: choose(want.get(t.id)!) });
    expected.set(t.key, want.get(t.id)!);
  }

  // The gateway goes down and the video worker is killed: Label Studio's webhook for the
  // next annotation fails (no retry). Only the reconciliation poll of the restarted worker finds it.
  await workers.gateway!.kill();
  await workers.video!.kill();
  const lost = await a.client.createAnnotation(second!.id, { result: choose(want.get(second!.id)!) });
  const lostAt = Date.now();
  expected.set(second!.key, want.get(second!.id)!);
  workers.video = await startWorker('video', env);
  const found = await waitFor('the reconciliation to find the annotation whose webhook was lost', () => humanRow(lost.id), 120_000);
  expect(found).toMatchObject({ label: want.get(second!.id), annotator: a.email });
  const foundAfterS = (Date.now() - lostAt) / 1000;
  expect(workers.gateway!.proc.exitCode !== null || workers.gateway!.proc.signalCode !== null).toBe(true);
  workers.gateway = await startWorker('gateway', env);

  const result = (await client.workflow.getHandle(workflowId).result()) as NewCategoryResult;
  const label = result.steps.label!.summary as Record<string, unknown>;
  const k = cohenKappa(pairs);
  expect(label).toMatchObject({
    mode: 'human',
    finishedBy: 'complete',
    sent: tasks.length,
    human: tasks.length,
    weakFallback: 0,
    excluded: 0,
    inherited: 0,
    pairs: validation.length,
    disagreements: 1,
    projectUrl: expect.stringContaining('/projects/'),
  });
  expect(label.agreement).toBeCloseTo(k.agreement!, 4);
  if (k.kappa === null) expect(label.kappa).toBeNull();
  else expect(label.kappa).toBeCloseTo(k.kappa, 4);

  // The dataset: exactly the people's labels, each frame marked human.
  const ds = (await svc.store.getJson<DatasetManifest>(result.dataset.datasetKey))!;
  expect(new Map(ds.frames.map((f) => [f.key, f.label]))).toEqual(expected);
  expect(ds.frames.every((f) => f.source === 'human')).toBe(true);
  expect((result.steps.dataset!.summary as { sources: Record<string, number> }).sources).toEqual({ human: tasks.length });
  // A frame put under the child label is a class of the dataset.
  expect(ds.labels).toEqual(expect.arrayContaining([LABEL, CHILD, 'other']));
  for (const f of ds.frames) expect(f.split).toBe(tasks.find((t) => t.key === f.key)!.split);

  // Postgres holds one human row per annotation with a label, as Label Studio has them: no duplicate, nothing lost.
  const projectId = Number(
    (await svc.pool.query<{ project_id: string }>('SELECT project_id FROM labeling_projects WHERE label = $1', [LABEL])).rows[0]!.project_id,
  );
  const inLs = (await admin.allTasks(projectId)).flatMap((t) => (t.annotations ?? []).map((x) => ({ id: x.id, task: t.id })));
  const rows = await svc.pool.query<{ annotation_id: string }>(
    `SELECT fl.annotation_id FROM frame_labels fl JOIN labeling_annotations la ON la.annotation_id = fl.annotation_id
     WHERE fl.source = 'human' AND la.project_id = $1 ORDER BY fl.annotation_id`,
    [projectId],
  );
  expect(rows.rows.map((r) => Number(r.annotation_id))).toEqual(inLs.map((x) => x.id).sort((x, y) => x - y));
  expect(inLs.some((x) => x.id === extra.id)).toBe(false);

  // `reelset labeling status --json` reports the finished wait.
  const { stdout } = await promisify(execFile)(process.execPath, [path.join(ROOT, 'cli/bin.js'), 'labeling', 'status', workflowId, '--json'], {
    cwd: ROOT,
    env: { ...process.env, NODE_NO_WARNINGS: '1' },
  });
  const status = JSON.parse(stdout) as { status: string; tasks: number; done: number; projectUrl: string; agreement: { disagreements: number } };
  expect(status).toMatchObject({ status: 'finished', tasks: tasks.length, done: tasks.length, projectUrl: label.projectUrl, agreement: { disagreements: 1 } });
  console.log(
    `human labelling e2e: ${tasks.length} tasks (${validation.length} validation), annotation with no webhook found by reconciliation ` +
      `${foundAfterS.toFixed(1)} s after it was made (worker restart included); agreement ${label.agreement}, kappa ${label.kappa}`,
  );
  const final = (await childProgress().catch(() => undefined)) as LabelingProgress | undefined;
  if (final) expect(final.state).toBe('done');
});

test('a second run: the published model pre-annotates, frames people labelled are not sent again, and finishing early marks the rest weak', async () => {
  const second = `${workflowId}-again`;
  const request: NewCategoryRequest = {
    label: LABEL,
    maxNegativeVideos: 2,
    extract: { mode: 'count', count: 6 },
    labeling: { mode: 'human', reconcileIntervalS: 3, deadlineHours: 2 },
    teacher: { epochs: 3, cutmixPerFrame: 0 },
    student: { epochsFactor: 1 },
    heartbeatTimeoutS: 10,
    gpuTaskQueue: env.REELSET_GPU_TASK_QUEUE!,
  };
  const handle = await client.workflow.start('newCategoryWorkflow', { taskQueue: env.REELSET_VIDEO_TASK_QUEUE!, workflowId: second, args: [request] });
  const child = client.workflow.getHandle(labelingChildWorkflowId(second));
  const p = await waitFor('the second run to reach its wait (or to finish without one)', async () => {
    const q = await child.query(labelingProgressQuery).catch(() => undefined);
    return q && (q.state === 'waiting' || q.state === 'done') && q.lastSyncAt !== null ? q : undefined;
  });
  // The first run published a student (an image model): its predictions are the pre-annotations.
  const predictions = await svc.store.getJson<{ model: { name: string; version: number }; frames: Record<string, { label: string; score: number }> }>(
    `runs/${second}/label/predictions.json`,
  );
  expect(predictions?.model).toMatchObject({ name: LABEL, version: 1 });
  expect(Object.keys(predictions!.frames).length).toBeGreaterThan(0);
  const sent = (await svc.pool.query<{ task_id: string; frame_key: string }>('SELECT task_id, frame_key FROM labeling_tasks WHERE workflow_id = $1', [second]))
    .rows;
  // No frame a person labelled for this label is asked again.
  for (const t of sent) expect(expected.has(t.frame_key)).toBe(false);
  for (const t of sent.slice(0, 3)) {
    const task = (await admin.getTask(Number(t.task_id)))!;
    expect(task.data['modelLabel']).toBe(predictions!.frames[t.frame_key]!.label);
    expect((task.predictions as Array<{ model_version: string }>).map((x) => x.model_version)).toEqual(['weak-search', `${LABEL}-v1-student`]);
  }
  if (p.state === 'waiting') {
    // Nobody labels: `reelset labeling finish` ends the wait; the frames keep their weak labels, marked as such.
    await promisify(execFile)(process.execPath, [path.join(ROOT, 'cli/bin.js'), 'labeling', 'finish', second], {
      cwd: ROOT,
      env: { ...process.env, NODE_NO_WARNINGS: '1' },
    });
  }
  const result = (await handle.result()) as NewCategoryResult;
  const label = result.steps.label!.summary as { sent: number; inherited: number; weakFallback: number; human: number; finishedBy: string };
  expect(label.sent).toBe(sent.length);
  expect(label.inherited).toBeGreaterThan(0);
  expect(label.weakFallback).toBe(sent.length);
  expect(label.finishedBy).toBe(sent.length ? 'early' : 'complete');
  const ds = (await svc.store.getJson<DatasetManifest>(result.dataset.datasetKey))!;
  const sentKeys = new Set(sent.map((t) => t.frame_key));
  for (const f of ds.frames) expect(f.source).toBe(sentKeys.has(f.key) ? 'weak' : 'human');
  console.log(`human labelling e2e, second run: ${label.inherited} frames inherited from people, ${sent.length} sent, finished ${label.finishedBy}`);
});

test("a retrain after a new video: the label's mode (people) comes from its last run, and only the new unique frames go to them", async () => {
  // A video of the catalog that no run of the label has seen (as a positive or a negative) becomes the label's.
  const seen = new Set<string>();
  for (const id of [workflowId, `${workflowId}-again`]) {
    for (const h of (await svc.store.getJson<SearchManifest>(`runs/${id}/search/manifest.json`))?.hits ?? []) seen.add(h.videoId);
  }
  const fresh = ['cup', 'cockatoo', 'motion', 'DualDiscs', 'vtest', 'movie-hello'].find((v) => !seen.has(v))!;
  expect(fresh).toBeDefined();
  await svc.pool.query(`INSERT INTO video_labels (video_id, label, source) VALUES ($1, $2, 'e2e')`, [fresh, LABEL]);

  // Only the label and no negatives: the parameters, the labelling mode included, are the last run's.
  const id = `${workflowId}-retrain`;
  const handle = await client.workflow.start('retrainWorkflow', {
    taskQueue: env.REELSET_VIDEO_TASK_QUEUE!,
    workflowId: id,
    args: [{ label: LABEL, overrides: { maxNegativeVideos: 0 } }],
  });
  const child = client.workflow.getHandle(labelingChildWorkflowId(id));
  const p = await waitFor('the retrain to send its frames to people', async () => {
    const q = await child.query(labelingProgressQuery).catch(() => undefined);
    return q && q.state === 'waiting' && q.lastSyncAt !== null ? q : undefined;
  });
  const tasks = (
    await svc.pool.query<{ task_id: string; frame_key: string; video_id: string; split: string }>(
      'SELECT task_id, frame_key, video_id, split FROM labeling_tasks WHERE workflow_id = $1 ORDER BY task_id',
      [id],
    )
  ).rows;
  expect(tasks.length).toBe(p.tasks);
  expect(tasks.length).toBeGreaterThan(0);
  // The new video's frames only: nothing of the earlier runs is asked again.
  for (const t of tasks) {
    expect(t.video_id).toBe(fresh);
    expect(expected.has(t.frame_key)).toBe(false);
  }
  // The published model pre-annotates them (the second run's student, v2).
  expect((await svc.store.getJson<{ model: { version: number } }>(`runs/${id}/label/predictions.json`))?.model.version).toBe(2);
  // People label them (both on validation frames); the retrain finishes by itself.
  for (const t of tasks) {
    await a.client.createAnnotation(Number(t.task_id), { result: choose(LABEL) });
    if (t.split === 'validation') await b.client.createAnnotation(Number(t.task_id), { result: choose(LABEL) });
  }
  const r = (await handle.result()) as RetrainResult;
  expect(r.outcome).toBe('retrained');
  expect(r.newVideos).toMatchObject({ positives: 1, negatives: 0 });
  expect(r.run!.steps.label!.summary).toMatchObject({ mode: 'human', finishedBy: 'complete', sent: tasks.length, human: tasks.length, weakFallback: 0 });
  // The label's dataset: everything labelled so far, the people's labels as they gave them.
  const ds = (await svc.store.getJson<DatasetManifest>(r.run!.dataset.datasetKey))!;
  const byKey = new Map(ds.frames.map((f) => [f.key, f]));
  for (const t of tasks) expect(byKey.get(t.frame_key)).toMatchObject({ label: LABEL, source: 'human', videoId: fresh });
  for (const [key, label] of expected) if (byKey.has(key)) expect(byKey.get(key)).toMatchObject({ label, source: 'human' });
  console.log(
    `human labelling e2e, retrain: ${tasks.length} frames of the new video "${fresh}" sent to people, dataset v${ds.version} with ${ds.frames.length} frames`,
  );
});
