/**
 * Feature extractors: a backbone ({@link BackboneSpec}: EfficientNet-Lite0/1/2, see
 * `backbones.ts`) on a runtime, ONNX Runtime (`onnxruntime-node`, from the converted
 * files, CPU or CUDA provider) or TensorFlow.js (the same weights rebuilt as a layers
 * model, `tfjs-backbone.ts`: the fallback).
 *
 * Both runtimes take the same input: the frame decoded by {@link decodeForBackbone}
 * (EXIF rotation, sRGB, resized to the square input size as the backbone says, Lanczos-3),
 * RGB bytes, NHWC; the network normalises them itself (`(pixel - 127) / 128`). Rows come
 * back L2-normalised together with their norms (row times norm = the raw pooled feature
 * vector the classifier heads take), and the ImageNet logits when asked for.
 */
import sharp from 'sharp';
import { embeddingModelKey, InvalidInputError, type EmbeddingModelId } from '../../contracts';
import type { Logger } from '../../lib/logger';
import { withDefaults } from '../../lib/config';
import { initTensorflow, type TfBackendPreference } from '../../lib/tf';
import { EFFICIENTNET_LITE0, preprocessTag, readBackboneWeights, requireBackboneFiles, type BackboneName, type BackboneSpec } from './backbones';
import { openOnnxSession, type OrtProviderPreference } from './onnx';
import { buildTfjsBackbone, tfjsFeaturesAndLogits } from './tfjs-backbone';
import type * as Ort from 'onnxruntime-node';

export { BACKBONES, EFFICIENTNET_LITE0, EFFICIENTNET_LITE1, EFFICIENTNET_LITE2, type BackboneName, type BackboneSpec } from './backbones';

/** Runtime preference (`REELSET_EMBED_RUNTIME`): `auto` is ONNX Runtime when its file loads, else tfjs. */
export type EmbedRuntimePreference = 'auto' | 'onnxruntime' | 'tfjs';

