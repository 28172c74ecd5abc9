/**
 * The teacher: a head on frozen backbone features trained with the recipe's label
 * smoothing, class-balanced batches and CutMix rows ({@link trainTeacher}), and the whole
 * fit of the train step ({@link fitTeacher}): the head, then cross-fitting by video for a
 * video-level calibration and out-of-fold distillation targets.
 */
import { DatasetError, InvalidInputError, TeacherParams } from '../../contracts';
import type { Logger } from '../../lib/logger';
import { initTensorflow } from '../../lib/tf';
import { argmaxRow, checkFinite, checkHyper, checkRows } from './checks';
import { calibrateOnFolds, crossFit, type CrossFitResult } from './crossfit';
import { withLogitOffsets, type HeadArch } from './head-model';
import { runTraining, type CommonTrainOptions, type TrainResult } from './loop';
import { softTargetCrossEntropy } from './losses';
import { predict } from './predict';

/** Options of {@link trainTeacher}; every default is the recipe's (`TeacherParams` in contracts/inputs.ts). */
export interface TeacherOptions extends CommonTrainOptions {
  /** Class index of each of the n rows, in [0, numClasses). */
  labels: Int32Array;
  /** Hidden units (0 = linear classifier). */
  hidden?: number;
  /** Epochs. An epoch is ceil(rows / batchSize) steps, rows = n + extra samples. */
  epochs?: number;
  /** Adam learning rate. */
  learningRate?: number;
  /**
   * Label smoothing epsilon: hard targets become `(1 - eps) * onehot + eps / numClasses`
   * (Szegedy et al. 2016, "Rethinking the Inception Architecture for Computer Vision", section 7).
   */
  labelSmoothing?: number;
  /** Dropout rate after the hidden layer (Srivastava et al. 2014). */
  dropout?: number;
  /**
   * Extra rows with soft targets (CutMix images, see `domain/backbone/cutmix.ts`): `features`
   * is `m * dim`, `targets` is `m * numClasses` (each row a distribution; used as given, no
   * smoothing). For class-balanced sampling an extra row counts towards the argmax of its target.
   */
  extraSamples?: { features: Float32Array; targets: Float32Array };
}

/**
 * Train the teacher head: soft-target cross-entropy with label smoothing, Adam, inverted
 * dropout, class-balanced batches (with replacement) or shuffled epochs, optional extra
 * soft-target rows (CutMix, Yun et al. 2019).
 *
 * @returns the final model and per-epoch loss.
 * @throws DatasetError when there are no rows or fewer than two distinct labels.
 * @throws InvalidInputError on inconsistent lengths, out-of-range labels, non-finite features or bad hyper-parameters.
 * @throws ModelMismatchError when `resume` is a checkpoint of another shape.
 * @throws TrainingDivergedError when the loss stops being finite.
 */
