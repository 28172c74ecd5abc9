/**
 * Feature extractors: a backbone ({@link BackboneSpec}: MobileNetV2 for the embed step,
 * dedupe and the student, InceptionV3 for the teacher) on a runtime, ONNX Runtime
 * (`onnxruntime-node`, from the converted files, CPU or CUDA provider) or TensorFlow.js
 * (the nsfwjs layers model on wasm, the fallback).
 *
 * Both runtimes take the same input: the frame decoded by {@link decodeForBackbone}
 * (EXIF rotation, sRGB, the whole frame stretched to the input size with Lanczos-3, the
 * backbone's blur), bytes / 255 in [0, 1], NHWC. Rows come back L2-normalised together
 * with their norms (row times norm = the raw feature vector the classifier heads take).
 */
import sharp from 'sharp';
import { embeddingModelKey, InvalidInputError, type EmbeddingModelId } from '../../contracts';
import type { Logger } from '../logger';
import { initTensorflow, type TfBackendPreference } from '../tf';
import { MOBILENET_V2, preprocessTag, readNsfwjsModel, type BackboneName, type BackboneSpec } from './nsfwjs';
import { COMMITTED_BACKBONES_DIR, findOnnxBackbone, openOnnxSession, type OrtProviderPreference } from './onnx';
import { loadTfjsBackbone, tfjsFeatures } from './tfjs-backbone';

export { toUnitFloats } from './tfjs-backbone';
import type * as Ort from 'onnxruntime-node';

export { BACKBONES, INCEPTION_V3, MOBILENET_V2, type BackboneName, type BackboneSpec } from './nsfwjs';

/** Runtime preference (`REELSET_EMBED_RUNTIME`): `auto` is ONNX Runtime when its file loads, else tfjs. */
export type EmbedRuntimePreference = 'auto' | 'onnxruntime' | 'tfjs';

/** How backbones are loaded: runtime, ONNX Runtime provider and threads, where the ONNX files are, the tfjs backend. */
export interface BackboneOptions {
  runtime: EmbedRuntimePreference;
  ortProvider: OrtProviderPreference;
  /** ONNX Runtime intra-op threads (0: its default). */
  ortThreads: number;
  /** Folders searched for `<backbone>.onnx`, in order; the checkout's `backbones/` is always searched last. */
  modelsDirs: string[];
  /** tfjs backend of the fallback (`auto` means wasm, then cpu: the native backends are for training on the main thread). */
  tfBackend: TfBackendPreference;
}

/** The options from a worker's configuration. */
export function backboneOptionsFromConfig(config: {
  REELSET_EMBED_RUNTIME: EmbedRuntimePreference;
  REELSET_ORT_PROVIDER: OrtProviderPreference;
  REELSET_ORT_THREADS: number;
  REELSET_MODELS_DIR: string;
  REELSET_TF_BACKEND: TfBackendPreference;
}): BackboneOptions {
  return {
    runtime: config.REELSET_EMBED_RUNTIME,
    ortProvider: config.REELSET_ORT_PROVIDER,
    ortThreads: config.REELSET_ORT_THREADS,
    modelsDirs: [config.REELSET_MODELS_DIR],
    tfBackend: config.REELSET_TF_BACKEND,
  };
}

/** Defaults when nothing is configured: auto runtime, auto provider, ONNX Runtime's threads, the checkout's files, wasm fallback. */
export const DEFAULT_BACKBONE_OPTIONS: BackboneOptions = { runtime: 'auto', ortProvider: 'auto', ortThreads: 0, modelsDirs: [], tfBackend: 'auto' };

/** Options of {@link FeatureExtractor.embed}. */
export interface EmbedOptions {
  /** Images per forward pass (default 8). */
  batchSize?: number;
}

/** Unit rows and their norms. */
export interface Features {
  /** `n * dim` float32, row i the L2-normalised features of image i. */
  vectors: Float32Array;
  /** `n` norms: row i times `norms[i]` is the raw feature vector. */
  norms: Float32Array;
}

