/** Inference of a serialised head on feature rows. */
import type * as TfModule from '@tensorflow/tfjs';
import { InvalidInputError, ModelMismatchError } from '../../contracts';
import { decodeForBackbone, pixelsToFloats, type ImagePreparation } from '../../domain/backbone/model';
import { initTensorflow } from '../../lib/tf';
import { deserializeModel, type SerializedModel } from './serialize';

/**
 * Class probabilities of a serialised head on feature rows.
 *
 * @param model a model from {@link trainTeacher} / {@link distillStudent} (or any layers
 *   model mapping `[n, dim]` to probabilities).
 * @param features row-major `n * dim` float32.
 * @param dim feature dimension; must equal the model's input width.
 * @returns `n * numClasses` probabilities, row-major.
 * @throws InvalidInputError when `features.length` is not a multiple of `dim`.
 * @throws ModelMismatchError when `dim` differs from the model's input.
 */
export async function predict(model: SerializedModel, features: Float32Array, dim: number): Promise<Float32Array> {
  if (!Number.isInteger(dim) || dim <= 0 || features.length % dim !== 0) {
    throw new InvalidInputError(`features length ${features.length} is not a multiple of dim ${dim}`);
  }
  const { tf } = await initTensorflow();
  const net = await deserializeModel(model);
  try {
    const inShape = net.inputs[0]!.shape;
    if (inShape[1] !== dim) throw new ModelMismatchError(`model input has dim ${inShape[1]}, features have ${dim}`);
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

/**
 * Class probabilities of an image model (the published student) on encoded frames:
 * each decoded as its `artifact.json` says ({@link decodeForBackbone} with `prep`), the
 * values in its range, then the model in batches (output 0, the probabilities), yielding
 * to the event loop between batches.
 *
 * @param fetch returns the encoded images `[start, end)`.
 * @param onBatch called with the number of images done after each batch.
 * @returns `n * numClasses` probabilities.
 * @throws InvalidInputError when an image cannot be decoded or the model's input is not the backbone's.
 */
export async function predictImages(
  model: SerializedModel,
  prep: ImagePreparation,
  fetch: (start: number, end: number) => Promise<Buffer[]>,
  n: number,
  onBatch?: (done: number) => void,
  batchSize = 16,
): Promise<Float32Array> {
  const { tf } = await initTensorflow();
  const net = await deserializeModel(model);
  try {
    const inShape = net.inputs[0]!.shape;
    const s = prep.inputSize;
    if (inShape.length !== 4 || inShape[1] !== s || inShape[2] !== s || inShape[3] !== 3) {
      throw new ModelMismatchError(`model input ${JSON.stringify(inShape)} is not a ${s}x${s} RGB image`);
    }
    const outShape = net.outputs[0]!.shape;
    const k = outShape[outShape.length - 1] as number;
    const out = new Float32Array(n * k);
    const per = s * s * 3;
    for (let start = 0; start < n; start += batchSize) {
      const end = Math.min(n, start + batchSize);
      const pixels = await Promise.all((await fetch(start, end)).map((b) => decodeForBackbone(b, prep)));
      const input = pixelsToFloats(pixels, per, prep.range);
      const y = tf.tidy(() => {
        const out = net.predict(tf.tensor4d(input, [pixels.length, s, s, 3]));
        return Array.isArray(out) ? out[0]! : out;
      });
      try {
        out.set((await y.data()) as Float32Array, start * k);
      } finally {
        y.dispose();
      }
      onBatch?.(end);
      await new Promise((r) => setImmediate(r));
    }
    return out;
  } finally {
    net.dispose();
  }
}
