import { Context } from '@temporalio/activity';
import type { ActivityDeps } from '../common/deps';
import { DatasetError } from '../common/errors';
import type { NewCategoryInput } from '../../workflows/input';
import { withTransaction } from '../storage/db';
import { readStepManifest, runPrefix, runStep, type StepResult } from '../storage/runs';
import type { ObjectStore } from '../storage/s3';
import { toFloat32 } from '../embeddings/activities';
import { decodeForEmbedding, loadEmbeddingModel } from '../embeddings/model';
import type { DatasetManifest, DatasetSummary, VectorRef } from '../dataset/activities';
import { cutmix } from './cutmix';
import { distillStudent, predict, readHeadMetadata, trainTeacher, type OnEpoch, type ResumeFrom } from './heads';
import { evaluate, type Evaluation } from './metrics';
import { mulberry32, deriveSeed, randInt } from './rng';
import type { SerializedModel } from './serialize';

/** Where a model's files are: `<prefix>/model.json` and `<prefix>/weights.bin`. */
export async function saveModel(store: ObjectStore, prefix: string, model: SerializedModel): Promise<void> {
  await store.put(`${prefix}/weights.bin`, model.weights);
  await store.put(`${prefix}/model.json`, model.modelJson, 'application/json');
}

/** Read a model saved by {@link saveModel}, or undefined when absent. */
export async function loadModel(store: ObjectStore, prefix: string): Promise<SerializedModel | undefined> {
  const [json, weights] = await Promise.all([store.get(`${prefix}/model.json`), store.get(`${prefix}/weights.bin`)]);
  return json && weights ? { modelJson: json.toString('utf8'), weights } : undefined;
}

/** Gather the embedding rows of frames from their packed vector files (each file read once). */
async function gatherVectors(store: ObjectStore, refs: VectorRef[], dim: number): Promise<Float32Array> {
  const files = new Map<string, Float32Array>();
  for (const key of new Set(refs.map((r) => r.key))) {
    const buf = await store.get(key);
    if (!buf) throw new Error(`vector file missing: ${store.uri(key)}`);
    files.set(key, toFloat32(buf));
  }
  const out = new Float32Array(refs.length * dim);
  refs.forEach((r, i) => out.set(files.get(r.key)!.subarray(r.row * dim, (r.row + 1) * dim), i * dim));
  return out;
}

async function loadDataset(deps: ActivityDeps, workflowId: string): Promise<DatasetManifest> {
  const step = await readStepManifest<{ summary: DatasetSummary }>(deps.store, workflowId, 'dataset');
  const ds = await deps.store.getJson<DatasetManifest>(step.summary.datasetKey);
  if (!ds) throw new Error(`dataset manifest missing: ${step.summary.datasetKey}`);
  return ds;
}

/**
 * Checkpointing for a training loop: resume from `<prefix>/checkpoint` when present,
 * and an `onEpoch` that writes the checkpoint (weights + optimiser state) each epoch and
 * heartbeats `{ epoch, loss }`.
 */
async function checkpointing(store: ObjectStore, prefix: string): Promise<{ resume?: ResumeFrom; onEpoch: OnEpoch }> {
  const ckpt = await loadModel(store, `${prefix}/checkpoint`);
  const meta = ckpt ? readHeadMetadata(ckpt) : undefined;
  const resume = ckpt && meta ? { epoch: meta.epoch, weights: ckpt } : undefined;
  const onEpoch: OnEpoch = async (epoch, loss, weights) => {
    await saveModel(store, `${prefix}/checkpoint`, await weights());
    Context.current().heartbeat({ epoch, loss });
  };
  return { resume, onEpoch };
}

/** Summary of a training step. */
export interface TrainSummary {
  role: 'teacher' | 'student';
  epochs: number;
  finalLoss: number;
  /** Epoch the attempt resumed after (0 when it started fresh). */
  resumedAfterEpoch: number;
  trainFrames: number;
  /** Rows without a label used only for distillation (student). */
  unlabeledFrames: number;
  /** CutMix rows (teacher). */
  cutmixSamples: number;
  modelPrefix: string;
}

