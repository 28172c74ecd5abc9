/**
 * A backbone as a TensorFlow.js layers model, rebuilt in memory from the converted
 * checkpoint (`<name>.weights.f32` + `.weights.json`, see `backbones.ts`): the trainable
 * network of the student's and the teacher's fine-tuning, the trunk of the published
 * student, and the runtime of last resort of the embedding thread.
 *
 * The graph follows the architecture the converter read from the PyTorch module:
 * `normalise` ((pixel - 127) / 128, a Rescaling layer), the stem (3 x 3 stride-2
 * convolution, batch normalisation, ReLU6), the inverted-residual blocks (`block<i>_*`:
 * optional 1 x 1 expansion, k x k depthwise convolution, 1 x 1 projection, each with
 * batch normalisation; ReLU6 after the first two; the input added back when the block
 * keeps its size), the head (1 x 1 convolution to 1280 channels, batch normalisation,
 * ReLU6), `features` (global average pooling) and `imagenet_logits` (the ImageNet classifier).
 * Convolutions use TensorFlow's `same` padding, which is what the PyTorch port pads
 * (`Conv2dStaticSamePadding`: the extra row and column at the bottom and right).
 */
import type * as TfModule from '@tensorflow/tfjs';
import { InvalidInputError } from '../../contracts';
import type { Tf } from '../../lib/tf';
import type { BackboneArchitecture, BackboneWeights } from './backbones';

/** Name of the pooled-features layer (`[n, 1280]`). */
export const FEATURES_LAYER = 'features';
/** Name of the ImageNet classifier layer (`[n, 1000]`; not `logits`, which is a classifier head's). */
export const IMAGENET_LOGITS_LAYER = 'imagenet_logits';
/** Name of the input normalisation layer. */
export const NORMALISE_LAYER = 'normalise';

/** A backbone loaded in tfjs. */
export interface TfjsBackbone {
  /**
   * `[n, size, size, 3]` float32 pixel values in [0, 255] (RGB, prepared as
   * `decodeForBackbone`) to `[features [n, 1280], logits [n, 1000]]`, raw (not normalised).
   */
  full: TfModule.LayersModel;
  /** The same layers to `features` only. */
  features: TfModule.LayersModel;
  /** Names of the layers in graph order, input to logits. */
  layerNames: string[];
  /** The weights it was built from. */
  weights: BackboneWeights;
}

/** Layer-name prefix of block `i`. */
export function blockPrefix(i: number): string {
  return `block${i}`;
}

/**
 * Build a backbone in tfjs from its converted weights and load them (PyTorch layouts
 * transposed: convolutions OIHW to HWIO, depthwise `[C, 1, k, k]` to `[k, k, C, 1]`,
 * the classifier `[out, in]` to `[in, out]`).
 *
 * @throws InvalidInputError when a tensor the architecture needs is missing or has another shape.
 */
