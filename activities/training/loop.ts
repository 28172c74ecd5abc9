/**
 * The training loop shared by the teacher and the student: seeded batches, inverted
 * dropout, tfjs's Adam optimizer (`tf.train.adam`, Kingma & Ba 2015) or SGD with momentum
 * and a cosine learning-rate decay (`tf.train.momentum`; the teacher's whole-backbone
 * fine-tuning), a callback after every epoch with a checkpoint, and resumption from a
 * checkpoint.
 *
 * Determinism: initial weights, batch sampling and dropout masks come from
 * {@link mulberry32} streams derived from `(seed, epoch)`, and a checkpoint holds the
 * parameters and the whole optimizer state (first and second moments, step count, and
 * the running powers of beta1 and beta2 that Adam's bias correction uses), so a run
 * resumed from the checkpoint of epoch k ends with bit-identical weights to an
 * uninterrupted run on the same backend (with SGD: the step count and the momentum
 * accumulators; the learning rate is a function of the step). (tfjs's own `setWeights` recomputes those
 * powers with `pow`, which differs in the last bits from the running product: we save and
 * restore them exactly.)
 */
import type * as TfModule from '@tensorflow/tfjs';
import { InvalidInputError, ModelMismatchError, TrainingDivergedError, type EpochLoss } from '../../contracts';
import type { Logger } from '../../lib/logger';
import { classBalancedSampler, deriveSeed, mulberry32, permutation } from '../../lib/rng';
import type { Tf, TfBackendPreference } from '../../lib/tf';
import {
  buildLayersModel,
  forward,
  initParams,
  paramShapes,
  readHeadMetadata,
  toVariable,
  type HeadArch,
  type HeadMetadata,
  type Params,
  type Trunk,
} from './head-model';
import { deserializeModel, readOptimizerState, serializeModel, type SerializedModel } from './serialize';

/**
 * Called after each epoch, awaited before the next starts: lets the caller checkpoint
 * (to S3) and heartbeat.
 *
 * @param epoch the epoch just finished, 1-based.
 * @param loss its mean training loss (nats).
 * @param weights serialises a checkpoint of the current state (weights, optimizer state,
 *   history); call it before the returned promise settles. Pass the result as
 *   `resume: { epoch, weights }` to continue from here.
 */
export type OnEpoch = (epoch: number, loss: number, weights: () => Promise<SerializedModel>) => Promise<void>;

/** Where to resume: a checkpoint produced by `onEpoch`'s `weights()` after epoch `epoch`. */
export interface ResumeFrom {
  /** Last completed epoch (1-based); training continues with `epoch + 1`. */
  epoch: number;
  /** The checkpoint. A plain model without optimizer state also works, but then Adam restarts and the run is no longer identical. */
  weights: SerializedModel;
}

/** The result of training: the final model (no optimizer state) and the per-epoch loss. */
export interface TrainResult {
  /** Final model; outputs probabilities `[n, numClasses]`; metadata under `userDefinedMetadata.reelset`. */
  model: SerializedModel;
  /** Loss of every epoch 1..epochs (epochs before a resume come from the checkpoint). */
  history: EpochLoss[];
}

/** Options shared by the teacher and the student. */
export interface CommonTrainOptions {
  /** Row-major features, `n * dim` float32 (frozen embeddings). */
  features: Float32Array;
  /** Feature dimension. */
  dim: number;
  /** Number of classes (>= 2). */
  numClasses: number;
  /** Rows per step (default: the recipe's, `TeacherParams`). */
  batchSize?: number;
  /** Sample batches with probability inversely proportional to class frequency (default true). */
  classBalanced?: boolean;
  /** Seed of all randomness (default 0). */
  seed?: number;
  /** Continue a run from a checkpoint. */
  resume?: ResumeFrom;
  /** Per-epoch callback (checkpoint, heartbeat). */
  onEpoch?: OnEpoch;
  /** Held-out rows (`features` n * dim, class `labels`) scored after every epoch into `history[].valAccuracy`; never trained on. */
  validation?: { features: Float32Array; labels: Int32Array };
  /** TensorFlow.js backend preference if not yet initialised (default `auto`). */
  backend?: TfBackendPreference;
  logger?: Logger;
}

