/**
 * The labelling activities' building blocks against the real Label Studio, PostgreSQL
 * and S3 server: the label's project (choices from the taxonomy, S3 storage without
 * presigning, the webhook with its secret), images streamed by Label Studio to a logged-in
 * person only, and the mirror of annotations in Postgres (created, changed, skipped,
 * deleted with and without an event).
 */
import { applyLabelingEvent } from '../../activities/labeling/human';
import { knownTasks, reconcileProjectTasks, reconcileTasks } from '../../activities/labeling/mirror';
import { taskOf, type PlannedFrame } from '../../activities/labeling/plan';
import { ensureProject, WEBHOOK_SECRET_HEADER } from '../../activities/labeling/project';
import { createLogger } from '../../lib/logger';
import type { LabelStudioClient } from '../../lib/label-studio';
import { choose, signUp, type Person } from '../helpers/label-studio';
import { requireLabelStudio, requireServices, uniqueSuffix, type Services } from '../helpers/services';

jest.setTimeout(120_000);

let svc: Services;
let admin: LabelStudioClient;
let person: Person;
const s = uniqueSuffix();
const label = `it-${s}`;
const child = `it-${s}-part`;
const run = `it-labeling-${s}`;
const videoSha =
  'f'.repeat(56) +
  s
    .replace(/[^0-9a-f]/g, '')
    .padEnd(8, '0')
    .slice(0, 8);
const frameKey = `frames/${videoSha}/0123456789abcdef/000001000.jpg`;
let projectId = 0;
let taskId = 0;
const jpeg = Buffer.from(
  '/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0Hyc5PTgyPC4zNDL/wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAACf/EABQQAQAAAAAAAAAAAAAAAAAAAAD/2gAIAQEAAD8AVN//2Q==',
  'base64',
);

beforeAll(async () => {
  svc = await requireServices();
  admin = await requireLabelStudio();
  await svc.pool.query(`INSERT INTO labels (name) VALUES ($1) ON CONFLICT DO NOTHING`, [label]);
  await svc.pool.query(`INSERT INTO labels (name, parent, synonyms) VALUES ($1, $2, '{parts}') ON CONFLICT DO NOTHING`, [child, label]);
  await svc.pool.query(`INSERT INTO runs (workflow_id, kind, label, input) VALUES ($1, 'new-category', $2, '{}')`, [run, label]);
  await svc.pool.query(`INSERT INTO videos (id, sha256, s3_key, file_name, bytes) VALUES ($1, $2, $3, 'x.mp4', 1)`, [
    `it-video-${s}`,
    videoSha,
    `videos/${videoSha}.mp4`,
  ]);
  await svc.pool.query(
    `INSERT INTO frames (s3_key, video_id, params_hash, frame_index, timestamp_s, width, height, bytes, sha256, sharpness, brightness)
     VALUES ($1, $2, '0123456789abcdef', 0, 1, 1, 1, $3, 'x', 1, 1)`,
    [frameKey, `it-video-${s}`, jpeg.length],
  );
  await svc.store.put(frameKey, jpeg, 'image/jpeg');
  person = await signUp(admin, `person-${s}@reelset.test`, `pw-${s}`);
});

afterAll(async () => {
  if (projectId) await admin?.deleteProject(projectId).catch(() => undefined);
  if (svc) {
    await svc.pool.query(`DELETE FROM labeling_annotations WHERE frame_key = $1`, [frameKey]);
    await svc.pool.query(`DELETE FROM labeling_projects WHERE label = $1`, [label]);
    await svc.pool.query(`DELETE FROM runs WHERE workflow_id = $1`, [run]);
    await svc.pool.query(`DELETE FROM videos WHERE id = $1`, [`it-video-${s}`]);
    await svc.pool.query(`DELETE FROM labels WHERE name = ANY($1)`, [[child, label]]);
    await svc.store.deleteMany([frameKey]);
    await svc.close();
  }
});

