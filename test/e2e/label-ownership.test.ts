/**
 * A label's data is its own (issue 17), end to end: new-category for three labels in turn
 * over one catalog, then the first label again with new videos. Frames are
 * content-addressed and shared by every run, so each later run labels the first label's
 * frames again (as its negatives). The first label's second run must inherit only its own
 * earlier labels: its dataset holds the label (and its child), `other`, and every positive
 * frame of its first run, never another label's label or another label's `other`.
 * The taxonomy says the first label excludes the second: a frame the second label called
 * its own is evidence of `other` for the first (labelled so in weak mode, offered to
 * people as `other` in human mode), and nothing else crosses.
 *
 * Weak mode, then human mode (people simulated through Label Studio's API, as
 * `human-labeling.test.ts` does). Real Temporal dev server, PostgreSQL, S3 server, Label
 * Studio, worker processes (video, training, gateway), real (lavfi-made) videos.
 *
 * The search's answer is fixed to the test's own catalog: the search samples negatives
 * from every labelled video of the shared test database (other test files' videos too),
 * and this test needs each run's negatives to be the other labels' videos. The test
 * writes the `search` manifest with the real search's hits restricted to its videos;
 * the run finds it and goes on from there, as a resumed run does.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { upsertTaxonomy } from '../../activities/catalog/ingest';
import { searchCatalog } from '../../domain/catalog-search';
import {
  catalogDigest,
  labelingChildWorkflowId,
  labelingProgressQuery,
  stepManifestKey,
  type DatasetManifest,
  type DedupeStepManifest,
  type LabelStepManifest,
  type NewCategoryRequest,
  type NewCategoryResult,
  type SearchManifest,
} from '../../contracts';
import type { LabelStudioClient } from '../../lib/label-studio';
import { labelledFrames } from '../../domain/labelled';
import { choose, signUp, type Person } from '../helpers/label-studio';
import { requireLabelStudio, requireServices, uniqueSuffix, type Services } from '../helpers/services';
import { lavfiVideo, registerVideo } from '../helpers/videos';
import { startWorker, type WorkerProcess } from '../helpers/workers';

jest.setTimeout(900_000);

const s = uniqueSuffix();
let svc: Services;
let admin: LabelStudioClient;
let connection: Connection;
let client: Client;
let tmp: string;
let people: Person[] = [];
const workers: WorkerProcess[] = [];
const removers: Array<() => Promise<void>> = [];
const started: string[] = [];
const env = {
  REELSET_VIDEO_TASK_QUEUE: `e2e-own-video-${s}`,
  REELSET_GPU_TASK_QUEUE: `e2e-own-gpu-${s}`,
};
const H264 = ['-t', '3', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p'];
const lavfi = (src: string) => `${src}=size=320x240:rate=8`;

/** One mode's catalog: labels, their videos (the true label of each), and the runs' ids. */
interface World {
  mode: 'weak' | 'human';
  first: string;
  child: string;
  second: string;
  third: string;
  /** Video id -> the label it truly shows. */
  truth: Map<string, string>;
}

async function addVideo(w: World, id: string, source: string, catalogLabels: string[], truth: string): Promise<void> {
  // The id in the container's comment: the two modes' videos show the same pixels but are different files.
  const file = lavfiVideo(path.join(tmp, `${id}.mp4`), source, [...H264, '-metadata', `comment=${id}`]);
  const v = await registerVideo(svc, file, id);
  removers.push(v.remove);
  for (const l of catalogLabels) await svc.pool.query('INSERT INTO video_labels (video_id, label) VALUES ($1, $2) ON CONFLICT DO NOTHING', [id, l]);
  w.truth.set(id, truth);
}

/** Three labels (the first with a child; the first excludes the second) and two or three videos each. */
async function makeWorld(mode: World['mode']): Promise<World> {
  const p = `own${mode[0]}-${s}`;
  const w: World = { mode, first: `${p}-person`, child: `${p}-face`, second: `${p}-cartoon`, third: `${p}-game`, truth: new Map() };
  await upsertTaxonomy(svc.pool, [
    { name: w.first, parent: null, synonyms: [], excludes: [w.second] },
    { name: w.child, parent: w.first, synonyms: [], excludes: [] },
    { name: w.second, parent: null, synonyms: [], excludes: [] },
    { name: w.third, parent: null, synonyms: [], excludes: [] },
  ]);
  await addVideo(w, `${p}-p1`, lavfi('mandelbrot'), [w.first], w.first);
  await addVideo(w, `${p}-p2`, lavfi('life') + ':mold=10:ratio=0.5', [w.child], w.child);
  await addVideo(w, `${p}-c1`, lavfi('smptehdbars'), [w.second], w.second);
  await addVideo(w, `${p}-c2`, lavfi('testsrc2'), [w.second], w.second);
  await addVideo(w, `${p}-g1`, lavfi('cellauto') + ':rule=110', [w.third], w.third);
  await addVideo(w, `${p}-g2`, lavfi('rgbtestsrc'), [w.third], w.third);
  return w;
}