/** Summary of the evaluate step. */
export interface EvaluateSummary {
  validationFrames: number;
  validationVideos: number;
  teacher: Evaluation | null;
  student: Evaluation | null;
  note?: string;
}

/** Summary of the publish step. */
export interface PublishSummary {
  models: Array<{ role: 'teacher' | 'student'; name: string; version: number; artifactPrefix: string }>;
  evaluation: EvaluateSummary;
}

type TeacherParams = NewCategoryInput['teacher'];
type StudentParams = NewCategoryInput['student'];

/** Training activities: the GPU task queue (tfjs-node-gpu when installed, else wasm/cpu). */
export function createTrainingActivities(deps: ActivityDeps) {
  const { store } = deps;
  const backend = deps.config.REELSET_TF_BACKEND;

  /** CutMix rows for the teacher: pairs of training frames of different labels mixed, then embedded. */
  async function cutmixSamples(ds: DatasetManifest, count: number, seed: number) {
    const train = ds.frames.filter((f) => f.split === 'train');
    const k = ds.labels.length;
    if (count <= 0 || train.length < 2) return { features: new Float32Array(0), targets: new Float32Array(0), count: 0 };
    const model = await loadEmbeddingModel({ backend, logger: deps.logger });
    const rng = mulberry32(deriveSeed(seed, 7));
    const pixels: Uint8Array[] = [];
    const targets = new Float32Array(count * k);
    for (let i = 0; i < count; i++) {
      const a = train[randInt(rng, train.length)]!;
      let b = train[randInt(rng, train.length)]!;
      for (let t = 0; t < 8 && b.label === a.label; t++) b = train[randInt(rng, train.length)]!;
      const [ia, ib] = await Promise.all([store.get(a.key), store.get(b.key)]);
      if (!ia || !ib) throw new Error(`frame missing in S3: ${!ia ? a.key : b.key}`);
      const size = model.id.inputSize;
      const mixed = cutmix(
        { data: await decodeForEmbedding(ia, size), width: size, height: size },
        { data: await decodeForEmbedding(ib, size), width: size, height: size },
        rng,
      );
      pixels.push(mixed.data);
      const ta = i * k + ds.labels.indexOf(a.label);
      const tb = i * k + ds.labels.indexOf(b.label);
      targets[ta] = targets[ta]! + mixed.lambda;
      targets[tb] = targets[tb]! + (1 - mixed.lambda);
      if (i % 16 === 15) Context.current().heartbeat({ cutmix: i + 1, of: count });
    }
    const features = await model.embedRaw(pixels);
    return { features, targets, count };
  }

  return {
    /**
     * Step 7, train: the teacher head on frozen embeddings of the training frames, with
     * label smoothing, class-balanced sampling and CutMix rows; checkpointed to S3 every
     * epoch, and a retried attempt resumes from the last checkpoint.
     *
     * @throws DatasetError (not retried) when the training split has fewer than two labels.
     */
    async trainTeacher(input: { workflowId: string; teacher: TeacherParams; seed: number }): Promise<StepResult<TrainSummary>> {
      return runStep(deps, input.workflowId, 'train', async () => {
        const ds = await loadDataset(deps, input.workflowId);
        const dim = ds.embedding.dim;
        const train = ds.frames.filter((f) => f.split === 'train');
        const labels = Int32Array.from(train.map((f) => ds.labels.indexOf(f.label)));
        if (new Set(labels).size < 2) throw new DatasetError(`training split of ${ds.name} v${ds.version} has fewer than two labels`);
        const features = await gatherVectors(store, train.map((f) => f.vector), dim);
        const prefix = `${runPrefix(input.workflowId)}/train`;

        // CutMix rows are computed once per run and cached beside the checkpoint.
        const m = Math.round(train.length * input.teacher.cutmixPerFrame);
        let extra: { features: Float32Array; targets: Float32Array } | undefined;
        if (m > 0) {
          const [f, t] = await Promise.all([store.get(`${prefix}/cutmix-features.f32`), store.get(`${prefix}/cutmix-targets.f32`)]);
          if (f && t) extra = { features: toFloat32(f), targets: toFloat32(t) };
          else {
            const s = await cutmixSamples(ds, m, input.seed);
            extra = { features: s.features, targets: s.targets };
            await store.put(`${prefix}/cutmix-features.f32`, Buffer.from(s.features.buffer, s.features.byteOffset, s.features.byteLength));
            await store.put(`${prefix}/cutmix-targets.f32`, Buffer.from(s.targets.buffer, s.targets.byteOffset, s.targets.byteLength));
          }
        }
        const { resume, onEpoch } = await checkpointing(store, prefix);
        const result = await trainTeacher({
          features, dim, labels, numClasses: ds.labels.length,
          hidden: input.teacher.hidden, epochs: input.teacher.epochs, learningRate: input.teacher.learningRate,
          labelSmoothing: input.teacher.labelSmoothing, batchSize: input.teacher.batchSize, classBalanced: true,
          seed: input.seed, extraSamples: extra, resume, onEpoch, backend, logger: deps.logger,
        });
        await saveModel(store, `${prefix}/model`, result.model);
        const summary: TrainSummary = {
          role: 'teacher', epochs: input.teacher.epochs, finalLoss: result.history.at(-1)?.loss ?? NaN,
          resumedAfterEpoch: resume?.epoch ?? 0, trainFrames: train.length, unlabeledFrames: 0,
          cutmixSamples: extra ? extra.targets.length / ds.labels.length : 0, modelPrefix: `${prefix}/model`,
        };
        return { summary, extra: { history: result.history } };
      });
    },

    /**
     * Step 8, distill: a smaller student matching the teacher's softened outputs with a
     * Jensen-Shannon loss on labelled and unlabelled (near-duplicate) training frames,
     * at a tenth of the teacher's learning rate for twice the epochs (defaults).
     * Checkpointed every epoch like the teacher.
     */
    async distillStudent(input: { workflowId: string; teacher: TeacherParams; student: StudentParams; seed: number }): Promise<StepResult<TrainSummary>> {
      return runStep(deps, input.workflowId, 'distill', async () => {
        const ds = await loadDataset(deps, input.workflowId);
        const dim = ds.embedding.dim;
        const teacher = await loadModel(store, `${runPrefix(input.workflowId)}/train/model`);
        if (!teacher) throw new Error('teacher model missing: has the train step run?');
        const train = ds.frames.filter((f) => f.split === 'train');
        const refs = [...train.map((f) => f.vector), ...ds.unlabeled.map((u) => u.vector)];
        const labels = Int32Array.from([...train.map((f) => ds.labels.indexOf(f.label)), ...ds.unlabeled.map(() => -1)]);
        const features = await gatherVectors(store, refs, dim);
        const prefix = `${runPrefix(input.workflowId)}/distill`;
        const { resume, onEpoch } = await checkpointing(store, prefix);
        const epochs = Math.max(1, Math.round(input.teacher.epochs * input.student.epochsFactor));
        const result = await distillStudent({
          features, dim, labels, numClasses: ds.labels.length, teacher,
          temperature: input.student.temperature, hidden: input.student.hidden, epochs,
          learningRate: input.teacher.learningRate * input.student.learningRateFactor,
          batchSize: input.teacher.batchSize, classBalanced: true, seed: input.seed, resume, onEpoch, backend, logger: deps.logger,
        });
        await saveModel(store, `${prefix}/model`, result.model);
        const summary: TrainSummary = {
          role: 'student', epochs, finalLoss: result.history.at(-1)?.loss ?? NaN, resumedAfterEpoch: resume?.epoch ?? 0,
          trainFrames: train.length, unlabeledFrames: ds.unlabeled.length, cutmixSamples: 0, modelPrefix: `${prefix}/model`,
        };
        return { summary, extra: { history: result.history } };
      });
    },

    /**
     * Step 9, evaluate: accuracy, per-label precision/recall/F1 and the confusion matrix
     * of teacher and student on the validation videos, per frame and per video (a video's
     * prediction averages its frames' probabilities).
     */
    async evaluateModels(input: { workflowId: string }): Promise<StepResult<EvaluateSummary>> {
      return runStep(deps, input.workflowId, 'evaluate', async () => {
        const ds = await loadDataset(deps, input.workflowId);
        const val = ds.frames.filter((f) => f.split === 'validation');
        const base = { validationFrames: val.length, validationVideos: ds.videos.validation.length };
        if (val.length === 0) {
          return { summary: { ...base, teacher: null, student: null, note: 'no validation video: every label has a single video' } };
        }
        const features = await gatherVectors(store, val.map((f) => f.vector), ds.embedding.dim);
        const labels = Int32Array.from(val.map((f) => ds.labels.indexOf(f.label)));
        const videoIds = val.map((f) => f.videoId);
        const evalOf = async (role: 'train' | 'distill') => {
          const model = await loadModel(store, `${runPrefix(input.workflowId)}/${role}/model`);
          if (!model) throw new Error(`${role} model missing`);
          const probs = await predict(model, features, ds.embedding.dim);
          return evaluate({ probs, numClasses: ds.labels.length, labels, labelNames: ds.labels, videoIds });
        };
        const summary: EvaluateSummary = { ...base, teacher: await evalOf('train'), student: await evalOf('distill') };
        const missing = ds.labels.filter((l) => !val.some((f) => f.label === l));
        if (missing.length) summary.note = `no validation frame for: ${missing.join(', ')}`;
        return { summary };
      });
    },
  };
}

