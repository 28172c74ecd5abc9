import { Context } from '@temporalio/activity';
import {
  embeddingModelKey,
  MissingArtifactError,
  vectorPackBase,
  type EmbedSummary,
  type ExtractStepManifest,
  type StepResult,
  type VectorIndex,
  type VideoFramesManifest,
  type VideoVectors,
} from '../../contracts';
import { getEmbeddingThread } from '../../lib/backbone/thread';
import type { ActivityDeps } from '../../lib/deps';
import { sha256Hex } from '../../lib/hash';
import { readStepManifest, runStep } from '../../lib/runs';
import { float32Bytes } from '../../lib/vectors';

/**
 * Key (without extension) of a video's packed vectors ({@link vectorPackBase}); the
 * frames hash is the first 24 hex of sha256 over the frames' content hashes, one per
 * line, in order, so the key changes when the model or any frame's bytes change.
 */
export function vectorPackKey(modelKey: string, videoSha256: string, frameSha256: readonly string[]): string {
  return vectorPackBase(modelKey, videoSha256, sha256Hex(frameSha256.join('\n')).slice(0, 24));
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
            if (!fm) throw new MissingArtifactError(store.uri(v.manifestKey), `frames manifest of video ${v.videoId}`);
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
                  if (!b) throw new MissingArtifactError(store.uri(k), 'frame (listed in its frames manifest)');
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
            await store.put(entry.vectorsKey, float32Bytes(out));
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
