/**
 * Fixtures of the model-lifecycle tests, built from real videos of
 * `../shared/data/registry-corpus`: catalog rows (ingest), frames extracted by ffmpeg into
 * S3 with their `frames` rows, a dataset version whose manifest names its training
 * videos, and published students in the real format (EfficientNet-Lite0 + a head,
 * model.json / weights.bin / artifact.json) registered as candidates.
 *
 * The students are prototype classifiers (a linear head whose class weights are the mean
 * normalised EfficientNet-Lite0 features of the class's training frames; Snell et al. 2017 use
 * the same idea for few-shot classification), so a "good" and a deliberately "worse"
 * version take seconds to make instead of a training run.
 */
import { execFile } from 'node:child_process';
import type { SymbolicTensor } from '@tensorflow/tfjs';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { readCatalogFile } from '../../activities/catalog/catalog-file';
import { ingestCatalog } from '../../activities/catalog/ingest';
import { headOn, toVariable, type HeadArch } from '../../activities/training/head-model';
import { serializeModel } from '../../activities/training/serialize';
import { imageModelArtifact } from '../../activities/training/artifact';
import { loadSplitBackbone } from '../../activities/training/trunk';
import { modelPrefix, type ModelArtifact } from '../../contracts';
import { loadClassifier, type ClassifierFiles } from '../../domain/classifier';
import { EFFICIENTNET_LITE0 } from '../../domain/backbone/backbones';
import { FEATURES_LAYER, IMAGENET_LOGITS_LAYER } from '../../domain/backbone/tfjs-backbone';
import { createLogger } from '../../lib/logger';
import { initTensorflow } from '../../lib/tf';
import type { Services } from './services';
import { corpusPath } from '../../infra/corpus';

const run = promisify(execFile);

/** The registry corpus (49 real videos with labels). */
export const CORPUS = corpusPath('registry');

/** Frames extraction parameters' tag used by these fixtures (`frames.params_hash`). */
export const FIXTURE_PARAMS = 'test-lifecycle-6';

/**
 * Ingest the corpus videos `ids` (their real catalog entries) and extract `perVideo` frames
 * of each, evenly spaced, short side 256, JPEG, into `frames/<sha>/<FIXTURE_PARAMS>/<ms>.jpg`
 * with `frames` rows. Idempotent.
 *
 * @returns frame keys per video id, in time order.
 */
