/**
 * A published image classifier (the student: `model.json` + `weights.bin` +
 * `artifact.json`, see `contracts/models.ts`) loaded for inference, from a directory, from
 * S3 or from bytes; and the aggregation of frame probabilities into a video's result.
 * Used by the evaluation on the fixed set, `reelset predict` and the batch predict.
 */
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import type * as TfModule from '@tensorflow/tfjs';
import { InvalidInputError, MissingArtifactError, ModelMismatchError, type ImageInput, type ModelArtifact } from '../contracts';
import { decodeForBackbone, pixelsToFloats, preparationOf, type ImagePreparation } from './backbone/model';
import { FEATURES_LAYER, IMAGENET_LOGITS_LAYER } from './backbone/tfjs-backbone';
import type { ObjectStore } from '../lib/s3';
import { initTensorflow, type TfBackendPreference } from '../lib/tf';

/** The files of a published image model. */
export interface ClassifierFiles {
  modelJson: string;
  weights: Buffer;
  artifact: ModelArtifact;
}

/** Per-image outputs of {@link ImageClassifier.predict}. */
export interface ImagePredictions {
  /** `n * labels.length` probabilities, row-major. */
  probs: Float32Array;
  /** `n * featureDim` L2-normalised pooled backbone features, row-major; empty when the model has no such layer. */
  features: Float32Array;
  featureDim: number;
  /** `n * 1000` ImageNet logits of the backbone's own classifier; empty for models without it (the first format). */
  imagenetLogits: Float32Array;
}

/** Names the pooled-features layer has had: EfficientNet rebuilds (`features`), the first format's nsfwjs MobileNetV2 (`flatten_1`). */
const FEATURE_LAYERS = [FEATURES_LAYER, 'flatten_1'];

/** A loaded image classifier. */
export interface ImageClassifier {
  artifact: ModelArtifact;
  labels: string[];
  /** How an image becomes the model's input (from `artifact.input`). */
  prep: ImagePreparation;
  /**
   * Run the model on encoded images (JPEG, PNG, WebP...), each prepared as
   * `artifact.input` says ({@link decodeForBackbone}), in batches of 16.
   * @throws InvalidInputError naming the image's index when one cannot be decoded.
   */
  predict(images: Buffer[]): Promise<ImagePredictions>;
  dispose(): void;
}

/** What one runtime gives for a batch of prepared images: raw (unnormalised) outputs, row-major. */
export interface BatchOutputs {
  /** `b * k` probabilities. */
  probs: Float32Array;
  /** `b * dim` pooled backbone features, when the model has them. */
  features?: { data: Float32Array; dim: number };
  /** `b * classes` ImageNet logits, when the model has them. */
  imagenetLogits?: { data: Float32Array; classes: number };
}

/** Images per forward pass of {@link predictInBatches}. */
export const PREDICT_BATCH = 16;

/**
 * The predict loop both runtimes share (tfjs here, ONNX Runtime in `onnx-classifier.ts`):
 * decode and prepare `PREDICT_BATCH` images at a time as `prep` says, run `runBatch` on
 * their RGB bytes (`b * S * S * 3`), gather the probabilities, the L2-normalised
 * features and the ImageNet logits, yielding the event loop between batches.
 *
 * @param k classes of the model's probabilities.
 * @throws InvalidInputError naming the image's index when one cannot be decoded.
 * @throws ModelMismatchError when a probability is not finite (naming the image).
 */
