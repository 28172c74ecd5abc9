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
import { withTransaction } from '../../lib/db';
import type { ActivityDeps } from '../../lib/deps';
import { readStepManifest, runStep } from '../../lib/runs';
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
        // Videos of the label's fixed evaluation set are never trained on (nor validated on: they are the test set).
        const reserved = new Set(
          (await pool.query<{ video_id: string }>('SELECT video_id FROM eval_set_videos WHERE label = $1', [name])).rows.map((r) => r.video_id),
        );
        const labelled = label.frames.filter((f) => !reserved.has(f.videoId));
        const leftOut = label.frames.length - labelled.length;
        const videoLabel = new Map<string, string>();
        for (const f of labelled) videoLabel.set(f.videoId, f.label);
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
        if (leftOut > 0) warnings.push(`${leftOut} frames of ${new Set(label.frames.filter((f) => reserved.has(f.videoId)).map((f) => f.videoId)).size} videos of the label's evaluation set left out`);
        const ref = (key: string): VectorRef => {
          const r = vectorOf.get(key);
          if (!r) throw new MissingArtifactError(key, 'embedding of a labelled frame (not in any vector index of the embed step)');
          return r;
        };
        const frames = labelled.map((f) => ({ key: f.key, videoId: f.videoId, label: f.label, split: splitOf.get(f.videoId)!, vector: ref(f.key) }));
        const reps = new Set(label.frames.map((f) => f.key));
        const unlabeledTrain = dedupe.clusters
          .flatMap((c) => c.members)
          .filter((k) => !reps.has(k) && splitOf.get(videoOfKey.get(k) ?? '') === 'train')
          .map((k) => ({ key: k, videoId: videoOfKey.get(k)!, vector: ref(k) }));

        const labels = label.labels;
        const counts: DatasetManifest['counts'] = { train: {}, validation: {} };
        for (const s of ['train', 'validation'] as const) for (const l of labels) counts[s][l] = 0;
        for (const f of frames) counts[f.split][f.label] = (counts[f.split][f.label] ?? 0) + 1;
        const videos: DatasetManifest['videos'] = { train: [], validation: [] };
        for (const [id, s] of [...splitOf.entries()].sort()) videos[s].push(id);

        const taxonomy: Record<string, string[]> = {};
        for (const l of labels) {
          const res = await pool.query<{ name: string }>(
            `WITH RECURSIVE a(name, parent, depth) AS (SELECT name, parent, 0 FROM labels WHERE name = $1
               UNION SELECT l.name, l.parent, a.depth + 1 FROM labels l JOIN a ON l.name = a.parent WHERE a.depth < 32)
             SELECT name FROM a ORDER BY depth DESC`,
            [l],
          );
          taxonomy[l] = res.rows.length ? res.rows.map((r) => r.name) : [l];
        }

        const version = await withTransaction(pool, async (c) => {
          await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`dataset:${name}`]);
          const existing = await c.query<{ version: number }>('SELECT version FROM datasets WHERE workflow_id = $1', [input.workflowId]);
          if (existing.rows[0]) return existing.rows[0].version;
          const next = await c.query<{ v: number }>('SELECT coalesce(max(version), 0) + 1 AS v FROM datasets WHERE name = $1', [name]);
          const v = next.rows[0]!.v;
          await c.query('INSERT INTO datasets (name, version, workflow_id, manifest_key, counts) VALUES ($1, $2, $3, $4, $5)', [
            name, v, input.workflowId, datasetManifestKey(name, v), JSON.stringify(counts),
          ]);
          return v;
        });
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