/** Share of the validation rows whose argmax (no dropout) is their label. */
function validationAccuracy(tf: Tf, spec: LoopSpec, params: Params): number {
  const { features, labels } = spec.validation!;
  const n = labels.length;
  const pred = tf.tidy(() => tf.argMax(forward(tf, spec.arch, params, tf.tensor2d(features, [n, spec.arch.dim])), 1).dataSync() as Int32Array);
  let correct = 0;
  for (let i = 0; i < n; i++) if (pred[i] === labels[i]) correct++;
  return correct / n;
}

/** Adam's constants (Kingma & Ba 2015, the paper's defaults; epsilon as Keras). */
export const ADAM = { beta1: 0.9, beta2: 0.999, epsilon: 1e-7 } as const;

/** Seed stream ids for {@link deriveSeed}. */
const STREAM_INIT = 0;
const STREAM_EPOCH = 1;

/** What one training run needs besides its data: the head, the schedule and how batches and the loss are made. */
export interface LoopSpec {
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
  validation?: { features: Float32Array; labels: Int32Array };
  logger?: Logger;
  /**
   * Trainable layers before the head (the student's backbone top): rows are then the
   * trunk's inputs (`trunk.inputShape` each) and the checkpoint model holds the trunk's
   * layers too. Absent: the head trains on frozen features.
   */
  trunk?: Trunk;
  /** Start from this head's weights (a model of the same arch) instead of Glorot-uniform ones. */
  initialHead?: SerializedModel;
  /** The optimizer (default Adam at `learningRate`). */
  optimizer?: OptimizerSpec;
  /**
   * Build the batch for row indices: inputs (features, or trunk inputs) and auxiliary
   * per-row arrays. `step` is the global step (0-based, over all epochs): a seed for
   * per-batch augmentation that a resumed run draws again identically.
   */
  gather(idx: Int32Array, step: number): { x: Float32Array; aux: Float32Array[] };
  /** Per-row shapes of the auxiliary arrays. */
  auxShapes: number[][];
  /** Batch loss from logits `[b, numClasses]` and the auxiliary tensors. */
  loss(logits: TfModule.Tensor2D, aux: TfModule.Tensor[]): TfModule.Scalar;
}

/**
 * How parameters are updated: Adam at the spec's learning rate, or SGD with momentum
 * (`v <- m v + g; w <- w - lr_t v`, tfjs's `MomentumOptimizer`, Sutskever et al. 2013) whose
 * learning rate decays with the step `t` of `T`: `cosine` is
 * `lr_t = lr (1 + cos(pi t / T)) / 2` (Loshchilov & Hutter 2017, "SGDR", without restarts),
 * `constant` keeps `lr`.
 */
export type OptimizerSpec = { kind: 'adam' } | { kind: 'sgd'; momentum: number; schedule: 'cosine' | 'constant' };

/** The learning rate of global step `t` (0-based) of `total` under `opt` (see {@link OptimizerSpec}). */
export function learningRateAt(opt: OptimizerSpec, learningRate: number, t: number, total: number): number {
  if (opt.kind === 'sgd' && opt.schedule === 'cosine' && total > 0) return (learningRate * (1 + Math.cos((Math.PI * t) / total))) / 2;
  return learningRate;
}

/** The fields of tfjs's AdamOptimizer that its `getWeights` leaves out. */
interface AdamInternals {
  accBeta1: TfModule.Variable;
  accBeta2: TfModule.Variable;
}

type Optimizer = TfModule.AdamOptimizer | TfModule.MomentumOptimizer;

function newOptimizer(tf: Tf, spec: Pick<LoopSpec, 'optimizer' | 'learningRate'>): Optimizer {
  const o = spec.optimizer ?? { kind: 'adam' };
  return o.kind === 'sgd' ? tf.train.momentum(spec.learningRate, o.momentum) : tf.train.adam(spec.learningRate, ADAM.beta1, ADAM.beta2, ADAM.epsilon);
}

/**
 * The optimizer's whole state as named tensors. Adam: `adam/iterations`,
 * `adam/accBeta1|2`, `adam/m/<param>`, `adam/v/<param>`; SGD: `sgd/iterations`,
 * `sgd/momentum/<param>`. The iterations scalar is a new tensor the caller must dispose;
 * the others are the optimizer's own variables.
 */
