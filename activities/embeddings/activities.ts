import { Context } from '@temporalio/activity';
import type { ActivityDeps } from '../common/deps';
import { sha256Hex } from '../storage/s3';
import { readStepManifest, runStep, type StepResult } from '../storage/runs';
import type { ExtractStepManifest, VideoFramesManifest } from '../frames/activities';
import { embeddingModelKey, type EmbeddingModelId } from './model';
import { getEmbeddingThread } from './thread';

/** Index of one packed vector file: which frame each row is, and the identity of the model that made them. */
export interface VectorIndex {
  model: EmbeddingModelId;
  dim: number;
  frameKeys: string[];
  /** sha256 of each frame's encoded bytes (the content the vectors were computed from). */
  frameSha256: string[];
  /** Pixel hash of each frame (sha256 of its decoded pixels): equal hashes are exact duplicates. */
  pixelHashes: string[];
}

/**
 * Key (without extension) of a video's packed vectors: `embeddings/<model key>/<video sha256>/<frames hash>`,
 * where the frames hash is the first 24 hex of sha256 over the frames' content hashes (one per line, in order).
 * So the key changes when the model, its weights, its input size or any frame's bytes change.
 */
export function vectorPackKey(modelKey: string, videoSha256: string, frameSha256: readonly string[]): string {
  return `embeddings/${modelKey}/${videoSha256}/${sha256Hex(frameSha256.join('\n')).slice(0, 24)}`;
}

/** Where one video's vectors are: `<vectorPackKey>.f32` (+ `.json` index). */
export interface VideoVectors {
  videoId: string;
  vectorsKey: string;
  indexKey: string;
  count: number;
}

/** Summary of the embed step. */
export interface EmbedSummary {
  frames: number;
  /** Frames whose vectors this run computed (not found in the cache). */
  computed: number;
  /** Frames whose vectors came from the cache (an earlier run over the same frame bytes and model). */
  cached: number;
  /** Forward passes run: computed frames less the exact (pixel-identical) duplicates within a video. */
  forwardPasses: number;
  dim: number;
  model: string;
  backend: string;
}

/** The embed step's manifest payload. */
export interface EmbedStepManifest {
  summary: EmbedSummary;
  model: EmbeddingModelId;
  videos: VideoVectors[];
}

/** Decode a packed little-endian float32 buffer. */
export function toFloat32(buf: Buffer): Float32Array {
  const copy = new Uint8Array(buf.byteLength);
  copy.set(buf);
  return new Float32Array(copy.buffer);
}

/**
 * Read every vector of an embed step into one matrix.
 *
 * @returns `vectors` (n * dim, row-major), `keys` (frame key of each row), `videoIds`,
 *   `pixelHashes` (pixel hash of each row's frame).
 * @throws Error when a pack named by the manifest is missing (the embed step must be rerun).
 */
export async function loadRunVectors(
  deps: Pick<ActivityDeps, 'store'>,
  manifest: EmbedStepManifest,
): Promise<{ vectors: Float32Array; dim: number; keys: string[]; videoIds: string[]; pixelHashes: string[]; rowOf: Map<string, number> }> {
  const dim = manifest.summary.dim;
  const parts: Float32Array[] = [];
  const keys: string[] = [];
  const videoIds: string[] = [];
  const pixelHashes: string[] = [];
  for (const v of manifest.videos) {
    const [buf, idx] = await Promise.all([deps.store.get(v.vectorsKey), deps.store.getJson<VectorIndex>(v.indexKey)]);
    if (!buf || !idx) throw new Error(`vectors missing for video ${v.videoId}: ${v.vectorsKey}`);
    parts.push(toFloat32(buf));
    keys.push(...idx.frameKeys);
    videoIds.push(...idx.frameKeys.map(() => v.videoId));
    pixelHashes.push(...idx.pixelHashes);
  }
  const vectors = new Float32Array(keys.length * dim);
  let off = 0;
  for (const p of parts) {
    vectors.set(p, off);
    off += p.length;
  }
  return { vectors, dim, keys, videoIds, pixelHashes, rowOf: new Map(keys.map((k, i) => [k, i])) };
}

