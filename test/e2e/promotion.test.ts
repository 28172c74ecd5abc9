/**
 * End to end, automatic promotion: real services and real worker processes on a tiny
 * catalog of lavfi-made videos under a label of this test's own.
 *
 * 1. new-category makes dataset v1 and the first candidates;
 * 2. its validation videos of both classes (no dataset version trains on them; the
 *    negatives are whichever labelled videos the search sampled) become the label's fixed
 *    evaluation set (`reelset evalset grow`);
 * 3. a forced retrain builds v2 without them, publishes, and the gate promotes v2 (no
 *    production model; the above-chance minimum, REELSET_PROMOTION_MIN_LOWER_BOUND, is set
 *    to 0 for the workers: a set of a few lavfi videos cannot show any model clearly above
 *    chance, and the outcome must not hang on what 3 epochs learn) with a transition by
 *    `workflow:<id>`;
 * 4. `reelset predict --model <label>` answers from the production model;
 * 5. another forced retrain: v3 is compared with v2 on the same set, and the result says
 *    which way it went (a hold names its rule and production stays v2).
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { main } from '../../cli/reelset';
import type { DatasetManifest, NewCategoryRequest, NewCategoryResult, RetrainResult } from '../../contracts';
import { requireServices, uniqueSuffix, type Services } from '../helpers/services';
import { tinyCatalog, TINY_SOURCES, type TinyCatalog } from '../helpers/tiny-catalog';
import { startWorker, type WorkerProcess } from '../helpers/workers';

jest.setTimeout(900_000);

const suffix = uniqueSuffix();
const LABEL = `pr-${suffix}`.slice(0, 40);
const queues = { REELSET_VIDEO_TASK_QUEUE: `pr-video-${suffix}`, REELSET_GPU_TASK_QUEUE: `pr-gpu-${suffix}` };
let svc: Services;
let connection: Connection;
let client: Client;
let dir: string;
const workers: WorkerProcess[] = [];
let catalog: TinyCatalog | undefined;

async function cli(...args: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const write = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += chunk.toString();
    return true;
  });
  try {
    const code = await main(['node', 'reelset', ...args]);
    process.exitCode = undefined;
    return { code, out };
  } finally {
    write.mockRestore();
  }
}

const retrain = async (id: string) =>
  (await client.workflow.execute('retrainWorkflow', {
    taskQueue: queues.REELSET_VIDEO_TASK_QUEUE,
    workflowId: id,
    args: [{ label: LABEL, force: true }],
  })) as RetrainResult;

beforeAll(async () => {
  svc = await requireServices();
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-promotion-'));
  catalog = await tinyCatalog(svc, LABEL, dir);
  // Two more videos, unlike the others, so a validation split exists for both classes.
  await catalog.add(`${LABEL}-p4`, TINY_SOURCES.extraPositive, LABEL);
  await catalog.add(`${LABEL}-n3`, 'rgbtestsrc=size=320x240:rate=8', `${LABEL}-neg`);
  const env = { ...queues, REELSET_VIDEO_METRICS_PORT: '0', REELSET_GPU_METRICS_PORT: '0', REELSET_PROMOTION_MIN_LOWER_BOUND: '0' };
  workers.push(await startWorker('video', env), await startWorker('gpu', env));
  connection = await Connection.connect({ address: svc.config.TEMPORAL_ADDRESS });
  client = new Client({ connection, namespace: svc.config.TEMPORAL_NAMESPACE });
}, 300_000);

afterAll(async () => {
  for (const w of workers) await w.kill();
  // The evaluation set holds the catalog's frames (ON DELETE RESTRICT): drop it first.
  for (const sql of [
    'DELETE FROM eval_set_frames WHERE label = $1',
    'DELETE FROM eval_set_videos WHERE label = $1',
    'DELETE FROM model_evaluations WHERE name = $1',
    'DELETE FROM eval_sets WHERE label = $1',
  ]) {
    await svc?.pool.query(sql, [LABEL]).catch(() => undefined);
  }
  await catalog?.remove();
  await connection?.close();
  await svc?.close();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

test('a retrain promotes its candidate through the gate on the fixed evaluation set; predict answers from production', async () => {
  // 1. The first candidates.
  const request: NewCategoryRequest = {
    label: LABEL,
    maxNegativeVideos: 3,
    extract: { mode: 'count', count: 4 },
    validationFraction: 0.5,
    teacher: { epochs: 3, cutmixPerFrame: 0 },
    student: { epochsFactor: 1 },
    heartbeatTimeoutS: 10,
    gpuTaskQueue: queues.REELSET_GPU_TASK_QUEUE,
    labeling: { mode: 'weak' },
  };
  const nc = (await client.workflow.execute('newCategoryWorkflow', {
    taskQueue: queues.REELSET_VIDEO_TASK_QUEUE,
    workflowId: `${LABEL}-nc`,
    args: [request],
  })) as NewCategoryResult;
  expect(nc.dataset.version).toBe(1);

  // 2. The held-out videos become the evaluation set.
  // The dataset's validation videos, both classes: the label's own and its sampled
  // negatives (any labelled video of another label in the catalog, this test's or not).
  const manifest = (await svc.store.getJson<DatasetManifest>(nc.dataset.datasetKey))!;
  const ids = manifest.videos.validation;
  const cand = JSON.parse((await cli('evalset', 'candidates', LABEL, '--json')).out) as { candidates: Array<{ videoId: string; catalogClass: string }> };
  expect(cand.candidates.map((c) => c.videoId)).toEqual(expect.arrayContaining(ids));
  expect(new Set(cand.candidates.filter((c) => ids.includes(c.videoId)).map((c) => c.catalogClass))).toEqual(new Set([LABEL, 'other']));
  const grown = await cli('evalset', 'grow', LABEL, '--videos', ids.join(','), '--reason', 'v1 validation videos', '--by', 'e2e', '--json');
  expect(grown.code).toBe(0);
  expect(JSON.parse(grown.out)).toMatchObject({ version: 1, actor: 'e2e' });

  // 3. A retrain: dataset v2 leaves the set's videos out, and the gate promotes v2.
  const rt = await retrain(`${LABEL}-rt1`);
  expect(rt.outcome).toBe('retrained');
  expect(rt.run!.dataset.version).toBe(2);
  expect(rt.run!.dataset.warnings.join(' ')).toMatch(/of the label's evaluation set left out/);
  expect(rt.promotion).toMatchObject({ decision: 'promoted', production: 2 });
  expect(rt.promotion!.gate!.rules.map((r) => r.rule)).toEqual(['eval-set', 'above-chance']);
  const t = await svc.pool.query<{ to_stage: string; actor: string }>(
    'SELECT to_stage, actor FROM model_transitions WHERE name = $1 AND version = 2 ORDER BY id',
    [LABEL],
  );
  expect(t.rows.map((r) => [r.to_stage, r.actor])).toEqual([
    ['candidate', `workflow:${LABEL}-rt1`],
    ['production', `workflow:${LABEL}-rt1`],
  ]);
  // The candidate's out-of-scope gate was calibrated for predict.
  expect(await svc.store.head(`models/${LABEL}/v2/student/scope.json`)).toBeGreaterThan(1000);

  // 4. predict from the registry's production model, on a held-out video's file.
  const file = path.join(dir, `${ids.find((v) => v.startsWith(LABEL))!}.mp4`);
  const p = await cli('predict', file, '--model', LABEL, '--max-frames', '4', '--json');
  expect(p.code).toBe(0);
  const out = JSON.parse(p.out) as {
    model: { source: string };
    inputs: Array<{ kind: string; frames: unknown[]; result: { label: string; aggregation: string } }>;
  };
  expect(out.model.source).toMatch(new RegExp(`^${LABEL}@2 \\(production`));
  expect(out.inputs[0]).toMatchObject({ kind: 'video', result: { aggregation: 'mean-probability' } });
  expect(out.inputs[0]!.frames.length).toBeGreaterThan(0);

  // 5. Another candidate, compared with v2 on the same set version.
  const rt2 = await retrain(`${LABEL}-rt2`);
  const decision = rt2.promotion!;
  expect(['promoted', 'held-back']).toContain(decision.decision);
  expect(decision.gate!.evalVersion).toBe(1);
  expect(decision.gate!.production).toMatchObject({ version: 2 });
  const stages = (
    await svc.pool.query<{ version: number; stage: string }>(`SELECT version, stage FROM models WHERE name = $1 AND role = 'student' ORDER BY version`, [LABEL])
  ).rows;
  if (decision.decision === 'held-back') {
    expect(decision.note).toMatch(/^held back: (video-margin|label-recall)/);
    expect(stages.map((s) => s.stage)).toEqual(['candidate', 'production', 'candidate']);
  } else {
    expect(stages.map((s) => s.stage)).toEqual(['candidate', 'archived', 'production']);
  }
  console.log(`second retrain: ${decision.decision}: ${decision.note}`);
});