async function optimizerState(optimizer: Optimizer, params: Params): Promise<{ name: string; tensor: TfModule.Tensor }[]> {
  // `params` here is every trained variable: the head's, then the trunk's (see allParams).
  const weights = await optimizer.getWeights();
  const [iterations, ...slots] = weights;
  const n = params.names.length;
  const adam = optimizer.getClassName() === 'Adam';
  if (!iterations || slots.length !== (adam ? 2 : 1) * n) {
    iterations?.tensor.dispose();
    return [];
  }
  if (!adam) {
    return [
      { name: 'sgd/iterations', tensor: iterations.tensor },
      ...params.names.map((name, i) => ({ name: `sgd/momentum/${name}`, tensor: slots[i]!.tensor })),
    ];
  }
  const internals = optimizer as unknown as AdamInternals;
  return [
    { name: 'adam/iterations', tensor: iterations.tensor },
    { name: 'adam/accBeta1', tensor: internals.accBeta1 },
    { name: 'adam/accBeta2', tensor: internals.accBeta2 },
    ...params.names.flatMap((name, i) => [
      { name: `adam/m/${name}`, tensor: slots[i]!.tensor },
      { name: `adam/v/${name}`, tensor: slots[n + i]!.tensor },
    ]),
  ];
}

/**
 * Restore an optimizer from {@link optimizerState}'s tensors. False when the checkpoint
 * has none of its kind (the optimizer then restarts from zero state).
 */
async function restoreOptimizer(optimizer: Optimizer, params: Params, state: TfModule.NamedTensorMap): Promise<boolean> {
  if (optimizer.getClassName() !== 'Adam') {
    const iterations = state['sgd/iterations'];
    const mom = params.names.map((nm) => state[`sgd/momentum/${nm}`]);
    if (!iterations || mom.some((t) => !t)) return false;
    await optimizer.setWeights([{ name: 'iter', tensor: iterations }, ...params.names.map((nm, i) => ({ name: `${nm}/momentum`, tensor: mom[i]! }))]);
    return true;
  }
  const iterations = state['adam/iterations'];
  const m = params.names.map((nm) => state[`adam/m/${nm}`]);
  const v = params.names.map((nm) => state[`adam/v/${nm}`]);
  if (!iterations || m.some((t) => !t) || v.some((t) => !t)) return false;
  await optimizer.setWeights([
    { name: 'iter', tensor: iterations },
    ...params.names.map((nm, i) => ({ name: `${nm}/m`, tensor: m[i]! })),
    ...params.names.map((nm, i) => ({ name: `${nm}/v`, tensor: v[i]! })),
  ]);
  const internals = optimizer as unknown as AdamInternals;
  const acc1 = state['adam/accBeta1'];
  const acc2 = state['adam/accBeta2'];
  if (acc1 && acc2) {
    internals.accBeta1.assign(acc1);
    internals.accBeta2.assign(acc2);
  }
  return true;
}

/** The head's parameters followed by the trunk's: every variable Adam updates, in a fixed order. */
function allParams(params: Params, trunk: Trunk | undefined): Params {
  return trunk ? { names: [...params.names, ...trunk.names], vars: [...params.vars, ...trunk.vars] } : params;
}

/** A checkpoint (or, with `optimizer` null, the final model) of the current parameters. */
async function checkpoint(tf: Tf, spec: LoopSpec, params: Params, optimizer: Optimizer | null, epoch: number, history: EpochLoss[]): Promise<SerializedModel> {
  const model = buildLayersModel(tf, spec.arch, params, spec.trunk);
  const state = optimizer ? await optimizerState(optimizer, allParams(params, spec.trunk)) : undefined;
  try {
    const meta: HeadMetadata = {
      kind: spec.kind,
      arch: spec.arch,
      epoch,
      adamStep: optimizer ? optimizer.iterations : 0,
      history: [...history],
      hyper: spec.hyper,
    };
    return await serializeModel(model, {
      metadata: { reelset: meta },
      optimizerState: state,
    });
  } finally {
    model.dispose();
    state?.find((s) => s.name.endsWith('/iterations'))?.tensor.dispose();
  }
}

/**
 * The head's parameters (new variables) from a model holding the head's layers.
 * @throws ModelMismatchError when a layer is missing or has another shape.
 */
