/**
 * Classifier heads trained on frozen frame embeddings: a teacher (one hidden layer, label
 * smoothing, class-balanced batches, optional CutMix samples) and a smaller student
 * distilled from it on labelled and unlabelled frames.
 *
 * Heads are small dense networks, so they train on every backend (wasm and cpu included).
 * Training is deterministic for a given seed and backend: initial weights, batch sampling
 * and dropout masks come from {@link mulberry32} streams derived from `(seed, epoch)`,
 * and Adam is implemented here (its state is saved in checkpoints), so a run resumed from
 * the checkpoint of epoch k ends with bit-identical weights to an uninterrupted run.
 *
 * Architecture (serialised as a tfjs layers model whose output is probabilities):
 * `input[dim] -> Dense(hidden, relu) 'hidden' -> Dropout 'dropout' -> Dense(numClasses) 'logits' -> Softmax 'probs'`;
 * with `hidden = 0` the head is a linear softmax classifier (`input -> 'logits' -> 'probs'`).
 */
import type * as TfModule from '@tensorflow/tfjs';
import { DatasetError, InvalidInputError } from '../../contracts';
import type { Logger } from '../../lib/logger';
import { initTensorflow, type Tf, type TfBackendPreference } from '../../lib/tf';
import { classBalancedSampler, deriveSeed, mulberry32, permutation, type Rng } from '../../lib/rng';
import {
  deserializeModel,
  readModelMetadata,
  readOptimizerState,
  serializeModel,
  type SerializedModel,
} from './serialize';

/** One epoch's mean training loss. */
export interface EpochLoss {
  /** Epoch number, 1-based. */
  epoch: number;
  /** Mean over the epoch's steps of the batch-mean training loss (with dropout, smoothing; nats). */
  loss: number;
}

/**
 * Called after each epoch, awaited before the next starts. Lets the caller checkpoint
 * (e.g. to S3) and heartbeat.
 *
 * @param epoch the epoch just finished, 1-based.
 * @param loss its mean training loss.
 * @param weights serialises a checkpoint of the current state (weights, Adam moments,
 *   history); call it before the returned promise settles. Pass the result as
 *   `resume: { epoch, weights }` to continue from here.
 */
export type OnEpoch = (epoch: number, loss: number, weights: () => Promise<SerializedModel>) => Promise<void>;

/** Where to resume: a checkpoint produced by `onEpoch`'s `weights()` after epoch `epoch`. */
export interface ResumeFrom {
  /** Last completed epoch (1-based); training continues with `epoch + 1`. */
  epoch: number;
  /** The checkpoint. A plain model without optimiser state also works, but then Adam restarts and the run is no longer identical. */
  weights: SerializedModel;
}

/** The result of training: the final model (no optimiser state) and the per-epoch loss. */
export interface TrainResult {
  /** Final model; outputs probabilities `[n, numClasses]`; metadata under `userDefinedMetadata.reelset`. */
  model: SerializedModel;
  /** Loss of every epoch 1..epochs (epochs before a resume come from the checkpoint). */
  history: EpochLoss[];
}

/** Options shared by {@link trainTeacher} and {@link distillStudent}. */
interface CommonTrainOptions {
  /** Row-major features, `n * dim` float32 (frozen embeddings). */
  features: Float32Array;
  /** Feature dimension. */
  dim: number;
  /** Number of classes (>= 2). */
  numClasses: number;
  /** Rows per step (default 32). */
  batchSize?: number;
  /** Sample batches with probability inversely proportional to class frequency (default true). */
  classBalanced?: boolean;
  /** Seed of all randomness (default 0). */
  seed?: number;
  /** Continue a run from a checkpoint. */
  resume?: ResumeFrom;
  /** Per-epoch callback (checkpoint, heartbeat). */
  onEpoch?: OnEpoch;
  /** TensorFlow.js backend preference if not yet initialised (default `auto`). */
  backend?: TfBackendPreference;
  logger?: Logger;
}

