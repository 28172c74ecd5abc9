/**
 * A backbone as a TensorFlow.js layers model, built in memory from the nsfwjs package
 * (no network, no files written): the fallback runtime of the embedding thread, the
 * reference the ONNX files are checked against, and the trunk of the published student.
 */
import type * as TfModule from '@tensorflow/tfjs';
import type { Tf } from '../tf';
import { readNsfwjsModel, type BackboneSpec, type NsfwjsModel } from './nsfwjs';

/** `b / 255` as float32 for every byte value. */
const UNIT = Float32Array.from({ length: 256 }, (_, b) => b / 255);

/** Bytes -> [0, 1] float32 (`byte / 255`), NHWC. */
export function toUnitFloats(batch: Uint8Array[], per: number): Float32Array {
  const input = new Float32Array(batch.length * per);
  batch.forEach((p, i) => {
    const off = i * per;
    for (let k = 0; k < per; k++) input[off + k] = UNIT[p[k]!]!;
  });
  return input;
}

/** A backbone loaded in tfjs. */
export interface TfjsBackbone {
  /** nsfwjs's whole model (to its 5-class softmax); the caller disposes it. */
  full: TfModule.LayersModel;
  /** The same layers from the input to the feature layer (`[n, size, size, 3]` in [0, 1] -> `[n, dim]`, not normalised). */
  features: TfModule.LayersModel;
  /** What was read from nsfwjs (weights sha256, version). */
  source: NsfwjsModel;
}

/**
 * Build a backbone from nsfwjs's topology and weights with
 * `tf.loadLayersModel(tf.io.fromMemory(...))`, as nsfwjs itself does, and cut it at the
 * feature layer.
 *
 * @param tf the tf instance (from `initTensorflow`).
 * @throws Error when the feature layer's width is not the spec's (another nsfwjs build).
 */
export async function loadTfjsBackbone(tf: Tf, spec: BackboneSpec): Promise<TfjsBackbone> {
  const source = readNsfwjsModel(spec);
  const full = await tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: source.modelTopology,
      weightSpecs: source.weightSpecs as TfModule.io.WeightsManifestEntry[],
      weightData: source.weightData.buffer.slice(source.weightData.byteOffset, source.weightData.byteOffset + source.weightData.byteLength) as ArrayBuffer,
    }),
  );
  const features = tf.model({ inputs: full.inputs, outputs: full.getLayer(spec.featureLayer).output });
  const shape = features.outputs[0]!.shape;
  if (shape[1] !== spec.dim) {
    full.dispose();
    throw new Error(`nsfwjs ${spec.name}: ${spec.featureLayer} has shape ${JSON.stringify(shape)}, expected [null, ${spec.dim}]`);
  }
  return { full, features, source };
}

/**
 * Run a backbone's feature model on RGB bytes (`size * size * 3` per image, HWC), scaled
 * to [0, 1] as nsfwjs does (no mean or standard deviation).
 *
 * @returns `pixels.length * dim` raw (not normalised) features.
 */
export async function tfjsFeatures(tf: Tf, net: TfModule.LayersModel, spec: BackboneSpec, pixels: Uint8Array[]): Promise<Float32Array> {
  const s = spec.inputSize;
  const input = toUnitFloats(pixels, s * s * 3);
  const y = tf.tidy(() => net.predict(tf.tensor4d(input, [pixels.length, s, s, 3])) as TfModule.Tensor);
  try {
    return (await y.data()) as Float32Array;
  } finally {
    y.dispose();
  }
}
