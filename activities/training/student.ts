/**
 * The student: a small head on its backbone's features (the embed step's,
 * EfficientNet-Lite0) distilled from the teacher's softened outputs (the teacher sees
 * other, larger features: Lite0, Lite1 and Lite2's concatenated, or images) with a
 * Jensen-Shannon loss on labelled and unlabelled frames, at a fraction of the teacher's
 * learning rate for more epochs (the recipe's defaults: `StudentParams` in
 * contracts/inputs.ts); then, where the backend has convolution gradients, the top of the
 * backbone fine-tuned together with the head ({@link fineTuneStudent}).
 */
import type * as TfModule from '@tensorflow/tfjs';
import { InvalidInputError, ModelMismatchError, StudentParams, TeacherParams } from '../../contracts';
import { initTensorflow, type Tf } from '../../lib/tf';
import { argmaxRow, checkFinite, checkHyper, checkRows } from './checks';
import { calibrateOnFolds, crossFit } from './crossfit';
import { readHeadMetadata, type HeadArch, type Trunk } from './head-model';
import { runTraining, type CommonTrainOptions, type TrainResult } from './loop';
import { jensenShannonDistillation, kullbackLeiblerDistillation, maskedCrossEntropy, softenProbabilities } from './losses';
import { predict } from './predict';
import type { SerializedModel } from './serialize';
import { hasConvolutionGradients } from './trunk';

/**
 * Which divergence the student minimises against the teacher: the recipe's
 * Jensen-Shannon, Hinton's Kullback-Leibler, or `none` (no teacher: hard labels only, on
 * the labelled rows; the ablation's baseline).
 */
export type DistillLoss = 'jensen-shannon' | 'kullback-leibler' | 'none';

/** Options of {@link distillStudent}. */
export interface StudentOptions extends CommonTrainOptions {
  /** Class index of each row, or -1 for unlabelled rows (which only get the distillation term). */
  labels: Int32Array;
  /** The trained teacher (from `trainTeacher`): its metadata gives the default learning rate and epochs. */
  teacher?: SerializedModel;
  /**
   * The teacher's inputs for the same rows (`n * teacherDim`, e.g. the three backbones' features),
   * from which its probabilities are predicted. Without them (and without `teacherProbs`)
   * the teacher is run on `features` (a teacher on the student's own features).
   */
  teacherFeatures?: { features: Float32Array; dim: number };
  /** Teacher probabilities on the rows (`n * numClasses`) if already computed. */
  teacherProbs?: Float32Array;
  /** Divergence to the teacher (default Jensen-Shannon). */
  distillLoss?: DistillLoss;
  /** Distillation temperature T (Hinton et al. 2015, "Distilling the Knowledge in a Neural Network"). */
  temperature?: number;
  /** Weight of the hard-label cross-entropy on labelled rows (0 disables it; with `distillLoss: 'none'` it is 1). */
  hardLabelWeight?: number;
  /** Hidden units of the student (0 = linear classifier). */
  hidden?: number;
  /** Dropout after the student's hidden layer. */
  dropout?: number;
  /** Epochs (default the teacher's times `epochsFactor`, from its metadata). */
  epochs?: number;
  /** Adam learning rate (default the teacher's times `learningRateFactor`, from its metadata). */
  learningRate?: number;
}

/** The per-row targets both phases train on. */
export interface StudentTargets {
  /** Softened teacher distribution per row (`n * k`; unused with `none`). */
  soft: Float32Array;
  /** Class for balanced sampling: the label, or the teacher's argmax for unlabelled rows. */
  classes: Int32Array;
  /** Rows that take part: every row, or only labelled rows without a teacher. */
  rows: Int32Array;
}