/** How backbones are loaded: runtime, ONNX Runtime provider and threads, where the converted files are, the tfjs backend. */
export interface BackboneOptions {
  runtime: EmbedRuntimePreference;
  ortProvider: OrtProviderPreference;
  /** ONNX Runtime intra-op threads (0: its default). */
  ortThreads: number;
  /** Folders searched for the converted files (`<backbone>.onnx`, `.weights.f32`, ...), in order; empty: `REELSET_MODELS_DIR`. */
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

/** Defaults when nothing is configured: auto runtime, auto provider, ONNX Runtime's threads, `REELSET_MODELS_DIR`, wasm fallback. */
export const DEFAULT_BACKBONE_OPTIONS: BackboneOptions = { runtime: 'auto', ortProvider: 'auto', ortThreads: 0, modelsDirs: [], tfBackend: 'auto' };

/** The folders to search: the options' own, else the configured `REELSET_MODELS_DIR`. */
export function modelsDirsOf(opts: Pick<BackboneOptions, 'modelsDirs'>): string[] {
  if (opts.modelsDirs.length) return opts.modelsDirs;
  return [withDefaults(process.env)['REELSET_MODELS_DIR']!];
}

/** Options of {@link FeatureExtractor.embed}. */
export interface EmbedOptions {
  /** Images per forward pass (default 8). */
  batchSize?: number;
}

/** Unit rows and their norms (and the ImageNet logits, when asked for). */
export interface Features {
  /** `n * dim` float32, row i the L2-normalised features of image i. */
  vectors: Float32Array;
  /** `n` norms: row i times `norms[i]` is the raw feature vector. */
  norms: Float32Array;
  /** `n * 1000` ImageNet logits (only from {@link FeatureExtractor.featuresAndLogits}). */
  logits?: Float32Array;
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
  /** Like {@link features}, with the ImageNet logits (`n * 1000`) of the same forward passes. */
  featuresAndLogits(pixels: Uint8Array[], options?: EmbedOptions): Promise<Required<Features>>;
  /** Like {@link features}, rows only. */
  embedRaw(pixels: Uint8Array[], options?: EmbedOptions): Promise<Float32Array>;
}

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

/** What {@link inputFromPixels} needs of a backbone. */
export type InputSpec = Pick<BackboneSpec, 'inputSize' | 'resize' | 'blurSigma'>;

/**
 * How an image model's input is made (from its `artifact.json`, `ImageInput`): the
 * resize, and the range of the float values it takes: `[0, 255]` (the bytes; models of
 * EfficientNet backbones normalise inside) or `[0, 1]` (bytes / 255; models published on
 * the first, nsfwjs backbones).
 */
export interface ImagePreparation extends InputSpec {
  range: [0, 255] | [0, 1];
}

/**
 * The preparation an image input describes; fields absent in the first artifact format
 * default to its values (`fill`, `[0, 1]`).
 */
export function preparationOf(input: { size: number; blurSigma: number; resize?: 'crop' | 'fill'; range?: [0, 255] | [0, 1] }): ImagePreparation {
  return { inputSize: input.size, blurSigma: input.blurSigma, resize: input.resize ?? 'fill', range: input.range ?? [0, 1] };
}

/** The values of byte images as float32 in the preparation's range (`n * per`). */
export function pixelsToFloats(batch: Uint8Array[], per: number, range: ImagePreparation['range']): Float32Array {
  const input = new Float32Array(batch.length * per);
  const scale = range[1] === 255 ? 1 : 1 / 255;
  batch.forEach((p, i) => {
    const off = i * per;
    if (scale === 1) input.set(p, off);
    else for (let k = 0; k < per; k++) input[off + k] = p[k]! * scale;
  });
  return input;
}

/**
 * A backbone's input from decoded pixels: alpha flattened onto black, sRGB, then resized
 * to the square input size with sharp's Lanczos-3 kernel, as the backbone says: `crop`
 * (short side to the input size, centre crop: how ImageNet networks are evaluated, and
 * measured better for these backbones than stretching, see docs) or `fill` (the whole
 * frame stretched, no crop), then the backbone's Gaussian blur when it has one.
 * The network normalises the bytes itself.
 *
 * @returns `size * size * 3` bytes, RGB, row-major (HWC).
 * @throws InvalidInputError when the pixels cannot be resized.
 */
export async function inputFromPixels(px: DecodedPixels, spec: InputSpec = EFFICIENTNET_LITE0): Promise<Buffer> {
  const size = spec.inputSize;
  try {
    let s = sharp(px.data, { raw: { width: px.width, height: px.height, channels: px.channels as 1 | 2 | 3 | 4 } })
      .flatten({ background: { r: 0, g: 0, b: 0 } })
      .toColourspace('srgb')
      .resize(size, size, { fit: spec.resize === 'crop' ? 'cover' : 'fill', position: 'centre', kernel: 'lanczos3' });
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
 * @param spec the backbone (default EfficientNet-Lite0).
 * @returns `size * size * 3` bytes, RGB, row-major (HWC).
 * @throws InvalidInputError when sharp cannot decode the image.
 */
export async function decodeForBackbone(image: Buffer | Uint8Array, spec: InputSpec = EFFICIENTNET_LITE0): Promise<Buffer> {
  return inputFromPixels(await decodePixels(image), spec);
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

/** Raw outputs of one batch: `batch * dim` features and `batch * classes` logits. */
interface RawBatch {
  features: Float32Array;
  logits: Float32Array;
}

/** Shared batching of both runtimes around one raw forward pass. */
abstract class BaseExtractor implements FeatureExtractor {
  abstract readonly id: EmbeddingModelId;
  abstract readonly backend: string;
  constructor(
    readonly spec: BackboneSpec,
    readonly fallbacks: string[],
  ) {}

  /** Raw features and logits of one batch. */
  protected abstract forward(batch: Uint8Array[]): Promise<RawBatch>;

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

  async featuresAndLogits(pixels: Uint8Array[], options?: EmbedOptions): Promise<Required<Features>> {
    const batchSize = checkBatchSize(options?.batchSize);
    const expected = this.spec.inputSize * this.spec.inputSize * 3;
    pixels.forEach((p, i) => {
      if (p.length !== expected) throw new InvalidInputError(`pixels ${i}: ${p.length} bytes, expected ${expected}`);
    });
    const { dim, classes } = this.spec;
    const vectors = new Float32Array(pixels.length * dim);
    const logits = new Float32Array(pixels.length * classes);
    for (let start = 0; start < pixels.length; start += batchSize) {
      const r = await this.forward(pixels.slice(start, start + batchSize));
      vectors.set(r.features, start * dim);
      logits.set(r.logits, start * classes);
    }
    return { vectors, norms: normaliseRows(vectors, dim), logits };
  }

  async features(pixels: Uint8Array[], options?: EmbedOptions): Promise<Features> {
    const { vectors, norms } = await this.featuresAndLogits(pixels, options);
    return { vectors, norms };
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

  protected async forward(batch: Uint8Array[]): Promise<RawBatch> {
    const s = this.spec.inputSize;
    const per = s * s * 3;
    const bytes = new Uint8Array(batch.length * per);
    batch.forEach((p, i) => bytes.set(p, i * per));
    // The graph takes the bytes and normalises them itself (see infra/efficientnet_to_onnx.py).
    const input = new this.ort.Tensor('uint8', bytes, [batch.length, s, s, 3]);
    const out = await this.session.run({ pixels: input });
    const f = out['features']!;
    const l = out['logits']!;
    try {
      return { features: new Float32Array(f.data as Float32Array), logits: new Float32Array(l.data as Float32Array) };
    } finally {
      f.dispose();
      l.dispose();
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
    private readonly run: (batch: Uint8Array[]) => Promise<RawBatch>,
  ) {
    super(spec, fallbacks);
  }

  protected forward(batch: Uint8Array[]): Promise<RawBatch> {
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
 * `auto`: ONNX Runtime on the converted file (its provenance names the pinned
 * checkpoint, its bytes the recorded sha256), on CUDA when its provider is installed;
 * when ONNX Runtime does not start, the same weights rebuilt in tfjs (the reasons are in
 * `fallbacks` and logged). One warm-up batch runs before the extractor is returned.
 *
 * @throws MissingArtifactError when the backbone's converted files are not there (run infra/install.sh).
 * @throws InvalidInputError when the runtime asked for explicitly cannot start.
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

async function load(spec: BackboneSpec, opts: BackboneOptions & { logger?: Logger }): Promise<FeatureExtractor> {
  const started = Date.now();
  const files = requireBackboneFiles(spec, modelsDirsOf(opts));
  const base = { name: spec.name, weightsSha256: spec.source.pthSha256, inputSize: spec.inputSize, dim: spec.dim, preprocess: preprocessTag(spec) };
  const fallbacks: string[] = [];
  let extractor: FeatureExtractor | undefined;
  if (opts.runtime !== 'tfjs') {
    try {
      const ort = require('onnxruntime-node') as typeof Ort;
      const s = await openOnnxSession(files, { provider: opts.ortProvider, threads: opts.ortThreads });
      if (s.fallback) fallbacks.push(s.fallback);
      const id: EmbeddingModelId = { ...base, runtime: 'onnxruntime', onnxSha256: files.provenance.onnxSha256 };
      extractor = new OrtExtractor(spec, fallbacks, id, `onnxruntime/${s.provider}`, ort, s.session);
    } catch (err) {
      const why = `onnxruntime: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
      if (opts.runtime === 'onnxruntime') throw new InvalidInputError(`${spec.name}: ${why}`, { cause: err });
      fallbacks.push(why);
    }
  }
  if (!extractor) {
    const pref: TfBackendPreference = opts.tfBackend === 'auto' ? 'wasm' : opts.tfBackend;
    const { tf, backend } = await initTensorflow(pref, opts.logger).catch(() => initTensorflow('cpu', opts.logger));
    const net = buildTfjsBackbone(tf, readBackboneWeights(spec, files));
    const id: EmbeddingModelId = { ...base, runtime: 'tfjs' };
    extractor = new TfjsExtractor(spec, fallbacks, id, `tfjs/${backend}`, (batch) => tfjsFeaturesAndLogits(tf, net, batch));
  }
  await extractor.features([new Uint8Array(spec.inputSize * spec.inputSize * 3)]); // warm-up
  opts.logger?.info(
    { backbone: spec.name, model: embeddingModelKey(extractor.id), backend: extractor.backend, fallbacks, ms: Date.now() - started },
    `${spec.name} loaded on ${extractor.backend}${fallbacks.length ? ` (passed over: ${fallbacks.join('; ')})` : ''}`,
  );
  return extractor;
}