export async function trainTeacher(opts: TeacherOptions): Promise<TrainResult> {
  const { tf } = await initTensorflow(opts.backend ?? 'auto', opts.logger);
  const d = TeacherParams.parse({});
  const { dim, numClasses, labels } = opts;
  const n = labels.length;
  checkRows(opts.features, dim, numClasses, n);
  const hidden = opts.hidden ?? d.hidden;
  const epochs = opts.epochs ?? d.epochs;
  const batchSize = opts.batchSize ?? d.batchSize;
  const learningRate = opts.learningRate ?? d.learningRate;
  const eps = opts.labelSmoothing ?? d.labelSmoothing;
  const dropout = opts.dropout ?? d.dropout;
  const classBalanced = opts.classBalanced ?? d.classBalanced;
  const seed = opts.seed ?? 0;
  checkHyper({ hidden, epochs, batchSize, learningRate, dropout });
  if (!(eps >= 0 && eps < 1)) throw new InvalidInputError(`labelSmoothing must be in [0, 1), got ${eps}`);
  const distinct = new Set<number>();
  labels.forEach((l, i) => {
    if (!Number.isInteger(l) || l < 0 || l >= numClasses) {
      throw new InvalidInputError(`label ${i} is ${l}, expected a class index in [0, ${numClasses})`);
    }
    distinct.add(l);
  });
  if (distinct.size < 2) throw new DatasetError(`need at least two distinct labels, got ${distinct.size}`);

  const extra = opts.extraSamples;
  const m = extra ? extra.targets.length / numClasses : 0;
  if (extra) {
    if (!Number.isInteger(m) || extra.features.length !== m * dim) {
      throw new InvalidInputError(
        `extraSamples: ${extra.features.length} features and ${extra.targets.length} targets do not make rows of dim ${dim} and ${numClasses} classes`,
      );
    }
    checkFinite(extra.features, 'extraSamples.features');
    checkFinite(extra.targets, 'extraSamples.targets');
  }
  const rows = n + m;
  const classes = new Int32Array(rows);
  classes.set(labels);
  for (let i = 0; i < m; i++) classes[n + i] = argmaxRow(extra!.targets, i, numClasses);

  const on = 1 - eps + eps / numClasses;
  const off = eps / numClasses;
  const arch: HeadArch = { dim, hidden, numClasses, dropout };
  return runTraining(tf, {
    kind: 'teacher',
    arch,
    rows,
    classes: classBalanced ? classes : null,
    epochs,
    batchSize,
    learningRate,
    seed,
    hyper: { learningRate, epochs, batchSize, labelSmoothing: eps, classBalanced, seed, extraSamples: m },
    resume: opts.resume,
    onEpoch: opts.onEpoch,
    validation: opts.validation,
    logger: opts.logger,
    gather(idx) {
      const x = new Float32Array(idx.length * dim);
      const y = new Float32Array(idx.length * numClasses);
      idx.forEach((r, b) => {
        if (r < n) {
          x.set(opts.features.subarray(r * dim, (r + 1) * dim), b * dim);
          y.fill(off, b * numClasses, (b + 1) * numClasses);
          y[b * numClasses + labels[r]!] = on;
        } else {
          const e = r - n;
          x.set(extra!.features.subarray(e * dim, (e + 1) * dim), b * dim);
          y.set(extra!.targets.subarray(e * numClasses, (e + 1) * numClasses), b * numClasses);
        }
      });
      return { x, aux: [y] };
    },
    loss: (logits, [y]) => softTargetCrossEntropy(tf, logits, y!),
    auxShapes: [[numClasses]],
  });
}

/** Options of {@link fitTeacher}: the labelled training rows, the unlabelled ones, the recipe. */
export interface FitTeacherOptions extends Omit<
  TeacherOptions,
  'extraSamples' | 'hidden' | 'epochs' | 'learningRate' | 'labelSmoothing' | 'dropout' | 'batchSize' | 'classBalanced'
> {
  /** Video of each labelled row (`labels.length`). */
  videoIds: string[];
  /** The recipe (`TeacherParams`: head, schedule, CutMix share, cross-fitting folds). */
  params: TeacherParams;
  /** CutMix rows (see {@link TeacherOptions.extraSamples}) and the two videos each was mixed from. */
  extra?: { features: Float32Array; targets: Float32Array; videos: Array<[string, string]> };
  /** Unlabelled rows of the training videos (`features` `m * dim`): cross-fitting predicts them too. */
  unlabeled?: { features: Float32Array; videoIds: string[] };
  /**
   * Where each fold's out-of-fold probabilities are kept (the activity: S3), so that a
   * retried attempt skips the folds it has. Absent: nothing is kept.
   */
  foldCache?: { get(fold: number): Promise<Float32Array | undefined>; put(fold: number, probs: Float32Array): Promise<void> };
  /** Called when a fold starts (heartbeat). */
  onFold?: (fold: number) => void;
}

/** What {@link fitTeacher} returns. */
export interface FitTeacherResult extends TrainResult {
  /** The video-level calibration, or null when off (`calibrationFolds` < 2) or impossible (a fold lacked a class). */
  calibration: { folds: number; offsets: number[]; before: number; after: number; videos: number } | null;
  /** Calibrated out-of-fold probabilities of the labelled then the unlabelled rows (`(n + m) * k`), or null without calibration. */
  outOfFold: Float32Array | null;
}

function pick(a: Float32Array, width: number, rows: ArrayLike<number>): Float32Array {
  const out = new Float32Array(rows.length * width);
  for (let i = 0; i < rows.length; i++) out.set(a.subarray(rows[i]! * width, (rows[i]! + 1) * width), i * width);
  return out;
}

/**
 * The teacher as the train step makes it: the head ({@link trainTeacher}) on the labelled
 * rows and the CutMix rows; then, with `params.calibrationFolds` >= 2, the cross-fitting by
 * video (`crossfit.ts`: the head again on each fold's complement, CutMix rows of that
 * complement only) for out-of-fold probabilities of every labelled and unlabelled row, the
 * video-level logit offsets chosen on them (`calibrate.ts`), added to the model's logits.
 *
 * @throws as {@link trainTeacher}.
 */