/** Settle the student's hyper-parameters from options, the teacher's metadata and the recipe's defaults. */
function settle(opts: StudentOptions) {
  const t = TeacherParams.parse({});
  const s = StudentParams.parse({});
  const meta = opts.teacher ? readHeadMetadata(opts.teacher) : undefined;
  const teacherLr = typeof meta?.hyper['learningRate'] === 'number' ? meta.hyper['learningRate'] : t.learningRate;
  const teacherEpochs = typeof meta?.hyper['epochs'] === 'number' ? meta.hyper['epochs'] : t.epochs;
  const distillLoss = opts.distillLoss ?? 'jensen-shannon';
  return {
    hidden: opts.hidden ?? s.hidden,
    epochs: opts.epochs ?? Math.max(1, Math.round(s.epochsFactor * teacherEpochs)),
    batchSize: opts.batchSize ?? t.batchSize,
    learningRate: opts.learningRate ?? teacherLr * s.learningRateFactor,
    dropout: opts.dropout ?? s.dropout,
    temperature: opts.temperature ?? s.temperature,
    hardLabelWeight: distillLoss === 'none' ? 1 : (opts.hardLabelWeight ?? s.hardLabelWeight),
    classBalanced: opts.classBalanced ?? t.classBalanced,
    seed: opts.seed ?? 0,
    distillLoss,
  };
}

/**
 * The targets of distillation: the teacher's probabilities on the rows (predicted from
 * `teacherFeatures`, or given), softened at T.
 *
 * @throws ModelMismatchError when the teacher's input width or classes differ from the data.
 * @throws InvalidInputError on inconsistent lengths.
 */
export async function studentTargets(opts: StudentOptions, temperature: number, distillLoss: DistillLoss): Promise<StudentTargets> {
  const { numClasses, labels } = opts;
  const n = labels.length;
  if (distillLoss === 'none') {
    const rows = Int32Array.from(Array.from(labels.keys()).filter((i) => labels[i]! >= 0));
    return { soft: new Float32Array(n * numClasses), classes: Int32Array.from(labels, (l) => Math.max(l, 0)), rows };
  }
  let probs = opts.teacherProbs;
  if (!probs) {
    if (!opts.teacher) throw new InvalidInputError('distillation needs a teacher (or teacherProbs)');
    const input = opts.teacherFeatures ?? { features: opts.features, dim: opts.dim };
    const meta = readHeadMetadata(opts.teacher);
    if (meta && (meta.arch.dim !== input.dim || meta.arch.numClasses !== numClasses)) {
      throw new ModelMismatchError(`teacher has dim ${meta.arch.dim} and ${meta.arch.numClasses} classes, its inputs ${input.dim} and the data ${numClasses}`);
    }
    if (input.features.length !== n * input.dim) {
      throw new InvalidInputError(`teacherFeatures has ${input.features.length} values, expected ${n} rows x ${input.dim}`);
    }
    checkFinite(input.features, 'teacherFeatures');
    probs = await predict(opts.teacher, input.features, input.dim);
  }
  if (probs.length !== n * numClasses) throw new InvalidInputError(`teacher probabilities have ${probs.length} values, expected ${n * numClasses}`);
  const soft = softenProbabilities(probs, numClasses, temperature);
  const classes = new Int32Array(n);
  for (let i = 0; i < n; i++) classes[i] = labels[i]! >= 0 ? labels[i]! : argmaxRow(probs, i, numClasses);
  return { soft, classes, rows: Int32Array.from(labels.keys()) };
}

/**
 * The student's loss on a batch: `T^2 * D(teacher_T || student_T)` (Jensen-Shannon or
 * Kullback-Leibler) on every row, plus `hardLabelWeight * CE(label, student)` on the
 * labelled rows; without a teacher, the cross-entropy alone.
 */
function studentLoss(t: Tf, h: ReturnType<typeof settle>) {
  return (logits: TfModule.Tensor2D, [p, hard, mask]: TfModule.Tensor[]): TfModule.Scalar => {
    const ce = () => maskedCrossEntropy(t, logits, hard!, mask!);
    if (h.distillLoss === 'none') return ce();
    const d =
      h.distillLoss === 'kullback-leibler'
        ? kullbackLeiblerDistillation(t, logits, p!, h.temperature)
        : jensenShannonDistillation(t, logits, p!, h.temperature);
    if (h.hardLabelWeight === 0) return d;
    return t.add(d, t.mul(ce(), h.hardLabelWeight)) as TfModule.Scalar;
  };
}

