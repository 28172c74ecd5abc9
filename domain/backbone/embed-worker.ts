/**
 * The code that runs inside the embedding worker thread (see {@link EmbeddingThread} in
 * `./thread.ts`): backbones are loaded once per thread, frames are decoded, hashed and
 * embedded here, off the worker process's event loop (an ONNX Runtime forward pass is a
 * synchronous native call). Not imported by the main thread.
 */
import { createHash } from 'node:crypto';
import { InvalidInputError, type EmbeddingModelId } from '../../contracts';
import { mulberry32 } from '../../lib/rng';
import { tensorflowIfStarted } from '../../lib/tf';
import { cutmix } from './cutmix';
import {
  BACKBONES,
  decodePixels,
  inputFromPixels,
  loadFeatureExtractor,
  type BackboneName,
  type BackboneOptions,
  type BackboneSpec,
  type FeatureExtractor,
} from './model';

/** What {@link init} answers. */
export interface ThreadModelInfo {
  id: EmbeddingModelId;
  /** `onnxruntime/cpu`, `onnxruntime/cuda`, `tfjs/wasm`, ... */
  backend: string;
  /** Why a preferred runtime or provider was passed over. */
  fallbacks: string[];
}

/** What {@link embedFrames} answers. */
export interface ThreadEmbedResult {
  /** `images.length * dim` floats, row i the unit-length embedding of image i. */
  vectors: Float32Array;
  /** `images.length` norms of the raw features. */
  norms: Float32Array;
  /** Pixel hash of each image (see {@link pixelHash}). */
  pixelHashes: string[];
  /** Forward passes actually run: images with a pixel hash not seen earlier in the call. */
  computed: number;
}

/** What {@link cutmixFrames} answers. */
export interface ThreadCutmixResult {
  /** Unit rows of the mixed images. */
  vectors: Float32Array;
  /** Norms of their raw features. */
  norms: Float32Array;
  /** Fraction of each mixed image that comes from its first frame. */
  lambdas: Float32Array;
}

let options: BackboneOptions | undefined;

function model(backbone: BackboneName): Promise<FeatureExtractor> {
  const spec = BACKBONES[backbone];
  if (!spec) throw new InvalidInputError(`unknown backbone ${JSON.stringify(backbone)}`);
  return loadFeatureExtractor(spec, options ?? {});
}

/** Load (once) a backbone with the given options (the first call's options stay for the thread's life). */
export async function init(backbone: BackboneName, opts: BackboneOptions): Promise<ThreadModelInfo> {
  options ??= opts;
  const m = await model(backbone);
  return { id: m.id, backend: m.backend, fallbacks: m.fallbacks };
}

/**
 * Pixel hash of an encoded image: hex sha256 of `<width>x<height>x<channels>:` followed by
 * the decoded 8-bit pixels (EXIF orientation applied). Equal hashes mean identical pixels,
 * whatever the container or encoder settings.
 * @throws InvalidInputError when the image cannot be decoded.
 */
export async function pixelHash(image: Uint8Array): Promise<string> {
  return (await prepare(image, undefined)).hash;
}

/**
 * Decode once: the pixel hash from the decoded frame, then (when `spec` is given) the
 * backbone's input from those same pixels ({@link inputFromPixels}: what
 * `decodeForBackbone` does).
 */
async function prepare(image: Uint8Array, spec: BackboneSpec | undefined): Promise<{ hash: string; pixels?: Buffer }> {
  const px = await decodePixels(image);
  const hash = createHash('sha256').update(`${px.width}x${px.height}x${px.channels}:`).update(px.data).digest('hex');
  return spec ? { hash, pixels: await inputFromPixels(px, spec) } : { hash };
}

/**
 * Hash then embed encoded images with a backbone; an image whose pixels equal an earlier
 * one's in the same call reuses its row (no forward pass). Every image is queued for
 * decoding at once, so later images decode (on libuv's threads) while earlier batches
 * run through the network.
 *
 * @throws InvalidInputError naming the image when one cannot be decoded.
 */
