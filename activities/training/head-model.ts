/**
 * The classifier head: a small dense network on frozen frame embeddings, its trainable
 * parameters, its forward pass for training, and the inference layers model it is
 * saved as.
 *
 * Architecture (serialised as a tfjs layers model whose output is probabilities):
 * `input[dim] -> Dense(hidden, relu) 'hidden' -> Dropout 'dropout' -> Dense(numClasses) 'logits' -> Softmax 'probs'`;
 * with `hidden = 0` the head is a linear softmax classifier (`input -> 'logits' -> 'probs'`).
 */
import type * as TfModule from '@tensorflow/tfjs';
import { ModelMismatchError, type EpochLoss } from '../../contracts';
import type { Rng } from '../../lib/rng';
import { initTensorflow, type Tf } from '../../lib/tf';
import { deserializeModel, readModelMetadata, serializeModel, type SerializedModel } from './serialize';

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
  /** Offsets added to the logits' bias by the video-level calibration (absent: none). */
  logitOffsets?: number[];
}

/** Read the head metadata of a model trained here, or undefined for other models. */
export function readHeadMetadata(model: SerializedModel): HeadMetadata | undefined {
  const meta = readModelMetadata(model)?.['reelset'];
  return meta && typeof meta === 'object' ? (meta as HeadMetadata) : undefined;
}

/** Trainable parameters, in the order of the layers model's weights (`hidden/kernel`, `hidden/bias`, `logits/kernel`, `logits/bias`). */
export interface Params {
  names: string[];
  vars: TfModule.Variable[];
}

/** Names and shapes of a head's parameters, in layer-weight order. */
export function paramShapes(arch: HeadArch): { name: string; shape: number[] }[] {
  const out: { name: string; shape: number[] }[] = [];
  if (arch.hidden > 0) {
    out.push({ name: 'hidden/kernel', shape: [arch.dim, arch.hidden] }, { name: 'hidden/bias', shape: [arch.hidden] });
  }
  const inLogits = arch.hidden > 0 ? arch.hidden : arch.dim;
  out.push({ name: 'logits/kernel', shape: [inLogits, arch.numClasses] }, { name: 'logits/bias', shape: [arch.numClasses] });
  return out;
}

/** Wrap a tensor in a variable and release the tensor (the variable keeps the data). */
export function toVariable(tf: Tf, t: TfModule.Tensor, trainable: boolean): TfModule.Variable {
  const v = tf.variable(t, trainable);
  t.dispose();
  return v;
}

/** Glorot-uniform kernels (Glorot & Bengio 2010) and zero biases from a seeded stream. */
export function initParams(tf: Tf, arch: HeadArch, rng: Rng): Params {
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

/**
 * Layers trained before the head: the student's backbone top or the teacher's whole backbone (`trunk.ts`). `apply` runs
 * them in inference mode (batch-norm statistics frozen) with gradients to `vars`.
 */
export interface Trunk {
  /** Shape of one input row, e.g. `[7, 7, 160]`. */
  inputShape: number[];
  /** Stable names of the trainable variables (`<layer>/<weight>`), for the optimizer state. */
  names: string[];
  /** The trainable variables, in `names` order. */
  vars: TfModule.Variable[];
  /** The same layers on a symbolic input (shared, not copied): how a checkpoint model is built. */
  build(x: TfModule.SymbolicTensor): TfModule.SymbolicTensor;
  /** Forward pass `[b, ...inputShape] -> [b, dim]`. */
  apply(x: TfModule.Tensor): TfModule.Tensor2D;
  /** Copy the trunk's weights from a checkpoint model holding layers of the same names. */
  restore(net: TfModule.LayersModel): void;
}

/** Build the inference layers model (softmax output) holding copies of the parameters; with a trunk, its layers come first (shared, not copied). */
export function buildLayersModel(tf: Tf, arch: HeadArch, params: Params, trunk?: Trunk): TfModule.LayersModel {
  const input = trunk ? tf.input({ shape: trunk.inputShape, name: 'trunk_input' }) : tf.input({ shape: [arch.dim], name: 'features' });
  const h = trunk ? trunk.build(input) : input;
  return headOn(tf, arch, params, input, h, trunk ? 'reelset_student_top' : 'reelset_head');
}

/**
 * Append the head's layers (`hidden`, `dropout`, `logits`, `probs`) to a symbolic tensor
 * of features and make the model from `input`, with the head's weights set from `params`.
 * Output 0 is `probs`; `extraOutputs` (e.g. the backbone's ImageNet logits) follow it.
 */
export function headOn(
  tf: Tf,
  arch: HeadArch,
  params: Params,
  input: TfModule.SymbolicTensor | TfModule.SymbolicTensor[],
  features: TfModule.SymbolicTensor,
  name: string,
  extraOutputs: TfModule.SymbolicTensor[] = [],
): TfModule.LayersModel {
  let h = features;
  if (arch.hidden > 0) {
    h = tf.layers.dense({ units: arch.hidden, activation: 'relu', name: 'hidden' }).apply(h) as TfModule.SymbolicTensor;
    if (arch.dropout > 0) h = tf.layers.dropout({ rate: arch.dropout, name: 'dropout' }).apply(h) as TfModule.SymbolicTensor;
  }
  h = tf.layers.dense({ units: arch.numClasses, name: 'logits' }).apply(h) as TfModule.SymbolicTensor;
  const out = tf.layers.softmax({ name: 'probs' }).apply(h) as TfModule.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: extraOutputs.length ? [out, ...extraOutputs] : out, name });
  const headLayers = HEAD_LAYERS.filter((n) => model.layers.some((l) => l.name === n) && n !== 'dropout' && n !== 'probs');
  let i = 0;
  for (const n of headLayers) {
    model.getLayer(n).setWeights([params.vars[i]!, params.vars[i + 1]!]);
    i += 2;
  }
  return model;
}