/** Options of {@link trainTeacher}. */
export interface TeacherOptions extends CommonTrainOptions {
  /** Class index of each of the n rows, in [0, numClasses). */
  labels: Int32Array;
  /** Hidden units (default 256; 0 = linear classifier). */
  hidden?: number;
  /** Epochs (default 30). An epoch is ceil(rows / batchSize) steps, rows = n + extra samples. */
  epochs?: number;
  /** Adam learning rate (default 1e-3). */
  learningRate?: number;
  /**
   * Label smoothing epsilon (default 0.1): hard targets become `(1 - eps) * onehot + eps / numClasses`
   * (Szegedy et al. 2016, "Rethinking the Inception Architecture for Computer Vision", section 7).
   */
  labelSmoothing?: number;
  /** Dropout rate after the hidden layer (default 0.2; Srivastava et al. 2014). */
  dropout?: number;
  /**
   * Extra rows with soft targets (e.g. CutMix images, see `cutmix`): `features` is `m * dim`,
   * `targets` is `m * numClasses` (each row a distribution; used as given, no smoothing).
   * For class-balanced sampling an extra row counts towards the argmax of its target.
   */
  extraSamples?: { features: Float32Array; targets: Float32Array };
}

/** Options of {@link distillStudent}. */
export interface StudentOptions extends CommonTrainOptions {
  /** Class index of each row, or -1 for unlabelled rows (which only get the distillation term). */
  labels: Int32Array;
  /** The trained teacher (from {@link trainTeacher}); its probabilities on `features` are the targets. */
  teacher: SerializedModel;
  /** Teacher probabilities on `features` (`n * numClasses`) if already computed; else they are predicted here. */
  teacherProbs?: Float32Array;
  /** Distillation temperature T (default 2; Hinton et al. 2015, "Distilling the Knowledge in a Neural Network"). */
  temperature?: number;
  /** Weight of the hard-label cross-entropy on labelled rows (default 0.25; 0 disables it). */
  hardLabelWeight?: number;
  /** Hidden units of the student (default 32; 0 = linear classifier). */
  hidden?: number;
  /** Dropout after the student's hidden layer (default 0). */
  dropout?: number;
  /** Epochs (default twice the teacher's, read from its metadata; 60 if unknown). */
  epochs?: number;
  /** Adam learning rate (default the teacher's / 10, read from its metadata; 1e-4 if unknown). */
  learningRate?: number;
}

/** Shape of a head. */
export interface HeadArch {
  dim: number;
  /** Hidden units; 0 means no hidden layer. */
  hidden: number;
  numClasses: number;
  dropout: number;
}

/** What {@link trainTeacher} and {@link distillStudent} store in `userDefinedMetadata.reelset`. */
export interface HeadMetadata {
  kind: 'teacher' | 'student';
  arch: HeadArch;
  /** Last completed epoch. */
  epoch: number;
  /** Adam steps taken (checkpoints only; 0 in final models). */
  adamStep: number;
  history: EpochLoss[];
  /** Hyper-parameters of the run (learningRate, epochs, batchSize, seed, ...). */
  hyper: Record<string, number | boolean>;
}

/** Read the head metadata of a model trained here, or undefined for other models. */
export function readHeadMetadata(model: SerializedModel): HeadMetadata | undefined {
  const meta = readModelMetadata(model)?.['reelset'];
  return meta && typeof meta === 'object' ? (meta as HeadMetadata) : undefined;
}

const ADAM_BETA1 = 0.9;
const ADAM_BETA2 = 0.999;
const ADAM_EPSILON = 1e-7;
const LOG_EPS = 1e-12;
/** Seed stream ids for {@link deriveSeed}. */
const STREAM_INIT = 0;
const STREAM_EPOCH = 1;

// ---------------------------------------------------------------------------------------
// Teacher
// ---------------------------------------------------------------------------------------

/**
 * Train the teacher head: soft-target cross-entropy with label smoothing, Adam
 * (Kingma & Ba 2015), inverted dropout, class-balanced batches (with replacement) or
 * shuffled epochs, optional extra soft-target rows (CutMix, Yun et al. 2019).
 *
 * @returns the final model and per-epoch loss.
 * @throws DatasetError when there are no rows or fewer than two distinct labels.
 * @throws InvalidInputError on inconsistent lengths, out-of-range labels, non-finite
 *   features, bad hyper-parameters, or a resume checkpoint of another shape.
 */
