/**
 * The two image backbones reelset uses, as the npm package `nsfwjs` ships them (Keras
 * layers models with uint8-quantised weights inside JavaScript modules), and how to read
 * them without a network: the student's and dedupe's MobileNetV2 and the teacher's
 * InceptionV3, both cut at their `flatten_1` layer (the pooled features before nsfwjs's
 * own 5-class head).
 */
import { createHash } from 'node:crypto';
import * as path from 'node:path';

/** Names of the backbones: the cheap one (embed step, dedupe, the student) and the large one (the teacher). */
export type BackboneName = 'mobilenet_v2' | 'inception_v3';

/** What defines a backbone's vectors besides its weights. */
export interface BackboneSpec {
  name: BackboneName;
  /** Folder under `nsfwjs/dist/models`. */
  nsfwjsDir: string;
  /** Side of the square RGB input, pixels. */
  inputSize: number;
  /** Width of the feature layer. */
  dim: number;
  /** The layer the network is cut at. */
  featureLayer: string;
  /** Gaussian blur sigma (pixels at input size) applied after the resize; 0 for none. */
  blurSigma: number;
}

/**
 * MobileNetV2 (Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear
 * Bottlenecks"), 224 x 224 input, 1280 features, about 2.3 M parameters to `flatten_1`.
 * Its inputs are blurred (sigma 1) before the network: measured in `bench/dedupe.ts`,
 * it keeps re-encoded and resized copies of a frame above the near-duplicate threshold.
 */
export const MOBILENET_V2: BackboneSpec = {
  name: 'mobilenet_v2',
  nsfwjsDir: 'mobilenet_v2',
  inputSize: 224,
  dim: 1280,
  featureLayer: 'flatten_1',
  blurSigma: 1,
};

/**
 * InceptionV3 (Szegedy et al. 2016, "Rethinking the Inception Architecture for Computer
 * Vision"), 299 x 299 input, 2048 features, about 21.8 M parameters to `flatten_1`: the
 * teacher's backbone. No blur: the teacher sees the frames as they are.
 */
export const INCEPTION_V3: BackboneSpec = {
  name: 'inception_v3',
  nsfwjsDir: 'inception_v3',
  inputSize: 299,
  dim: 2048,
  featureLayer: 'flatten_1',
  blurSigma: 0,
};

/** Every backbone by name. */
export const BACKBONES: Record<BackboneName, BackboneSpec> = { mobilenet_v2: MOBILENET_V2, inception_v3: INCEPTION_V3 };

/**
 * The preprocessing tag of a backbone, part of its model id: `fill-lanczos3` (the whole
 * frame stretched to the input size with Lanczos-3) plus `-gauss<sigma>` when blurred.
 */
export function preprocessTag(spec: BackboneSpec): string {
  return `fill-lanczos3${spec.blurSigma > 0 ? `-gauss${spec.blurSigma}` : ''}`;
}

/** One weight tensor of a tfjs weights manifest, as nsfwjs ships it (float32 quantised to uint8). */
export interface NsfwjsWeightSpec {
  name: string;
  shape: number[];
  dtype: 'float32';
  quantization?: { min: number; scale: number; dtype: 'uint8' | 'uint16' | 'float16' };
}

/** A backbone's Keras model as nsfwjs ships it. */
export interface NsfwjsModel {
  spec: BackboneSpec;
  /** Keras topology (`{keras_version, backend, model_config}`), the tfjs layers format. */
  modelTopology: object;
  /** Weight specs in shard order. */
  weightSpecs: NsfwjsWeightSpec[];
  /** The shards' bytes concatenated (quantised values). */
  weightData: Uint8Array;
  /** Lower-case hex sha256 of `weightData`: the weights' identity in model ids. */
  weightsSha256: string;
  /** Version of the installed `nsfwjs` package. */
  nsfwjsVersion: string;
}