function headParamsFrom(tf: Tf, a: HeadArch, net: TfModule.LayersModel, what: string): Params {
  const byName = new Map<string, TfModule.Tensor>();
  for (const layer of net.layers) {
    if (layer.name !== 'hidden' && layer.name !== 'logits') continue;
    const ws = layer.getWeights();
    if (ws.length === 2) {
      byName.set(`${layer.name}/kernel`, ws[0]!);
      byName.set(`${layer.name}/bias`, ws[1]!);
    }
  }
  const shapes = paramShapes(a);
  return {
    names: shapes.map((s) => s.name),
    vars: shapes.map(({ name, shape }) => {
      const t = byName.get(name);
      if (!t || t.shape.join() !== shape.join()) {
        throw new ModelMismatchError(`${what} lacks ${name} of shape [${shape.join(', ')}]`);
      }
      return toVariable(tf, tf.tensor(t.dataSync() as Float32Array, shape), true);
    }),
  };
}

/** Initial head parameters from a head model (`spec.initialHead`). */
async function initialHeadParams(tf: Tf, spec: LoopSpec, model: SerializedModel): Promise<Params> {
  const net = await deserializeModel(model);
  try {
    return headParamsFrom(tf, spec.arch, net, 'initial head');
  } finally {
    net.dispose();
  }
}

/**
 * Parameters, optimizer state and history from a checkpoint.
 *
 * @throws ModelMismatchError when the checkpoint's head has another shape or was taken after another epoch.
 */
async function restore(tf: Tf, spec: LoopSpec, resume: ResumeFrom): Promise<{ params: Params; optimizer: Optimizer; history: EpochLoss[] }> {
  const meta = readHeadMetadata(resume.weights);
  const a = spec.arch;
  if (meta && (meta.arch.dim !== a.dim || meta.arch.hidden !== a.hidden || meta.arch.numClasses !== a.numClasses)) {
    throw new ModelMismatchError(`resume checkpoint has shape ${JSON.stringify(meta.arch)}, this run ${JSON.stringify(a)}`);
  }
  if (meta && meta.epoch !== resume.epoch) {
    throw new ModelMismatchError(`resume.epoch is ${resume.epoch} but the checkpoint was taken after epoch ${meta.epoch}`);
  }
  const net = await deserializeModel(resume.weights);
  let params: Params;
  try {
    params = headParamsFrom(tf, a, net, 'resume checkpoint');
    if (spec.trunk) spec.trunk.restore(net);
  } finally {
    net.dispose();
  }
  const optimizer = newOptimizer(tf, spec);
  const state = await readOptimizerState(resume.weights);
  try {
    if (!(await restoreOptimizer(optimizer, allParams(params, spec.trunk), state))) {
      spec.logger?.warn('resume checkpoint has no optimizer state; the optimizer restarts (the run will differ from an uninterrupted one)');
    }
  } finally {
    // The optimizer's variables hold their own reference to the decoded data.
    tf.dispose(Object.values(state));
  }
  return { params, optimizer, history: meta ? meta.history.filter((h) => h.epoch <= resume.epoch) : [] };
}

/**
 * Train a head (and a trunk): `spec.epochs` epochs of `ceil(rows / batchSize)` optimizer steps each.
 *
 * @returns the final model (probabilities out) and the loss of every epoch.
 * @throws InvalidInputError when `resume.epoch` is out of range.
 * @throws ModelMismatchError when the resume checkpoint does not fit the head.
 * @throws TrainingDivergedError when an epoch's loss is not finite.
 */
