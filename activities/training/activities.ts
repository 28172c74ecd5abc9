import { Context } from '@temporalio/activity';
import {
  DatasetError,
  embeddingModelKey,
  InvalidInputError,
  MODEL_ARTIFACT_FORMAT,
  checkpointPrefix,
  runModelPrefix,
  stepFileKey,
  type DatasetManifest,
  type EvaluateSummary,
  type ModelArtifact,
  type StepResult,
  type StudentParams,
  type TeacherParams,
  type TeacherFeatures,
  type TrainSummary,
  type VectorRef,
} from '../../contracts';
import { backboneOptionsFromConfig, decodeForBackbone } from '../../lib/backbone/model';
import { INCEPTION_V3, MOBILENET_V2, preprocessTag, readNsfwjsModel } from '../../lib/backbone/nsfwjs';
import { getEmbeddingThread } from '../../lib/backbone/thread';
import type { ActivityDeps } from '../../lib/deps';
import { deriveSeed, mulberry32, randInt } from '../../lib/rng';
import { runStep } from '../../lib/runs';
import type { ObjectStore } from '../../lib/s3';
import { initTensorflow } from '../../lib/tf';
import { float32Bytes, gatherFeatures, toFloat32 } from '../../lib/vectors';
import { computeTeacherFeatures, fetchFrames, loadDataset, loadModel, readTeacherFeatures, requireModel, saveModel, teacherLookup } from './data';
import { readHeadMetadata } from './head-model';
import type { OnEpoch, ResumeFrom } from './loop';
import { evaluate } from './metrics';
import { predict, predictImages } from './predict';
import { createPredictionActivities } from './predict-frames';
import { serializeModel, type SerializedModel } from './serialize';
import { distillStudent, fineTuneStudent } from './student';
import { trainTeacher } from './teacher';
import { FINE_TUNE_FROM, hasConvolutionGradients, loadStudentBackbone, studentImageModel, trunkInputs } from './trunk';

export { loadModel, saveModel } from './data';

/**
 * Checkpointing for a training loop: resume from the checkpoint at `prefix` when present,
 * and an `onEpoch` that writes the checkpoint (weights + optimiser state) each epoch and
 * heartbeats `{ phase, epoch, loss }`.
 */
async function checkpointing(store: ObjectStore, prefix: string, phase: string): Promise<{ resume?: ResumeFrom; onEpoch: OnEpoch }> {
  const ckpt = await loadModel(store, prefix);
  const meta = ckpt ? readHeadMetadata(ckpt) : undefined;
  const resume = ckpt && meta ? { epoch: meta.epoch, weights: ckpt } : undefined;
  const onEpoch: OnEpoch = async (epoch, loss, weights) => {
    await saveModel(store, prefix, await weights());
    Context.current().heartbeat({ phase, epoch, loss });
  };
  return { resume, onEpoch };
}

/** Heartbeat the latest progress every second until `stop()` (long synchronous steps yield between batches). */
function heartbeating(initial: Record<string, unknown>) {
  const ctx = Context.current();
  let progress = initial;
  const timer = setInterval(() => ctx.heartbeat(progress), 1000);
  return {
    set(p: Record<string, unknown>) {
      progress = p;
      ctx.heartbeat(p);
    },
    stop: () => clearInterval(timer),
  };
}

/** CutMix samples embedded per call to the embedding thread (a heartbeat after each). */
const CUTMIX_BATCH = 8;

