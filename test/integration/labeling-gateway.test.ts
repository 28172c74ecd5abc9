/**
 * The labelling gateway's HTTP handler with the real PostgreSQL (routing reads
 * `labeling_runs`, `labeling_tasks`, `labeling_annotations`) and Label Studio (the direct
 * path when no run waits), and a recording signaller in place of Temporal (the e2e test
 * runs it with Temporal): authentication, tolerated payloads, routing, and logs that
 * never hold a payload.
 */
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { LabelingEvent } from '../../contracts';
import { createGateway, WEBHOOK_PATH } from '../../workers/labeling-gateway';
import { requireLabelStudio, requireServices, uniqueSuffix, type Services } from '../helpers/services';

jest.setTimeout(60_000);

let svc: Services;
const s = uniqueSuffix();
const waiting = `gw-waiting-${s}`;
const finished = `gw-finished-${s}`;
const project = 900_000_000 + Math.floor(Math.random() * 1e6);
const otherProject = project + 1;
const task = 800_000_000 + Math.floor(Math.random() * 1e6);
let logs = '';
const signals: Array<{ workflowId: string; event: LabelingEvent }> = [];
let url = '';
let gateway: ReturnType<typeof createGateway>;
const videoSha =
  'e'.repeat(56) +
  s
    .replace(/[^0-9a-f]/g, '')
    .padEnd(8, '0')
    .slice(0, 8);
const frameKey = `frames/${videoSha}/0123456789abcdef/000000000.jpg`;

beforeAll(async () => {
  svc = await requireServices();
  await requireLabelStudio();
  for (const wf of [waiting, finished])
    await svc.pool.query(`INSERT INTO runs (workflow_id, kind, label, input) VALUES ($1, 'new-category', 'cup', '{}')`, [wf]);
  await svc.pool.query(`INSERT INTO videos (id, sha256, s3_key, file_name, bytes) VALUES ($1, $2, 'videos/x', 'x.mp4', 1)`, [`gw-video-${s}`, videoSha]);
  await svc.pool.query(
    `INSERT INTO frames (s3_key, video_id, params_hash, frame_index, timestamp_s, width, height, bytes, sha256, sharpness, brightness)
     VALUES ($1, $2, '0123456789abcdef', 0, 0, 1, 1, 1, 'x', 1, 1)`,
    [frameKey, `gw-video-${s}`],
  );
  await svc.pool.query(
    `INSERT INTO labeling_runs (workflow_id, label, project_id, status, deadline, on_deadline) VALUES ($1, 'cup', $2, 'waiting', now() + interval '1 day', 'proceed')`,
    [waiting, project],
  );
  await svc.pool.query(
    `INSERT INTO labeling_runs (workflow_id, label, project_id, status, deadline, on_deadline) VALUES ($1, 'cup', $2, 'finished', now(), 'proceed')`,
    [finished, otherProject],
  );
  await svc.pool.query(
    `INSERT INTO labeling_tasks (task_id, workflow_id, project_id, frame_key, video_id, split, required, weak_label, weak_confidence, uncertainty)
     VALUES ($1, $2, $3, $4, $5, 'train', 1, 'cup', 1, 0)`,
    [task, waiting, project, frameKey, `gw-video-${s}`],
  );
  await svc.pool.query(
    `INSERT INTO labeling_annotations (annotation_id, task_id, project_id, frame_key, annotator, annotator_id, label, ls_updated_at) VALUES ($1, $2, $3, $4, 'a@x', 1, 'cup', now())`,
    [task + 7, task, project, frameKey],
  );
  const sink = new Writable({ write: (chunk: Buffer, _e, cb) => ((logs += chunk.toString()), cb()) });
  const logger = pino({ level: 'info' }, sink);
  gateway = createGateway({ pool: svc.pool, config: svc.config, logger }, async (workflowId, event) => {
    signals.push({ workflowId, event });
    return true;
  });
  await new Promise<void>((r) => gateway.server.listen(0, '127.0.0.1', () => r()));
  url = `http://127.0.0.1:${(gateway.server.address() as AddressInfo).port}${WEBHOOK_PATH}`;
});

afterAll(async () => {
  gateway?.server.close();
  if (svc) {
    await svc.pool.query(`DELETE FROM labeling_annotations WHERE task_id = $1`, [task]);
    await svc.pool.query(`DELETE FROM runs WHERE workflow_id = ANY($1)`, [[waiting, finished]]);
    await svc.pool.query(`DELETE FROM videos WHERE id = $1`, [`gw-video-${s}`]);
    await svc.close();
  }
});

