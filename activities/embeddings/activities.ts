import { Context } from '@temporalio/activity';
import type { ActivityDeps } from '../common/deps';
import { readStepManifest, runStep, type StepResult } from '../storage/runs';
import type { ExtractStepManifest, VideoFramesManifest } from '../frames/activities';
import { embeddingModelKey, loadEmbeddingModel, type EmbeddingModelId } from './model';

/** Index of one packed vector file: which frame each row is. */
export interface VectorIndex {
  model: EmbeddingModelId;
  dim: number;
  frameKeys: string[];
}

/** Where one video's vectors are: `embeddings/<model key>/<video sha256>/<params hash>.f32` (+ `.json` index). */
export interface VideoVectors {
  videoId: string;
  vectorsKey: string;
  indexKey: string;
  count: number;
}

/** Summary of the embed step. */
export interface EmbedSummary {
  frames: number;
  computed: number;
  cached: number;
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
 * @returns `vectors` (n * dim, row-major), `keys` (frame key of each row), `videoIds`.
 */
export async function loadRunVectors(
  deps: Pick<ActivityDeps, 'store'>,
  manifest: EmbedStepManifest,
): Promise<{ vectors: Float32Array; dim: number; keys: string[]; videoIds: string[]; rowOf: Map<string, number> }> {
  const dim = manifest.summary.dim;
  const parts: Float32Array[] = [];
  const keys: string[] = [];
  const videoIds: string[] = [];
  for (const v of manifest.videos) {
    const [buf, idx] = await Promise.all([deps.store.get(v.vectorsKey), deps.store.getJson<VectorIndex>(v.indexKey)]);
    if (!buf || !idx) throw new Error(`vectors missing for video ${v.videoId}: ${v.vectorsKey}`);
    parts.push(toFloat32(buf));
    keys.push(...idx.frameKeys);
    videoIds.push(...idx.frameKeys.map(() => v.videoId));
  }
  const vectors = new Float32Array(keys.length * dim);
  let off = 0;
  for (const p of parts) {
    vectors.set(p, off);
    off += p.length;
  }
  return { vectors, dim, keys, videoIds, rowOf: new Map(keys.map((k, i) => [k, i])) };
}

/** Embedding activities (CPU video task queue). */
export function createEmbeddingActivities(deps: ActivityDeps) {
  const { store } = deps;
  return {
    /**
     * Step 3, embed: an L2-normalised embedding per extracted frame (MobileNetV2 from
     * nsfwjs, head removed), packed per video and cached in S3 by model and frames, so a
     * later run over the same frames computes nothing. Heartbeats per batch.
     */
    async embedFrames(input: { workflowId: string; batchSize?: number }): Promise<StepResult<EmbedSummary>> {
      return runStep(deps, input.workflowId, 'embed', async () => {
        const ctx = Context.current();
        const extract = await readStepManifest<ExtractStepManifest>(store, input.workflowId, 'extract');
        const model = await loadEmbeddingModel({ backend: deps.config.REELSET_TF_BACKEND, logger: deps.logger });
        const mkey = embeddingModelKey(model.id);
        const videos: VideoVectors[] = [];
        let computed = 0;
        let cached = 0;
        for (const v of extract.videos) {
          const fm = await store.getJson<VideoFramesManifest>(v.manifestKey);
          if (!fm) throw new Error(`frames manifest missing: ${v.manifestKey}`);
          const base = `embeddings/${mkey}/${fm.videoSha256}/${fm.paramsHash}`;
          const entry: VideoVectors = { videoId: v.videoId, vectorsKey: `${base}.f32`, indexKey: `${base}.json`, count: fm.frames.length };
          const idx = await store.getJson<VectorIndex>(entry.indexKey);
          const wanted = fm.frames.map((f) => f.key);
          if (idx && idx.frameKeys.length === wanted.length && idx.frameKeys.every((k, i) => k === wanted[i]) && (await store.head(entry.vectorsKey)) !== undefined) {
            cached += wanted.length;
            videos.push(entry);
            continue;
          }
          const out = new Float32Array(wanted.length * model.id.dim);
          const batch = input.batchSize ?? 16;
          for (let i = 0; i < wanted.length; i += batch) {
            const keys = wanted.slice(i, i + batch);
            const images = await Promise.all(
              keys.map(async (k) => {
                const b = await store.get(k);
                if (!b) throw new Error(`frame missing in S3: ${k}`);
                return b;
              }),
            );
            out.set(await model.embed(images), i * model.id.dim);
            ctx.heartbeat({ videoId: v.videoId, done: i + keys.length, of: wanted.length });
          }
          await store.put(entry.vectorsKey, Buffer.from(out.buffer, out.byteOffset, out.byteLength));
          await store.putJson(entry.indexKey, { model: model.id, dim: model.id.dim, frameKeys: wanted } satisfies VectorIndex);
          computed += wanted.length;
          videos.push(entry);
        }
        const summary: EmbedSummary = {
          frames: computed + cached,
          computed,
          cached,
          dim: model.id.dim,
          model: mkey,
          backend: model.backend,
        };
        return { summary, extra: { model: model.id, videos } };
      });
    },
  };
}
