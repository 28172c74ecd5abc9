import {
  embeddingModelKey,
  MissingArtifactError,
  type EmbedSummary,
  type ExtractStepManifest,
  type StepResult,
  type VideoFramesManifest,
} from '../../contracts';
import { backboneOptionsFromConfig } from '../../domain/backbone/model';
import { embedPacks, type PackRequest } from '../../domain/backbone/packs';
import { getEmbeddingThread } from '../../domain/backbone/thread';
import type { ActivityDeps } from '../../lib/deps';
import { heartbeat } from '../../lib/heartbeat';
import { readStepManifest, runStep } from '../../lib/runs';

/** Embedding activities (CPU video task queue). */
export function createEmbeddingActivities(deps: ActivityDeps) {
  const { store } = deps;
  return {
    /**
     * Step 3, embed: an L2-normalised embedding per extracted frame (the pooled features of
     * `REELSET_EMBED_BACKBONE`, EfficientNet-Lite0 with ImageNet weights by default), with
     * its norm, packed per video and cached in S3 under a key
     * made of the model id (backbone, weights, preprocessing, runtime) and the frames'
     * content hashes (`vectorPackKey`), so a later run over the same frames computes
     * nothing and runtimes never share a cache.
     *
     * The model runs on a worker thread, on ONNX Runtime (else the same weights in tfjs
     * wasm; `REELSET_EMBED_RUNTIME`); frames are fetched from S3 one batch ahead
     * while the thread computes, and pixel-identical frames of a batch are embedded once.
     * Heartbeats every batch and every 5 s.
     */
    async embedFrames(input: { workflowId: string; batchSize?: number }): Promise<StepResult<EmbedSummary>> {
      return runStep(deps, input.workflowId, 'embed', async () => {
        const extract = await readStepManifest<ExtractStepManifest>(store, input.workflowId, 'extract');
        const thread = getEmbeddingThread(backboneOptionsFromConfig(deps.config), deps.logger);
        const hb = heartbeat<Record<string, unknown>>({ phase: 'loading model' }, 5000);
        try {
          const requests: PackRequest[] = [];
          for (const v of extract.videos) {
            const fm = await store.getJson<VideoFramesManifest>(v.manifestKey);
            if (!fm) throw new MissingArtifactError(store.uri(v.manifestKey), `frames manifest of video ${v.videoId}`);
            requests.push({ videoId: v.videoId, videoSha256: fm.videoSha256, frames: fm.frames.map((f) => ({ key: f.key, sha256: f.sha256 })) });
          }
          const r = await embedPacks(store, thread, deps.config.REELSET_EMBED_BACKBONE, requests, {
            batchSize: input.batchSize ?? 16,
            onProgress: (p) => hb.set({ ...p }),
          });
          const summary: EmbedSummary = {
            frames: r.computed + r.cached,
            computed: r.computed,
            cached: r.cached,
            forwardPasses: r.forwardPasses,
            dim: r.model.dim,
            model: embeddingModelKey(r.model),
            backend: r.backend,
          };
          return { summary, extra: { model: r.model, videos: r.videos } };
        } finally {
          hb.stop();
        }
      });
    },
  };
}