test('the label project: taxonomy choices, S3 storage without presigning (no secret readable back), the webhook with its secret; made once', async () => {
  // The webhook points nowhere: a gateway running on this machine must not mirror the test's annotations first.
  const config = { ...svc.config, LABEL_STUDIO_WEBHOOK_URL: 'http://127.0.0.1:9/webhooks/label-studio' };
  const deps = { pool: svc.pool, config, logger: createLogger('silent', 'test') };
  const first = await ensureProject(deps, admin, label);
  projectId = first.projectId;
  expect(first.choices).toEqual([label, child, 'other']);
  expect(first.projectUrl).toBe(`${svc.config.LABEL_STUDIO_URL}/projects/${projectId}/data`);
  const again = await ensureProject(deps, admin, label);
  expect(again.projectId).toBe(projectId);

  const project = (await admin.getProject(projectId))!;
  expect(project.title).toBe(`reelset: ${label}`);
  expect(project.label_config).toContain(`<Choice value="${child}" hotkey="2"/>`);
  expect(project.expert_instruction).toContain(`<b>${child}</b> (parts): a kind of ${label}`);
  const storages = await admin.listS3Storages(projectId);
  expect(storages).toHaveLength(1);
  expect(storages[0]).toMatchObject({ bucket: svc.config.S3_BUCKET, presign: false, use_blob_urls: true, prefix: 'frames/' });
  expect(JSON.stringify(storages)).not.toContain(svc.config.S3_SECRET_ACCESS_KEY);
  const hooks = await admin.listWebhooks(projectId);
  expect(hooks).toHaveLength(1);
  expect(hooks[0]).toMatchObject({ url: config.LABEL_STUDIO_WEBHOOK_URL, send_payload: true, is_active: true });
  expect(hooks[0]!.headers[WEBHOOK_SECRET_HEADER]).toBe(svc.config.LABEL_STUDIO_WEBHOOK_SECRET);
  expect([...hooks[0]!.actions].sort()).toEqual(['ANNOTATIONS_DELETED', 'ANNOTATION_CREATED', 'ANNOTATION_UPDATED']);
});

test('a task shows its frame through Label Studio to a logged-in person only, with no S3 URL or credential', async () => {
  const f: PlannedFrame = {
    key: frameKey,
    videoId: `it-video-${s}`,
    timestampS: 1,
    split: 'validation',
    required: 2,
    weakLabel: label,
    weakConfidence: 1,
    model: null,
    uncertainty: 0,
  };
  taskId = (await admin.importTasks(projectId, [taskOf(f, { workflowId: run, label, bucket: svc.config.S3_BUCKET, modelVersion: null })]))[0]!;
  await svc.pool.query(
    `INSERT INTO labeling_tasks (task_id, workflow_id, project_id, frame_key, video_id, split, required, weak_label, weak_confidence, uncertainty)
     VALUES ($1, $2, $3, $4, $5, 'validation', 2, $6, 1, 0)`,
    [taskId, run, projectId, frameKey, `it-video-${s}`, label],
  );
  const task = (await person.client.getTask(taskId))!;
  const image = task.data['image'] as string;
  expect(image).toMatch(new RegExp(`^/tasks/${taskId}/resolve/\\?fileuri=`));
  expect(JSON.stringify(task)).not.toContain(svc.config.S3_SECRET_ACCESS_KEY);
  expect(JSON.stringify(task)).not.toMatch(/X-Amz-Signature/);
  const asPerson = await fetch(`${svc.config.LABEL_STUDIO_URL}${image}`, { headers: { Authorization: `Token ${person.token}` } });
  expect(asPerson.status).toBe(200);
  expect(Buffer.from(await asPerson.arrayBuffer()).equals(jpeg)).toBe(true);
  const anonymous = await fetch(`${svc.config.LABEL_STUDIO_URL}${image}`, { redirect: 'manual' });
  expect(anonymous.status).not.toBe(200);
});