export async function trainTeacher(opts: TeacherOptions): Promise<TrainResult> {
  const { tf } = await initTensorflow(opts.backend ?? 'auto', opts.logger);
  const { dim, numClasses, labels } = opts;
  const n = labels.length;
  checkCommon(opts, n);
  const hidden = opts.hidden ?? 256;
  const epochs = opts.epochs ?? 30;
  const batchSize = opts.batchSize ?? 32;
  const learningRate = opts.learningRate ?? 1e-3;
  const eps = opts.labelSmoothing ?? 0.1;
  const dropout = opts.dropout ?? 0.2;
  const classBalanced = opts.classBalanced ?? true;
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
    logger: opts.logger,
    gather(idx) {
      const x = new Float32Array(idx.length * dim);
      const y = new Float32Array(idx.length * numClasses);
      idx.forEach((r, b) => {
        if (r < n) {
          x.set(opts.features.subarray(r * dim, (r + 1) * dim), b * dim);
          y.fill(off, b * numClasses, (b + 1) * numClasses);
          y[b * numClasses + (labels[r] as number)] = on;
        } else {
          const e = r - n;
          x.set(extra!.features.subarray(e * dim, (e + 1) * dim), b * dim);
          y.set(extra!.targets.subarray(e * numClasses, (e + 1) * numClasses), b * numClasses);
        }
      });
      return { x, aux: [y] };
    },
    loss(logits, [y]) {
      // Cross-entropy with soft targets: -mean_b sum_k y_bk log softmax(z_b)_k.
      return tf.neg(tf.mean(tf.sum(tf.mul(y!, tf.logSoftmax(logits)), 1))) as TfModule.Scalar;
    },
    auxShapes: [[numClasses]],
  });
}

// ---------------------------------------------------------------------------------------
// Student
// ---------------------------------------------------------------------------------------

/**
 * Distil a smaller student head from a teacher.
 *
 * Loss per row: `T^2 * JS(softmax(log p_teacher / T) || softmax(z_student / T))`, the
 * Jensen-Shannon divergence (Lin 1991, "Divergence measures based on the Shannon entropy")
 * between the temperature-softened teacher and student distributions, scaled by T^2 to keep
 * gradient magnitudes comparable across temperatures (Hinton et al. 2015); plus, on labelled
 * rows only, `hardLabelWeight * CE(label, softmax(z_student))` at temperature 1. Unlabelled
 * rows (label -1) only get the distillation term. The teacher's softened distribution is
 * computed from its output probabilities: `softmax(log p / T) = p^(1/T) / sum p^(1/T)`,
 * which is exact because softmax is invariant to the constant lost with the logits.
 * Batches are class-balanced on the label, or the teacher's argmax for unlabelled rows.
 *
 * @returns the final student and per-epoch loss.
 * @throws DatasetError when there are no rows.
 * @throws InvalidInputError on inconsistent lengths, labels outside [-1, numClasses),
 *   a teacher with another input dim or class count, or bad hyper-parameters.
 */