/** A loaded backbone (one per backbone and process, see {@link loadFeatureExtractor}). */
export interface FeatureExtractor {
  readonly spec: BackboneSpec;
  /** Identity of the vectors it makes (backbone, weights, preprocessing, runtime). */
  readonly id: EmbeddingModelId;
  /** Where it runs: `onnxruntime/cpu`, `onnxruntime/cuda`, `tfjs/wasm`, `tfjs/cpu`, `tfjs/tensorflow`. */
  readonly backend: string;
  /** Why a preferred runtime or provider was not used (empty when none was passed over). */
  readonly fallbacks: string[];
  /**
   * Embed encoded images (JPEG, PNG, WebP, ...): decoded by {@link decodeForBackbone}, then
   * forward passes in batches.
   * @returns `images.length * dim` floats, unit rows.
   * @throws InvalidInputError naming the image when one cannot be decoded, or on a bad batch size.
   */
  embed(images: Buffer[], options?: EmbedOptions): Promise<Float32Array>;
  /**
   * Embed decoded pixels (`inputSize * inputSize * 3` RGB bytes each).
   * @returns unit rows and norms.
   * @throws InvalidInputError when a buffer has the wrong length or the batch size is bad.
   */
  features(pixels: Uint8Array[], options?: EmbedOptions): Promise<Features>;
  /** Like {@link features}, rows only. */
  embedRaw(pixels: Uint8Array[], options?: EmbedOptions): Promise<Float32Array>;
}

/** The embed step's model type (MobileNetV2 is a {@link FeatureExtractor}). */
export type EmbeddingModel = FeatureExtractor;

/** A decoded frame: 8-bit pixels, interleaved, EXIF orientation applied. */
export interface DecodedPixels {
  data: Buffer;
  width: number;
  height: number;
  channels: number;
}

/**
 * Decode an encoded image at full size (EXIF orientation applied, channels as stored:
 * grey, grey + alpha, RGB or RGBA). Full size on purpose: no shrink-on-load, so a
 * frame's pixels (and its pixel hash) never depend on what it is resized to next.
 * @throws InvalidInputError when sharp cannot decode the image.
 */