/** Per-batch gather of the student's rows: inputs (features or trunk inputs), soft targets, one-hot labels, label mask. */
function gatherer(inputs: Float32Array, rowSize: number, labels: Int32Array, numClasses: number, targets: StudentTargets) {
  return (idx: Int32Array) => {
    const x = new Float32Array(idx.length * rowSize);
    const p = new Float32Array(idx.length * numClasses);
    const hard = new Float32Array(idx.length * numClasses); // one-hot, all-zero row when unlabelled
    const mask = new Float32Array(idx.length);
    idx.forEach((j, b) => {
      const r = targets.rows[j]!;
      x.set(inputs.subarray(r * rowSize, (r + 1) * rowSize), b * rowSize);
      p.set(targets.soft.subarray(r * numClasses, (r + 1) * numClasses), b * numClasses);
      const l = labels[r]!;
      if (l >= 0) {
        hard[b * numClasses + l] = 1;
        mask[b] = 1;
      }
    });
    return { x, aux: [p, hard, mask] };
  };
}

/**
 * Distil a student head on frozen features from a teacher.
 *
 * Batches are class-balanced on the label, or on the teacher's argmax for unlabelled rows.
 *
 * @returns the final student head and per-epoch loss.
 * @throws DatasetError when there are no rows.
 * @throws InvalidInputError on inconsistent lengths, labels outside [-1, numClasses) or bad hyper-parameters.
 * @throws ModelMismatchError when the teacher does not fit its inputs, or `resume` has another shape.
 * @throws TrainingDivergedError when the loss stops being finite.
 */
export async function distillStudent(opts: StudentOptions): Promise<TrainResult> {
  const { tf } = await initTensorflow(opts.backend ?? 'auto', opts.logger);
  const { dim, numClasses, labels } = opts;
  const n = labels.length;
  checkRows(opts.features, dim, numClasses, n);
  labels.forEach((l, i) => {
    if (!Number.isInteger(l) || l < -1 || l >= numClasses)
      throw new InvalidInputError(`label ${i} is ${l}, expected -1 or a class index in [0, ${numClasses})`);
  });
  const h = settle(opts);
  checkHyper(h);
  if (!(h.temperature > 0)) throw new InvalidInputError(`temperature must be > 0, got ${h.temperature}`);
  if (!(h.hardLabelWeight >= 0)) throw new InvalidInputError(`hardLabelWeight must be >= 0, got ${h.hardLabelWeight}`);
  const targets = await studentTargets(opts, h.temperature, h.distillLoss);
  if (targets.rows.length === 0) throw new InvalidInputError('no labelled row to train a student without a teacher');
  const arch: HeadArch = { dim, hidden: h.hidden, numClasses, dropout: h.dropout };
  return runTraining(tf, {
    kind: 'student',
    arch,
    rows: targets.rows.length,
    classes: h.classBalanced ? Int32Array.from(targets.rows, (r) => targets.classes[r]!) : null,
    epochs: h.epochs,
    batchSize: h.batchSize,
    learningRate: h.learningRate,
    seed: h.seed,
    hyper: {
      learningRate: h.learningRate,
      epochs: h.epochs,
      batchSize: h.batchSize,
      temperature: h.temperature,
      hardLabelWeight: h.hardLabelWeight,
      classBalanced: h.classBalanced,
      seed: h.seed,
    },
    resume: opts.resume,
    onEpoch: opts.onEpoch,
    validation: opts.validation,
    logger: opts.logger,
    gather: gatherer(opts.features, dim, labels, numClasses, targets),
    loss: studentLoss(tf, h),
    auxShapes: [[numClasses], [numClasses], []],
  });
}