export async function distillStudent(opts: StudentOptions): Promise<TrainResult> {
  const { tf } = await initTensorflow(opts.backend ?? 'auto', opts.logger);
  const { dim, numClasses, labels } = opts;
  const n = labels.length;
  checkCommon(opts, n);
  labels.forEach((l, i) => {
    if (!Number.isInteger(l) || l < -1 || l >= numClasses) {
      throw new InvalidInputError(`label ${i} is ${l}, expected -1 or a class index in [0, ${numClasses})`);
    }
  });
  const teacherMeta = readHeadMetadata(opts.teacher);
  if (teacherMeta && (teacherMeta.arch.dim !== dim || teacherMeta.arch.numClasses !== numClasses)) {
    throw new InvalidInputError(
      `teacher has dim ${teacherMeta.arch.dim} and ${teacherMeta.arch.numClasses} classes, expected ${dim} and ${numClasses}`,
    );
  }
  const teacherLr = typeof teacherMeta?.hyper['learningRate'] === 'number' ? teacherMeta.hyper['learningRate'] : 1e-3;
  const teacherEpochs = typeof teacherMeta?.hyper['epochs'] === 'number' ? teacherMeta.hyper['epochs'] : 30;
  const hidden = opts.hidden ?? 32;
  const epochs = opts.epochs ?? 2 * teacherEpochs;
  const batchSize = opts.batchSize ?? 32;
  const learningRate = opts.learningRate ?? teacherLr / 10;
  const dropout = opts.dropout ?? 0;
  const temperature = opts.temperature ?? 2;
  const hardLabelWeight = opts.hardLabelWeight ?? 0.25;
  const classBalanced = opts.classBalanced ?? true;
  const seed = opts.seed ?? 0;
  checkHyper({ hidden, epochs, batchSize, learningRate, dropout });
  if (!(temperature > 0)) throw new InvalidInputError(`temperature must be > 0, got ${temperature}`);
  if (!(hardLabelWeight >= 0)) throw new InvalidInputError(`hardLabelWeight must be >= 0, got ${hardLabelWeight}`);

  const probs = opts.teacherProbs ?? (await predict(opts.teacher, opts.features, dim));
  if (probs.length !== n * numClasses) {
    throw new InvalidInputError(`teacher probabilities have ${probs.length} values, expected ${n * numClasses}`);
  }
  // Softened teacher targets and their entropy part p log p (constant, precomputed).
  const soft = new Float32Array(n * numClasses);
  const classes = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let z = 0;
    for (let k = 0; k < numClasses; k++) {
      const v = Math.pow(Math.max(probs[i * numClasses + k] as number, LOG_EPS), 1 / temperature);
      soft[i * numClasses + k] = v;
      z += v;
    }
    for (let k = 0; k < numClasses; k++) soft[i * numClasses + k] = (soft[i * numClasses + k] as number) / z;
    const l = labels[i] as number;
    classes[i] = l >= 0 ? l : argmaxRow(probs, i, numClasses);
  }

  const arch: HeadArch = { dim, hidden, numClasses, dropout };
  const T = temperature;
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
    logger: opts.logger,
    gather(idx) {
      const x = new Float32Array(idx.length * dim);
      const p = new Float32Array(idx.length * numClasses);
      const hard = new Float32Array(idx.length * numClasses); // one-hot, all-zero row when unlabelled
      const mask = new Float32Array(idx.length);
      idx.forEach((r, b) => {
        x.set(opts.features.subarray(r * dim, (r + 1) * dim), b * dim);
        p.set(soft.subarray(r * numClasses, (r + 1) * numClasses), b * numClasses);
        const l = labels[r] as number;
        if (l >= 0) {
          hard[b * numClasses + l] = 1;
          mask[b] = 1;
        }
      });
      return { x, aux: [p, hard, mask] };
    },
    loss(logits, [p, hard, mask]) {
      const q = tf.softmax(tf.div(logits, T));
      const mix = tf.mul(tf.add(p!, q), 0.5);
      const logMix = tf.log(tf.maximum(mix, LOG_EPS));
      const klP = tf.sum(tf.mul(p!, tf.sub(tf.log(tf.maximum(p!, LOG_EPS)), logMix)), 1);
      const klQ = tf.sum(tf.mul(q, tf.sub(tf.logSoftmax(tf.div(logits, T)), logMix)), 1);
      const js = tf.mul(tf.mean(tf.add(klP, klQ)), 0.5 * T * T);
      if (hardLabelWeight === 0) return js as TfModule.Scalar;
      const ce = tf.neg(tf.sum(tf.mul(hard!, tf.logSoftmax(logits)), 1));
      const ceMean = tf.div(tf.sum(tf.mul(ce, mask!)), tf.maximum(tf.sum(mask!), 1));
      return tf.add(js, tf.mul(ceMean, hardLabelWeight)) as TfModule.Scalar;
    },
    auxShapes: [[numClasses], [numClasses], []],
  });
}

// ---------------------------------------------------------------------------------------
// Prediction
// ---------------------------------------------------------------------------------------

/**
 * Class probabilities of a serialised head on feature rows.
 *
 * @param model a model from {@link trainTeacher} / {@link distillStudent} (or any layers
 *   model mapping `[n, dim]` to probabilities).
 * @param features row-major `n * dim` float32.
 * @param dim feature dimension; must equal the model's input width.
 * @returns `n * numClasses` probabilities, row-major.
 * @throws InvalidInputError when `features.length` is not a multiple of `dim` or `dim`
 *   differs from the model's input.
 */
