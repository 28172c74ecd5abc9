import type { ActivityDeps } from '../common/deps';
import { readStepManifest, runStep, type StepResult } from '../storage/runs';
import { loadRunVectors, type EmbedStepManifest } from '../embeddings/activities';
import type { ExtractStepManifest, VideoFramesManifest } from '../frames/activities';
import { leaderCluster } from './cluster';

/** Summary of the dedupe step. */
export interface DedupeSummary {
  frames: number;
  clusters: number;
  /** Frames that are near-duplicates of a representative (frames - clusters). */
  duplicates: number;
  threshold: number;
  /** Clusters whose members come from more than one video. */
  crossVideoClusters: number;
}

/** The dedupe step's manifest payload: every frame is in exactly one cluster. */
export interface DedupeStepManifest {
  summary: DedupeSummary;
  clusters: Array<{ representative: string; videoId: string; members: string[]; videos: string[] }>;
}

/** Near-duplicate removal activities (CPU video task queue). */
export function createDedupeActivities(deps: ActivityDeps) {
  return {
    /**
     * Step 4, dedupe: cluster the run's frames on embedding cosine similarity and keep
     * one representative per cluster, the sharpest frame (ties: brighter); the other
     * members stay in the manifest.
     */
    async dedupeFrames(input: { workflowId: string; threshold: number }): Promise<StepResult<DedupeSummary>> {
      return runStep(deps, input.workflowId, 'dedupe', async () => {
        const embed = await readStepManifest<EmbedStepManifest>(deps.store, input.workflowId, 'embed');
        const extract = await readStepManifest<ExtractStepManifest>(deps.store, input.workflowId, 'extract');
        const { vectors, dim, keys, videoIds } = await loadRunVectors(deps, embed);
        const quality = new Map<string, { sharpness: number; brightness: number }>();
        for (const v of extract.videos) {
          const fm = await deps.store.getJson<VideoFramesManifest>(v.manifestKey);
          for (const f of fm?.frames ?? []) quality.set(f.key, f);
        }
        const order = keys.map((_, i) => i);
        const q = (i: number) => quality.get(keys[i]!) ?? { sharpness: 0, brightness: 0 };
        order.sort((a, b) => q(b).sharpness - q(a).sharpness || q(b).brightness - q(a).brightness || a - b);
        const clusters = leaderCluster(vectors, dim, input.threshold, order).map((c) => {
          const vids = [...new Set(c.members.map((m) => videoIds[m]!))];
          return { representative: keys[c.representative]!, videoId: videoIds[c.representative]!, members: c.members.map((m) => keys[m]!), videos: vids };
        });
        const summary: DedupeSummary = {
          frames: keys.length,
          clusters: clusters.length,
          duplicates: keys.length - clusters.length,
          threshold: input.threshold,
          crossVideoClusters: clusters.filter((c) => c.videos.length > 1).length,
        };
        return { summary, extra: { clusters } };
      });
    },
  };
}