/** Directory of the installed nsfwjs package (its `exports` map hides `dist/models`). */
export function nsfwjsPackageDir(): string {
  return path.resolve(path.dirname(require.resolve('nsfwjs')), '..', '..');
}

/**
 * Read a backbone's topology and weights from the installed `nsfwjs` package: its
 * `model.min.js` (topology and weights manifest) and its `group1-shard*.min.js` modules
 * (each a base64 string), concatenated in manifest order.
 *
 * @throws Error naming the file when the package layout is not the expected one (an
 *   installation problem, not retried usefully).
 */
export function readNsfwjsModel(spec: BackboneSpec): NsfwjsModel {
  const root = nsfwjsPackageDir();
  const dir = path.join(root, 'dist', 'models', spec.nsfwjsDir);
  const modelFile = path.join(dir, 'model.min.js');
  const modelJson = require(modelFile) as { modelTopology?: object; weightsManifest?: { paths: string[]; weights: NsfwjsWeightSpec[] }[] };
  if (!modelJson.modelTopology || !Array.isArray(modelJson.weightsManifest) || modelJson.weightsManifest.length === 0) {
    throw new Error(`unexpected nsfwjs model file ${modelFile}: no modelTopology or weightsManifest`);
  }
  const shards: Buffer[] = [];
  const weightSpecs: NsfwjsWeightSpec[] = [];
  for (const group of modelJson.weightsManifest) {
    weightSpecs.push(...group.weights);
    for (const shard of group.paths) {
      const b64 = require(path.join(dir, `${shard}.min.js`)) as unknown;
      if (typeof b64 !== 'string') throw new Error(`nsfwjs weight shard ${path.join(dir, shard)}.min.js is not a base64 string`);
      shards.push(Buffer.from(b64, 'base64'));
    }
  }
  // A Uint8Array of this realm: tfjs checks `instanceof ArrayBuffer`, which fails for
  // Node Buffers' memory under jest's vm contexts.
  const weightData = new Uint8Array(Buffer.concat(shards));
  const pkg = require(path.join(root, 'package.json')) as { version: string };
  return {
    spec,
    modelTopology: modelJson.modelTopology,
    weightSpecs,
    weightData,
    weightsSha256: createHash('sha256').update(weightData).digest('hex'),
    nsfwjsVersion: pkg.version,
  };
}

/**
 * Dequantise nsfwjs's weights to float32, value by value as tfjs does
 * (`q * scale + min`, in double precision, stored as float32), in spec order.
 *
 * @returns the float32 weights concatenated, and the specs with `quantization` removed.
 * @throws Error on a quantisation dtype other than uint8 (nsfwjs uses only uint8).
 */
export function dequantizeNsfwjs(model: NsfwjsModel): { weightSpecs: NsfwjsWeightSpec[]; weights: Float32Array } {
  const total = model.weightSpecs.reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1), 0);
  const weights = new Float32Array(total);
  let inOff = 0;
  let outOff = 0;
  for (const w of model.weightSpecs) {
    const n = w.shape.reduce((a, b) => a * b, 1);
    const q = w.quantization;
    if (!q) {
      const f = new Float32Array(model.weightData.buffer.slice(model.weightData.byteOffset + inOff, model.weightData.byteOffset + inOff + n * 4));
      weights.set(f, outOff);
      inOff += n * 4;
    } else if (q.dtype === 'uint8') {
      for (let i = 0; i < n; i++) weights[outOff + i] = model.weightData[inOff + i]! * q.scale + q.min;
      inOff += n;
    } else {
      throw new Error(`weight ${w.name}: quantisation ${q.dtype} not supported`);
    }
    outOff += n;
  }
  if (inOff !== model.weightData.length) throw new Error(`nsfwjs ${model.spec.name}: weights use ${inOff} of ${model.weightData.length} bytes`);
  return { weightSpecs: model.weightSpecs.map(({ name, shape, dtype }) => ({ name, shape, dtype })), weights };
}