export async function predictInBatches(
  images: Buffer[],
  prep: ImagePreparation,
  k: number,
  runBatch: (pixels: Buffer[]) => Promise<BatchOutputs>,
): Promise<ImagePredictions> {
  const n = images.length;
  const probs = new Float32Array(n * k);
  let features = new Float32Array(0);
  let featureDim = 0;
  let imagenetLogits = new Float32Array(0);
  for (let start = 0; start < n; start += PREDICT_BATCH) {
    const pixels = await Promise.all(
      images.slice(start, start + PREDICT_BATCH).map((b, i) =>
        decodeForBackbone(b, prep).catch((err: unknown) => {
          throw new InvalidInputError(`image ${start + i}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
        }),
      ),
    );
    const out = await runBatch(pixels);
    probs.set(out.probs, start * k);
    if (out.features) {
      const { data, dim } = out.features;
      featureDim = dim;
      if (features.length === 0) features = new Float32Array(n * dim);
      for (let i = 0; i < pixels.length; i++) {
        let q = 0;
        for (let d = 0; d < dim; d++) q += data[i * dim + d]! ** 2;
        const inv = 1 / Math.max(Math.sqrt(q), 1e-12);
        for (let d = 0; d < dim; d++) features[(start + i) * dim + d] = data[i * dim + d]! * inv;
      }
    }
    if (out.imagenetLogits) {
      const { data, classes } = out.imagenetLogits;
      if (imagenetLogits.length === 0) imagenetLogits = new Float32Array(n * classes);
      imagenetLogits.set(data, start * classes);
    }
    await new Promise((r) => setImmediate(r));
  }
  const bad = probs.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new ModelMismatchError(`model output is not finite (image ${Math.floor(bad / k)})`);
  return { probs, features, featureDim, imagenetLogits };
}

interface StoredModelJson {
  format?: string;
  modelTopology: object;
  weightsManifest?: { paths: string[]; weights: TfModule.io.WeightsManifestEntry[] }[];
  weightSpecs?: TfModule.io.WeightsManifestEntry[];
}

/**
 * Load a classifier from its files.
 *
 * @throws ModelMismatchError when the artifact is not an image model or its input is not the backbone's square RGB input.
 * @throws InvalidInputError when model.json is malformed or the weights do not fit it.
 */
export async function loadClassifier(files: ClassifierFiles, backend: TfBackendPreference = 'auto'): Promise<ImageClassifier> {
  const { artifact } = files;
  if (artifact.input.kind !== 'image')
    throw new ModelMismatchError(`the ${artifact.role} model takes ${artifact.input.kind}, not images: predict runs on the student (image model)`);
  const input: ImageInput = artifact.input;
  const prep = preparationOf(input);
  const { tf } = await initTensorflow(backend);
  let json: StoredModelJson;
  try {
    json = JSON.parse(files.modelJson) as StoredModelJson;
  } catch (err) {
    throw new InvalidInputError('model.json is not JSON', { cause: err });
  }
  const specs = json.weightSpecs ?? (json.weightsManifest ?? []).flatMap((g) => g.weights);
  let net: TfModule.LayersModel;
  try {
    net = await tf.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: json.modelTopology,
        weightSpecs: specs,
        weightData: new Uint8Array(files.weights).buffer as ArrayBuffer,
        format: json.format,
      }),
    );
  } catch (err) {
    throw new InvalidInputError(`model.json / weights.bin cannot be loaded: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const s = prep.inputSize;
  const inShape = net.inputs[0]!.shape;
  if (inShape.length !== 4 || inShape[1] !== s || inShape[2] !== s || inShape[3] !== 3) {
    net.dispose();
    throw new ModelMismatchError(`model input ${JSON.stringify(inShape)} is not a ${s}x${s} RGB image`);
  }
  // Probabilities, the backbone's pooled features and its ImageNet logits in one pass, when the layers are there.
  const layerOut = (names: string[]) => {
    for (const name of names) {
      try {
        return net.getLayer(name).getOutputAt(0) as TfModule.SymbolicTensor;
      } catch {
        // not this one
      }
    }
    return null;
  };
  const feat = layerOut(FEATURE_LAYERS);
  const imagenet = layerOut([IMAGENET_LOGITS_LAYER]);
  const outputs = [net.outputs[0]!, ...(feat ? [feat] : []), ...(imagenet ? [imagenet] : [])];
  const all = tf.model({ inputs: net.inputs, outputs });
  const k = artifact.labels.length;
  return {
    artifact,
    labels: artifact.labels,
    prep,
    async predict(images: Buffer[]): Promise<ImagePredictions> {
      const per = s * s * 3;
      return predictInBatches(images, prep, k, async (pixels) => {
        // [probabilities, features when present, ImageNet logits when present]
        const outs = tf.tidy(() => {
          const res = all.predict(tf.tensor4d(pixelsToFloats(pixels, per, prep.range), [pixels.length, s, s, 3]));
          return Array.isArray(res) ? res : [res];
        });
        try {
          const f = feat ? outs[1]! : null;
          const l = imagenet ? outs[feat ? 2 : 1]! : null;
          return {
            probs: (await outs[0]!.data()) as Float32Array,
            ...(f ? { features: { data: (await f.data()) as Float32Array, dim: f.shape[1] as number } } : {}),
            ...(l ? { imagenetLogits: { data: (await l.data()) as Float32Array, classes: l.shape[1] as number } } : {}),
          };
        } finally {
          tf.dispose(outs);
        }
      });
    },
    dispose() {
      net.dispose();
    },
  };
}

function checkArtifact(a: unknown, where: string): ModelArtifact {
  const art = a as ModelArtifact | null;
  if (!art || typeof art !== 'object' || !Array.isArray(art.labels) || !art.input) {
    throw new InvalidInputError(`${where} is not a reelset artifact.json (format, labels, input)`);
  }
  return art;
}

/**
 * Read a model directory (`model.json`, `weights.bin`, `artifact.json`), e.g. a copy of
 * `models/<label>/v<N>/student/`.
 * @throws MissingArtifactError naming the file that is missing.
 */
export async function readClassifierDir(dir: string): Promise<ClassifierFiles> {
  const read = async (f: string) => {
    try {
      return await readFile(path.join(dir, f));
    } catch (err) {
      throw new MissingArtifactError(path.join(dir, f), 'model file', { cause: err });
    }
  };
  const [modelJson, weights, artifact] = await Promise.all([read('model.json'), read('weights.bin'), read('artifact.json')]);
  let art: unknown;
  try {
    art = JSON.parse(artifact.toString('utf8'));
  } catch (err) {
    throw new InvalidInputError(`${path.join(dir, 'artifact.json')} is not JSON`, { cause: err });
  }
  return { modelJson: modelJson.toString('utf8'), weights, artifact: checkArtifact(art, path.join(dir, 'artifact.json')) };
}

/**
 * Read a published model's files from S3 (`<prefix>/model.json`, `weights.bin`, `artifact.json`).
 * @throws MissingArtifactError naming the key that is missing.
 */
export async function readClassifierS3(store: ObjectStore, prefix: string): Promise<ClassifierFiles> {
  const get = async (f: string) => {
    const b = await store.get(`${prefix}/${f}`);
    if (!b) throw new MissingArtifactError(store.uri(`${prefix}/${f}`), 'published model file');
    return b;
  };
  const [modelJson, weights, artifact] = await Promise.all([get('model.json'), get('weights.bin'), get('artifact.json')]);
  return {
    modelJson: modelJson.toString('utf8'),
    weights,
    artifact: checkArtifact(JSON.parse(artifact.toString('utf8')), store.uri(`${prefix}/artifact.json`)),
  };
}

/** A video's result from its frames. */
export interface VideoResult {
  /** The winning class, or `unknown` when most frames were out of scope. */
  label: string;
  /** The mean probability of each class over the in-scope frames. */
  probabilities: Record<string, number>;
  /** Frames whose argmax is each class (in-scope frames), a second view of the same evidence. */
  votes: Record<string, number>;
  frames: number;
  unknownFrames: number;
  aggregation: 'mean-probability';
}

/**
 * A video's class from its frames' probabilities: the argmax of the **mean probability**
 * over the frames that are in scope (soft voting; Kittler et al. 1998, "On combining
 * classifiers": the mean rule is the most robust of the product, max, min, median and
 * vote rules to errors in the individual estimates). It uses each frame's confidence,
 * so a few uncertain frames weigh less than a majority vote would count them, and it is
 * what the evaluation's video level uses, so predict and the gate agree. When more than
 * half the frames are out of scope the video is `unknown`.
 *
 * @param probs `n * labels.length` probabilities.
 * @param inScope per frame, whether the out-of-scope gate kept it (all true without a gate).
 */
export function aggregateVideo(probs: Float32Array, labels: string[], inScope?: boolean[]): VideoResult {
  const k = labels.length;
  const n = probs.length / k;
  const sums = new Float64Array(k);
  const votes: Record<string, number> = Object.fromEntries(labels.map((l) => [l, 0]));
  let m = 0;
  for (let i = 0; i < n; i++) {
    if (inScope && !inScope[i]) continue;
    m++;
    let best = 0;
    for (let j = 0; j < k; j++) {
      sums[j]! += probs[i * k + j]!;
      if (probs[i * k + j]! > probs[i * k + best]!) best = j;
    }
    votes[labels[best]!]! += 1;
  }
  const probabilities = Object.fromEntries(labels.map((l, j) => [l, m ? sums[j]! / m : 0]));
  let best = 0;
  for (let j = 1; j < k; j++) if (sums[j]! > sums[best]!) best = j;
  const unknownFrames = n - m;
  return {
    label: m === 0 || unknownFrames * 2 > n ? 'unknown' : labels[best]!,
    probabilities,
    votes,
    frames: n,
    unknownFrames,
    aggregation: 'mean-probability',
  };
}