/** Options of {@link fineTuneStudent}: the student's options plus the trunk and its inputs. */
export interface FineTuneOptions extends Omit<StudentOptions, 'features' | 'dim' | 'epochs'> {
  /** The trainable top of the backbone (`trunk.ts`). */
  trunk: Trunk;
  /** Inputs of the trunk per row (`n * prod(trunk.inputShape)`, the frozen bottom's activations). */
  trunkInputs: Float32Array;
  /** The distilled head to start from (from {@link distillStudent}). */
  head: SerializedModel;
  /** Epochs of fine-tuning. */
  epochs: number;
}

/**
 * Fine-tune the top of the student's backbone together with its head, on the same
 * targets and loss as {@link distillStudent}, starting from the distilled head. Batch
 * normalisation stays in inference mode. Checkpoints hold the top's weights, the head's
 * and Adam's state for all of them, so a resumed run is bit-identical.
 *
 * @returns a model from the trunk's input to probabilities (trunk layers and head), and the loss per epoch.
 * @throws InvalidInputError when the trunk inputs do not match the rows, or the backend cannot train convolutions.
 */
export async function fineTuneStudent(opts: FineTuneOptions): Promise<TrainResult> {
  const { tf, backend } = await initTensorflow(opts.backend ?? 'auto', opts.logger);
  if (!hasConvolutionGradients(backend)) {
    throw new InvalidInputError(
      `the ${backend} backend cannot fine-tune convolutions (no Conv2DBackpropFilter); install tfjs-node (infra/install.sh) or set student.fineTune "off"`,
    );
  }
  const { numClasses, labels, trunk } = opts;
  const n = labels.length;
  const rowSize = trunk.inputShape.reduce((a, b) => a * b, 1);
  if (opts.trunkInputs.length !== n * rowSize)
    throw new InvalidInputError(`trunkInputs has ${opts.trunkInputs.length} values, expected ${n} rows x ${rowSize}`);
  const headMeta = readHeadMetadata(opts.head);
  if (!headMeta) throw new InvalidInputError('fine-tuning needs a head trained by distillStudent (no reelset metadata)');
  const h = settle({
    ...opts,
    features: new Float32Array(0),
    dim: headMeta.arch.dim,
    hidden: headMeta.arch.hidden,
    dropout: headMeta.arch.dropout,
    epochs: opts.epochs,
  });
  checkHyper(h);
  const targets = await studentTargets({ ...opts, features: new Float32Array(0), dim: headMeta.arch.dim }, h.temperature, h.distillLoss);
  const arch = headMeta.arch;
  opts.logger?.info({ backend, trunkParams: trunk.names.length, rows: targets.rows.length, epochs: h.epochs }, 'fine-tuning the top of the student backbone');
  return runTraining(tf, {
    kind: 'student',
    arch,
    rows: targets.rows.length,
    classes: h.classBalanced ? Int32Array.from(targets.rows, (r) => targets.classes[r]!) : null,
    epochs: h.epochs,
    batchSize: h.batchSize,
    learningRate: h.learningRate,
    seed: h.seed + 1,
    hyper: {
      learningRate: h.learningRate,
      epochs: h.epochs,
      batchSize: h.batchSize,
      temperature: h.temperature,
      hardLabelWeight: h.hardLabelWeight,
      classBalanced: h.classBalanced,
      seed: h.seed,
      fineTune: true,
    },
    trunk,
    initialHead: opts.head,
    resume: opts.resume,
    onEpoch: opts.onEpoch,
    logger: opts.logger,
    gather: gatherer(opts.trunkInputs, rowSize, labels, numClasses, targets),
    loss: studentLoss(tf, h),
    auxShapes: [[numClasses], [numClasses], []],
  });
}