export async function predict(model: SerializedModel, features: Float32Array, dim: number): Promise<Float32Array> {
  if (!Number.isInteger(dim) || dim <= 0 || features.length % dim !== 0) {
    throw new InvalidInputError(`features length ${features.length} is not a multiple of dim ${dim}`);
  }
  const { tf } = await initTensorflow();
  const net = await deserializeModel(model);
  try {
    const inShape = net.inputs[0]!.shape;
    if (inShape[1] !== dim) throw new InvalidInputError(`model input has dim ${inShape[1]}, features have ${dim}`);
    const outShape = net.outputs[0]!.shape;
    const k = outShape[outShape.length - 1] as number;
    const n = features.length / dim;
    const out = new Float32Array(n * k);
    const chunk = 2048;
    for (let s = 0; s < n; s += chunk) {
      const e = Math.min(n, s + chunk);
      const y = tf.tidy(() => net.predict(tf.tensor2d(features.slice(s * dim, e * dim), [e - s, dim])) as TfModule.Tensor);
      try {
        out.set((await y.data()) as Float32Array, s * k);
      } finally {
        y.dispose();
      }
    }
    return out;
  } finally {
    net.dispose();
  }
}

// ---------------------------------------------------------------------------------------
// Shared training loop
// ---------------------------------------------------------------------------------------

interface LoopSpec {
  kind: 'teacher' | 'student';
  arch: HeadArch;
  rows: number;
  /** Class of each row for class-balanced sampling, or null for shuffled epochs. */
  classes: Int32Array | null;
  epochs: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  hyper: Record<string, number | boolean>;
  resume?: ResumeFrom;
  onEpoch?: OnEpoch;
  logger?: Logger;
  /** Build the batch for row indices: features and auxiliary per-row arrays. */
  gather(idx: Int32Array): { x: Float32Array; aux: Float32Array[] };
  /** Per-row shapes of the auxiliary arrays. */
  auxShapes: number[][];
  /** Batch loss from logits `[b, numClasses]` and the auxiliary tensors. */
  loss(logits: TfModule.Tensor2D, aux: TfModule.Tensor[]): TfModule.Scalar;
}

/** Trainable parameters, in the order of the layers model's weights. */
interface Params {
  names: string[];
  vars: TfModule.Variable[];
}

interface AdamState {
  m: TfModule.Variable[];
  v: TfModule.Variable[];
  step: number;
}

function paramShapes(arch: HeadArch): { name: string; shape: number[] }[] {
  const out: { name: string; shape: number[] }[] = [];
  if (arch.hidden > 0) {
    out.push({ name: 'hidden/kernel', shape: [arch.dim, arch.hidden] }, { name: 'hidden/bias', shape: [arch.hidden] });
  }
  const inLogits = arch.hidden > 0 ? arch.hidden : arch.dim;
  out.push({ name: 'logits/kernel', shape: [inLogits, arch.numClasses] }, { name: 'logits/bias', shape: [arch.numClasses] });
  return out;
}

/** Wrap a tensor in a variable and release the tensor (the variable keeps the data). */
function toVariable(tf: Tf, t: TfModule.Tensor, trainable: boolean): TfModule.Variable {
  const v = tf.variable(t, trainable);
  t.dispose();
  return v;
}

/** Glorot-uniform kernels (Glorot & Bengio 2010) and zero biases from a seeded stream. */
function initParams(tf: Tf, arch: HeadArch, rng: Rng): Params {
  const shapes = paramShapes(arch);
  return {
    names: shapes.map((s) => s.name),
    vars: shapes.map(({ shape }) => {
      const size = shape.reduce((a, b) => a * b, 1);
      const values = new Float32Array(size);
      if (shape.length === 2) {
        const limit = Math.sqrt(6 / ((shape[0] as number) + (shape[1] as number)));
        for (let i = 0; i < size; i++) values[i] = (2 * rng() - 1) * limit;
      }
      return toVariable(tf, tf.tensor(values, shape), true);
    }),
  };
}

/** Build the inference layers model (softmax output) holding copies of the parameters. */
function buildLayersModel(tf: Tf, arch: HeadArch, params: Params): TfModule.LayersModel {
  const input = tf.input({ shape: [arch.dim], name: 'features' });
  let h: TfModule.SymbolicTensor = input;
  if (arch.hidden > 0) {
    h = tf.layers.dense({ units: arch.hidden, activation: 'relu', name: 'hidden' }).apply(h) as TfModule.SymbolicTensor;
    if (arch.dropout > 0) h = tf.layers.dropout({ rate: arch.dropout, name: 'dropout' }).apply(h) as TfModule.SymbolicTensor;
  }
  h = tf.layers.dense({ units: arch.numClasses, name: 'logits' }).apply(h) as TfModule.SymbolicTensor;
  const out = tf.layers.softmax({ name: 'probs' }).apply(h) as TfModule.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out, name: 'reelset_head' });
  model.setWeights(params.vars);
  return model;
}

