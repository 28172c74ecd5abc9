import { Context } from '@temporalio/activity';
import { createHash } from 'node:crypto';
import {
  checkpointPrefix,
  DatasetError,
  embeddingModelKey,
  InvalidInputError,
  MissingArtifactError,
  predictionsKey,
  runModelPrefix,
  stepFileKey,
  type DatasetManifest,
  type DedupeStepManifest,
  type EvaluateSummary,
  type ModelArtifact,
  type PredictionsFile,
  type PredictionsSummary,
  type StepResult,
  type StudentParams,
  type TeacherFeatures,
  type TeacherParams,
  type TrainSummary,
  type VectorRef,
} from '../../contracts';
import { BACKBONES, type BackboneSpec } from '../../domain/backbone/backbones';
import { backboneOptionsFromConfig, decodeForBackbone, preparationOf } from '../../domain/backbone/model';
import { getEmbeddingThread } from '../../domain/backbone/thread';
import { evaluate } from '../../domain/metrics';
import type { ActivityDeps } from '../../lib/deps';
import { heartbeat, type Heartbeat } from '../../lib/heartbeat';
import { repos } from '../../lib/repositories';
import { deriveSeed, mulberry32, randInt } from '../../lib/rng';
import { readStepManifest, runStep } from '../../lib/runs';
import type { ObjectStore } from '../../lib/s3';
import { initTensorflow } from '../../lib/tf';
import { float32Bytes, gatherFeatures, toFloat32 } from '../../lib/vectors';
import { featureModelArtifact, imageModelArtifact } from './artifact';
import { computeTeacherFeatures, fetchFrames, loadDataset, loadModel, readTeacherFeatures, requireModel, saveModel, teacherLookup, teacherParts } from './data';
import { readHeadMetadata, withLogitOffsets } from './head-model';
import type { OnEpoch, ResumeFrom, TrainResult } from './loop';
import { predict, predictImages } from './predict';
import { topAndMargin } from './predict-frames';
import { serializeModel, type SerializedModel } from './serialize';
import { fineTuneStudent, fitStudent } from './student';
import { fitTeacher } from './teacher';
import { fitWholeTeacher, wholeBackboneTeacher } from './teacher-finetune';
import { hasConvolutionGradients, imageModel, loadSplitBackbone, trunkInputs } from './trunk';

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

/** CutMix samples embedded per call to the embedding thread (a heartbeat after each). */
const CUTMIX_BATCH = 8;