export async function decodePixels(image: Buffer | Uint8Array): Promise<DecodedPixels> {
  try {
    const { data, info } = await sharp(image, { failOn: 'error' }).rotate().raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    return { data, width: info.width, height: info.height, channels: info.channels };
  } catch (err) {
    throw new InvalidInputError(`cannot decode image: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/**
 * A backbone's input from decoded pixels: alpha flattened onto black, sRGB, the whole
 * frame resized to the square input size without keeping the aspect ratio (`fit:
 * 'fill'`, as nsfwjs stretches its input: a crop would drop the edges of 16:9 frames)
 * with sharp's Lanczos-3 kernel, then the backbone's Gaussian blur (MobileNetV2: sigma 1,
 * which keeps re-encoded and resized copies of a frame close; see `bench/dedupe.ts`).
 * The network then takes bytes / 255 in [0, 1] (no mean or standard deviation).
 *
 * @returns `size * size * 3` bytes, RGB, row-major (HWC).
 * @throws InvalidInputError when the pixels cannot be resized.
 */
export async function inputFromPixels(px: DecodedPixels, spec: BackboneSpec = MOBILENET_V2): Promise<Buffer> {
  const size = spec.inputSize;
  try {
    let s = sharp(px.data, { raw: { width: px.width, height: px.height, channels: px.channels as 1 | 2 | 3 | 4 } })
      .flatten({ background: { r: 0, g: 0, b: 0 } })
      .toColourspace('srgb')
      .resize(size, size, { fit: 'fill' });
    if (spec.blurSigma > 0) s = s.blur(spec.blurSigma);
    const { data, info } = await s.removeAlpha().raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== size * size * 3) throw new Error(`unexpected decoded shape ${info.width}x${info.height}x${info.channels}`);
    return data;
  } catch (err) {
    throw new InvalidInputError(`cannot prepare image: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/**
 * Decode one encoded image to a backbone's input pixels: {@link decodePixels} then
 * {@link inputFromPixels}. The reference preprocessing of every backbone input (embed
 * step, teacher features, CutMix, fine-tuning, evaluation, and the published student).
 *
 * @param image encoded bytes (JPEG, PNG, WebP, ...).
 * @param spec the backbone (default MobileNetV2).
 * @returns `size * size * 3` bytes, RGB, row-major (HWC).
 * @throws InvalidInputError when sharp cannot decode the image.
 */
export async function decodeForBackbone(image: Buffer | Uint8Array, spec: BackboneSpec = MOBILENET_V2): Promise<Buffer> {
  return inputFromPixels(await decodePixels(image), spec);
}

/** Standard deviation in pixels of MobileNetV2's input blur (see {@link MOBILENET_V2}). */
export const EMBEDDING_BLUR_SIGMA = MOBILENET_V2.blurSigma;
/** MobileNetV2's input side. */
export const EMBEDDING_INPUT_SIZE = MOBILENET_V2.inputSize;
/** MobileNetV2's feature width. */
export const EMBEDDING_DIM = MOBILENET_V2.dim;

/** MobileNetV2 input pixels ({@link decodeForBackbone} with MobileNetV2). */
export function decodeForEmbedding(image: Buffer | Uint8Array): Promise<Buffer> {
  return decodeForBackbone(image, MOBILENET_V2);
}

/**
 * Cosine similarity of two vectors: dot(a, b) / (|a| |b|), 0 when either is all zeros.
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

/** Normalise rows in place; returns the norms (floored at 1e-12). */
export function normaliseRows(x: Float32Array, dim: number): Float32Array {
  const n = x.length / dim;
  const norms = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = i * dim; k < (i + 1) * dim; k++) s += x[k]! * x[k]!;
    const norm = Math.max(Math.sqrt(s), 1e-12);
    norms[i] = norm;
    for (let k = i * dim; k < (i + 1) * dim; k++) x[k] = x[k]! / norm;
  }
  return norms;
}

const DEFAULT_BATCH = 8;

function checkBatchSize(batchSize: number | undefined): number {
  const b = batchSize ?? DEFAULT_BATCH;
  if (!Number.isInteger(b) || b < 1) throw new InvalidInputError(`batchSize must be a positive integer, got ${b}`);
  return b;
}

/** Shared batching of both runtimes around one raw forward pass. */
abstract class BaseExtractor implements FeatureExtractor {
  abstract readonly id: EmbeddingModelId;
  abstract readonly backend: string;
  constructor(
    readonly spec: BackboneSpec,
    readonly fallbacks: string[],
  ) {}

  /** Raw features of one batch, `batch.length * dim`. */
  protected abstract forward(batch: Uint8Array[]): Promise<Float32Array>;

  async embed(images: Buffer[], options?: EmbedOptions): Promise<Float32Array> {
    const batchSize = checkBatchSize(options?.batchSize);
    const out = new Float32Array(images.length * this.spec.dim);
    for (let start = 0; start < images.length; start += batchSize) {
      const pixels = await Promise.all(
        images.slice(start, start + batchSize).map((img, j) =>
          decodeForBackbone(img, this.spec).catch((err: unknown) => {
            throw new InvalidInputError(`image ${start + j}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
          }),
        ),
      );
      out.set((await this.features(pixels, { batchSize })).vectors, start * this.spec.dim);
    }
    return out;
  }

  async features(pixels: Uint8Array[], options?: EmbedOptions): Promise<Features> {
    const batchSize = checkBatchSize(options?.batchSize);
    const expected = this.spec.inputSize * this.spec.inputSize * 3;
    pixels.forEach((p, i) => {
      if (p.length !== expected) throw new InvalidInputError(`pixels ${i}: ${p.length} bytes, expected ${expected}`);
    });
    const dim = this.spec.dim;
    const vectors = new Float32Array(pixels.length * dim);
    for (let start = 0; start < pixels.length; start += batchSize) {
      vectors.set(await this.forward(pixels.slice(start, start + batchSize)), start * dim);
    }
    return { vectors, norms: normaliseRows(vectors, dim) };
  }

  async embedRaw(pixels: Uint8Array[], options?: EmbedOptions): Promise<Float32Array> {
    return (await this.features(pixels, options)).vectors;
  }
}



class OrtExtractor extends BaseExtractor {
  constructor(
    spec: BackboneSpec,
    fallbacks: string[],
    readonly id: EmbeddingModelId,
    readonly backend: string,
    private readonly ort: typeof Ort,
    private readonly session: Ort.InferenceSession,
  ) {
    super(spec, fallbacks);
  }

  protected async forward(batch: Uint8Array[]): Promise<Float32Array> {
    const s = this.spec.inputSize;
    const per = s * s * 3;
    const bytes = new Uint8Array(batch.length * per);
    batch.forEach((p, i) => bytes.set(p, i * per));
    // The graph takes the bytes and divides by 255 itself (see infra/keras_to_onnx.py).
    const input = new this.ort.Tensor('uint8', bytes, [batch.length, s, s, 3]);
    const out = await this.session.run({ pixels: input });
    const f = out['features']!;
    try {
      return new Float32Array(f.data as Float32Array);
    } finally {
      f.dispose();
      input.dispose();
    }
  }
}

class TfjsExtractor extends BaseExtractor {
  constructor(
    spec: BackboneSpec,
    fallbacks: string[],
    readonly id: EmbeddingModelId,
    readonly backend: string,
    private readonly run: (batch: Uint8Array[]) => Promise<Float32Array>,
  ) {
    super(spec, fallbacks);
  }

  protected forward(batch: Uint8Array[]): Promise<Float32Array> {
    return this.run(batch);
  }
}

/** Options of {@link loadFeatureExtractor}. */
export interface LoadExtractorOptions extends Partial<BackboneOptions> {
  logger?: Logger;
}

const cache = new Map<BackboneName, Promise<FeatureExtractor>>();

/**
 * Load a backbone once per process (later calls return the same instance, whatever
 * their options; a failed load is not cached).
 *
 * `auto`: ONNX Runtime on the first ONNX file whose provenance matches the installed
 * nsfwjs weights (`modelsDirs`, then the checkout's `backbones/`), on CUDA when its
 * provider is installed; when none loads, tfjs (the reasons are in `fallbacks` and
 * logged). One warm-up batch runs before the extractor is returned.
 *
 * @throws InvalidInputError when the runtime asked for explicitly cannot start (no ONNX
 *   file for `onnxruntime`, no tfjs backend for `tfjs`).
 */
export function loadFeatureExtractor(spec: BackboneSpec, opts: LoadExtractorOptions = {}): Promise<FeatureExtractor> {
  let p = cache.get(spec.name);
  if (!p) {
    p = load(spec, { ...DEFAULT_BACKBONE_OPTIONS, ...opts });
    cache.set(spec.name, p);
    const mine = p;
    p.catch(() => {
      if (cache.get(spec.name) === mine) cache.delete(spec.name);
    });
  }
  return p;
}

/**
 * A new extractor, not cached (tests and benchmarks compare runtimes side by side with
 * it); see {@link loadFeatureExtractor} for the rules.
 */
export function createFeatureExtractor(spec: BackboneSpec, opts: LoadExtractorOptions = {}): Promise<FeatureExtractor> {
  return load(spec, { ...DEFAULT_BACKBONE_OPTIONS, ...opts });
}

/** MobileNetV2, the embed step's model ({@link loadFeatureExtractor}). */
export function loadEmbeddingModel(opts: LoadExtractorOptions = {}): Promise<FeatureExtractor> {
  return loadFeatureExtractor(MOBILENET_V2, opts);
}

async function load(spec: BackboneSpec, opts: BackboneOptions & { logger?: Logger }): Promise<FeatureExtractor> {
  const started = Date.now();
  const source = readNsfwjsModel(spec);
  const base = { name: spec.name, weightsSha256: source.weightsSha256, inputSize: spec.inputSize, dim: spec.dim, preprocess: preprocessTag(spec) };
  const fallbacks: string[] = [];
  let extractor: FeatureExtractor | undefined;
  if (opts.runtime !== 'tfjs') {
    const found = findOnnxBackbone(spec, [...opts.modelsDirs, COMMITTED_BACKBONES_DIR], source.weightsSha256);
    if ('reasons' in found) {
      const why = `onnxruntime: no ONNX file for ${spec.name} (${found.reasons.join('; ')})`;
      if (opts.runtime === 'onnxruntime') throw new InvalidInputError(`${why}; convert it with infra/convert-backbones.ts (infra/install.sh does)`);
      fallbacks.push(why);
    } else {
      try {
        const ort = require('onnxruntime-node') as typeof Ort;
        const s = await openOnnxSession(found, { provider: opts.ortProvider, threads: opts.ortThreads });
        if (s.fallback) fallbacks.push(s.fallback);
        const id: EmbeddingModelId = { ...base, runtime: 'onnxruntime', onnxSha256: found.provenance.onnxSha256 };
        extractor = new OrtExtractor(spec, fallbacks, id, `onnxruntime/${s.provider}`, ort, s.session);
      } catch (err) {
        const why = `onnxruntime: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
        if (opts.runtime === 'onnxruntime') throw new InvalidInputError(`${spec.name}: ${why}`, { cause: err });
        fallbacks.push(why);
      }
    }
  }
  if (!extractor) {
    const pref: TfBackendPreference = opts.tfBackend === 'auto' ? 'wasm' : opts.tfBackend;
    const { tf, backend } = await initTensorflow(pref, opts.logger).catch(() => initTensorflow('cpu', opts.logger));
    const net = await loadTfjsBackbone(tf, spec);
    const id: EmbeddingModelId = { ...base, runtime: 'tfjs' };
    extractor = new TfjsExtractor(spec, fallbacks, id, `tfjs/${backend}`, (batch) => tfjsFeatures(tf, net.features, spec, batch));
  }
  await extractor.features([new Uint8Array(spec.inputSize * spec.inputSize * 3)]); // warm-up
  opts.logger?.info(
    { backbone: spec.name, model: embeddingModelKey(extractor.id), backend: extractor.backend, fallbacks, ms: Date.now() - started },
    `${spec.name} loaded on ${extractor.backend}${fallbacks.length ? ` (passed over: ${fallbacks.join('; ')})` : ''}`,
  );
  return extractor;
}
