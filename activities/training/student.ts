/**
 * The student head: distilled from the teacher's softened outputs with a Jensen-Shannon
 * loss on labelled and unlabelled frames, at a fraction of the teacher's learning rate
 * for more epochs (the recipe's defaults: `StudentParams` in contracts/inputs.ts).
 */
import type * as TfModule from '@tensorflow/tfjs';
import { InvalidInputError, ModelMismatchError, StudentParams, TeacherParams } from '../../contracts';
import { initTensorflow } from '../../lib/tf';
import { argmaxRow, checkHyper, checkRows } from './checks';
import { readHeadMetadata, type HeadArch } from './head-model';
import { runTraining, type CommonTrainOptions, type TrainResult } from './loop';
import { jensenShannonDistillation, maskedCrossEntropy, softenProbabilities } from './losses';
import { predict } from './predict';
import type { SerializedModel } from './serialize';

/** Options of {@link distillStudent}. */
export interface StudentOptions extends CommonTrainOptions {
  /** Class index of each row, or -1 for unlabelled rows (which only get the distillation term). */
  labels: Int32Array;
  /** The trained teacher (from `trainTeacher`); its probabilities on `features` are the targets. */
  teacher: SerializedModel;
  /** Teacher probabilities on `features` (`n * numClasses`) if already computed; else they are predicted here. */
  teacherProbs?: Float32Array;
  /** Distillation temperature T (Hinton et al. 2015, "Distilling the Knowledge in a Neural Network"). */
  temperature?: number;
  /** Weight of the hard-label cross-entropy on labelled rows (0 disables it). */
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

/**
 * Distil a smaller student head from a teacher.
 *
 * Loss per batch: `T^2 * JS(teacher_T || student_T)` ({@link jensenShannonDistillation})
 * on every row, plus `hardLabelWeight * CE(label, student)` on labelled rows only.
 * Batches are class-balanced on the label, or the teacher's argmax for unlabelled rows.
 *
 * @returns the final student and per-epoch loss.
 * @throws DatasetError when there are no rows.
 * @throws InvalidInputError on inconsistent lengths, labels outside [-1, numClasses) or bad hyper-parameters.
 * @throws ModelMismatchError when the teacher has another input dim or class count, or `resume` another shape.
 * @throws TrainingDivergedError when the loss stops being finite.
 */
export async function distillStudent(opts: StudentOptions): Promise<TrainResult> {
  const { tf } = await initTensorflow(opts.backend ?? 'auto', opts.logger);
  const t = TeacherParams.parse({});
  const s = StudentParams.parse({});
  const { dim, numClasses, labels } = opts;
  const n = labels.length;
  checkRows(opts.features, dim, numClasses, n);
  labels.forEach((l, i) => {
    if (!Number.isInteger(l) || l < -1 || l >= numClasses) {
      throw new InvalidInputError(`label ${i} is ${l}, expected -1 or a class index in [0, ${numClasses})`);
    }
  });
  const teacherMeta = readHeadMetadata(opts.teacher);
  if (teacherMeta && (teacherMeta.arch.dim !== dim || teacherMeta.arch.numClasses !== numClasses)) {
    throw new ModelMismatchError(
      `teacher has dim ${teacherMeta.arch.dim} and ${teacherMeta.arch.numClasses} classes, the student's data ${dim} and ${numClasses}`,
    );
  }
  const teacherLr = typeof teacherMeta?.hyper['learningRate'] === 'number' ? teacherMeta.hyper['learningRate'] : t.learningRate;
  const teacherEpochs = typeof teacherMeta?.hyper['epochs'] === 'number' ? teacherMeta.hyper['epochs'] : t.epochs;
  const hidden = opts.hidden ?? s.hidden;
  const epochs = opts.epochs ?? Math.max(1, Math.round(s.epochsFactor * teacherEpochs));
  const batchSize = opts.batchSize ?? t.batchSize;
  const learningRate = opts.learningRate ?? teacherLr * s.learningRateFactor;
  const dropout = opts.dropout ?? s.dropout;
  const temperature = opts.temperature ?? s.temperature;
  const hardLabelWeight = opts.hardLabelWeight ?? s.hardLabelWeight;
  const classBalanced = opts.classBalanced ?? t.classBalanced;
  const seed = opts.seed ?? 0;
  checkHyper({ hidden, epochs, batchSize, learningRate, dropout });
  if (!(temperature > 0)) throw new InvalidInputError(`temperature must be > 0, got ${temperature}`);
  if (!(hardLabelWeight >= 0)) throw new InvalidInputError(`hardLabelWeight must be >= 0, got ${hardLabelWeight}`);

  const probs = opts.teacherProbs ?? (await predict(opts.teacher, opts.features, dim));
  if (probs.length !== n * numClasses) {
    throw new InvalidInputError(`teacher probabilities have ${probs.length} values, expected ${n * numClasses}`);
  }
  const soft = softenProbabilities(probs, numClasses, temperature);
  const classes = new Int32Array(n);
  for (let i = 0; i < n; i++) classes[i] = labels[i]! >= 0 ? labels[i]! : argmaxRow(probs, i, numClasses);

  const arch: HeadArch = { dim, hidden, numClasses, dropout };
  return runTraining(tf, {
    kind: 'student',
    arch,
    rows: n,
    classes: classBalanced ? classes : null,
    epochs,
    batchSize,
    learningRate,
    seed,
    hyper: { learningRate, epochs, batchSize, temperature, hardLabelWeight, classBalanced, seed },
    resume: opts.resume,
    onEpoch: opts.onEpoch,
    validation: opts.validation,
    logger: opts.logger,
    gather(idx) {
      const x = new Float32Array(idx.length * dim);
      const p = new Float32Array(idx.length * numClasses);
      const hard = new Float32Array(idx.length * numClasses); // one-hot, all-zero row when unlabelled
      const mask = new Float32Array(idx.length);
      idx.forEach((r, b) => {
        x.set(opts.features.subarray(r * dim, (r + 1) * dim), b * dim);
        p.set(soft.subarray(r * numClasses, (r + 1) * numClasses), b * numClasses);
        const l = labels[r]!;
        if (l >= 0) {
          hard[b * numClasses + l] = 1;
          mask[b] = 1;
        }
      });
      return { x, aux: [p, hard, mask] };
    },
    loss(logits, [p, hard, mask]) {
      const js = jensenShannonDistillation(tf, logits, p!, temperature);
      if (hardLabelWeight === 0) return js;
      return tf.add(js, tf.mul(maskedCrossEntropy(tf, logits, hard!, mask!), hardLabelWeight)) as TfModule.Scalar;
    },
    auxShapes: [[numClasses], [numClasses], []],
  });
}
