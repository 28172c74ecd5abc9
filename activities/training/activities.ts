import { Context } from '@temporalio/activity';
import {
  DatasetError,
  MissingArtifactError,
  checkpointPrefix,
  runModelPrefix,
  stepFileKey,
  type DatasetManifest,
  type DatasetStepManifest,
  type EvaluateSummary,
  type StepResult,
  type StudentParams,
  type TeacherParams,
  type TrainSummary,
} from '../../contracts';
import { getEmbeddingThread } from '../../lib/backbone/thread';
import type { ActivityDeps } from '../../lib/deps';
import { deriveSeed, mulberry32, randInt } from '../../lib/rng';
import { readStepManifest, runStep } from '../../lib/runs';
import type { ObjectStore } from '../../lib/s3';
import { float32Bytes, gatherVectors, toFloat32 } from '../../lib/vectors';
import { readHeadMetadata } from './head-model';
import type { OnEpoch, ResumeFrom } from './loop';
import { predict } from './predict';
import { distillStudent } from './student';
import { trainTeacher } from './teacher';
import { evaluate } from './metrics';
import { createPredictionActivities } from './predict-frames';
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

/** Read a model the pipeline must have written, naming the step that writes it when it is not there. */
async function requireModel(store: ObjectStore, prefix: string, writtenBy: string): Promise<SerializedModel> {
  const m = await loadModel(store, prefix);
  if (!m) throw new MissingArtifactError(store.uri(`${prefix}/model.json`), `model written by the ${writtenBy} step (has it run?)`);
  return m;
}

async function loadDataset(deps: ActivityDeps, workflowId: string): Promise<DatasetManifest> {
  const step = await readStepManifest<DatasetStepManifest>(deps.store, workflowId, 'dataset');
  const ds = await deps.store.getJson<DatasetManifest>(step.summary.datasetKey);
  if (!ds) throw new MissingArtifactError(deps.store.uri(step.summary.datasetKey), 'dataset manifest');
  return ds;
}

/**
 * Checkpointing for a training loop: resume from the checkpoint at `prefix` when present,
 * and an `onEpoch` that writes the checkpoint (weights + optimiser state) each epoch and
 * heartbeats `{ epoch, loss }`.
 */
async function checkpointing(store: ObjectStore, prefix: string): Promise<{ resume?: ResumeFrom; onEpoch: OnEpoch }> {
  const ckpt = await loadModel(store, prefix);
  const meta = ckpt ? readHeadMetadata(ckpt) : undefined;
  const resume = ckpt && meta ? { epoch: meta.epoch, weights: ckpt } : undefined;
  const onEpoch: OnEpoch = async (epoch, loss, weights) => {
    await saveModel(store, prefix, await weights());
    Context.current().heartbeat({ epoch, loss });
  };
  return { resume, onEpoch };
}

/** CutMix samples embedded per call to the embedding thread (a heartbeat after each). */
const CUTMIX_BATCH = 16;