/** Options of {@link fitStudent}: the student's options, each row's video, and the cross-fitting folds. */
export interface FitStudentOptions extends StudentOptions {
  /** Video of each row (labelled and unlabelled). */
  videoIds: string[];
  /** Folds of the cross-fitting that sets the student's video-level decision (0: none; see `crossfit.ts`). */
  calibrationFolds: number;
  /** Called when a fold starts (heartbeat). */
  onFold?: (fold: number) => void;
}

/** What {@link fitStudent} returns: the head as trained (no offsets in it) and the offsets its decision needs. */
export interface FitStudentResult extends TrainResult {
  /** Video-level calibration of the student's own cross-fitted predictions, or null when off or impossible. */
  calibration: { folds: number; offsets: number[]; before: number; after: number; videos: number } | null;
}

/**
 * The student head as the distill step makes it ({@link distillStudent}), and, with
 * `calibrationFolds` >= 2, the video-level calibration of its own decision: the head
 * distilled again on each fold's complement of the training videos (same targets), its
 * out-of-fold probabilities, and the logit offsets chosen on them (`calibrate.ts`). The
 * offsets are returned, not applied: the caller adds them to the published model's
 * logits after any fine-tuning (`withLogitOffsets`), so fine-tuning starts from the head
 * as trained.
 *
 * @throws as {@link distillStudent}.
 */
export async function fitStudent(o: FitStudentOptions): Promise<FitStudentResult> {
  const result = await distillStudent(o);
  if (o.calibrationFolds < 2) return { ...result, calibration: null };
  const { numClasses: k, dim } = o;
  const pick = (a: Float32Array, width: number, rows: ArrayLike<number>) => {
    const out = new Float32Array(rows.length * width);
    for (let i = 0; i < rows.length; i++) out.set(a.subarray(rows[i]! * width, (rows[i]! + 1) * width), i * width);
    return out;
  };
  // Every row's teacher probabilities once, so each fold distils from the same targets.
  const targets = await studentTargets(o, settle(o).temperature, o.distillLoss ?? 'jensen-shannon');
  const teacherProbs = o.distillLoss === 'none' ? undefined : (o.teacherProbs ?? (await predictTeacher(o)));
  const cf = await crossFit<TrainResult>({
    videoIds: o.videoIds,
    // Unlabelled rows take part in a fold's training through the teacher; for the split, each row counts with its label.
    labels: o.labels,
    numClasses: k,
    folds: o.calibrationFolds,
    seed: o.seed ?? 0,
    train: async (rows, fold) => {
      o.onFold?.(fold);
      const trainVideos = new Set(Array.from(rows, (i) => o.videoIds[i]!));
      const taking = new Set(targets.rows);
      const keep = Int32Array.from(o.labels.keys()).filter((i) => trainVideos.has(o.videoIds[i]!) && taking.has(i));
      return distillStudent({
        ...o,
        features: pick(o.features, dim, keep),
        labels: Int32Array.from(keep, (i) => o.labels[i]!),
        teacherProbs: teacherProbs ? pick(teacherProbs, k, keep) : undefined,
        teacherFeatures: undefined,
        resume: undefined,
        onEpoch: undefined,
        validation: undefined,
      });
    },
    predict: async (model, rows) => predict(model.model, pick(o.features, dim, rows), dim),
  });
  if (cf.trainedFolds !== o.calibrationFolds) return { ...result, calibration: null };
  const { calibration: c } = calibrateOnFolds(cf, o.videoIds, o.labels, k);
  return { ...result, calibration: { folds: cf.trainedFolds, offsets: c.offsets, before: c.before, after: c.after, videos: c.videos } };
}

/** The teacher's probabilities on the rows (from `teacherFeatures`, or the student's own features). */
async function predictTeacher(o: StudentOptions): Promise<Float32Array> {
  if (!o.teacher) throw new InvalidInputError('distillation needs a teacher (or teacherProbs)');
  const input = o.teacherFeatures ?? { features: o.features, dim: o.dim };
  return predict(o.teacher, input.features, input.dim);
}