/** Embedding activities (CPU video task queue). */
export function createEmbeddingActivities(deps: ActivityDeps) {
  const { store } = deps;
  return {
    /**
     * Step 3, embed: an L2-normalised embedding per extracted frame (MobileNetV2 from
     * nsfwjs, head removed), packed per video and cached in S3 under a key made of the
     * model id and the frames' content hashes ({@link vectorPackKey}), so a later run over
     * the same frames computes nothing.
     *
     * The model runs on a worker thread (loaded once per worker process); frames are
     * fetched from S3 one batch ahead while the thread computes, and pixel-identical
     * frames of a video are embedded once. Heartbeats every batch and every 5 s.
     */
    async embedFrames(input: { workflowId: string; batchSize?: number }): Promise<StepResult<EmbedSummary>> {
      return runStep(deps, input.workflowId, 'embed', async () => {
        const ctx = Context.current();
        const extract = await readStepManifest<ExtractStepManifest>(store, input.workflowId, 'extract');
        const thread = getEmbeddingThread(deps.config.REELSET_TF_BACKEND, deps.logger);
        let progress: Record<string, unknown> = { phase: 'loading model' };
        const beat = setInterval(() => ctx.heartbeat(progress), 5000);
        try {
          const { id: model, backend } = await thread.model();
          const mkey = embeddingModelKey(model);
          const videos: VideoVectors[] = [];
          let computed = 0;
          let cached = 0;
          let forwardPasses = 0;
          const batch = input.batchSize ?? 16;
          for (const v of extract.videos) {
            const fm = await store.getJson<VideoFramesManifest>(v.manifestKey);
            if (!fm) throw new Error(`frames manifest missing: ${v.manifestKey}`);
            const base = vectorPackKey(mkey, fm.videoSha256, fm.frames.map((f) => f.sha256));
            const entry: VideoVectors = { videoId: v.videoId, vectorsKey: `${base}.f32`, indexKey: `${base}.json`, count: fm.frames.length };
            const wanted = fm.frames.map((f) => f.key);
            const idx = await store.getJson<VectorIndex>(entry.indexKey);
            if (idx && idx.frameKeys.length === wanted.length && (await store.head(entry.vectorsKey)) === wanted.length * model.dim * 4) {
              cached += wanted.length;
              videos.push(entry);
              continue;
            }
            const out = new Float32Array(wanted.length * model.dim);
            const pixelHashes: string[] = [];
            const fetchBatch = (start: number) =>
              Promise.all(
                wanted.slice(start, start + batch).map(async (k) => {
                  const b = await store.get(k);
                  if (!b) throw new Error(`frame missing in S3: ${k}`);
                  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
                }),
              );
            let next = wanted.length ? fetchBatch(0) : undefined;
            for (let i = 0; next; i += batch) {
              const images = await next;
              next = i + batch < wanted.length ? fetchBatch(i + batch) : undefined;
              const r = await thread.embed(images, batch);
              out.set(r.vectors, i * model.dim);
              pixelHashes.push(...r.pixelHashes);
              forwardPasses += r.computed;
              progress = { videoId: v.videoId, done: i + images.length, of: wanted.length };
              ctx.heartbeat(progress);
            }
            await store.put(entry.vectorsKey, Buffer.from(out.buffer, out.byteOffset, out.byteLength));
            await store.putJson(entry.indexKey, {
              model,
              dim: model.dim,
              frameKeys: wanted,
              frameSha256: fm.frames.map((f) => f.sha256),
              pixelHashes,
            } satisfies VectorIndex);
            computed += wanted.length;
            videos.push(entry);
          }
          const summary: EmbedSummary = { frames: computed + cached, computed, cached, forwardPasses, dim: model.dim, model: mkey, backend };
          return { summary, extra: { model, videos } };
        } finally {
          clearInterval(beat);
        }
      });
    },
  };
}