/** Training activities: the GPU task queue (tfjs-node-gpu when installed, else wasm/cpu), with the model pre-annotations of human labelling (`predict-frames.ts`). */
export function createTrainingActivities(deps: ActivityDeps) {
  const { store } = deps;
  const backend = deps.config.REELSET_TF_BACKEND;

  /**
   * CutMix rows for the teacher: pairs of training frames of different labels, mixed and
   * embedded on the embedding thread (as the embed step embeds), `CUTMIX_BATCH` at a time
   * with a heartbeat after each batch and every 5 s, so a long CutMix never starves the
   * activity's heartbeat. Pairs and boxes come from seeded streams: the same seed gives
   * the same rows.
   */
  async function cutmixSamples(ds: DatasetManifest, count: number, seed: number) {
    const train = ds.frames.filter((f) => f.split === 'train');
    const k = ds.labels.length;
    if (count <= 0 || train.length < 2) return { features: new Float32Array(0), targets: new Float32Array(0), count: 0 };
    const thread = getEmbeddingThread(backend, deps.logger);
    const { id } = await thread.model();
    const rng = mulberry32(deriveSeed(seed, 7));
    const pairs = Array.from({ length: count }, () => {
      const a = train[randInt(rng, train.length)]!;
      let b = train[randInt(rng, train.length)]!;
      for (let t = 0; t < 8 && b.label === a.label; t++) b = train[randInt(rng, train.length)]!;
      return [a, b] as const;
    });
    const ctx = Context.current();
    let progress = { cutmix: 0, of: count };
    const beat = setInterval(() => ctx.heartbeat(progress), 5000);
    const features = new Float32Array(count * id.dim);
    const targets = new Float32Array(count * k);
    try {
      for (let start = 0; start < count; start += CUTMIX_BATCH) {
        const batch = pairs.slice(start, start + CUTMIX_BATCH);
        const bytes = await Promise.all(
          batch.map(async ([a, b]) => {
            const [ia, ib] = await Promise.all([store.get(a.key), store.get(b.key)]);
            if (!ia || !ib) throw new MissingArtifactError(store.uri(!ia ? a.key : b.key), 'training frame (listed in the dataset manifest)');
            return [ia, ib] as [Uint8Array, Uint8Array];
          }),
        );
        const seeds = batch.map((_, j) => deriveSeed(seed, 8, start + j));
        const r = await thread.cutmix(bytes, seeds);
        features.set(r.vectors, start * id.dim);
        batch.forEach(([a, b], j) => {
          const i = start + j;
          const ta = i * k + ds.labels.indexOf(a.label);
          const tb = i * k + ds.labels.indexOf(b.label);
          targets[ta] = targets[ta]! + r.lambdas[j]!;
          targets[tb] = targets[tb]! + (1 - r.lambdas[j]!);
        });
        progress = { cutmix: start + batch.length, of: count };
        ctx.heartbeat(progress);
      }
    } finally {
      clearInterval(beat);
    }
    return { features, targets, count };
  }

  /** The validation frames' features and classes, scored after every epoch (the training curves' validation accuracy). */
  async function validationRows(ds: DatasetManifest): Promise<{ features: Float32Array; labels: Int32Array } | undefined> {
    const val = ds.frames.filter((f) => f.split === 'validation');
    if (!val.length) return undefined;
    return { features: await gatherVectors(store, val.map((f) => f.vector), ds.embedding.dim), labels: Int32Array.from(val.map((f) => ds.labels.indexOf(f.label))) };
  }

  return {
    ...createPredictionActivities(deps),
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
        const wf = input.workflowId;

        // CutMix rows are computed once per run and cached beside the checkpoint.
        const m = Math.round(train.length * input.teacher.cutmixPerFrame);
        let extra: { features: Float32Array; targets: Float32Array } | undefined;
        if (m > 0) {
          const featuresKey = stepFileKey(wf, 'train', 'cutmix-features.f32');
          const targetsKey = stepFileKey(wf, 'train', 'cutmix-targets.f32');
          const [f, t] = await Promise.all([store.get(featuresKey), store.get(targetsKey)]);
          if (f && t) extra = { features: toFloat32(f), targets: toFloat32(t) };
          else {
            const s = await cutmixSamples(ds, m, input.seed);
            extra = { features: s.features, targets: s.targets };
            await store.put(featuresKey, float32Bytes(s.features));
            await store.put(targetsKey, float32Bytes(s.targets));
          }
        }
        const { resume, onEpoch } = await checkpointing(store, checkpointPrefix(wf, 'train'));
        const validation = await validationRows(ds);
        const result = await trainTeacher({
          features, dim, labels, numClasses: ds.labels.length,
          hidden: input.teacher.hidden, epochs: input.teacher.epochs, learningRate: input.teacher.learningRate,
          labelSmoothing: input.teacher.labelSmoothing, batchSize: input.teacher.batchSize, dropout: input.teacher.dropout,
          classBalanced: input.teacher.classBalanced, seed: input.seed, extraSamples: extra, resume, onEpoch, validation, backend, logger: deps.logger,
        });
        await saveModel(store, runModelPrefix(wf, 'train'), result.model);
        const summary: TrainSummary = {
          role: 'teacher', epochs: input.teacher.epochs, finalLoss: result.history.at(-1)?.loss ?? NaN,
          resumedAfterEpoch: resume?.epoch ?? 0, trainFrames: train.length, unlabeledFrames: 0,
          cutmixSamples: extra ? extra.targets.length / ds.labels.length : 0, modelPrefix: runModelPrefix(wf, 'train'),
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
        const wf = input.workflowId;
        const teacher = await requireModel(store, runModelPrefix(wf, 'train'), 'train');
        const train = ds.frames.filter((f) => f.split === 'train');
        const refs = [...train.map((f) => f.vector), ...ds.unlabeled.map((u) => u.vector)];
        const labels = Int32Array.from([...train.map((f) => ds.labels.indexOf(f.label)), ...ds.unlabeled.map(() => -1)]);
        const features = await gatherVectors(store, refs, dim);
        const { resume, onEpoch } = await checkpointing(store, checkpointPrefix(wf, 'distill'));
        const validation = await validationRows(ds);
        const epochs = Math.max(1, Math.round(input.teacher.epochs * input.student.epochsFactor));
        const result = await distillStudent({
          features, dim, labels, numClasses: ds.labels.length, teacher,
          temperature: input.student.temperature, hidden: input.student.hidden, dropout: input.student.dropout,
          hardLabelWeight: input.student.hardLabelWeight, epochs, learningRate: input.teacher.learningRate * input.student.learningRateFactor,
          batchSize: input.teacher.batchSize, classBalanced: input.teacher.classBalanced, seed: input.seed, resume, onEpoch, validation, backend, logger: deps.logger,
        });
        await saveModel(store, runModelPrefix(wf, 'distill'), result.model);
        const summary: TrainSummary = {
          role: 'student', epochs, finalLoss: result.history.at(-1)?.loss ?? NaN, resumedAfterEpoch: resume?.epoch ?? 0,
          trainFrames: train.length, unlabeledFrames: ds.unlabeled.length, cutmixSamples: 0, modelPrefix: runModelPrefix(wf, 'distill'),
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
          const summary: EvaluateSummary = { ...base, teacher: null, student: null, note: 'no validation video: every label has a single video' };
          return { summary };
        }
        const features = await gatherVectors(store, val.map((f) => f.vector), ds.embedding.dim);
        const labels = Int32Array.from(val.map((f) => ds.labels.indexOf(f.label)));
        const videoIds = val.map((f) => f.videoId);
        const evalOf = async (role: 'train' | 'distill') => {
          const model = await requireModel(store, runModelPrefix(input.workflowId, role), role);
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