/** Publishing runs on the CPU queue: it only copies artifacts and writes registry rows. */
export function createPublishActivities(deps: ActivityDeps) {
  const { store, pool } = deps;
  return {
    /**
     * Step 10, publish: copy teacher and student (model.json, weights.bin, labels.json,
     * metrics.json) to `models/<name>/v<version>/<role>/` and register them in the
     * `models` table as candidates. Idempotent per workflow run.
     */
    async publishModels(input: { workflowId: string }): Promise<StepResult<PublishSummary>> {
      return runStep(deps, input.workflowId, 'publish', async () => {
        const ds = await loadDataset(deps, input.workflowId);
        const evaluation = (await readStepManifest<{ summary: EvaluateSummary }>(store, input.workflowId, 'evaluate')).summary;
        const version = await withTransaction(pool, async (c) => {
          await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`model:${ds.name}`]);
          const existing = await c.query<{ version: number }>('SELECT version FROM models WHERE workflow_id = $1 LIMIT 1', [input.workflowId]);
          if (existing.rows[0]) return existing.rows[0].version;
          const next = await c.query<{ v: number }>('SELECT coalesce(max(version), 0) + 1 AS v FROM models WHERE name = $1', [ds.name]);
          return next.rows[0]!.v;
        });
        const models: PublishSummary['models'] = [];
        for (const [role, step] of [['teacher', 'train'], ['student', 'distill']] as const) {
          const model = await loadModel(store, `${runPrefix(input.workflowId)}/${step}/model`);
          if (!model) throw new Error(`${role} model missing`);
          const prefix = `models/${ds.name.replace(/[^a-z0-9_-]/g, '_')}/v${version}/${role}`;
          await saveModel(store, prefix, model);
          await store.putJson(`${prefix}/labels.json`, { labels: ds.labels, embedding: ds.embedding, dataset: { name: ds.name, version: ds.version } });
          await store.putJson(`${prefix}/metrics.json`, evaluation[role]);
          await pool.query(
            `INSERT INTO models (name, version, role, workflow_id, dataset_name, dataset_version, artifact_prefix, labels, metrics)
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT (workflow_id, role) DO NOTHING`,
            [ds.name, version, role, input.workflowId, ds.name, ds.version, prefix, ds.labels, JSON.stringify(evaluation[role] ?? {})],
          );
          models.push({ role, name: ds.name, version, artifactPrefix: prefix });
        }
        return { summary: { models, evaluation } };
      });
    },
  };
}