export async function ingestWithFrames(svc: Services, ids: string[], perVideo = 6): Promise<Map<string, string[]>> {
  const all = await readCatalogFile(path.join(CORPUS, 'catalog.json'));
  const entries = all.filter((e) => ids.includes(e.id));
  if (entries.length !== ids.length) throw new Error(`registry corpus lacks ${ids.filter((i) => !entries.some((e) => e.id === i)).join(', ')}`);
  const report = await ingestCatalog({ ...svc, logger: createLogger('silent', 'test') }, entries);
  if (report.failed.length) throw new Error(`ingest failed: ${JSON.stringify(report.failed)}`);
  const out = new Map<string, string[]>();
  for (const e of entries) {
    const v = await svc.pool.query<{ sha256: string; duration_s: number | null }>('SELECT sha256, duration_s FROM videos WHERE id = $1', [e.id]);
    const { sha256, duration_s } = v.rows[0]!;
    const have = await svc.pool.query<{ s3_key: string }>('SELECT s3_key FROM frames WHERE video_id = $1 AND params_hash = $2 ORDER BY frame_index', [
      e.id,
      FIXTURE_PARAMS,
    ]);
    if (have.rows.length >= perVideo) {
      out.set(
        e.id,
        have.rows.map((r) => r.s3_key),
      );
      continue;
    }
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-lc-'));
    try {
      const d = duration_s && duration_s > 0 ? duration_s : 1;
      await run('ffmpeg', [
        '-v',
        'error',
        '-i',
        e.absPath,
        '-vf',
        `fps=${perVideo / d},scale='if(gt(iw,ih),-2,256)':'if(gt(iw,ih),256,-2)'`,
        '-frames:v',
        String(perVideo),
        '-q:v',
        '3',
        path.join(dir, '%03d.jpg'),
      ]);
      const files = (await fs.readdir(dir)).sort();
      const keys: string[] = [];
      for (const [i, f] of files.entries()) {
        const b = await fs.readFile(path.join(dir, f));
        const ms = Math.round(((i + 0.5) * d * 1000) / perVideo);
        const key = `frames/${sha256}/${FIXTURE_PARAMS}/${ms}.jpg`;
        await svc.store.put(key, b, 'image/jpeg');
        await svc.pool.query(
          `INSERT INTO frames (s3_key, video_id, params_hash, frame_index, timestamp_s, width, height, bytes, sha256, sharpness, brightness)
           VALUES ($1,$2,$3,$4,$5,0,0,$6,$7,0,0) ON CONFLICT DO NOTHING`,
          [key, e.id, FIXTURE_PARAMS, i, ms / 1000, b.length, sha256],
        );
        keys.push(key);
      }
      out.set(e.id, keys);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }
  return out;
}

/** Register a run and a dataset version of `label` whose manifest trains on `trainVideos` (their frames, with their classes). */
export async function registerDataset(
  svc: Services,
  label: string,
  workflowId: string,
  trainVideos: string[],
  framesOf: Map<string, string[]> = new Map(),
  classOf: (videoId: string) => string = () => label,
): Promise<number> {
  await svc.pool.query(`INSERT INTO runs (workflow_id, kind, label, input, status) VALUES ($1, 'test', $2, '{}', 'completed') ON CONFLICT DO NOTHING`, [
    workflowId,
    label,
  ]);
  const existing = await svc.pool.query<{ version: number }>('SELECT version FROM datasets WHERE workflow_id = $1', [workflowId]);
  if (existing.rows[0]) return existing.rows[0].version;
  const v = (await svc.pool.query<{ v: number }>('SELECT coalesce(max(version), 0) + 1 AS v FROM datasets WHERE name = $1', [label])).rows[0]!.v;
  const key = `datasets/${label}/v${v}/manifest.json`;
  await svc.store.putJson(key, {
    name: label,
    version: v,
    workflowId,
    labels: [label, 'other'],
    frames: trainVideos.flatMap((v) =>
      (framesOf.get(v) ?? []).map((key) => ({ key, videoId: v, label: classOf(v), split: 'train', vector: { key: '', row: 0 } })),
    ),
    unlabeled: [],
    videos: { train: trainVideos, validation: [] },
    counts: { train: {}, validation: {} },
    warnings: [],
  });
  await svc.pool.query(`INSERT INTO datasets (name, version, workflow_id, manifest_key, counts) VALUES ($1,$2,$3,$4,'{}')`, [label, v, workflowId, key]);
  return v;
}

/** Build a student image model (EfficientNet-Lite0 + a linear head with this kernel, `1280 x k`) in the published format. */
export async function buildStudent(labels: string[], kernel: Float32Array, workflowId: string): Promise<ClassifierFiles> {
  const { tf } = await initTensorflow('wasm');
  const bb = await loadSplitBackbone(tf, 'efficientnet_lite0');
  try {
    const k = labels.length;
    const dim = EFFICIENTNET_LITE0.dim;
    const arch: HeadArch = { dim, hidden: 0, numClasses: k, dropout: 0 };
    const params = {
      names: ['logits/kernel', 'logits/bias'],
      vars: [toVariable(tf, tf.tensor2d(kernel, [dim, k]), false), toVariable(tf, tf.zeros([k]), false)],
    };
    const features = bb.net.full.getLayer(FEATURES_LAYER).getOutputAt(0) as SymbolicTensor;
    const imagenet = bb.net.full.getLayer(IMAGENET_LOGITS_LAYER).getOutputAt(0) as SymbolicTensor;
    const model = headOn(tf, arch, params, bb.net.full.inputs, features, 'reelset_student', [imagenet]);
    const s = await serializeModel(model);
    tf.dispose(params.vars);
    const artifact: ModelArtifact = imageModelArtifact({
      labels,
      backbone: EFFICIENTNET_LITE0,
      head: { hidden: 0, dropout: 0 },
      fineTunedFrom: null,
      training: { prototype: true },
      workflowId,
    });
    return { modelJson: s.modelJson, weights: s.weights, artifact };
  } finally {
    bb.dispose();
  }
}

/**
 * Class prototypes: the mean normalised backbone features of each class's frames, scaled
 * by `scale`, as a `1280 x k` kernel (column j = class j).
 */
export async function prototypeKernel(svc: Services, labels: string[], framesOf: Record<string, string[]>, scale = 1): Promise<Float32Array> {
  const probe = await loadClassifier(await buildStudent(labels, new Float32Array(EFFICIENTNET_LITE0.dim * labels.length), 'probe'));
  const dim = EFFICIENTNET_LITE0.dim;
  const kernel = new Float32Array(dim * labels.length);
  try {
    for (const [j, l] of labels.entries()) {
      const images = await Promise.all((framesOf[l] ?? []).map(async (k) => (await svc.store.get(k))!));
      const { features, featureDim } = await probe.predict(images);
      if (featureDim !== dim) throw new Error(`features of width ${featureDim}`);
      const n = images.length;
      for (let d = 0; d < dim; d++) {
        let s = 0;
        for (let i = 0; i < n; i++) s += features[i * dim + d]!;
        kernel[d * labels.length + j] = (scale * s) / n;
      }
    }
  } finally {
    probe.dispose();
  }
  return kernel;
}

/** Publish a student as `<label>@<version>` (S3 files + a candidate `models` row and its transition). */
export async function publishStudent(
  svc: Services,
  label: string,
  version: number,
  datasetVersion: number,
  workflowId: string,
  files: ClassifierFiles,
): Promise<string> {
  // One run per version: a run publishes one version (models is unique on (workflow_id, role)).
  const run = `${workflowId}-v${version}`;
  await svc.pool.query(`INSERT INTO runs (workflow_id, kind, label, input, status) VALUES ($1, 'test', $2, '{}', 'completed') ON CONFLICT DO NOTHING`, [
    run,
    label,
  ]);
  const prefix = modelPrefix(label, version, 'student');
  await svc.store.put(`${prefix}/model.json`, files.modelJson, 'application/json');
  await svc.store.put(`${prefix}/weights.bin`, files.weights);
  await svc.store.putJson(`${prefix}/artifact.json`, files.artifact);
  await svc.pool.query(
    `INSERT INTO models (name, version, role, workflow_id, dataset_name, dataset_version, artifact_prefix, labels, metrics)
     VALUES ($1,$2,'student',$3,$1,$4,$5,$6,'{}') ON CONFLICT DO NOTHING`,
    [label, version, run, datasetVersion, prefix, files.artifact.labels],
  );
  await svc.pool.query(`INSERT INTO model_transitions (name, version, from_stage, to_stage, actor, reason) VALUES ($1,$2,NULL,'candidate',$3,'published')`, [
    label,
    version,
    `workflow:${run}`,
  ]);
  return prefix;
}