export async function embedFrames(backbone: BackboneName, images: Uint8Array[], batchSize: number): Promise<ThreadEmbedResult> {
  const m = await model(backbone);
  const dim = m.spec.dim;
  const prepared = images.map((img, i) =>
    prepare(img, m.spec).catch((err: unknown) => {
      throw new InvalidInputError(`image ${i}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }),
  );
  // Failures surface in order below; keep the others from being reported as unhandled.
  prepared.forEach((p) => p.catch(() => undefined));
  const vectors = new Float32Array(images.length * dim);
  const norms = new Float32Array(images.length);
  const pixelHashes: string[] = new Array<string>(images.length);
  const firstOf = new Map<string, number>();
  let computed = 0;
  for (let start = 0; start < images.length; start += batchSize) {
    const batch = await Promise.all(prepared.slice(start, start + batchSize));
    const todo: number[] = [];
    batch.forEach((p, j) => {
      const i = start + j;
      pixelHashes[i] = p.hash;
      if (!firstOf.has(p.hash)) {
        firstOf.set(p.hash, i);
        todo.push(i);
      }
    });
    if (todo.length) {
      const f = await m.features(
        todo.map((i) => batch[i - start]!.pixels!),
        { batchSize: todo.length },
      );
      todo.forEach((i, r) => {
        vectors.set(f.vectors.subarray(r * dim, (r + 1) * dim), i * dim);
        norms[i] = f.norms[r]!;
      });
      computed += todo.length;
    }
    for (let j = 0; j < batch.length; j++) {
      const i = start + j;
      const first = firstOf.get(pixelHashes[i]!)!;
      if (first !== i) {
        vectors.copyWithin(i * dim, first * dim, (first + 1) * dim);
        norms[i] = norms[first]!;
      }
    }
  }
  return { vectors, norms, pixelHashes, computed };
}

/**
 * CutMix pairs of encoded frames and embed the mixed images with a backbone: decode both
 * at the backbone's input size, paste a box of the second into the first ({@link cutmix},
 * its three draws from `mulberry32(seeds[i])`), then forward passes. Everything
 * CPU-bound happens here, off the activity's event loop.
 *
 * @param pairs `[a, b]` encoded images per sample.
 * @param seeds one 32-bit seed per sample (the same seed gives the same box).
 * @throws InvalidInputError naming the sample when an image cannot be decoded.
 */
export async function cutmixFrames(
  backbone: BackboneName,
  pairs: Array<[Uint8Array, Uint8Array]>,
  seeds: number[],
  batchSize: number,
): Promise<ThreadCutmixResult> {
  const m = await model(backbone);
  const size = m.spec.inputSize;
  const lambdas = new Float32Array(pairs.length);
  const mixed = await Promise.all(
    pairs.map(async ([a, b], i) => {
      const decode = (img: Uint8Array) =>
        prepare(img, m.spec).then(
          (p) => p.pixels!,
          (err: unknown) => {
            throw new InvalidInputError(`cutmix sample ${i}: ${err instanceof Error ? err.message : String(err)}`);
          },
        );
      const [da, db] = await Promise.all([decode(a), decode(b)]);
      const r = cutmix({ data: da, width: size, height: size }, { data: db, width: size, height: size }, mulberry32(seeds[i]!));
      lambdas[i] = r.lambda;
      return r.data;
    }),
  );
  const f = await m.features(mixed, { batchSize });
  return { vectors: f.vectors, norms: f.norms, lambdas };
}

/**
 * Decode encoded images as the backbone's input and run the whole network: pooled
 * features and the ImageNet logits (the out-of-scope gate's and the tests' view of what
 * the backbone itself recognises).
 *
 * @returns unit rows, norms and `images.length * 1000` logits.
 * @throws InvalidInputError naming the image when one cannot be decoded.
 */
export async function logitsFrames(
  backbone: BackboneName,
  images: Uint8Array[],
  batchSize: number,
): Promise<{ vectors: Float32Array; norms: Float32Array; logits: Float32Array }> {
  const m = await model(backbone);
  const pixels = await Promise.all(
    images.map((img, i) =>
      prepare(img, m.spec).then(
        (p) => p.pixels!,
        (err: unknown) => {
          throw new InvalidInputError(`image ${i}: ${err instanceof Error ? err.message : String(err)}`);
        },
      ),
    ),
  );
  return m.featuresAndLogits(pixels, { batchSize });
}

/** Live tensors in the thread's TensorFlow.js engine (0 when tfjs was never started in the thread). */
export async function numTensors(): Promise<number> {
  const rt = tensorflowIfStarted();
  return rt ? (await rt).tf.memory().numTensors : 0;
}