/**
 * `a @ b` with a gradient that transposes explicitly: the wasm backend's matMul with
 * `transposeA`/`transposeB` (what tfjs's built-in gradient uses) is ~7x slower than a
 * transpose followed by a plain matMul (measured: 13 ms vs 1.8 ms for 1280x32 @ 32x256).
 * When `needGradA` is false (the input features) the gradient of `a` is not computed.
 */
function matMulTrain(tf: Tf, a: TfModule.Tensor2D, b: TfModule.Tensor2D, needGradA: boolean): TfModule.Tensor2D {
  const f = tf.customGrad(((ta: TfModule.Tensor2D, tb: TfModule.Tensor2D, save: TfModule.GradSaveFunc) => {
    save([ta, tb]);
    return {
      value: tf.matMul(ta, tb),
      gradFunc: (dy: TfModule.Tensor2D, saved: TfModule.Tensor[]) => {
        const [sa, sb] = saved as [TfModule.Tensor2D, TfModule.Tensor2D];
        return [
          needGradA ? tf.matMul(dy, tf.transpose(sb)) : tf.zerosLike(sa),
          tf.matMul(tf.transpose(sa), dy),
        ];
      },
    };
  }) as unknown as Parameters<Tf['customGrad']>[0]);
  return f(a, b) as TfModule.Tensor2D;
}

/** Forward pass to logits; `mask` is the inverted-dropout mask of the hidden layer. */
function forward(tf: Tf, arch: HeadArch, params: Params, x: TfModule.Tensor2D, mask?: TfModule.Tensor2D): TfModule.Tensor2D {
  const v = params.vars as TfModule.Tensor[] as TfModule.Tensor2D[];
  if (arch.hidden > 0) {
    let h = tf.relu(tf.add(matMulTrain(tf, x, v[0]!, false), v[1]!)) as TfModule.Tensor2D;
    if (mask) h = tf.mul(h, mask);
    return tf.add(matMulTrain(tf, h, v[2]!, true), v[3]!);
  }
  return tf.add(matMulTrain(tf, x, v[0]!, false), v[1]!);
}

async function checkpoint(
  tf: Tf,
  spec: LoopSpec,
  params: Params,
  adam: AdamState | null,
  epoch: number,
  history: EpochLoss[],
): Promise<SerializedModel> {
  const model = buildLayersModel(tf, spec.arch, params);
  try {
    const meta: HeadMetadata = {
      kind: spec.kind,
      arch: spec.arch,
      epoch,
      adamStep: adam ? adam.step : 0,
      history: [...history],
      hyper: spec.hyper,
    };
    return await serializeModel(model, {
      metadata: { reelset: meta },
      optimizerState: adam
        ? params.names.flatMap((name, i) => [
            { name: `adam/m/${name}`, tensor: adam.m[i]! },
            { name: `adam/v/${name}`, tensor: adam.v[i]! },
          ])
        : undefined,
    });
  } finally {
    model.dispose();
  }
}

