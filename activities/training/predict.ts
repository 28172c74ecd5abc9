/** Inference of a serialised head on feature rows. */
import type * as TfModule from '@tensorflow/tfjs';
import { InvalidInputError, ModelMismatchError } from '../../contracts';
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