/** Training activities: the GPU task queue (tfjs-node(-gpu) when installed, else wasm/cpu; backbones on ONNX Runtime), with the model pre-annotations of human labelling (`predict-frames.ts`). */
export function createTrainingActivities(deps: ActivityDeps) {
  const { store, pool } = deps;
  const backend = deps.config.REELSET_TF_BACKEND;
  const thread = () => getEmbeddingThread(backboneOptionsFromConfig(deps.config), deps.logger);

  /**
   * CutMix rows for the teacher: pairs of training frames of different labels, mixed at
   * the pixel level and embedded by each of the teacher's backbones on the embedding
   * thread (the same box for each: the same seeds), `CUTMIX_BATCH` at a time with a
   * heartbeat after each batch. Pairs and boxes come from seeded streams: the same seed
   * gives the same rows.
   * @returns raw feature rows (`count * dim`, the backbones' features concatenated), their
   *   soft targets, and each row's two videos (so cross-fitting can leave a fold's out).
   */
  async function cutmixSamples(ds: DatasetManifest, backbones: BackboneSpec[], count: number, seed: number, beat: (p: Record<string, unknown>) => void) {
    const train = ds.frames.filter((f) => f.split === 'train');
    const k = ds.labels.length;
    const dim = backbones.reduce((n, b) => n + b.dim, 0);
    if (count <= 0 || train.length < 2) return { features: new Float32Array(0), targets: new Float32Array(0), videos: [] as Array<[string, string]>, count: 0 };
    const t = thread();
    const rng = mulberry32(deriveSeed(seed, 7));
    const pairs = Array.from({ length: count }, () => {
      const a = train[randInt(rng, train.length)]!;
      let b = train[randInt(rng, train.length)]!;
      for (let tries = 0; tries < 8 && b.label === a.label; tries++) b = train[randInt(rng, train.length)]!;
      return [a, b] as const;
    });
    const features = new Float32Array(count * dim);
    const targets = new Float32Array(count * k);
    for (let start = 0; start < count; start += CUTMIX_BATCH) {
      const batch = pairs.slice(start, start + CUTMIX_BATCH);
      const bytes = await fetchFrames(
        store,
        batch.flatMap(([a, b]) => [a.key, b.key]),
      );
      const seeds = batch.map((_, j) => deriveSeed(seed, 8, start + j));
      const images = batch.map((_, j) => [bytes[2 * j]!, bytes[2 * j + 1]!] as [Uint8Array, Uint8Array]);
      let off = 0;
      for (const spec of backbones) {
        const r = await t.cutmix(images, seeds, CUTMIX_BATCH, spec.name);
        batch.forEach((_, j) => {
          const i = start + j;
          const norm = r.norms[j]!;
          for (let d = 0; d < spec.dim; d++) features[i * dim + off + d] = r.vectors[j * spec.dim + d]! * norm;
          if (off === 0) {
            const [a, b] = batch[j]!;
            targets[i * k + ds.labels.indexOf(a.label)]! += r.lambdas[j]!;
            targets[i * k + ds.labels.indexOf(b.label)]! += 1 - r.lambdas[j]!;
          }
        });
        off += spec.dim;
      }
      beat({ phase: 'cutmix', done: start + batch.length, of: count });
    }
    return { features, targets, videos: pairs.map(([a, b]) => [a.videoId, b.videoId] as [string, string]), count };
  }

  /**
   * The validation frames' features and classes, scored after every epoch (the training
   * curves' validation accuracy), from `rowsOf` (the teacher's packs, or the dataset's
   * embedding for the student's head).
   */
  async function validationRows(
    ds: DatasetManifest,
    rowsOf: (frames: Array<{ key: string; vector: VectorRef }>) => Promise<Float32Array>,
  ): Promise<{ features: Float32Array; labels: Int32Array } | undefined> {
    const val = ds.frames.filter((f) => f.split === 'validation');
    if (!val.length) return undefined;
    return { features: await rowsOf(val), labels: Int32Array.from(val.map((f) => ds.labels.indexOf(f.label))) };
  }

  /** The dataset's embedding rows (raw features: the embed step's unit rows times their norms) of frames. */
  const embeddingRows = (ds: DatasetManifest) => (frames: Array<{ vector: VectorRef }>) =>
    gatherFeatures(
      store,
      frames.map((f) => f.vector),
      ds.embedding.dim,
    );

  /** `artifact.json` of a run's model. */
  function artifact(
    role: 'teacher' | 'student',
    ds: DatasetManifest,
    model: SerializedModel,
    workflowId: string,
    extra: { backbones: BackboneSpec[]; fineTunedFrom: string | null; training: Record<string, number | boolean | string>; image?: boolean },
  ): ModelArtifact {
    const meta = readHeadMetadata(model);
    const parts = {
      labels: ds.labels,
      head: { hidden: meta?.arch.hidden ?? 0, dropout: meta?.arch.dropout ?? 0 },
      training: { ...(meta?.hyper ?? {}), ...extra.training },
      workflowId,
    };
    return role === 'student' || extra.image
      ? imageModelArtifact({ ...parts, role, backbone: extra.backbones[0]!, fineTunedFrom: extra.fineTunedFrom })
      : featureModelArtifact({ ...parts, backbones: extra.backbones });
  }

  /**
   * The teacher's probabilities on frames (`frames.length * labels`): an image model (the
   * whole backbone fine-tuned) on the frames' images, a head on features on its
   * backbones' features (the packs the train step left).
   */
  async function teacherProbabilities(
    wf: string,
    ds: DatasetManifest,
    frames: Array<{ key: string; vector: VectorRef }>,
    onBatch?: (done: number) => void,
  ): Promise<{ probs: Float32Array; backbone: string }> {
    const prefix = runModelPrefix(wf, 'train');
    const teacher = await requireModel(store, prefix, 'train');
    const art = await store.getJson<ModelArtifact>(`${prefix}/artifact.json`);
    if (art?.input.kind === 'image') {
      await initTensorflow(backend, deps.logger);
      const probs =
        frames.length === 0
          ? new Float32Array(0)
          : await predictImages(
              teacher,
              preparationOf(art.input),
              async (start, end) =>
                fetchFrames(
                  store,
                  frames.slice(start, end).map((f) => f.key),
                ),
              frames.length,
              onBatch,
            );
      return { probs, backbone: `${art.backbone.name} fine-tuned from ${art.backbone.fineTunedFrom}` };
    }
    const rows = await readTeacherFeatures(store, wf, ds);
    return {
      probs: frames.length === 0 ? new Float32Array(0) : await predict(teacher, await rows.rowsOf(frames), rows.dim),
      backbone: teacherParts(rows.features)
        .map((p) => embeddingModelKey(p.model))
        .join('+'),
    };
  }

  /**
   * The train step with the teacher's whole backbone fine-tuned (`teacher.fineTune`,
   * `teacher-finetune.ts`): the training frames' and the training videos' unlabelled
   * frames' images decoded for the backbone (memory: `S * S * 3` bytes each, 203 KB at
   * Lite2's 260 pixels), the fine-tuning and its cross-fitting by video, each fit
   * checkpointed to S3 every epoch and each fold's out-of-fold probabilities kept, so that
   * a retried attempt resumes; the teacher published as an image model.
   */
  async function trainWholeTeacher(
    input: { workflowId: string; teacher: TeacherParams; seed: number },
    ds: DatasetManifest,
    trainingBackend: string,
    hb: Heartbeat<Record<string, unknown>>,
  ): Promise<{ summary: TrainSummary; extra: { history: TrainResult['history'] } }> {
    const wf = input.workflowId;
    const ft = input.teacher.fineTune;
    const spec = BACKBONES[ft.backbone];
    const { tf } = await initTensorflow(backend, deps.logger);
    const train = ds.frames.filter((f) => f.split === 'train');
    const labels = Int32Array.from(train.map((f) => ds.labels.indexOf(f.label)));
    const folds = input.teacher.calibrationFolds;
    const unlabeled = folds >= 2 ? ds.unlabeled.filter((u) => ds.videos.train.includes(u.videoId)) : [];
    const keys = [...train.map((f) => f.key), ...unlabeled.map((u) => u.key)];
    const pixels: Uint8Array[] = [];
    for (let s = 0; s < keys.length; s += 32) {
      const bytes = await fetchFrames(store, keys.slice(s, s + 32));
      pixels.push(...(await Promise.all(bytes.map((b) => decodeForBackbone(b, spec)))));
      hb.set({ phase: 'teacher images', done: pixels.length, of: keys.length });
    }
    const bb = await loadSplitBackbone(tf, ft.backbone, { modelsDirs: [deps.config.REELSET_MODELS_DIR], at: 'whole' });
    try {
      let resumedAfterEpoch = 0;
      const fit = await fitWholeTeacher({
        bb,
        pixels: pixels.slice(0, train.length),
        labels,
        numClasses: ds.labels.length,
        params: ft,
        labelSmoothing: input.teacher.labelSmoothing,
        classBalanced: input.teacher.classBalanced,
        seed: input.seed,
        logger: deps.logger,
        videoIds: train.map((f) => f.videoId),
        calibrationFolds: folds,
        unlabeled: unlabeled.length ? { pixels: pixels.slice(train.length), videoIds: unlabeled.map((u) => u.videoId) } : undefined,
        checkpoints: async (fold) => {
          hb.set({ phase: fold === null ? 'fine-tuning' : 'cross-fitting', fold, of: folds });
          const c = await checkpointing(
            store,
            stepFileKey(wf, 'train', fold === null ? 'checkpoint-whole' : `checkpoint-whole-fold-${fold}`),
            fold === null ? 'fine-tuning' : `cross-fitting fold ${fold}`,
          );
          if (fold === null) resumedAfterEpoch = c.resume?.epoch ?? 0;
          return c;
        },
        foldCache: {
          get: async (fold) => {
            const b = await store.get(stepFileKey(wf, 'train', `crossfit-whole-${folds}-${fold}.f32`));
            return b ? toFloat32(b) : undefined;
          },
          put: (fold, probs) => store.put(stepFileKey(wf, 'train', `crossfit-whole-${folds}-${fold}.f32`), float32Bytes(probs)),
        },
      });
      const k = ds.labels.length;
      if (fit.outOfFold) {
        await store.put(stepFileKey(wf, 'train', 'out-of-fold.f32'), float32Bytes(fit.outOfFold));
        await store.putJson(stepFileKey(wf, 'train', 'out-of-fold.json'), { keys, numClasses: k, offsets: fit.calibration?.offsets ?? [] });
      }
      hb.set({ phase: 'saving' });
      const image = await imageModel(bb, fit.model, 'reelset_teacher');
      const meta = readHeadMetadata(fit.model)!;
      const published = await serializeModel(image, { metadata: { reelset: { ...meta, kind: 'teacher', image: true } } });
      const prefix = runModelPrefix(wf, 'train');
      await saveModel(store, prefix, published);
      await store.putJson(
        `${prefix}/artifact.json`,
        artifact('teacher', ds, fit.model, wf, {
          backbones: [spec],
          fineTunedFrom: bb.fineTuneFrom,
          image: true,
          training: { trainingBackend, ...(fit.calibration ? { logitOffsets: fit.calibration.offsets.join(',') } : {}) },
        }),
      );
      const summary: TrainSummary = {
        role: 'teacher',
        epochs: ft.epochs,
        finalLoss: fit.history.at(-1)?.loss ?? NaN,
        resumedAfterEpoch,
        trainFrames: train.length,
        unlabeledFrames: 0,
        cutmixSamples: 0,
        modelPrefix: prefix,
        trainingBackend,
        calibration: fit.calibration,
        fineTune: {
          from: bb.fineTuneFrom,
          epochs: ft.epochs,
          firstLoss: fit.history[0]?.loss ?? NaN,
          finalLoss: fit.history.at(-1)?.loss ?? NaN,
          resumedAfterEpoch,
        },
      };
      return { summary, extra: { history: fit.history } };
    } finally {
      bb.dispose();
    }
  }

  return {
    /**
     * Step 7, train: the teacher, a head on the pooled features of its backbones
     * (`teacher.backbones`, concatenated). First the features of every dataset frame
     * (labelled and unlabelled) are computed on the embedding thread (ONNX Runtime; packed
     * per video and backbone and cached by content, so a retried attempt or a later
     * dataset over the same frames reuses them), then CutMix rows (pairs of training
     * frames mixed at the pixel level, embedded by the backbones; cached beside the
     * checkpoint), then the head is trained with label smoothing and class-balanced
     * batches, checkpointed to S3 every epoch; a retried attempt resumes bit-identically.
     * Then, with `calibrationFolds` >= 2, the cross-fitting by video (`crossfit.ts`): the
     * head again on each fold's complement, out-of-fold probabilities for every frame of
     * the training videos (each fold's result kept in S3, so a retry skips it), the
     * video-level logit offsets chosen on them (`calibrate.ts`) and added to the teacher's
     * logits; the shifted out-of-fold probabilities are the student's targets.
     *
     * @throws DatasetError (not retried) when the training split has fewer than two labels.
     */
    async trainTeacher(input: { workflowId: string; teacher: TeacherParams; seed: number }): Promise<StepResult<TrainSummary>> {
      return runStep(deps, input.workflowId, 'train', async () => {
        const hb = heartbeat<Record<string, unknown>>({ phase: 'teacher features' });
        try {
          const ds = await loadDataset(deps, input.workflowId);
          const train = ds.frames.filter((f) => f.split === 'train');
          const labels = Int32Array.from(train.map((f) => ds.labels.indexOf(f.label)));
          if (new Set(labels).size < 2) throw new DatasetError(`training split of ${ds.name} v${ds.version} has fewer than two labels`);
          const rt = await initTensorflow(backend, deps.logger);
          const trainingBackend = rt.backend;
          if (wholeBackboneTeacher(input.teacher.fineTune.mode, rt)) return await trainWholeTeacher(input, ds, trainingBackend, hb);
          const backbones = input.teacher.backbones.map((b) => BACKBONES[b]);
          const packs = await computeTeacherFeatures(store, thread(), ds, input.teacher.backbones, (p) => hb.set({ phase: 'teacher features', ...p }));
          const teacherFeatures: TeacherFeatures = packs.features;
          const wf = input.workflowId;
          const { dim, rowsOf } = await teacherLookup(store, teacherFeatures, ds);
          const features = await rowsOf(train);
          const featuresKey = teacherParts(teacherFeatures)
            .map((p) => embeddingModelKey(p.model))
            .join('+');

          // CutMix rows are computed once per run and cached beside the checkpoint.
          const m = Math.round(train.length * input.teacher.cutmixPerFrame);
          let extra: { features: Float32Array; targets: Float32Array; videos: Array<[string, string]> } | undefined;
          if (m > 0) {
            const cacheKey = stepFileKey(wf, 'train', `cutmix-${createHash('sha256').update(`${featuresKey}:${m}:${input.seed}`).digest('hex').slice(0, 16)}`);
            const [f, t, v] = await Promise.all([
              store.get(`${cacheKey}.features.f32`),
              store.get(`${cacheKey}.targets.f32`),
              store.getJson<Array<[string, string]>>(`${cacheKey}.videos.json`),
            ]);
            if (f && t && v) extra = { features: toFloat32(f), targets: toFloat32(t), videos: v };
            else {
              const c = await cutmixSamples(ds, backbones, m, input.seed, (p) => hb.set(p));
              extra = { features: c.features, targets: c.targets, videos: c.videos };
              await store.put(`${cacheKey}.features.f32`, float32Bytes(c.features));
              await store.put(`${cacheKey}.targets.f32`, float32Bytes(c.targets));
              await store.putJson(`${cacheKey}.videos.json`, c.videos);
            }
          }
          const k = ds.labels.length;
          const unlabeled = ds.unlabeled.filter((u) => ds.videos.train.includes(u.videoId));
          hb.set({ phase: 'training' });
          const { resume, onEpoch } = await checkpointing(store, checkpointPrefix(wf, 'train'), 'teacher');
          const folds = input.teacher.calibrationFolds;
          const fit = await fitTeacher({
            features,
            dim,
            labels,
            videoIds: train.map((f) => f.videoId),
            numClasses: k,
            params: input.teacher,
            seed: input.seed,
            extra,
            unlabeled: folds >= 2 ? { features: await rowsOf(unlabeled), videoIds: unlabeled.map((u) => u.videoId) } : undefined,
            resume,
            onEpoch,
            validation: await validationRows(ds, rowsOf),
            backend,
            logger: deps.logger,
            // Each fold's out-of-fold probabilities are kept in S3: a retried attempt skips the folds done.
            foldCache: {
              get: async (fold) => {
                const b = await store.get(stepFileKey(wf, 'train', `crossfit-${folds}-${fold}.f32`));
                return b ? toFloat32(b) : undefined;
              },
              put: (fold, probs) => store.put(stepFileKey(wf, 'train', `crossfit-${folds}-${fold}.f32`), float32Bytes(probs)),
            },
            onFold: (fold) => hb.set({ phase: 'cross-fitting', fold, of: folds }),
          });
          const { model, calibration } = fit;
          if (fit.outOfFold) {
            await store.put(stepFileKey(wf, 'train', 'out-of-fold.f32'), float32Bytes(fit.outOfFold));
            await store.putJson(stepFileKey(wf, 'train', 'out-of-fold.json'), {
              keys: [...train.map((f) => f.key), ...unlabeled.map((u) => u.key)],
              numClasses: k,
              offsets: calibration?.offsets ?? [],
            });
          }
          const prefix = runModelPrefix(wf, 'train');
          await saveModel(store, prefix, model);
          await store.putJson(
            `${prefix}/artifact.json`,
            artifact('teacher', ds, model, wf, {
              backbones,
              fineTunedFrom: null,
              training: { backbone: featuresKey, ...(calibration ? { logitOffsets: calibration.offsets.join(',') } : {}) },
            }),
          );
          const summary: TrainSummary = {
            role: 'teacher',
            epochs: input.teacher.epochs,
            finalLoss: fit.history.at(-1)?.loss ?? NaN,
            resumedAfterEpoch: resume?.epoch ?? 0,
            trainFrames: train.length,
            unlabeledFrames: 0,
            cutmixSamples: extra ? extra.targets.length / k : 0,
            modelPrefix: prefix,
            trainingBackend,
            features: { model: featuresKey, backend: packs.backend, computed: packs.computed, cached: packs.cached },
            calibration,
          };
          return { summary, extra: { history: fit.history, teacherFeatures } };
        } finally {
          hb.stop();
        }
      });
    },

    /**
     * Step 8, distill: the student, the embed step's backbone (EfficientNet-Lite0 by
     * default) with a small head, distilled from the teacher with the Jensen-Shannon loss
     * on labelled and unlabelled (near-duplicate) training frames, at a tenth of the
     * teacher's learning rate for more epochs. Its targets are the teacher's cross-fitted
     * (out-of-fold, calibrated) probabilities when the train step left them, else the
     * teacher run on its features of the same frames. First the head on frozen features;
     * then, when the training backend has convolution gradients (tfjs-node;
     * `student.fineTune`), the top of the backbone (its last block and head convolution)
     * fine-tuned with the head for `fineTuneEpochs`. Both phases checkpoint every epoch and
     * resume. The model left is the published student: one image model, backbone and head
     * together (with the backbone's ImageNet logits as a second output), with its
     * `artifact.json`.
     *
     * @throws InvalidInputError (not retried) when `fineTune` is `on` and the backend cannot train convolutions.
     */
    async distillStudent(input: { workflowId: string; teacher: TeacherParams; student: StudentParams; seed: number }): Promise<StepResult<TrainSummary>> {
      return runStep(deps, input.workflowId, 'distill', async () => {
        const hb = heartbeat<Record<string, unknown>>({ phase: 'loading' });
        try {
          const ds = await loadDataset(deps, input.workflowId);
          const wf = input.workflowId;
          const { tf, backend: trainingBackend } = await initTensorflow(backend, deps.logger);
          const fineTune = input.student.fineTune === 'on' || (input.student.fineTune === 'auto' && hasConvolutionGradients(trainingBackend));
          if (input.student.fineTune === 'on' && !hasConvolutionGradients(trainingBackend)) {
            throw new InvalidInputError(
              `student.fineTune is "on" but the training backend is ${trainingBackend}, which cannot train convolutions (install tfjs-node with infra/install.sh)`,
            );
          }
          const spec = BACKBONES[ds.embedding.name as keyof typeof BACKBONES];
          if (!spec)
            throw new InvalidInputError(
              `dataset ${ds.name} v${ds.version} was embedded with ${ds.embedding.name}, not one of today's backbones: rebuild it (a new run re-embeds its frames)`,
            );
          const teacher = await requireModel(store, runModelPrefix(wf, 'train'), 'train');
          const train = ds.frames.filter((f) => f.split === 'train');
          const rows = [...train.map((f) => ({ key: f.key, vector: f.vector })), ...ds.unlabeled.map((u) => ({ key: u.key, vector: u.vector }))];
          const labels = Int32Array.from([...train.map((f) => ds.labels.indexOf(f.label)), ...ds.unlabeled.map(() => -1)]);
          const dim = ds.embedding.dim;
          const features = await embeddingRows(ds)(rows);
          const k = ds.labels.length;
          // The teacher's cross-fitted probabilities where it left them; the teacher is run only on the other rows.
          const teacherProbs = new Float32Array(rows.length * k).fill(NaN);
          const oof =
            input.student.teacherTargets === 'cross-fitted'
              ? await store.getJson<{ keys: string[]; numClasses: number }>(stepFileKey(wf, 'train', 'out-of-fold.json'))
              : undefined;
          let crossFitted = 0;
          if (oof && oof.numClasses === k) {
            const buf = await store.get(stepFileKey(wf, 'train', 'out-of-fold.f32'));
            if (buf) {
              const p = toFloat32(buf);
              const at = new Map(oof.keys.map((key, i) => [key, i]));
              rows.forEach((r, i) => {
                const j = at.get(r.key);
                if (j === undefined || !Number.isFinite(p[j * k]!)) return;
                teacherProbs.set(p.subarray(j * k, (j + 1) * k), i * k);
                crossFitted++;
              });
            }
          }
          const rest = rows.flatMap((_, i) => (Number.isNaN(teacherProbs[i * k]!) ? [i] : []));
          hb.set({ phase: 'teacher targets', done: 0, of: rest.length });
          const own = await teacherProbabilities(
            wf,
            ds,
            rest.map((i) => rows[i]!),
            (done) => hb.set({ phase: 'teacher targets', done, of: rest.length }),
          );
          rest.forEach((row, j) => teacherProbs.set(own.probs.subarray(j * k, (j + 1) * k), row * k));
          const teacherBackbone = own.backbone;
          const epochs = Math.max(1, Math.round(input.teacher.epochs * input.student.epochsFactor));
          const common = {
            numClasses: k,
            labels,
            teacher,
            teacherProbs,
            distillLoss: input.student.distillLoss,
            temperature: input.student.temperature,
            hidden: input.student.hidden,
            dropout: input.student.dropout,
            hardLabelWeight: input.student.hardLabelWeight,
            learningRate: input.teacher.learningRate * input.student.learningRateFactor,
            batchSize: input.teacher.batchSize,
            classBalanced: input.teacher.classBalanced,
            seed: input.seed,
            backend,
            logger: deps.logger,
          };

          // Phase 1: the head on frozen features and its video-level calibration (kept at distill/head once done).
          const headPrefix = stepFileKey(wf, 'distill', 'head');
          const calibrationKey = stepFileKey(wf, 'distill', 'calibration.json');
          let head = await loadModel(store, headPrefix);
          let calibration = head ? ((await store.getJson<{ calibration: TrainSummary['calibration'] }>(calibrationKey))?.calibration ?? null) : null;
          let resumedAfterEpoch = 0;
          let history = head ? (readHeadMetadata(head)?.history ?? []) : [];
          if (!head) {
            hb.set({ phase: 'student head' });
            const { resume, onEpoch } = await checkpointing(store, checkpointPrefix(wf, 'distill'), 'student head');
            resumedAfterEpoch = resume?.epoch ?? 0;
            const videoIds = [...train.map((f) => f.videoId), ...ds.unlabeled.map((u) => u.videoId)];
            const r = await fitStudent({
              ...common,
              features,
              dim,
              epochs,
              resume,
              onEpoch,
              validation: await validationRows(ds, embeddingRows(ds)),
              videoIds,
              calibrationFolds: input.student.calibrationFolds,
              onFold: (fold) => hb.set({ phase: 'student cross-fitting', fold }),
            });
            head = r.model;
            history = r.history;
            calibration = r.calibration;
            await store.putJson(calibrationKey, { calibration });
            await saveModel(store, headPrefix, head);
          }

          // Phase 2: the top of the backbone with the head (tfjs-node only).
          const bb = await loadSplitBackbone(tf, spec.name, { modelsDirs: [deps.config.REELSET_MODELS_DIR] });
          try {
            let finalHead = head;
            let fine: TrainSummary['fineTune'] = null;
            if (fineTune) {
              const inputsKey = stepFileKey(wf, 'distill', `trunk-inputs-${spec.name}.f32`);
              const cached = await store.get(inputsKey);
              let acts: Float32Array;
              if (cached) acts = toFloat32(cached);
              else {
                // 32 frames at a time (fetched, decoded, through the frozen bottom): memory holds the
                // activations (7 x 7 x 192 floats, 37 KB a row for Lite0), never all the decoded frames.
                hb.set({ phase: 'backbone activations', done: 0, of: rows.length });
                const rowSize = bb.trunk.inputShape.reduce((a, b) => a * b, 1);
                acts = new Float32Array(rows.length * rowSize);
                for (let s = 0; s < rows.length; s += 32) {
                  const bytes = await fetchFrames(
                    store,
                    rows.slice(s, s + 32).map((r) => r.key),
                  );
                  const pixels = await Promise.all(bytes.map((b) => decodeForBackbone(b, spec)));
                  acts.set(await trunkInputs(bb, pixels, 16), s * rowSize);
                  hb.set({ phase: 'backbone activations', done: s + pixels.length, of: rows.length });
                }
                await store.put(inputsKey, float32Bytes(acts));
              }
              hb.set({ phase: 'fine-tuning' });
              const { resume, onEpoch } = await checkpointing(store, stepFileKey(wf, 'distill', 'checkpoint-finetune'), 'fine-tuning');
              const r = await fineTuneStudent({ ...common, trunk: bb.trunk, trunkInputs: acts, head, epochs: input.student.fineTuneEpochs, resume, onEpoch });
              finalHead = r.model;
              fine = {
                from: bb.fineTuneFrom,
                epochs: input.student.fineTuneEpochs,
                firstLoss: r.history[0]?.loss ?? NaN,
                finalLoss: r.history.at(-1)?.loss ?? NaN,
                resumedAfterEpoch: resume?.epoch ?? 0,
              };
            }
            hb.set({ phase: 'saving' });
            const image = await imageModel(bb, finalHead, 'reelset_student');
            const meta = readHeadMetadata(finalHead)!;
            let published = await serializeModel(image, { metadata: { reelset: { ...meta, kind: 'student', image: true } } });
            if (calibration) published = await withLogitOffsets(published, calibration.offsets);
            const prefix = runModelPrefix(wf, 'distill');
            await saveModel(store, prefix, published);
            await store.putJson(
              `${prefix}/artifact.json`,
              artifact('student', ds, finalHead, wf, {
                backbones: [spec],
                fineTunedFrom: fine ? bb.fineTuneFrom : null,
                training: {
                  distillLoss: input.student.distillLoss,
                  headEpochs: epochs,
                  fineTuneEpochs: fine ? fine.epochs : 0,
                  teacherBackbone,
                  crossFittedTargets: crossFitted,
                  trainingBackend,
                  ...(calibration ? { logitOffsets: calibration.offsets.join(',') } : {}),
                },
              }),
            );
            const summary: TrainSummary = {
              role: 'student',
              epochs,
              finalLoss: history.at(-1)?.loss ?? NaN,
              resumedAfterEpoch,
              trainFrames: train.length,
              unlabeledFrames: ds.unlabeled.length,
              cutmixSamples: 0,
              modelPrefix: prefix,
              trainingBackend,
              fineTune: fine,
              calibration,
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
        const hb = heartbeat<Record<string, unknown>>({ phase: 'loading' });
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

          hb.set({ phase: 'teacher', done: 0, of: val.length });
          const teacherEval = score((await teacherProbabilities(wf, ds, val, (done) => hb.set({ phase: 'teacher', done, of: val.length }))).probs);

          hb.set({ phase: 'student on images', done: 0, of: val.length });
          const student = await requireModel(store, runModelPrefix(wf, 'distill'), 'distill');
          await initTensorflow(backend, deps.logger);
          const studentArtifact = await store.getJson<ModelArtifact>(`${runModelPrefix(wf, 'distill')}/artifact.json`);
          if (!studentArtifact || studentArtifact.input.kind !== 'image')
            throw new MissingArtifactError(
              store.uri(`${runModelPrefix(wf, 'distill')}/artifact.json`),
              'artifact.json of the student (written by the distill step)',
            );
          const probs = await predictImages(
            student,
            preparationOf(studentArtifact.input),
            async (start, end) =>
              fetchFrames(
                store,
                val.slice(start, end).map((f) => f.key),
              ),
            val.length,
            (done) => hb.set({ phase: 'student on images', done, of: val.length }),
          );
          const summary: EvaluateSummary = { ...base, teacher: teacherEval, student: score(probs) };
          if (studentArtifact.backbone.fineTunedFrom) {
            const head = await loadModel(store, stepFileKey(wf, 'distill', 'head'));
            if (head)
              summary.studentBeforeFineTune = score(
                await predict(
                  head,
                  await gatherFeatures(
                    store,
                    val.map((f) => f.vector),
                    ds.embedding.dim,
                  ),
                  ds.embedding.dim,
                ),
              );
          }
          const missing = ds.labels.filter((l) => !val.some((f) => f.label === l));
          if (missing.length) summary.note = `no validation frame for: ${missing.join(', ')}`;
          return { summary };
        } finally {
          hb.stop();
        }
      });
    },

    /**
     * Predict the run's representatives (those the dedupe step sends on to labelling, and
     * those seen before) with the label's published student (the production one, else the
     * newest candidate) on their frames, and write `runs/<run>/label/predictions.json`: per
     * frame key, the predicted label, its probability and the margin to the runner-up.
     * Nothing is written (a `note` says why) when the label has no model yet, or when its
     * model is not an image model (a model published before `artifact.json`). Models of
     * either backbone format predict (their `artifact.json` says how to prepare frames).
     * Idempotent: an existing file is returned.
     */
    async predictFrames(input: { workflowId: string; label: string }): Promise<PredictionsSummary> {
      const key = predictionsKey(input.workflowId);
      const existing = await store.getJson<PredictionsFile>(key);
      if (existing)
        return {
          model: { name: existing.model.name, version: existing.model.version, role: existing.model.role },
          frames: Object.keys(existing.frames).length,
          predictionsKey: key,
        };
      const row = await repos.models.preAnnotator(pool, input.label);
      if (!row) return { model: null, frames: 0, predictionsKey: null, note: `no published model for "${input.label}" yet` };
      const [json, weights, art] = await Promise.all([
        store.get(`${row.artifact_prefix}/model.json`),
        store.get(`${row.artifact_prefix}/weights.bin`),
        store.getJson<ModelArtifact>(`${row.artifact_prefix}/artifact.json`),
      ]);
      const name = `model ${row.name} v${row.version} (${row.role})`;
      if (!json || !weights) return { model: null, frames: 0, predictionsKey: null, note: `${name} has missing files under ${row.artifact_prefix}/` };
      if (!art || art.input.kind !== 'image') {
        return {
          model: null,
          frames: 0,
          predictionsKey: null,
          note: `${name} is not an image model (published before artifact.json?): retrain the label for pre-annotations`,
        };
      }
      const dedupe = await readStepManifest<DedupeStepManifest>(store, input.workflowId, 'dedupe');
      const rows = dedupe.clusters.filter((c) => c.toLabel || c.seenAs !== undefined).map((c) => c.representative);
      const ctx = Context.current();
      ctx.heartbeat({ done: 0, of: rows.length });
      const model: SerializedModel = { modelJson: json.toString('utf8'), weights };
      const probs = await predictImages(
        model,
        preparationOf(art.input),
        (s, e) => fetchFrames(store, rows.slice(s, e)),
        rows.length,
        (done) => ctx.heartbeat({ done, of: rows.length }),
      );
      const top = topAndMargin(probs, art.labels.length);
      const file: PredictionsFile = {
        model: { name: row.name, version: row.version, role: row.role, artifactPrefix: row.artifact_prefix },
        labels: art.labels,
        frames: Object.fromEntries(
          rows.map((k, i) => [k, { label: art.labels[top[i]!.index]!, score: Number(top[i]!.score.toFixed(5)), margin: Number(top[i]!.margin.toFixed(5)) }]),
        ),
      };
      await store.putJson(key, file);
      return { model: { name: row.name, version: row.version, role: row.role }, frames: rows.length, predictionsKey: key };
    },
  };
}