/** Restore parameters (and Adam state, when present) from a checkpoint. */
async function restore(
  tf: Tf,
  spec: LoopSpec,
  resume: ResumeFrom,
): Promise<{ params: Params; adam: AdamState; history: EpochLoss[] }> {
  const meta = readHeadMetadata(resume.weights);
  const a = spec.arch;
  if (meta && (meta.arch.dim !== a.dim || meta.arch.hidden !== a.hidden || meta.arch.numClasses !== a.numClasses)) {
    throw new InvalidInputError(
      `resume checkpoint has shape ${JSON.stringify(meta.arch)}, this run ${JSON.stringify(a)}`,
    );
  }
  if (meta && meta.epoch !== resume.epoch) {
    throw new InvalidInputError(`resume.epoch is ${resume.epoch} but the checkpoint was taken after epoch ${meta.epoch}`);
  }
  const net = await deserializeModel(resume.weights);
  const shapes = paramShapes(a);
  let params: Params;
  try {
    const byName = new Map<string, TfModule.Tensor>();
    for (const layer of net.layers) {
      const ws = layer.getWeights();
      if (ws.length === 2) {
        byName.set(`${layer.name}/kernel`, ws[0]!);
        byName.set(`${layer.name}/bias`, ws[1]!);
      }
    }
    params = {
      names: shapes.map((s) => s.name),
      vars: shapes.map(({ name, shape }) => {
        const t = byName.get(name);
        if (!t || t.shape.join() !== shape.join()) {
          throw new InvalidInputError(`resume checkpoint lacks ${name} of shape [${shape.join(', ')}]`);
        }
        return toVariable(tf, tf.tensor(t.dataSync() as Float32Array, shape), true);
      }),
    };
  } finally {
    net.dispose();
  }
  const opt = await readOptimizerState(resume.weights);
  const zeros = (i: number) => toVariable(tf, tf.zerosLike(params.vars[i]!), false);
  let adam: AdamState;
  const haveAll = params.names.every((nm) => opt[`adam/m/${nm}`] && opt[`adam/v/${nm}`]);
  if (meta && meta.adamStep > 0 && haveAll) {
    adam = {
      m: params.names.map((nm) => tf.variable(opt[`adam/m/${nm}`]!, false)),
      v: params.names.map((nm) => tf.variable(opt[`adam/v/${nm}`]!, false)),
      step: meta.adamStep,
    };
  } else {
    spec.logger?.warn('resume checkpoint has no optimiser state; Adam restarts (the run will differ from an uninterrupted one)');
    adam = { m: params.vars.map((_, i) => zeros(i)), v: params.vars.map((_, i) => zeros(i)), step: 0 };
  }
  // Variables hold their own reference to the decoded data.
  tf.dispose(Object.values(opt));
  return { params, adam, history: meta ? meta.history.filter((h) => h.epoch <= resume.epoch) : [] };
}

async function runTraining(tf: Tf, spec: LoopSpec): Promise<TrainResult> {
  const { arch, rows, batchSize, epochs, learningRate, seed } = spec;
  const startEpoch = spec.resume ? spec.resume.epoch + 1 : 1;
  if (spec.resume && (!Number.isInteger(spec.resume.epoch) || spec.resume.epoch < 0 || spec.resume.epoch > epochs)) {
    throw new InvalidInputError(`resume.epoch must be an integer in [0, ${epochs}], got ${spec.resume.epoch}`);
  }
  let params: Params;
  let adam: AdamState;
  let history: EpochLoss[];
  if (spec.resume) {
    ({ params, adam, history } = await restore(tf, spec, spec.resume));
  } else {
    params = initParams(tf, arch, mulberry32(deriveSeed(seed, STREAM_INIT)));
    adam = {
      m: params.vars.map((p) => toVariable(tf, tf.zerosLike(p), false)),
      v: params.vars.map((p) => toVariable(tf, tf.zerosLike(p), false)),
      step: 0,
    };
    history = [];
  }
  const sampler = spec.classes ? classBalancedSampler(spec.classes, arch.numClasses) : null;
  const stepsPerEpoch = Math.ceil(rows / batchSize);
  const useDropout = arch.hidden > 0 && arch.dropout > 0;
  const keep = 1 - arch.dropout;
  const started = Date.now();
  spec.logger?.info(
    { kind: spec.kind, arch, rows, epochs, startEpoch, stepsPerEpoch, learningRate, classBalanced: !!sampler },
    `training ${spec.kind} head`,
  );
  try {
    for (let epoch = startEpoch; epoch <= epochs; epoch++) {
      const rng = mulberry32(deriveSeed(seed, STREAM_EPOCH, epoch));
      const order = sampler ? null : permutation(rng, rows);
      let lossSum: TfModule.Scalar = tf.scalar(0);
      for (let step = 0; step < stepsPerEpoch; step++) {
        const idx = sampler
          ? sampler(rng, batchSize)
          : order!.subarray(step * batchSize, Math.min(rows, (step + 1) * batchSize));
        const b = idx.length;
        const { x, aux } = spec.gather(idx);
        let maskValues: Float32Array | undefined;
        if (useDropout) {
          maskValues = new Float32Array(b * arch.hidden);
          for (let i = 0; i < maskValues.length; i++) maskValues[i] = rng() < keep ? 1 / keep : 0;
        }
        adam.step += 1;
        const t = adam.step;
        // Bias-corrected step size, computed in float64 so a resumed run is bit-identical.
        const lrT = (learningRate * Math.sqrt(1 - Math.pow(ADAM_BETA2, t))) / (1 - Math.pow(ADAM_BETA1, t));
        const next = tf.tidy(() => {
          const xT = tf.tensor2d(x, [b, arch.dim]);
          const auxT = aux.map((a, i) => tf.tensor(a, [b, ...spec.auxShapes[i]!]));
          const maskT = maskValues ? tf.tensor2d(maskValues, [b, arch.hidden]) : undefined;
          const { value, grads } = tf.variableGrads(
            () => spec.loss(forward(tf, arch, params, xT, maskT), auxT),
            params.vars,
          );
          params.vars.forEach((p, i) => {
            const g = grads[p.name]!;
            const m = adam.m[i]!;
            const v = adam.v[i]!;
            m.assign(tf.add(tf.mul(m, ADAM_BETA1), tf.mul(g, 1 - ADAM_BETA1)));
            v.assign(tf.add(tf.mul(v, ADAM_BETA2), tf.mul(tf.square(g), 1 - ADAM_BETA2)));
            p.assign(tf.sub(p, tf.mul(tf.div(m, tf.add(tf.sqrt(v), ADAM_EPSILON)), lrT)));
          });
          return tf.add(lossSum, value) as TfModule.Scalar;
        });
        lossSum.dispose();
        lossSum = next;
      }
      const loss = ((await lossSum.data())[0] as number) / stepsPerEpoch;
      lossSum.dispose();
      if (!Number.isFinite(loss)) throw new InvalidInputError(`training diverged: loss ${loss} at epoch ${epoch}`);
      history.push({ epoch, loss });
      spec.logger?.debug({ kind: spec.kind, epoch, loss }, 'epoch done');
      if (spec.onEpoch) {
        const ep = epoch;
        const snapshot = [...history];
        await spec.onEpoch(epoch, loss, () => checkpoint(tf, spec, params, adam, ep, snapshot));
      }
    }
    const model = await checkpoint(tf, spec, params, null, epochs, history);
    spec.logger?.info(
      { kind: spec.kind, epochs, ms: Date.now() - started, finalLoss: history[history.length - 1]?.loss },
      `trained ${spec.kind} head`,
    );
    return { model, history };
  } finally {
    tf.dispose([...params.vars, ...adam.m, ...adam.v]);
  }
}

