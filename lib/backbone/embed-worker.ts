/**
 * The code that runs inside the embedding worker thread (see {@link EmbeddingThread} in
 * `./thread.ts`): the model is loaded once per thread, frames are decoded, hashed and
 * embedded here, off the worker process's event loop. Not imported by the main thread.
 */
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { InvalidInputError, type EmbeddingModelId } from '../../contracts';
import { mulberry32 } from '../rng';
import { initTensorflow, type TfBackendPreference } from '../tf';
import { cutmix } from './cutmix';
import { decodeForEmbedding, loadEmbeddingModel } from './model';

/** What {@link init} answers. */
export interface ThreadModelInfo {
  id: EmbeddingModelId;
  backend: string;
}

/** What {@link embedFrames} answers. */
export interface ThreadEmbedResult {
  /** `images.length * dim` floats, row i the unit-length embedding of image i. */
  vectors: Float32Array;
  /** Pixel hash of each image (see {@link pixelHash}). */
  pixelHashes: string[];
  /** Forward passes actually run: images with a pixel hash not seen earlier in the call. */
  computed: number;
}

/** Load (once) the model on the chosen backend. */
export async function init(backend: TfBackendPreference): Promise<ThreadModelInfo> {
  const model = await loadEmbeddingModel({ backend });
  return { id: model.id, backend: model.backend };
}

/**
 * Pixel hash of an encoded image: hex sha256 of `<width>x<height>x<channels>:` followed by
 * the decoded 8-bit pixels (EXIF orientation applied). Equal hashes mean identical pixels,
 * whatever the container or encoder settings.
 * @throws InvalidInputError when the image cannot be decoded.
 */
export async function pixelHash(image: Uint8Array): Promise<string> {
  try {
    const { data, info } = await sharp(image, { failOn: 'error' }).rotate().raw().toBuffer({ resolveWithObject: true });
    return createHash('sha256').update(`${info.width}x${info.height}x${info.channels}:`).update(data).digest('hex');
  } catch (err) {
    throw new InvalidInputError(`cannot decode image: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/**
 * Hash then embed encoded images; an image whose pixels equal an earlier one's in the
 * same call reuses its row (no forward pass).
 */
export async function embedFrames(images: Uint8Array[], batchSize: number): Promise<ThreadEmbedResult> {
  const model = await loadEmbeddingModel();
  const pixelHashes = await Promise.all(
    images.map((img, i) =>
      pixelHash(img).catch((err: unknown) => {
        throw new InvalidInputError(`image ${i}: ${err instanceof Error ? err.message : String(err)}`);
      }),
    ),
  );
  const firstOf = new Map<string, number>();
  const unique: number[] = [];
  pixelHashes.forEach((h, i) => {
    if (!firstOf.has(h)) {
      firstOf.set(h, i);
      unique.push(i);
    }
  });
  const dim = model.id.dim;
  const rows = await model.embed(
    unique.map((i) => Buffer.from(images[i]!.buffer, images[i]!.byteOffset, images[i]!.byteLength)),
    { batchSize },
  );
  const vectors = new Float32Array(images.length * dim);
  const rowOfUnique = new Map(unique.map((img, r) => [img, r]));
  pixelHashes.forEach((h, i) => {
    const r = rowOfUnique.get(firstOf.get(h)!)!;
    vectors.set(rows.subarray(r * dim, (r + 1) * dim), i * dim);
  });
  return { vectors, pixelHashes, computed: unique.length };
}

/** What {@link cutmixFrames} answers. */
export interface ThreadCutmixResult {
  /** `pairs.length * dim` floats: row i the unit-length embedding of mixed image i. */
  vectors: Float32Array;
  /** Fraction of each mixed image that comes from its first image (the CutMix lambda). */
  lambdas: Float32Array;
}

/**
 * CutMix pairs of encoded frames and embed the mixed images: decode both at the model's
 * input size ({@link decodeForEmbedding}), paste a box of the second into the first
 * ({@link cutmix}, its three draws from `mulberry32(seeds[i])`), then one forward pass
 * per batch. Everything CPU-bound happens here, off the activity's event loop.
 *
 * @param pairs `[a, b]` encoded images per sample.
 * @param seeds one 32-bit seed per sample (the same seed gives the same box).
 * @throws InvalidInputError naming the sample when an image cannot be decoded.
 */
export async function cutmixFrames(pairs: Array<[Uint8Array, Uint8Array]>, seeds: number[], batchSize: number): Promise<ThreadCutmixResult> {
  const model = await loadEmbeddingModel();
  const size = model.id.inputSize;
  const lambdas = new Float32Array(pairs.length);
  const mixed = await Promise.all(
    pairs.map(async ([a, b], i) => {
      const decode = (img: Uint8Array) =>
        decodeForEmbedding(Buffer.from(img.buffer, img.byteOffset, img.byteLength), size).catch((err: unknown) => {
          throw new InvalidInputError(`cutmix sample ${i}: ${err instanceof Error ? err.message : String(err)}`);
        });
      const [da, db] = await Promise.all([decode(a), decode(b)]);
      const r = cutmix({ data: da, width: size, height: size }, { data: db, width: size, height: size }, mulberry32(seeds[i]!));
      lambdas[i] = r.lambda;
      return r.data;
    }),
  );
  const vectors = await model.embedRaw(mixed, { batchSize });
  return { vectors, lambdas };
}

/** Live tensors in the thread's TensorFlow.js engine (to check for leaks). */
export async function numTensors(): Promise<number> {
  const { tf } = await initTensorflow();
  return tf.memory().numTensors;
}