/** The run's search: the real search's hits, restricted to this world's videos (see the file's comment). */
async function fixSearch(w: World, workflowId: string, label: string): Promise<SearchManifest> {
  const { resolved, hits } = await searchCatalog(svc.pool, { label, maxPositiveVideos: 50, maxNegativeVideos: 10_000, seed: 1 });
  const mine = hits.filter((h) => w.truth.has(h.videoId));
  const positives = mine.filter((h) => h.role === 'positive').length;
  const manifest: SearchManifest = {
    step: 'search',
    workflowId,
    finishedAt: new Date().toISOString(),
    durationMs: 0,
    terms: resolved.terms,
    hits: mine,
    summary: { label: resolved.label, positives, negatives: mine.length - positives, videoIds: mine.map((h) => h.videoId), catalogDigest: catalogDigest(mine) },
  };
  await svc.store.putJson(stepManifestKey(workflowId, 'search'), manifest);
  return manifest;
}

const requestOf = (label: string, mode: World['mode']): NewCategoryRequest => ({
  label,
  maxNegativeVideos: 10,
  extract: { mode: 'count', count: 3 },
  labeling: mode === 'weak' ? { mode: 'weak' } : { mode: 'human', reconcileIntervalS: 3, deadlineHours: 2 },
  teacher: { epochs: 2, cutmixPerFrame: 0 },
  student: { epochsFactor: 1, fineTune: 'off' },
  // Generous: under the full suite's load a 10 s heartbeat timeout can fail an attempt; heartbeats are not what this test checks.
  heartbeatTimeoutS: 60,
  gpuTaskQueue: env.REELSET_GPU_TASK_QUEUE,
});