// ---------------------------------------------------------------------------------------
// Validation helpers
// ---------------------------------------------------------------------------------------

function checkCommon(opts: CommonTrainOptions, n: number): void {
  const { dim, numClasses, features } = opts;
  if (!Number.isInteger(dim) || dim <= 0) throw new InvalidInputError(`dim must be a positive integer, got ${dim}`);
  if (!Number.isInteger(numClasses) || numClasses < 2) {
    throw new DatasetError(`need at least two classes, got numClasses=${numClasses}`);
  }
  if (n === 0) throw new DatasetError('no training rows');
  if (features.length !== n * dim) {
    throw new InvalidInputError(`features has ${features.length} values, expected ${n} rows x ${dim}`);
  }
  checkFinite(features, 'features');
}

function checkHyper(h: { hidden: number; epochs: number; batchSize: number; learningRate: number; dropout: number }): void {
  if (!Number.isInteger(h.hidden) || h.hidden < 0) throw new InvalidInputError(`hidden must be an integer >= 0, got ${h.hidden}`);
  if (!Number.isInteger(h.epochs) || h.epochs < 1) throw new InvalidInputError(`epochs must be an integer >= 1, got ${h.epochs}`);
  if (!Number.isInteger(h.batchSize) || h.batchSize < 1) {
    throw new InvalidInputError(`batchSize must be an integer >= 1, got ${h.batchSize}`);
  }
  if (!(h.learningRate > 0)) throw new InvalidInputError(`learningRate must be > 0, got ${h.learningRate}`);
  if (!(h.dropout >= 0 && h.dropout < 1)) throw new InvalidInputError(`dropout must be in [0, 1), got ${h.dropout}`);
}

function checkFinite(a: Float32Array, what: string): void {
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) throw new InvalidInputError(`${what}[${i}] is ${a[i]}`);
  }
}

function argmaxRow(a: Float32Array, row: number, k: number): number {
  let best = 0;
  for (let j = 1; j < k; j++) if ((a[row * k + j] as number) > (a[row * k + best] as number)) best = j;
  return best;
}
