/**
 * Frames embedded into packed, content-addressed vector files: what the embed step does
 * with its backbone (`REELSET_EMBED_BACKBONE`, EfficientNet-Lite0) for every extracted
 * frame, and the train step with each of the teacher's backbones for the dataset's frames
 * (the teacher's features). One pack per video and backbone:
 * `embeddings/<model key>/<video sha256>/<frames hash>.f32` (rows) and `.json` (a
 * {@link VectorIndex}), the frames hash being over the frames' content hashes, so the
 * same frames and model never compute twice and a changed frame or model gets a new key.
 */
import { embeddingModelKey, MissingArtifactError, vectorPackBase, type EmbeddingModelId, type VectorIndex, type VideoVectors } from '../../contracts';
import { sha256Hex } from '../../lib/hash';
import type { ObjectStore } from '../../lib/s3';
import { float32Bytes } from '../../lib/vectors';
import type { BackboneName } from './model';
import type { ThreadEmbedResult } from './embed-worker';
import type { EmbeddingThread } from './thread';

/**
 * The frames hash of a video's pack key (`vectorPackBase` in contracts/keys.ts): the
 * first 24 hex of sha256 over the frames' content hashes, one per line, in order, so the
 * key changes when the model or any frame's bytes change.
 */
export function framesHash(frameSha256: readonly string[]): string {
  return sha256Hex(frameSha256.join('\n')).slice(0, 24);
}

/** The frames of one video to embed, in pack order. */
export interface PackRequest {
  videoId: string;
  videoSha256: string;
  frames: Array<{ key: string; sha256: string }>;
}

/** What {@link embedPacks} made. */
export interface PacksResult {
  model: EmbeddingModelId;
  /** Where the extractor ran (`onnxruntime/cpu`, `tfjs/wasm`, ...). */
  backend: string;
  /** One pack per request, in request order. */
  videos: VideoVectors[];
  /** Frames whose rows this call computed. */
  computed: number;
  /** Frames found in existing packs. */
  cached: number;
  /** Forward passes run (computed less pixel-identical frames). */
  forwardPasses: number;
}

/** Progress reported after every batch. */
export interface PackProgress {
  videoId: string;
  done: number;
  of: number;
  framesDone: number;
  framesTotal: number;
}

/** Options of {@link embedPacks}. */
export interface EmbedPacksOptions {
  /** Frames per forward pass (default 16). */
  batchSize?: number;
  /** Called after each batch (heartbeat from here). */
  onProgress?: (p: PackProgress) => void;
}

/** Whether a pack is complete: its index lists the wanted frames with norms and its rows file has the right size. */
async function packComplete(store: ObjectStore, entry: VideoVectors, wanted: number, dim: number): Promise<boolean> {
  const idx = await store.getJson<VectorIndex>(entry.indexKey);
  return (
    !!idx &&
    idx.frameKeys.length === wanted &&
    Array.isArray(idx.norms) &&
    idx.norms.length === wanted &&
    (await store.head(entry.vectorsKey)) === wanted * dim * 4
  );
}

/**
 * Embed each video's frames with a backbone on the embedding thread into its pack,
 * reusing packs that exist. Frames are fetched from S3 one batch ahead while the thread
 * computes. The rows file is written before the index, so a pack with an index is whole.
 *
 * @throws MissingArtifactError naming a frame listed but not in the bucket.
 * @throws InvalidInputError naming the image when one cannot be decoded.
 */
export async function embedPacks(
  store: ObjectStore,
  thread: EmbeddingThread,
  backbone: BackboneName,
  requests: PackRequest[],
  opts: EmbedPacksOptions = {},
): Promise<PacksResult> {
  const batch = opts.batchSize ?? 16;
  const { id: model, backend } = await thread.model(backbone);
  const mkey = embeddingModelKey(model);
  const framesTotal = requests.reduce((n, r) => n + r.frames.length, 0);
  let framesDone = 0;
  let computed = 0;
  let cached = 0;
  let forwardPasses = 0;
  const videos: VideoVectors[] = [];
  for (const req of requests) {
    const base = vectorPackBase(mkey, req.videoSha256, framesHash(req.frames.map((f) => f.sha256)));
    const entry: VideoVectors = { videoId: req.videoId, vectorsKey: `${base}.f32`, indexKey: `${base}.json`, count: req.frames.length };
    videos.push(entry);
    const wanted = req.frames.map((f) => f.key);
    if (await packComplete(store, entry, wanted.length, model.dim)) {
      cached += wanted.length;
      framesDone += wanted.length;
      continue;
    }
    const out = new Float32Array(wanted.length * model.dim);
    const norms = new Float32Array(wanted.length);
    const pixelHashes: string[] = [];
    const fetchBatch = (start: number) =>
      Promise.all(
        wanted.slice(start, start + batch).map(async (k) => {
          const b = await store.get(k);
          if (!b) throw new MissingArtifactError(store.uri(k), 'frame (listed in its frames manifest)');
          return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
        }),
      );
    // Two thread calls in flight: the thread decodes the next batch (on libuv's threads)
    // while the current one runs through the network; the batch after is fetched meanwhile.
    const inFlight: Array<{ start: number; result: Promise<ThreadEmbedResult> }> = [];
    const consume = async () => {
      const { start, result } = inFlight.shift()!;
      const r = await result;
      out.set(r.vectors, start * model.dim);
      norms.set(r.norms, start);
      pixelHashes.push(...r.pixelHashes);
      forwardPasses += r.computed;
      framesDone += r.pixelHashes.length;
      opts.onProgress?.({ videoId: req.videoId, done: start + r.pixelHashes.length, of: wanted.length, framesDone, framesTotal });
    };
    let next = wanted.length ? fetchBatch(0) : undefined;
    for (let i = 0; next; i += batch) {
      const images = await next;
      next = i + batch < wanted.length ? fetchBatch(i + batch) : undefined;
      const result = thread.embed(images, batch, backbone);
      result.catch(() => undefined); // awaited in order by consume()
      inFlight.push({ start: i, result });
      if (inFlight.length >= 2) await consume();
    }
    while (inFlight.length) await consume();
    await store.put(entry.vectorsKey, float32Bytes(out));
    await store.putJson(entry.indexKey, {
      model,
      dim: model.dim,
      videoSha256: req.videoSha256,
      frameKeys: wanted,
      frameSha256: req.frames.map((f) => f.sha256),
      pixelHashes,
      norms: Array.from(norms),
    } satisfies VectorIndex);
    computed += wanted.length;
  }
  return { model, backend, videos, computed, cached, forwardPasses };
}