async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 300_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * The right label of a frame of `videoId` for `label`: the label the video shows when it is
 * `label` or, for the first label, its child (people pick the child; weak labels give the
 * run's label), else `other`. What the simulated people answer.
 */
function answer(w: World, label: string, videoId: string): string {
  const t = w.truth.get(videoId)!;
  if (t === label) return label;
  if (label === w.first && t === w.child) return w.mode === 'human' ? w.child : w.first;
  return 'other';
}

/** Start a run of `label`, let people label its tasks (human mode), and return its result and manifests. */
async function run(
  w: World,
  label: string,
  name: string,
): Promise<{
  id: string;
  result: NewCategoryResult;
  label: LabelStepManifest;
  dedupe: DedupeStepManifest;
  dataset: DatasetManifest;
  tasks: Array<{ frameKey: string; videoId: string; weakLabel: string }>;
}> {
  const id = `e2e-own-${w.mode}-${name}-${s}`;
  await fixSearch(w, id, label);
  started.push(id);
  const t0 = Date.now();
  const handle = await client.workflow.start('newCategoryWorkflow', {
    taskQueue: env.REELSET_VIDEO_TASK_QUEUE,
    workflowId: id,
    args: [requestOf(label, w.mode)],
  });
  const tasks: Array<{ frameKey: string; videoId: string; weakLabel: string }> = [];
  if (w.mode === 'human') {
    const child = client.workflow.getHandle(labelingChildWorkflowId(id));
    const p = await waitFor(`run ${name} to send its frames to people`, async () => {
      const q = await child.query(labelingProgressQuery).catch(() => undefined);
      return q && (q.state === 'waiting' || q.state === 'done') && q.lastSyncAt !== null ? q : undefined;
    });
    const rows = await svc.pool.query<{ task_id: string; frame_key: string; video_id: string; split: string; weak_label: string }>(
      'SELECT task_id, frame_key, video_id, split, weak_label FROM labeling_tasks WHERE workflow_id = $1 ORDER BY task_id',
      [id],
    );
    expect(rows.rows.length).toBe(p.tasks);
    for (const t of rows.rows) {
      tasks.push({ frameKey: t.frame_key, videoId: t.video_id, weakLabel: t.weak_label });
      const choice = choose(answer(w, label, t.video_id));
      for (const person of people.slice(0, t.split === 'validation' ? 2 : 1))
        await person.client.createAnnotation(Number(t.task_id), { result: choice, lead_time: 1 });
    }
  }
  const result = (await handle.result()) as NewCategoryResult;
  console.log(
    `label ownership e2e (${w.mode}): run ${name} of ${label} took ${((Date.now() - t0) / 1000).toFixed(1)} s: label ${JSON.stringify(result.steps.label!.summary)}`,
  );
  return {
    id,
    result,
    tasks,
    label: (await svc.store.getJson<LabelStepManifest>(stepManifestKey(id, 'label')))!,
    dedupe: (await svc.store.getJson<DedupeStepManifest>(stepManifestKey(id, 'dedupe')))!,
    dataset: (await svc.store.getJson<DatasetManifest>(result.dataset.datasetKey))!,
  };
}

/** The positive frames of a run (frame key -> label): the label and its child. */
function positivesOf(w: World, r: { label: LabelStepManifest }): Map<string, string> {
  return new Map(r.label.frames.filter((f) => f.label === w.first || f.label === w.child).map((f) => [f.key, f.label]));
}

/**
 * The whole story for one mode, with its checks. Runs: the first label; a video of the second label arrives (it will be evidence); the
 * second label; the third; a new video of the first label arrives; the first label again.
 */
async function story(w: World): Promise<void> {
  const evidenceVideo = `own${w.mode[0]}-${s}-c3`;
  const first = await run(w, w.first, 'first-1');
  const ownPositives = positivesOf(w, first);
  expect(ownPositives.size).toBeGreaterThan(0);
  expect(new Set(first.dataset.labels)).toEqual(new Set(w.mode === 'human' ? [w.first, w.child, 'other'] : [w.first, 'other']));

  // A video of the second label that the first label's runs have not seen.
  await addVideo(w, evidenceVideo, 'gradients=size=320x240:rate=8:speed=0.05:seed=17', [w.second], w.second);
  const second = await run(w, w.second, 'second');
  const third = await run(w, w.third, 'third');
  // Each label's run labelled the first label's frames `other` (their negatives), and the third's its own frames `w.third`:
  // the labels a key-only read would pick up.
  for (const r of [second, third]) expect(new Set(r.dataset.labels)).toEqual(new Set([r === second ? w.second : w.third, 'other']));
  const ofFirst = (videoId: string) => [w.first, w.child].includes(w.truth.get(videoId)!);
  for (const r of [second, third]) expect(r.label.frames.some((f) => ofFirst(f.videoId) && f.label === 'other')).toBe(true);

  // New videos of the first label: fresh content, and, in human mode, the second label's video
  // now also catalogued as the first's (a mislabel the second label's people contradict).
  await addVideo(w, `own${w.mode[0]}-${s}-p3`, lavfi('sierpinski'), [w.first], w.first);
  if (w.mode === 'human') await svc.pool.query('INSERT INTO video_labels (video_id, label) VALUES ($1, $2)', [evidenceVideo, w.first]);
  const again = await run(w, w.first, 'first-2');

  // 1. Its dataset holds only the label, its child and `other`.
  const allowed = new Set([w.first, w.child, 'other']);
  expect(again.dataset.labels.filter((l) => !allowed.has(l))).toEqual([]);
  expect(again.dataset.frames.filter((f) => !allowed.has(f.label))).toEqual([]);
  // 2. Every positive frame of the first run is there with its label (through its cluster's representative).
  const repOf = new Map<string, string>();
  for (const c of again.dedupe.clusters) for (const m of c.members) repOf.set(m, c.representative);
  const inDataset = new Map(again.dataset.frames.map((f) => [f.key, f.label]));
  for (const [key, l] of ownPositives) expect([key, inDataset.get(repOf.get(key)!)]).toEqual([key, l]);
  // ...and the frames of the other labels' videos are `other`.
  for (const f of again.dataset.frames) expect([f.videoId, f.label]).toEqual([f.videoId, answer(w, w.first, f.videoId)]);
  // 3. It inherited its earlier labels (weak: each from the first label's own first run).
  const inherited = (again.result.steps.label!.summary as { inherited: number }).inherited;
  expect(inherited).toBeGreaterThan(0);
  if (w.mode === 'weak') {
    const copies = again.label.frames.filter((f) => f.inheritedFrom !== undefined && !f.evidence);
    expect(copies.length).toBe(inherited);
    for (const f of copies) expect(f.inheritedRun).toBe(first.id);
  }
  // 4. The label's cumulative dataset (what a retrain builds from) holds the same: own labels only, every first-run positive.
  const cumulative = new Map((await labelledFrames(svc.pool, w.first)).map((f) => [f.frameKey, f.label]));
  expect([...new Set(cumulative.values())].filter((l) => !allowed.has(l))).toEqual([]);
  for (const [key, l] of ownPositives) expect([key, cumulative.get(key)]).toEqual([key, l]);

  // 5. Exclusion evidence: the second label's video is `other` for the first, marked as evidence, never the other way round.
  // Its frames reached the label step: extracted (no failure), kept by dedupe, labelled.
  expect(again.result.failures).toEqual([]);
  expect(again.dedupe.clusters.filter((c) => c.videos.includes(evidenceVideo)).length).toBeGreaterThan(0);
  const evidenced = again.label.frames.filter((f) => f.videoId === evidenceVideo);
  expect(evidenced.length).toBeGreaterThan(0);
  if (w.mode === 'weak') {
    for (const f of evidenced)
      expect(f).toMatchObject({ label: 'other', source: 'weak', evidence: { label: w.second, runLabel: w.second, source: 'weak' }, inheritedRun: second.id });
    expect((again.result.steps.label!.summary as { evidence: number }).evidence).toBe(evidenced.length);
    const rows = await svc.pool.query<{ origin: string; inherited_from: string; inherited_label: string }>(
      'SELECT origin, inherited_from, inherited_label FROM frame_labels WHERE workflow_id = $1 AND frame_key = ANY($2::text[])',
      [again.id, evidenced.map((f) => f.key)],
    );
    expect(rows.rows).toEqual(evidenced.map(() => ({ origin: 'evidence', inherited_from: second.id, inherited_label: w.second })));
  } else {
    // Offered to people as `other` (the catalog says the first label, the second label's people said otherwise); they agree.
    const offered = again.tasks.filter((t) => t.videoId === evidenceVideo);
    expect(offered.length).toBe(evidenced.length);
    for (const t of offered) expect(t.weakLabel).toBe('other');
    for (const t of again.tasks.filter((x) => x.videoId !== evidenceVideo)) expect(t.weakLabel).toBe(w.first);
    for (const f of evidenced) expect(f).toMatchObject({ label: 'other', source: 'human' });
    expect((again.result.steps.label!.summary as { evidence: number }).evidence).toBe(offered.length);
  }
  console.log(
    `label ownership e2e (${w.mode}): second run of ${w.first}: dataset ${JSON.stringify(again.dataset.counts)}, ` +
      `${ownPositives.size} positives of the first run kept, ${inherited} inherited, ${evidenced.length} on evidence`,
  );
}

beforeAll(async () => {
  svc = await requireServices();
  admin = await requireLabelStudio();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-own-'));
  people = [await signUp(admin, `own-a-${s}@reelset.test`, `pw-a-${s}`), await signUp(admin, `own-b-${s}@reelset.test`, `pw-b-${s}`)];
  workers.push(...(await Promise.all([startWorker('video', env), startWorker('gpu', env), startWorker('gateway', env)])));
  connection = await Connection.connect({ address: svc.config.TEMPORAL_ADDRESS });
  client = new Client({ connection, namespace: svc.config.TEMPORAL_NAMESPACE });
});

afterAll(async () => {
  for (const id of started)
    await client?.workflow
      .getHandle(id)
      .terminate('e2e test ended')
      .catch(() => undefined);
  for (const w of workers) await w.kill();
  if (svc) {
    for (const r of removers) await r().catch(() => undefined);
    const labels = (await svc.pool.query<{ name: string }>('SELECT name FROM labels WHERE name LIKE $1', [`own_-${s}-%`])).rows.map((r) => r.name);
    const projects = await svc.pool.query<{ project_id: string }>('SELECT project_id FROM labeling_projects WHERE label = ANY($1::text[])', [labels]);
    for (const p of projects.rows) await admin?.deleteProject(Number(p.project_id)).catch(() => undefined);
    await svc.pool.query('DELETE FROM labeling_projects WHERE label = ANY($1::text[])', [labels]);
    await svc.pool.query('DELETE FROM video_labels WHERE label = ANY($1::text[])', [labels]);
    await svc.pool.query('UPDATE labels SET parent = NULL WHERE name = ANY($1::text[])', [labels]);
    await svc.pool.query('DELETE FROM labels WHERE name = ANY($1::text[])', [labels]);
  }
  await connection?.close();
  await svc?.close();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

/**
 * Both stories run at once (their labels and videos are their own): the people's waits of
 * one overlap the other's extraction and training. Each test reports its own story.
 */
const stories: Partial<Record<World['mode'], Promise<unknown>>> = {};
const storyOf = (mode: World['mode']) =>
  (stories[mode] ??= makeWorld(mode)
    .then(story)
    .then(
      () => undefined,
      (err: unknown) => err,
    ));

test('weak labels: three labels in turn, then the first again: its dataset is its own', async () => {
  void storyOf('human');
  const err = await storyOf('weak');
  if (err) throw err;
});

test('people in Label Studio: three labels in turn, then the first again: its dataset is its own', async () => {
  const err = await storyOf('human');
  if (err) throw err;
});
