/**
 * The frame embedding model: MobileNetV2 (Sandler et al. 2018, "MobileNetV2: Inverted
 * Residuals and Linear Bottlenecks") as shipped, with weights embedded, by the npm package
 * `nsfwjs` (its `MobileNetV2` model: 224x224 RGB input, global 7x7 average pooling, a
 * `flatten_1` layer of 1280 features, then a 256-128-5 dense classification head).
 *
 * We cut the model at `flatten_1`: the embedding of a frame is the 1280-d pooled feature
 * vector, L2-normalised. Everything runs offline: the Keras topology and the (uint8
 * quantised) weights are read from nsfwjs's bundled JavaScript modules.
 */
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import sharp from 'sharp';
import type * as TfModule from '@tensorflow/tfjs';
import { embeddingModelKey, InvalidInputError, type EmbeddingModelId } from '../../contracts';
import type { Logger } from '../logger';
import { initTensorflow, type Tf, type TfBackendPreference } from '../tf';

/**
 * Standard deviation in pixels (at 224 x 224) of the Gaussian blur applied before the
 * network. Measured on the shared corpus (`bench/dedupe.ts`): without it, a JPEG q50
 * re-encode or a half-size copy of a frame fell below cosine 0.92 of its original for a
 * third of the frames (the pooled MobileNetV2 features react to compression artefacts and
 * resampling); with sigma 1 recall is 98.6% at precision 100%; sigma 1.5 and 2 bring
 * frames of different videos above the threshold.
 */
export const EMBEDDING_BLUR_SIGMA = 1;
const PREPROCESS = `fill-lanczos3-gauss${EMBEDDING_BLUR_SIGMA}`;

/** Options of {@link EmbeddingModel.embed}. */
export interface EmbedOptions {
  /** Images per forward pass (default 8). Larger batches are slightly faster per image and use more memory. */
  batchSize?: number;
}

/** A loaded frame embedding model (one per process, see {@link loadEmbeddingModel}). */
export interface EmbeddingModel {
  /** Identity of the model and its weights. */
  readonly id: EmbeddingModelId;
  /** The TensorFlow.js backend it runs on (`tensorflow`, `wasm`, `cpu`). */
  readonly backend: string;
  /**
   * Embed encoded images.
   *
   * Each image (JPEG, PNG, WebP or anything else sharp decodes) is decoded, EXIF-rotated,
   * flattened to 3-channel sRGB and resized to `inputSize x inputSize` with `fit: 'fill'`
   * (see {@link decodeForEmbedding}), scaled to [0, 1] and run through the network in batches.
   *
   * @param images encoded image bytes; may be empty (returns an empty array).
   * @returns `images.length * dim` float32 values, row-major: row i is the L2-normalised
   *   (unit-length) embedding of `images[i]`.
   * @throws InvalidInputError when an image cannot be decoded (the message names its index).
   */
  embed(images: Buffer[], options?: EmbedOptions): Promise<Float32Array>;
  /**
   * Embed images already decoded by {@link decodeForEmbedding}: each buffer is
   * `inputSize * inputSize * 3` bytes of RGB. Same result layout as {@link embed}.
   * @throws InvalidInputError when a buffer has the wrong length.
   */
  embedRaw(pixels: Uint8Array[], options?: EmbedOptions): Promise<Float32Array>;
}

/** Input side of the nsfwjs MobileNetV2 model. */
export const EMBEDDING_INPUT_SIZE = 224;
/** Embedding dimension (output width of `flatten_1`). */
export const EMBEDDING_DIM = 1280;
const MODEL_NAME = 'mobilenet_v2';
const FEATURE_LAYER = 'flatten_1';
const DEFAULT_BATCH = 8;

/**
 * Decode one encoded image to the model's input pixels.
 *
 * Preprocessing matches nsfwjs (`NSFWJS.infer`): RGB, the whole frame resized to 224x224
 * without keeping the aspect ratio, values later scaled by 1/255 to [0, 1] (no mean/std
 * normalisation). We use `fit: 'fill'` (stretch) rather than `cover` (centre crop)
 * because that is what the network saw when nsfwjs trained and runs it
 * (`tf.image.resizeBilinear` of the full image to 224x224), and because a crop would drop
 * the edges of 16:9 frames where the labelled object may be. The one difference is the
 * resampling kernel: sharp's default Lanczos-3 (antialiased) instead of tfjs's bilinear,
 * which only matters for aliasing when downscaling large frames. Then a Gaussian blur of
 * {@link EMBEDDING_BLUR_SIGMA} pixels: the features of a re-encoded or resized copy of a
 * frame stay close to the original's (measured; see the constant).
 *
 * @param image encoded bytes (JPEG, PNG, WebP, ...).
 * @param size output side in pixels (default 224).
 * @returns `size * size * 3` bytes, RGB, row-major (HWC).
 * @throws InvalidInputError when sharp cannot decode the image.
 */
