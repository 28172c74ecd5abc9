/**
 * The teacher head: trained on frozen embeddings with the recipe's label smoothing,
 * class-balanced batches and CutMix rows.
 */
import { DatasetError, InvalidInputError, TeacherParams } from '../../contracts';
import { initTensorflow } from '../../lib/tf';
import { argmaxRow, checkFinite, checkHyper, checkRows } from './checks';
import type { HeadArch } from './head-model';
import { runTraining, type CommonTrainOptions, type TrainResult } from './loop';
import { softTargetCrossEntropy } from './losses';

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
   * Extra rows with soft targets (CutMix images, see `lib/backbone/cutmix.ts`): `features`
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