export async function runTraining(tf: Tf, spec: LoopSpec): Promise<TrainResult> {
  const { arch, rows, batchSize, epochs, learningRate, seed } = spec;
  if (spec.resume && (!Number.isInteger(spec.resume.epoch) || spec.resume.epoch < 0 || spec.resume.epoch > epochs)) {
    throw new InvalidInputError(`resume.epoch must be an integer in [0, ${epochs}], got ${spec.resume.epoch}`);
  }
  const startEpoch = spec.resume ? spec.resume.epoch + 1 : 1;
  const { params, optimizer, history } = spec.resume
    ? await restore(tf, spec, spec.resume)
    : {
        params: spec.initialHead ? await initialHeadParams(tf, spec, spec.initialHead) : initParams(tf, arch, mulberry32(deriveSeed(seed, STREAM_INIT))),
        optimizer: newOptimizer(tf, spec),
        history: [] as EpochLoss[],
      };
  const trained = allParams(params, spec.trunk);
  const inputShape = spec.trunk ? spec.trunk.inputShape : [arch.dim];
  const trunk = spec.trunk;
  const sampler = spec.classes ? classBalancedSampler(spec.classes, arch.numClasses) : null;
  const stepsPerEpoch = Math.ceil(rows / batchSize);
  const opt = spec.optimizer ?? { kind: 'adam' as const };
  const totalSteps = epochs * stepsPerEpoch;
  const useDropout = arch.hidden > 0 && arch.dropout > 0;
  const keep = 1 - arch.dropout;
  const started = Date.now();
  spec.logger?.info(
    { kind: spec.kind, arch, rows, epochs, startEpoch, stepsPerEpoch, learningRate, optimizer: opt, classBalanced: !!sampler },
    `training ${spec.kind} head`,
  );
  try {
    for (let epoch = startEpoch; epoch <= epochs; epoch++) {
      const rng = mulberry32(deriveSeed(seed, STREAM_EPOCH, epoch));
      const order = sampler ? null : permutation(rng, rows);
      let lossSum: TfModule.Scalar = tf.scalar(0);
      for (let step = 0; step < stepsPerEpoch; step++) {
        const idx = sampler ? sampler(rng, batchSize) : order!.subarray(step * batchSize, Math.min(rows, (step + 1) * batchSize));
        const b = idx.length;
        const t = (epoch - 1) * stepsPerEpoch + step;
        if (opt.kind === 'sgd') (optimizer as TfModule.MomentumOptimizer).setLearningRate(learningRateAt(opt, learningRate, t, totalSteps));
        const { x, aux } = spec.gather(idx, t);
        let maskValues: Float32Array | undefined;
        if (useDropout) {
          maskValues = new Float32Array(b * arch.hidden);
          for (let i = 0; i < maskValues.length; i++) maskValues[i] = rng() < keep ? 1 / keep : 0;
        }
        const next = tf.tidy(() => {
          const xT = tf.tensor(x, [b, ...inputShape]);
          const auxT = aux.map((a, i) => tf.tensor(a, [b, ...spec.auxShapes[i]!]));
          const maskT = maskValues ? tf.tensor2d(maskValues, [b, arch.hidden]) : undefined;
          const { value, grads } = tf.variableGrads(() => {
            const features = trunk ? trunk.apply(xT) : (xT as TfModule.Tensor2D);
            return spec.loss(forward(tf, arch, params, features, maskT, !!trunk), auxT);
          }, trained.vars);
          // Gradients in parameter order: the optimizer's moments are kept by position.
          optimizer.applyGradients(trained.vars.map((p) => ({ name: p.name, tensor: grads[p.name]! })));
          return tf.add(lossSum, value) as TfModule.Scalar;
        });
        lossSum.dispose();
        lossSum = next;
        // With a trunk a step is long (convolutions and their gradients): let timers (heartbeats) run between steps.
        if (trunk) await new Promise((r) => setImmediate(r));
      }
      const loss = (await lossSum.data())[0]! / stepsPerEpoch;
      lossSum.dispose();
      if (!Number.isFinite(loss))
        throw new TrainingDivergedError(`${spec.kind} training diverged: loss ${loss} at epoch ${epoch} (learning rate ${learningRate})`);
      const valAccuracy = spec.validation && spec.validation.labels.length ? validationAccuracy(tf, spec, params) : undefined;
      history.push(valAccuracy === undefined ? { epoch, loss } : { epoch, loss, valAccuracy });
      spec.logger?.debug({ kind: spec.kind, epoch, loss }, 'epoch done');
      if (spec.onEpoch) {
        const ep = epoch;
        const snapshot = [...history];
        await spec.onEpoch(epoch, loss, () => checkpoint(tf, spec, params, optimizer, ep, snapshot));
      }
    }
    const model = await checkpoint(tf, spec, params, null, epochs, history);
    spec.logger?.info({ kind: spec.kind, epochs, ms: Date.now() - started, finalLoss: history.at(-1)?.loss }, `trained ${spec.kind} head`);
    return { model, history };
  } finally {
    optimizer.dispose();
    tf.dispose(params.vars);
  }
}