export async function fitTeacher(o: FitTeacherOptions): Promise<FitTeacherResult> {
  const p = o.params;
  const k = o.numClasses;
  const n = o.labels.length;
  const headOptions = (rows: Int32Array | null): TeacherOptions => {
    const videos = new Set(rows ? Array.from(rows, (r) => o.videoIds[r]!) : o.videoIds);
    const extraRows = o.extra ? o.extra.videos.flatMap(([a, b], i) => (videos.has(a) && videos.has(b) ? [i] : [])) : [];
    return {
      features: rows ? pick(o.features, o.dim, rows) : o.features,
      dim: o.dim,
      labels: rows ? Int32Array.from(rows, (r) => o.labels[r]!) : o.labels,
      numClasses: k,
      hidden: p.hidden,
      epochs: p.epochs,
      learningRate: p.learningRate,
      labelSmoothing: p.labelSmoothing,
      batchSize: p.batchSize,
      dropout: p.dropout,
      classBalanced: p.classBalanced,
      seed: o.seed,
      backend: o.backend,
      logger: o.logger,
      extraSamples:
        o.extra && extraRows.length ? { features: pick(o.extra.features, o.dim, extraRows), targets: pick(o.extra.targets, k, extraRows) } : undefined,
    };
  };
  const result = await trainTeacher({ ...headOptions(null), resume: o.resume, onEpoch: o.onEpoch, validation: o.validation });
  if (p.calibrationFolds < 2) return { ...result, calibration: null, outOfFold: null };

  const m = o.unlabeled ? o.unlabeled.videoIds.length : 0;
  const all = new Float32Array((n + m) * o.dim);
  all.set(o.features);
  if (o.unlabeled) all.set(o.unlabeled.features, n * o.dim);
  const allLabels = new Int32Array(n + m).fill(-1);
  allLabels.set(o.labels);
  const videoIds = [...o.videoIds, ...(o.unlabeled?.videoIds ?? [])];
  const cf = await crossFit<Float32Array>({
    videoIds,
    labels: allLabels,
    numClasses: k,
    folds: p.calibrationFolds,
    seed: o.seed ?? 0,
    train: async (rows, fold) => {
      const cached = await o.foldCache?.get(fold);
      if (cached) return cached;
      o.onFold?.(fold);
      const r = await trainTeacher(headOptions(rows));
      const held = new Set(Array.from(rows, (i) => videoIds[i]!));
      const out = Int32Array.from(allLabels.keys()).filter((i) => !held.has(videoIds[i]!));
      const probs = await predict(r.model, pick(all, o.dim, out), o.dim);
      const full = new Float32Array((n + m) * k).fill(NaN);
      out.forEach((row, j) => full.set(probs.subarray(j * k, (j + 1) * k), row * k));
      await o.foldCache?.put(fold, full);
      return full;
    },
    predict: async (full, rows) => pick(full, k, rows),
  });
  return calibratedOnFolds(result, cf, p.calibrationFolds, videoIds, allLabels, k, o.logger);
}

/**
 * A teacher with the video-level calibration its cross-fitting chose: the offsets added
 * to `result`'s logits and the calibrated out-of-fold probabilities; `result` as it is
 * (no calibration, in-sample targets) when a fold lacked a class.
 *
 * @param labels class of each row of `cf`, -1 for unlabelled rows.
 */
export async function calibratedOnFolds(
  result: TrainResult,
  cf: CrossFitResult,
  folds: number,
  videoIds: string[],
  labels: Int32Array,
  k: number,
  logger?: Logger,
): Promise<FitTeacherResult> {
  if (cf.trainedFolds !== folds) {
    logger?.warn({ folds, trained: cf.trainedFolds }, 'cross-fitting: a fold lacked a class; no calibration, in-sample distillation targets');
    return { ...result, calibration: null, outOfFold: null };
  }
  const { calibration: c, shifted } = calibrateOnFolds(cf, videoIds, labels, k);
  return {
    model: await withLogitOffsets(result.model, c.offsets),
    history: result.history,
    calibration: { folds: cf.trainedFolds, offsets: c.offsets, before: c.before, after: c.after, videos: c.videos },
    outOfFold: shifted,
  };
}