/** Training activities: the GPU task queue (tfjs-node(-gpu) when installed, else wasm/cpu; backbones on ONNX Runtime), with the model pre-annotations of human labelling (`predict-frames.ts`). */
export function createTrainingActivities(deps: ActivityDeps) {
  const { store } = deps;
  const backend = deps.config.REELSET_TF_BACKEND;
  const thread = () => getEmbeddingThread(backboneOptionsFromConfig(deps.config), deps.logger);

  /**
   * CutMix rows for the teacher: pairs of training frames of different labels, mixed at
   * the pixel level and embedded by the teacher's backbone (InceptionV3) on the embedding
   * thread, `CUTMIX_BATCH` at a time with a heartbeat after each batch. Pairs and boxes
   * come from seeded streams: the same seed gives the same rows.
   * @returns raw feature rows (`count * 2048`) and their soft targets.
   */
  async function cutmixSamples(ds: DatasetManifest, count: number, seed: number, beat: (p: Record<string, unknown>) => void) {
    const train = ds.frames.filter((f) => f.split === 'train');
    const k = ds.labels.length;
    if (count <= 0 || train.length < 2) return { features: new Float32Array(0), targets: new Float32Array(0), count: 0 };
    const t = thread();
    const { id } = await t.model('inception_v3');
    const rng = mulberry32(deriveSeed(seed, 7));
    const pairs = Array.from({ length: count }, () => {
      const a = train[randInt(rng, train.length)]!;
      let b = train[randInt(rng, train.length)]!;
      for (let tries = 0; tries < 8 && b.label === a.label; tries++) b = train[randInt(rng, train.length)]!;
      return [a, b] as const;
    });
    const features = new Float32Array(count * id.dim);
    const targets = new Float32Array(count * k);
    for (let start = 0; start < count; start += CUTMIX_BATCH) {
      const batch = pairs.slice(start, start + CUTMIX_BATCH);
      const bytes = await fetchFrames(store, batch.flatMap(([a, b]) => [a.key, b.key]));
      const seeds = batch.map((_, j) => deriveSeed(seed, 8, start + j));
      const r = await t.cutmix(batch.map((_, j) => [bytes[2 * j]!, bytes[2 * j + 1]!] as [Uint8Array, Uint8Array]), seeds, CUTMIX_BATCH, 'inception_v3');
      batch.forEach(([a, b], j) => {
        const i = start + j;
        const norm = r.norms[j]!;
        for (let d = 0; d < id.dim; d++) features[i * id.dim + d] = r.vectors[j * id.dim + d]! * norm;
        const ta = i * k + ds.labels.indexOf(a.label);
        const tb = i * k + ds.labels.indexOf(b.label);
        targets[ta] = targets[ta]! + r.lambdas[j]!;
        targets[tb] = targets[tb]! + (1 - r.lambdas[j]!);
      });
      beat({ phase: 'cutmix', done: start + batch.length, of: count });
    }
    return { features, targets, count };
  }

  /**
   * The validation frames' features and classes, scored after every epoch (the training
   * curves' validation accuracy). `refOf` maps a frame to its feature row (the teacher's
   * InceptionV3 packs, or the dataset's embedding for the student's head).
   */
  async function validationRows(ds: DatasetManifest, refOf: (f: DatasetManifest['frames'][number]) => VectorRef, dim: number): Promise<{ features: Float32Array; labels: Int32Array } | undefined> {
    const val = ds.frames.filter((f) => f.split === 'validation');
    if (!val.length) return undefined;
    return { features: await gatherFeatures(store, val.map(refOf), dim), labels: Int32Array.from(val.map((f) => ds.labels.indexOf(f.label))) };
  }

  /** `artifact.json` of a run's model. */
  function artifact(role: 'teacher' | 'student', ds: DatasetManifest, model: SerializedModel, workflowId: string, extra: { fineTunedFrom: string | null; training: Record<string, number | boolean | string> }): ModelArtifact {
    const meta = readHeadMetadata(model);
    const spec = role === 'teacher' ? INCEPTION_V3 : MOBILENET_V2;
    const src = readNsfwjsModel(spec);
    const k = ds.labels.length;
    return {
      format: MODEL_ARTIFACT_FORMAT,
      role,
      framework: 'tfjs-layers-model',
      files: { model: 'model.json', weights: 'weights.bin' },
      labels: ds.labels,
      input:
        role === 'student'
          ? { kind: 'image', shape: [null, spec.inputSize, spec.inputSize, 3], preprocess: preprocessTag(spec), size: spec.inputSize, blurSigma: spec.blurSigma }
          : { kind: 'features', shape: [null, spec.dim], backbone: { name: spec.name, weightsSha256: src.weightsSha256, inputSize: spec.inputSize, dim: spec.dim, preprocess: preprocessTag(spec) } },
      output: { kind: 'probabilities', shape: [null, k], layer: 'probs' },
      backbone: { name: spec.name, weightsSha256: src.weightsSha256, nsfwjsVersion: src.nsfwjsVersion, fineTunedFrom: extra.fineTunedFrom },
      head: { hidden: meta?.arch.hidden ?? 0, dropout: meta?.arch.dropout ?? 0 },
      training: { ...(meta?.hyper ?? {}), ...extra.training },
      workflowId,
    };
  }

  return {
    ...createPredictionActivities(deps),
    /**
     * Step 7, train: the teacher, a head on InceptionV3 features. First the features of
     * every dataset frame (labelled and unlabelled) are computed on the embedding thread
     * (ONNX Runtime; packed per video and cached by content, so a retried attempt or a
     * later dataset over the same frames reuses them), then CutMix rows (pairs of training
     * frames mixed at the pixel level, embedded by InceptionV3; cached beside the
     * checkpoint), then the head is trained with label smoothing and class-balanced
     * batches, checkpointed to S3 every epoch; a retried attempt resumes bit-identically.
     *
     * @throws DatasetError (not retried) when the training split has fewer than two labels.
     */
    async trainTeacher(input: { workflowId: string; teacher: TeacherParams; seed: number }): Promise<StepResult<TrainSummary>> {
      return runStep(deps, input.workflowId, 'train', async () => {
        const hb = heartbeating({ phase: 'teacher features' });
        try {
          const ds = await loadDataset(deps, input.workflowId);
          const train = ds.frames.filter((f) => f.split === 'train');
          const labels = Int32Array.from(train.map((f) => ds.labels.indexOf(f.label)));
          if (new Set(labels).size < 2) throw new DatasetError(`training split of ${ds.name} v${ds.version} has fewer than two labels`);
          const { backend: trainingBackend } = await initTensorflow(backend, deps.logger);
          const packs = await computeTeacherFeatures(store, thread(), ds, (p) => hb.set({ phase: 'teacher features', ...p }));
          const teacherFeatures: TeacherFeatures = { model: packs.model, videos: packs.videos };
          const wf = input.workflowId;
          const dim = packs.model.dim;
          const refOf = await teacherLookup(store, teacherFeatures, ds);
          const features = await gatherFeatures(store, train.map(refOf), dim);

          // CutMix rows are computed once per run and cached beside the checkpoint.
          const m = Math.round(train.length * input.teacher.cutmixPerFrame);
          let extra: { features: Float32Array; targets: Float32Array } | undefined;
          if (m > 0) {
            const featuresKey = stepFileKey(wf, 'train', `cutmix-features-${embeddingModelKey(packs.model)}.f32`);
            const targetsKey = stepFileKey(wf, 'train', `cutmix-targets-${embeddingModelKey(packs.model)}.f32`);
            const [f, t] = await Promise.all([store.get(featuresKey), store.get(targetsKey)]);
            if (f && t) extra = { features: toFloat32(f), targets: toFloat32(t) };
            else {
              const s = await cutmixSamples(ds, m, input.seed, (p) => hb.set(p));
              extra = { features: s.features, targets: s.targets };
              await store.put(featuresKey, float32Bytes(s.features));
              await store.put(targetsKey, float32Bytes(s.targets));
            }
          }
          hb.set({ phase: 'training' });
          const { resume, onEpoch } = await checkpointing(store, checkpointPrefix(wf, 'train'), 'teacher');
          const result = await trainTeacher({
            features, dim, labels, numClasses: ds.labels.length,
            hidden: input.teacher.hidden, epochs: input.teacher.epochs, learningRate: input.teacher.learningRate,
            labelSmoothing: input.teacher.labelSmoothing, batchSize: input.teacher.batchSize, dropout: input.teacher.dropout,
            classBalanced: input.teacher.classBalanced, seed: input.seed, extraSamples: extra, resume, onEpoch, backend, logger: deps.logger,
            validation: await validationRows(ds, refOf, dim),
          });
          const prefix = runModelPrefix(wf, 'train');
          await saveModel(store, prefix, result.model);
          await store.putJson(`${prefix}/artifact.json`, artifact('teacher', ds, result.model, wf, { fineTunedFrom: null, training: { backbone: embeddingModelKey(packs.model) } }));
          const summary: TrainSummary = {
            role: 'teacher', epochs: input.teacher.epochs, finalLoss: result.history.at(-1)?.loss ?? NaN,
            resumedAfterEpoch: resume?.epoch ?? 0, trainFrames: train.length, unlabeledFrames: 0,
            cutmixSamples: extra ? extra.targets.length / ds.labels.length : 0, modelPrefix: prefix, trainingBackend,
            features: { model: embeddingModelKey(packs.model), backend: packs.backend, computed: packs.computed, cached: packs.cached },
          };
          return { summary, extra: { history: result.history, teacherFeatures } };
        } finally {
          hb.stop();
        }
      });
    },

    /**
     * Step 8, distill: the student, MobileNetV2 with a small head, distilled from the
     * teacher's softened outputs (the teacher run on its InceptionV3 features of the same
     * frames) with the Jensen-Shannon loss on labelled and unlabelled (near-duplicate)
     * training frames, at a tenth of the teacher's learning rate for more epochs. First
     * the head on frozen MobileNetV2 features; then, when the training backend has
     * convolution gradients (tfjs-node; `student.fineTune`), the top of the backbone
     * (`block_16`, `Conv_1`) fine-tuned with the head for `fineTuneEpochs`. Both phases
     * checkpoint every epoch and resume. The model left is the published student: one
     * image model, backbone and head together, with its `artifact.json`.
     *
     * @throws InvalidInputError (not retried) when `fineTune` is `on` and the backend cannot train convolutions.
     */
    async distillStudent(input: { workflowId: string; teacher: TeacherParams; student: StudentParams; seed: number }): Promise<StepResult<TrainSummary>> {
      return runStep(deps, input.workflowId, 'distill', async () => {
        const hb = heartbeating({ phase: 'loading' });
        try {
          const ds = await loadDataset(deps, input.workflowId);
          const wf = input.workflowId;
          const { tf, backend: trainingBackend } = await initTensorflow(backend, deps.logger);
          const fineTune = input.student.fineTune === 'on' || (input.student.fineTune === 'auto' && hasConvolutionGradients(trainingBackend));
          if (input.student.fineTune === 'on' && !hasConvolutionGradients(trainingBackend)) {
            throw new InvalidInputError(`student.fineTune is "on" but the training backend is ${trainingBackend}, which cannot train convolutions (install tfjs-node with infra/install.sh)`);
          }
          const teacher = await requireModel(store, runModelPrefix(wf, 'train'), 'train');
          const { features: teacherPacks, refOf } = await readTeacherFeatures(store, wf, ds);
          const train = ds.frames.filter((f) => f.split === 'train');
          const rows = [...train.map((f) => ({ key: f.key, vector: f.vector })), ...ds.unlabeled.map((u) => ({ key: u.key, vector: u.vector }))];
          const labels = Int32Array.from([...train.map((f) => ds.labels.indexOf(f.label)), ...ds.unlabeled.map(() => -1)]);
          const dim = ds.embedding.dim;
          const features = await gatherFeatures(store, rows.map((r) => r.vector), dim);
          const tDim = teacherPacks.model.dim;
          const teacherProbs = await predict(teacher, await gatherFeatures(store, rows.map(refOf), tDim), tDim);
          const epochs = Math.max(1, Math.round(input.teacher.epochs * input.student.epochsFactor));
          const common = {
            numClasses: ds.labels.length, labels, teacher, teacherProbs, distillLoss: input.student.distillLoss,
            temperature: input.student.temperature, hidden: input.student.hidden, dropout: input.student.dropout,
            hardLabelWeight: input.student.hardLabelWeight, learningRate: input.teacher.learningRate * input.student.learningRateFactor,
            batchSize: input.teacher.batchSize, classBalanced: input.teacher.classBalanced, seed: input.seed, backend, logger: deps.logger,
          };

          // Phase 1: the head on frozen features (kept at distill/head once done).
          const headPrefix = stepFileKey(wf, 'distill', 'head');
          let head = await loadModel(store, headPrefix);
          let resumedAfterEpoch = 0;
          let history = head ? (readHeadMetadata(head)?.history ?? []) : [];
          if (!head) {
            hb.set({ phase: 'student head' });
            const { resume, onEpoch } = await checkpointing(store, checkpointPrefix(wf, 'distill'), 'student head');
            resumedAfterEpoch = resume?.epoch ?? 0;
            const r = await distillStudent({ ...common, features, dim, epochs, resume, onEpoch, validation: await validationRows(ds, (f) => f.vector, dim) });
            head = r.model;
            history = r.history;
            await saveModel(store, headPrefix, head);
          }

          // Phase 2: the top of the backbone with the head (tfjs-node only).
          const bb = await loadStudentBackbone(tf);
          try {
            let finalHead = head;
            let fine: TrainSummary['fineTune'] = null;
            if (fineTune) {
              const inputsKey = stepFileKey(wf, 'distill', 'trunk-inputs.f32');
              const cached = await store.get(inputsKey);
              let acts: Float32Array;
              if (cached) acts = toFloat32(cached);
              else {
                // 32 frames at a time (fetched, decoded, through the frozen bottom): memory holds the
                // activations (7 x 7 x 160 floats, 31 KB a row), never all the decoded frames.
                hb.set({ phase: 'backbone activations', done: 0, of: rows.length });
                const rowSize = bb.trunk.inputShape.reduce((a, b) => a * b, 1);
                acts = new Float32Array(rows.length * rowSize);
                for (let s = 0; s < rows.length; s += 32) {
                  const bytes = await fetchFrames(store, rows.slice(s, s + 32).map((r) => r.key));
                  const pixels = await Promise.all(bytes.map((b) => decodeForBackbone(b, MOBILENET_V2)));
                  acts.set(await trunkInputs(bb, pixels, 16), s * rowSize);
                  hb.set({ phase: 'backbone activations', done: s + pixels.length, of: rows.length });
                }
                await store.put(inputsKey, float32Bytes(acts));
              }
              hb.set({ phase: 'fine-tuning' });
              const { resume, onEpoch } = await checkpointing(store, stepFileKey(wf, 'distill', 'checkpoint-finetune'), 'fine-tuning');
              const r = await fineTuneStudent({ ...common, trunk: bb.trunk, trunkInputs: acts, head, epochs: input.student.fineTuneEpochs, resume, onEpoch });
              finalHead = r.model;
              fine = { from: FINE_TUNE_FROM, epochs: input.student.fineTuneEpochs, firstLoss: r.history[0]?.loss ?? NaN, finalLoss: r.history.at(-1)?.loss ?? NaN, resumedAfterEpoch: resume?.epoch ?? 0 };
            }
            hb.set({ phase: 'saving' });
            const image = await studentImageModel(bb, finalHead);
            const meta = readHeadMetadata(finalHead)!;
            const published = await serializeModel(image, { metadata: { reelset: { ...meta, kind: 'student', image: true } } });
            const prefix = runModelPrefix(wf, 'distill');
            await saveModel(store, prefix, published);
            await store.putJson(
              `${prefix}/artifact.json`,
              artifact('student', ds, finalHead, wf, {
                fineTunedFrom: fine ? FINE_TUNE_FROM : null,
                training: { distillLoss: input.student.distillLoss, headEpochs: epochs, fineTuneEpochs: fine ? fine.epochs : 0, teacherBackbone: embeddingModelKey(teacherPacks.model), trainingBackend },
              }),
            );
            const summary: TrainSummary = {
              role: 'student', epochs, finalLoss: history.at(-1)?.loss ?? NaN, resumedAfterEpoch,
              trainFrames: train.length, unlabeledFrames: ds.unlabeled.length, cutmixSamples: 0, modelPrefix: prefix, trainingBackend, fineTune: fine,
            };
            return { summary, extra: { history } };
          } finally {
            bb.dispose();
          }
        } finally {
          hb.stop();
        }
      });
    },

    /**
     * Step 9, evaluate: accuracy, per-label precision/recall/F1 and the confusion matrix
     * on the validation videos, per frame and per video (a video's prediction averages
     * its frames' probabilities): the teacher on its InceptionV3 features, the published
     * student on the frames' images (the model as it will be used), and, when the
     * student's backbone was fine-tuned, its head before that on frozen features.
     */
    async evaluateModels(input: { workflowId: string }): Promise<StepResult<EvaluateSummary>> {
      return runStep(deps, input.workflowId, 'evaluate', async () => {
        const hb = heartbeating({ phase: 'loading' });
        try {
          const ds = await loadDataset(deps, input.workflowId);
          const wf = input.workflowId;
          const val = ds.frames.filter((f) => f.split === 'validation');
          const base = { validationFrames: val.length, validationVideos: ds.videos.validation.length };
          if (val.length === 0) {
            const summary: EvaluateSummary = { ...base, teacher: null, student: null, note: 'no validation video: every label has a single video' };
            return { summary };
          }
          const labels = Int32Array.from(val.map((f) => ds.labels.indexOf(f.label)));
          const videoIds = val.map((f) => f.videoId);
          const score = (probs: Float32Array) => evaluate({ probs, numClasses: ds.labels.length, labels, labelNames: ds.labels, videoIds });

          const { features: teacherPacks, refOf } = await readTeacherFeatures(store, wf, ds);
          const teacher = await requireModel(store, runModelPrefix(wf, 'train'), 'train');
          const tDim = teacherPacks.model.dim;
          const teacherEval = score(await predict(teacher, await gatherFeatures(store, val.map(refOf), tDim), tDim));

          hb.set({ phase: 'student on images', done: 0, of: val.length });
          const student = await requireModel(store, runModelPrefix(wf, 'distill'), 'distill');
          await initTensorflow(backend, deps.logger);
          const probs = await predictImages(student, MOBILENET_V2, async (start, end) => fetchFrames(store, val.slice(start, end).map((f) => f.key)), val.length, (done) => hb.set({ phase: 'student on images', done, of: val.length }));
          const summary: EvaluateSummary = { ...base, teacher: teacherEval, student: score(probs) };
          const artifactJson = await store.getJson<ModelArtifact>(`${runModelPrefix(wf, 'distill')}/artifact.json`);
          if (artifactJson?.backbone.fineTunedFrom) {
            const head = await loadModel(store, stepFileKey(wf, 'distill', 'head'));
            if (head) summary.studentBeforeFineTune = score(await predict(head, await gatherFeatures(store, val.map((f) => f.vector), ds.embedding.dim), ds.embedding.dim));
          }
          const missing = ds.labels.filter((l) => !val.some((f) => f.label === l));
          if (missing.length) summary.note = `no validation frame for: ${missing.join(', ')}`;
          return { summary };
        } finally {
          hb.stop();
        }
      });
    },
  };

}
