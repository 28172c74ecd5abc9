import {
  datasetManifestKey,
  DatasetError,
  MissingArtifactError,
  type DatasetManifest,
  type DatasetSummary,
  type DedupeStepManifest,
  type EmbedStepManifest,
  type LabelStepManifest,
  type StepResult,
  type VectorIndex,
  type VectorRef,
} from '../../contracts';
import type { ActivityDeps } from '../../lib/deps';
import { readStepManifest, runStep } from '../../lib/runs';
import { allocateVersion, countsOf, taxonomyPaths, videosOf } from './common';
import { splitByVideo } from './split';

/** Dataset activities (CPU video task queue). */
export function createDatasetActivities(deps: ActivityDeps) {
  const { store, pool } = deps;
  return {
    /**
     * Step 6, dataset: a new dataset version from the labelled frames, split by video.
     *
     * The version is allocated in Postgres once per workflow run (a retried attempt
     * gets the same version), then the manifest is written to S3.
     *
     * @throws DatasetError (not retried) when fewer than two labels have frames.
     */
    async buildDataset(input: { workflowId: string; validationFraction: number; seed: number }): Promise<StepResult<DatasetSummary>> {
      return runStep(deps, input.workflowId, 'dataset', async () => {
        const label = await readStepManifest<LabelStepManifest>(store, input.workflowId, 'label');
        const dedupe = await readStepManifest<DedupeStepManifest>(store, input.workflowId, 'dedupe');
        const embed = await readStepManifest<EmbedStepManifest>(store, input.workflowId, 'embed');
        const name = label.labels[0]!;

        const vectorOf = new Map<string, VectorRef>();
        const videoOfKey = new Map<string, string>();
        for (const v of embed.videos) {
          const idx = await store.getJson<VectorIndex>(v.indexKey);
          if (!idx) throw new MissingArtifactError(store.uri(v.indexKey), `vector index of video ${v.videoId} (written by the embed step)`);
          idx.frameKeys.forEach((k, row) => {
            vectorOf.set(k, { key: v.vectorsKey, row });
            videoOfKey.set(k, v.videoId);
          });
        }
        const videoLabel = new Map<string, string>();
        for (const f of label.frames) videoLabel.set(f.videoId, f.label);
        const present = new Set(videoLabel.values());
        if (present.size < 2) {
          throw new DatasetError(
            `dataset "${name}" needs frames of at least two labels, found only: ${[...present].join(', ') || 'none'} ` +
              `(add negative videos with maxNegativeVideos, or catalog more videos)`,
          );
        }
        const { splitOf, labelsWithoutValidation } = splitByVideo(
          [...videoLabel.entries()].map(([videoId, l]) => ({ videoId, label: l })),
          input.validationFraction,
          input.seed,
        );
        const warnings = labelsWithoutValidation.map((l) => `label "${l}" has a single video: it is in train only, so it has no validation result`);
        const ref = (key: string): VectorRef => {
          const r = vectorOf.get(key);
          if (!r) throw new MissingArtifactError(key, 'embedding of a labelled frame (not in any vector index of the embed step)');
          return r;
        };
        const frames = label.frames.map((f) => ({ key: f.key, videoId: f.videoId, label: f.label, split: splitOf.get(f.videoId)!, vector: ref(f.key) }));
        const reps = new Set(label.frames.map((f) => f.key));
        const unlabeledTrain = dedupe.clusters
          .flatMap((c) => c.members)
          .filter((k) => !reps.has(k) && splitOf.get(videoOfKey.get(k) ?? '') === 'train')
          .map((k) => ({ key: k, videoId: videoOfKey.get(k)!, vector: ref(k) }));

        const labels = label.labels;
        const counts = countsOf(labels, frames);
        const videos = videosOf(splitOf);
        const taxonomy = await taxonomyPaths(pool, labels);
        const version = await allocateVersion(pool, name, input.workflowId, counts);
        const manifestKey = datasetManifestKey(name, version);
        const manifest: DatasetManifest = {
          name, version, workflowId: input.workflowId, createdAt: new Date().toISOString(), labels, taxonomy,
          embedding: embed.model, frames, unlabeled: unlabeledTrain, videos, counts, warnings,
        };
        await store.putJson(manifestKey, manifest);
        const summary: DatasetSummary = { name, version, datasetKey: manifestKey, labels, counts, unlabeled: unlabeledTrain.length, warnings };
        return { summary };
      });
    },
  };
}