test('annotations mirror into Postgres by annotation id: created, changed, skipped, deleted (with an event and without)', async () => {
  const deps = { pool: svc.pool, config: svc.config };
  const rows = async () =>
    (
      await svc.pool.query<{ annotation_id: string; label: string; annotator: string; source: string }>(
        `SELECT annotation_id, label, annotator, source FROM frame_labels WHERE frame_key = $1 ORDER BY annotation_id`,
        [frameKey],
      )
    ).rows;

  const a = await person.client.createAnnotation(taskId, { result: choose(label) });
  expect(await applyLabelingEvent(deps, admin, { annotationIds: [a.id], deletedAnnotationIds: [] })).toEqual({ written: 1, removed: 0 });
  expect(await rows()).toEqual([{ annotation_id: String(a.id), label, annotator: person.email, source: 'human' }]);
  // The same event again (a replayed webhook) writes nothing new.
  expect(await applyLabelingEvent(deps, admin, { annotationIds: [a.id], deletedAnnotationIds: [] })).toEqual({ written: 0, removed: 0 });

  await new Promise((r) => setTimeout(r, 20));
  await person.client.updateAnnotation(a.id, { result: choose(child) });
  await applyLabelingEvent(deps, admin, { annotationIds: [a.id], deletedAnnotationIds: [] });
  expect(await rows()).toEqual([{ annotation_id: String(a.id), label: child, annotator: person.email, source: 'human' }]);

  // The admin skips the frame: an annotation without a label (counted, no human label).
  const skipped = await admin.createAnnotation(taskId, { result: [], was_cancelled: true });
  await applyLabelingEvent(deps, admin, { annotationIds: [skipped.id], deletedAnnotationIds: [] });
  const mirrored = await svc.pool.query(`SELECT annotation_id, label, cancelled FROM labeling_annotations WHERE task_id = $1 ORDER BY annotation_id`, [taskId]);
  expect(mirrored.rows).toEqual([
    { annotation_id: String(a.id), label: child, cancelled: false },
    { annotation_id: String(skipped.id), label: null, cancelled: true },
  ]);
  expect(await rows()).toHaveLength(1);

  // Deleted with an event (ids only).
  await admin.deleteAnnotation(skipped.id);
  expect(await applyLabelingEvent(deps, admin, { annotationIds: [], deletedAnnotationIds: [skipped.id] })).toEqual({ written: 0, removed: 1 });

  // Deleted without any event: the reconciliation finds it gone.
  await person.client.deleteAnnotation(a.id);
  const known = await knownTasks(svc.pool, [taskId]);
  const listed = await admin.listTasks(projectId);
  expect(await reconcileTasks(svc.pool, admin, known, new Map(listed.tasks.map((t) => [t.id, t])))).toEqual({ written: 0, removed: 1 });
  expect(await rows()).toEqual([]);
  expect((await svc.pool.query(`SELECT 1 FROM labeling_annotations WHERE task_id = $1`, [taskId])).rowCount).toBe(0);

  // A new annotation no event told about: the reconciliation writes it.
  const b = await person.client.createAnnotation(taskId, { result: choose('other') });
  expect(await reconcileTasks(svc.pool, admin, known, new Map((await admin.listTasks(projectId)).tasks.map((t) => [t.id, t])))).toEqual({
    written: 1,
    removed: 0,
  });
  expect(await rows()).toEqual([{ annotation_id: String(b.id), label: 'other', annotator: person.email, source: 'human' }]);

  // The cheap reconciliation: only tasks whose updated_at moved are fetched.
  expect(await reconcileProjectTasks(svc.pool, admin, projectId, [taskId])).toMatchObject({ written: 0, removed: 0, missing: [] });
  const stamped = await svc.pool.query<{ ls_updated_at: Date }>('SELECT ls_updated_at FROM labeling_tasks WHERE task_id = $1', [taskId]);
  expect(stamped.rows[0]!.ls_updated_at).toBeInstanceOf(Date);
  expect(await reconcileProjectTasks(svc.pool, admin, projectId, [taskId])).toMatchObject({ written: 0, removed: 0, missing: [] });
  await person.client.updateAnnotation(b.id, { result: choose(label) });
  expect(await reconcileProjectTasks(svc.pool, admin, projectId, [taskId])).toMatchObject({ written: 1, removed: 0, missing: [] });
  expect(await rows()).toEqual([{ annotation_id: String(b.id), label, annotator: person.email, source: 'human' }]);
  // A task deleted in Label Studio: reported missing, its mirrored annotations removed.
  await admin.deleteTask(taskId);
  expect(await reconcileProjectTasks(svc.pool, admin, projectId, [taskId])).toMatchObject({ written: 0, removed: 1, missing: [taskId] });
  expect(await rows()).toEqual([]);
});