export async function decodeForEmbedding(image: Buffer, size: number = EMBEDDING_INPUT_SIZE): Promise<Buffer> {
  try {
    const { data, info } = await sharp(image, { failOn: 'error' })
      .rotate()
      .flatten({ background: { r: 0, g: 0, b: 0 } })
      .toColourspace('srgb')
      .resize(size, size, { fit: 'fill' })
      .blur(EMBEDDING_BLUR_SIGMA)
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== size * size * 3) {
      throw new Error(`unexpected decoded shape ${info.width}x${info.height}x${info.channels}`);
    }
    return data;
  } catch (err) {
    throw new InvalidInputError(`cannot decode image: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
}

/**
 * Cosine similarity of two embedding rows.
 *
 * @param a first vector (any length > 0).
 * @param b second vector, same length.
 * @returns dot(a, b) / (|a| |b|) in [-1, 1]; 0 when either vector is all zeros.
 *   For rows returned by {@link EmbeddingModel.embed} (unit length) this is their dot product.
 * @throws InvalidInputError when the lengths differ.
 */
export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new InvalidInputError(`vector lengths differ: ${a.length} vs ${b.length}`);
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  if (na === 0 || nb === 0) return 0;
  return dot / Math.sqrt(na * nb);
}

/** Options of {@link loadEmbeddingModel}. */
export interface LoadEmbeddingModelOptions {
  /** TensorFlow.js backend preference, passed to `initTensorflow` (default `auto`). */
  backend?: TfBackendPreference;
  /** Logger for the backend choice and load time. */
  logger?: Logger;
}

let cached: Promise<EmbeddingModel> | undefined;

/**
 * Load the embedding model, once per process (later calls return the same instance;
 * a failed load is not cached).
 *
 * Reads the Keras topology and the weight shard bundled in `nsfwjs/dist/models/mobilenet_v2`,
 * builds the layers model from memory (`tf.loadLayersModel(tf.io.fromMemory(...))`, as nsfwjs
 * does), truncates it at `flatten_1` and runs one warm-up batch.
 *
 * @throws InvalidInputError when no TensorFlow.js backend starts.
 * @throws Error when the nsfwjs model files are missing or malformed (installation problem).
 */
export function loadEmbeddingModel(opts: LoadEmbeddingModelOptions = {}): Promise<EmbeddingModel> {
  if (!cached) {
    const p = load(opts);
    cached = p;
    p.catch(() => {
      if (cached === p) cached = undefined;
    });
  }
  return cached;
}

interface NsfwjsModelJson {
  modelTopology: object;
  weightsManifest: { paths: string[]; weights: TfModule.io.WeightsManifestEntry[] }[];
}

/** Read nsfwjs's bundled MobileNetV2 (topology + weight bytes). */
function readNsfwjsMobileNetV2(): { modelJson: NsfwjsModelJson; weights: Uint8Array } {
  // nsfwjs's `exports` map hides dist/models, so resolve its entry point and go from there.
  const entry = require.resolve('nsfwjs');
  const dir = path.join(path.dirname(entry), '..', 'models', 'mobilenet_v2');
   
  const modelJson = require(path.join(dir, 'model.min.js')) as NsfwjsModelJson;
  const manifest = modelJson.weightsManifest;
  if (!Array.isArray(manifest) || manifest.length !== 1 || manifest[0]?.paths.length !== 1) {
    throw new Error(`unexpected nsfwjs mobilenet_v2 weights manifest in ${dir}`);
  }
  const shard = manifest[0].paths[0] as string;
   
  const base64 = require(path.join(dir, `${shard}.min.js`)) as unknown;
  if (typeof base64 !== 'string') throw new Error(`nsfwjs weight shard ${shard} is not a base64 string`);
  // Copy into a Uint8Array of this realm: tfjs checks `instanceof ArrayBuffer`, which fails
  // for Node Buffers' memory under jest's vm contexts.
  const weights = new Uint8Array(Buffer.from(base64, 'base64'));
  return { modelJson, weights };
}

async function load(opts: LoadEmbeddingModelOptions): Promise<EmbeddingModel> {
  const { tf, backend } = await initTensorflow(opts.backend ?? 'auto', opts.logger);
  const started = Date.now();
  const { modelJson, weights } = readNsfwjsMobileNetV2();
  const weightsSha256 = createHash('sha256').update(weights).digest('hex');
  const full = await tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: modelJson.modelTopology,
      weightSpecs: modelJson.weightsManifest[0]!.weights,
      weightData: weights.buffer as ArrayBuffer,
    }),
  );
  const features = tf.model({ inputs: full.inputs, outputs: full.getLayer(FEATURE_LAYER).output });
  const outShape = features.outputs[0]!.shape;
  if (outShape[1] !== EMBEDDING_DIM) throw new Error(`unexpected feature shape ${JSON.stringify(outShape)}`);
  const id: EmbeddingModelId = { name: MODEL_NAME, weightsSha256, inputSize: EMBEDDING_INPUT_SIZE, dim: EMBEDDING_DIM, preprocess: PREPROCESS };
  const model = new MobileNetEmbedder(tf, backend, features, id);
  await model.embedRaw([new Uint8Array(EMBEDDING_INPUT_SIZE * EMBEDDING_INPUT_SIZE * 3)]); // warm-up (kernel setup)
  opts.logger?.info({ model: embeddingModelKey(id), backend, ms: Date.now() - started }, 'embedding model loaded');
  return model;
}

class MobileNetEmbedder implements EmbeddingModel {
  constructor(
    private readonly tf: Tf,
    readonly backend: string,
    private readonly net: TfModule.LayersModel,
    readonly id: EmbeddingModelId,
  ) {}

  async embed(images: Buffer[], options?: EmbedOptions): Promise<Float32Array> {
    const batchSize = checkBatchSize(options?.batchSize);
    const out = new Float32Array(images.length * this.id.dim);
    for (let start = 0; start < images.length; start += batchSize) {
      const slice = images.slice(start, start + batchSize);
      const pixels = await Promise.all(
        slice.map((img, j) =>
          decodeForEmbedding(img, this.id.inputSize).catch((err: unknown) => {
            throw new InvalidInputError(`image ${start + j}: ${err instanceof Error ? err.message : String(err)}`, {
              cause: err,
            });
          }),
        ),
      );
      out.set(await this.forward(pixels), start * this.id.dim);
    }
    return out;
  }

  async embedRaw(pixels: Uint8Array[], options?: EmbedOptions): Promise<Float32Array> {
    const batchSize = checkBatchSize(options?.batchSize);
    const expected = this.id.inputSize * this.id.inputSize * 3;
    pixels.forEach((p, i) => {
      if (p.length !== expected) throw new InvalidInputError(`pixels ${i}: ${p.length} bytes, expected ${expected}`);
    });
    const out = new Float32Array(pixels.length * this.id.dim);
    for (let start = 0; start < pixels.length; start += batchSize) {
      out.set(await this.forward(pixels.slice(start, start + batchSize)), start * this.id.dim);
    }
    return out;
  }

  /** One forward pass: RGB bytes -> [0,1] floats -> flatten_1 features -> L2-normalised rows. */
  private async forward(batch: Uint8Array[]): Promise<Float32Array> {
    const tf = this.tf;
    const s = this.id.inputSize;
    const per = s * s * 3;
    const input = new Float32Array(batch.length * per);
    batch.forEach((p, i) => {
      const off = i * per;
      for (let k = 0; k < per; k++) input[off + k] = (p[k] as number) / 255;
    });
    const normalised = tf.tidy(() => {
      const x = tf.tensor4d(input, [batch.length, s, s, 3]);
      const f = this.net.predict(x) as TfModule.Tensor2D;
      const norm = f.norm('euclidean', 1, true).maximum(1e-12);
      return f.div(norm) as TfModule.Tensor2D;
    });
    try {
      return (await normalised.data()) as Float32Array;
    } finally {
      normalised.dispose();
    }
  }
}

function checkBatchSize(batchSize: number | undefined): number {
  const b = batchSize ?? DEFAULT_BATCH;
  if (!Number.isInteger(b) || b < 1) throw new InvalidInputError(`batchSize must be a positive integer, got ${b}`);
  return b;
}