/** Names of the head's layers, in order. */
export const HEAD_LAYERS = ['hidden', 'dropout', 'logits', 'probs'] as const;

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
        return [needGradA ? tf.matMul(dy, tf.transpose(sb)) : tf.zerosLike(sa), tf.matMul(tf.transpose(sa), dy)];
      },
    };
  }) as unknown as Parameters<Tf['customGrad']>[0]);
  return f(a, b) as TfModule.Tensor2D;
}

/**
 * Forward pass to logits `[b, numClasses]`; `mask` is the inverted-dropout mask of the
 * hidden layer; `inputNeedsGrad` when the features come from trainable layers (a trunk).
 */
export function forward(tf: Tf, arch: HeadArch, params: Params, x: TfModule.Tensor2D, mask?: TfModule.Tensor2D, inputNeedsGrad = false): TfModule.Tensor2D {
  const v = params.vars as TfModule.Tensor[] as TfModule.Tensor2D[];
  if (arch.hidden > 0) {
    let h = tf.relu(tf.add(matMulTrain(tf, x, v[0]!, inputNeedsGrad), v[1]!)) as TfModule.Tensor2D;
    if (mask) h = tf.mul(h, mask);
    return tf.add(matMulTrain(tf, h, v[2]!, true), v[3]!);
  }
  return tf.add(matMulTrain(tf, x, v[0]!, inputNeedsGrad), v[1]!);
}

/**
 * A copy of a serialised head (or image model) whose `logits` layer's bias has `offsets`
 * added (the video-level calibration, `calibrate.ts`): every probability it gives is then
 * `softmax(logits + offsets)`. The metadata is kept, with the offsets recorded under
 * `reelset.logitOffsets` (added to any there before).
 *
 * @throws ModelMismatchError when the model has no `logits` layer of `offsets.length` units.
 */
export async function withLogitOffsets(model: SerializedModel, offsets: number[]): Promise<SerializedModel> {
  const { tf } = await initTensorflow();
  const net = await deserializeModel(model);
  try {
    let layer: TfModule.layers.Layer;
    try {
      layer = net.getLayer('logits');
    } catch {
      throw new ModelMismatchError('model has no logits layer to calibrate');
    }
    const [kernel, bias] = layer.getWeights();
    if (!kernel || !bias || bias.shape[0] !== offsets.length)
      throw new ModelMismatchError(`logits layer has ${bias?.shape[0]} units, ${offsets.length} offsets given`);
    const shifted = tf.tidy(() => tf.add(bias, tf.tensor1d(offsets)));
    layer.setWeights([kernel, shifted]);
    shifted.dispose();
    const meta = (readModelMetadata(model) ?? {}) as { reelset?: Record<string, unknown> };
    const before = (meta.reelset?.['logitOffsets'] as number[] | undefined) ?? offsets.map(() => 0);
    const reelset = { ...(meta.reelset ?? {}), logitOffsets: offsets.map((o, i) => o + (before[i] ?? 0)) };
    return await serializeModel(net, { metadata: { ...meta, reelset } });
  } finally {
    net.dispose();
  }
}