async function post(body: string, secret: string | null = svc.config.LABEL_STUDIO_WEBHOOK_SECRET): Promise<number> {
  signals.length = 0;
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(secret !== null ? { 'X-Reelset-Webhook-Secret': secret } : {}) },
    body,
  });
  await res.text();
  await gateway.drain();
  return res.status;
}

const created = (annotationId: number, taskId: number, projectId: number) =>
  JSON.stringify({
    action: 'ANNOTATION_CREATED',
    annotation: { id: annotationId, task: taskId, completed_by: 1, result: [] },
    task: { id: taskId, project: projectId, data: { frameKey, runId: waiting } },
    project: { id: projectId, token: 'project-token-must-not-be-logged' },
  });

test('a call without the secret, or with a wrong one, is refused and routes nothing', async () => {
  expect(await post(created(1, task, project), null)).toBe(401);
  expect(await post(created(1, task, project), 'wrong-secret-value')).toBe(401);
  expect(await post(created(1, task, project), `${svc.config.LABEL_STUDIO_WEBHOOK_SECRET}x`)).toBe(401);
  expect(signals).toEqual([]);
});

test('an annotation event signals the waiting run of its task with the annotation id', async () => {
  expect(await post(created(task + 1, task, project))).toBe(202);
  expect(signals).toEqual([
    { workflowId: `${waiting}/label`, event: { action: 'ANNOTATION_CREATED', annotationIds: [task + 1], deletedAnnotationIds: [], full: false } },
  ]);
});

test('a deletion event (annotation ids only) reaches the run whose mirrored annotation it names', async () => {
  expect(await post(JSON.stringify({ action: 'ANNOTATIONS_DELETED', annotations: [{ id: task + 7 }] }))).toBe(202);
  expect(signals).toEqual([
    { workflowId: `${waiting}/label`, event: { action: 'ANNOTATIONS_DELETED', annotationIds: [], deletedAnnotationIds: [task + 7], full: false } },
  ]);
});

test('events without payload, or unreadable, make the waiting runs reconcile fully', async () => {
  for (const body of [JSON.stringify({ action: 'ANNOTATION_UPDATED' }), '', 'not json at all']) {
    expect(await post(body)).toBe(202);
    expect(signals.filter((x) => x.workflowId === `${waiting}/label`)).toEqual([
      { workflowId: `${waiting}/label`, event: expect.objectContaining({ full: true }) },
    ]);
    expect(signals.some((x) => x.workflowId === `${finished}/label`)).toBe(false);
  }
});

test('an event no run waits for is applied to Postgres directly (a deletion removes the mirrored annotation)', async () => {
  await svc.pool.query(`UPDATE labeling_runs SET status = 'finished' WHERE workflow_id = $1`, [waiting]);
  expect(await post(JSON.stringify({ action: 'ANNOTATIONS_DELETED', annotations: [{ id: task + 7 }], project: { id: project } }))).toBe(202);
  expect(signals).toEqual([]);
  expect(gateway.routed.at(-1)!.applied).toEqual({ written: 0, removed: 1 });
  expect((await svc.pool.query(`SELECT 1 FROM labeling_annotations WHERE annotation_id = $1`, [task + 7])).rowCount).toBe(0);
});

test('oversized bodies are refused; unknown paths and methods answered; health', async () => {
  expect(await post(`{"action":"ANNOTATION_CREATED","x":"${'a'.repeat(1_100_000)}"}`)).toBe(413);
  expect((await fetch(url.replace(WEBHOOK_PATH, '/nope'), { method: 'POST' })).status).toBe(404);
  expect((await fetch(url)).status).toBe(405);
  expect(await (await fetch(url.replace(WEBHOOK_PATH, '/health'))).json()).toEqual({ status: 'ok' });
});

test('the logs never hold a payload, a token or the secret', () => {
  expect(logs).toContain('label studio event');
  expect(logs).toContain('webhook refused');
  expect(logs).not.toContain('project-token-must-not-be-logged');
  expect(logs).not.toContain(svc.config.LABEL_STUDIO_WEBHOOK_SECRET);
  expect(logs).not.toContain('wrong-secret-value');
});