export function buildTfjsBackbone(tf: Tf, weights: BackboneWeights): TfjsBackbone {
  const a: BackboneArchitecture = weights.index.architecture;
  const s = a.imageSize;
  const eps = a.batchNormEpsilon;
  const tensors = new Map(weights.index.tensors.map((t) => [t.name, t]));
  const layerNames: string[] = [];
  const assign: Array<() => void> = [];

  const get = (name: string, shape: number[]): Float32Array => {
    const t = tensors.get(name);
    if (!t) throw new InvalidInputError(`${weights.spec.name}: tensor ${name} missing from the converted weights`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new InvalidInputError(`${weights.spec.name}: tensor ${name} has shape ${JSON.stringify(t.shape)}, expected ${JSON.stringify(shape)}`);
    }
    const n = shape.reduce((x, y) => x * y, 1);
    return weights.data.subarray(t.offset, t.offset + n);
  };
  const relu6 = (x: TfModule.SymbolicTensor, name: string) => {
    layerNames.push(name);
    return tf.layers.reLU({ maxValue: 6, name }).apply(x) as TfModule.SymbolicTensor;
  };
  const conv = (x: TfModule.SymbolicTensor, name: string, torchName: string, inC: number, outC: number, k: number, stride: number) => {
    const layer = tf.layers.conv2d({ filters: outC, kernelSize: k, strides: stride, padding: 'same', useBias: false, name });
    const y = layer.apply(x) as TfModule.SymbolicTensor;
    layerNames.push(name);
    assign.push(() => {
      const w = get(`${torchName}.weight`, [outC, inC, k, k]);
      layer.setWeights([tf.tidy(() => tf.transpose(tf.tensor4d(w, [outC, inC, k, k]), [2, 3, 1, 0]))]);
    });
    return y;
  };
  const depthwise = (x: TfModule.SymbolicTensor, name: string, torchName: string, c: number, k: number, stride: number) => {
    const layer = tf.layers.depthwiseConv2d({ kernelSize: k, strides: stride, padding: 'same', useBias: false, depthMultiplier: 1, name });
    const y = layer.apply(x) as TfModule.SymbolicTensor;
    layerNames.push(name);
    assign.push(() => {
      const w = get(`${torchName}.weight`, [c, 1, k, k]);
      layer.setWeights([tf.tidy(() => tf.transpose(tf.tensor4d(w, [c, 1, k, k]), [2, 3, 0, 1]))]);
    });
    return y;
  };
  const bn = (x: TfModule.SymbolicTensor, name: string, torchName: string, c: number) => {
    const layer = tf.layers.batchNormalization({ axis: -1, epsilon: eps, momentum: 0.99, name });
    const y = layer.apply(x) as TfModule.SymbolicTensor;
    layerNames.push(name);
    assign.push(() => {
      const g = (k: string) => tf.tensor1d(get(`${torchName}.${k}`, [c]));
      layer.setWeights([g('weight'), g('bias'), g('running_mean'), g('running_var')]);
    });
    return y;
  };

  const input = tf.input({ shape: [s, s, 3], name: 'pixels', dtype: 'float32' });
  let x = tf.layers
    .rescaling({ scale: 1 / a.normalisation.std, offset: -a.normalisation.mean / a.normalisation.std, name: NORMALISE_LAYER })
    .apply(input) as TfModule.SymbolicTensor;
  layerNames.push(NORMALISE_LAYER);
  x = relu6(bn(conv(x, 'stem_conv', '_conv_stem', 3, a.stemFilters, 3, 2), 'stem_bn', '_bn0', a.stemFilters), 'stem_relu');
  for (const b of a.blocks) {
    const p = blockPrefix(b.index);
    const t = `_blocks.${b.index}`;
    const inp = x;
    const mid = b.inputFilters * b.expandRatio;
    let h = x;
    if (b.expandRatio !== 1)
      h = relu6(bn(conv(h, `${p}_expand_conv`, `${t}._expand_conv`, b.inputFilters, mid, 1, 1), `${p}_expand_bn`, `${t}._bn0`, mid), `${p}_expand_relu`);
    h = relu6(bn(depthwise(h, `${p}_dw_conv`, `${t}._depthwise_conv`, mid, b.kernel, b.stride), `${p}_dw_bn`, `${t}._bn1`, mid), `${p}_dw_relu`);
    h = bn(conv(h, `${p}_project_conv`, `${t}._project_conv`, mid, b.outputFilters, 1, 1), `${p}_project_bn`, `${t}._bn2`, b.outputFilters);
    if (b.skip) {
      h = tf.layers.add({ name: `${p}_add` }).apply([h, inp]) as TfModule.SymbolicTensor;
      layerNames.push(`${p}_add`);
    }
    x = h;
  }
  const last = a.blocks.at(-1)!.outputFilters;
  x = relu6(bn(conv(x, 'head_conv', '_conv_head', last, a.headFilters, 1, 1), 'head_bn', '_bn1', a.headFilters), 'head_relu');
  const features = tf.layers.globalAveragePooling2d({ name: FEATURES_LAYER }).apply(x) as TfModule.SymbolicTensor;
  layerNames.push(FEATURES_LAYER);
  const fc = tf.layers.dense({ units: a.classes, name: IMAGENET_LOGITS_LAYER });
  const logits = fc.apply(features) as TfModule.SymbolicTensor;
  layerNames.push(IMAGENET_LOGITS_LAYER);
  assign.push(() => {
    const w = get('_fc.weight', [a.classes, a.headFilters]);
    fc.setWeights([tf.tidy(() => tf.transpose(tf.tensor2d(w, [a.classes, a.headFilters]))), tf.tensor1d(get('_fc.bias', [a.classes]))]);
  });

  const full = tf.model({ inputs: input, outputs: [features, logits], name: weights.spec.name });
  for (const f of assign) f();
  const featuresModel = tf.model({ inputs: input, outputs: features, name: `${weights.spec.name}_features` });
  return { full, features: featuresModel, layerNames, weights };
}

/**
 * Run a backbone's feature model on RGB bytes (`size * size * 3` per image, HWC).
 * @returns `pixels.length * dim` raw (not normalised) features.
 */
export async function tfjsFeatures(tf: Tf, bb: TfjsBackbone, pixels: Uint8Array[]): Promise<Float32Array> {
  const s = bb.weights.index.architecture.imageSize;
  const per = s * s * 3;
  const input = new Float32Array(pixels.length * per);
  pixels.forEach((p, i) => input.set(p, i * per));
  const y = tf.tidy(() => bb.features.predict(tf.tensor4d(input, [pixels.length, s, s, 3])) as TfModule.Tensor);
  try {
    return (await y.data()) as Float32Array;
  } finally {
    y.dispose();
  }
}

/**
 * Run the whole network on RGB bytes.
 * @returns raw features (`n * 1280`) and ImageNet logits (`n * 1000`).
 */
export async function tfjsFeaturesAndLogits(tf: Tf, bb: TfjsBackbone, pixels: Uint8Array[]): Promise<{ features: Float32Array; logits: Float32Array }> {
  const s = bb.weights.index.architecture.imageSize;
  const per = s * s * 3;
  const input = new Float32Array(pixels.length * per);
  pixels.forEach((p, i) => input.set(p, i * per));
  const [f, l] = tf.tidy(() => bb.full.predict(tf.tensor4d(input, [pixels.length, s, s, 3])) as TfModule.Tensor[]);
  try {
    return { features: (await f!.data()) as Float32Array, logits: (await l!.data()) as Float32Array };
  } finally {
    f!.dispose();
    l!.dispose();
  }
}
