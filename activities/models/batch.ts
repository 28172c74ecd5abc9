/**
 * Batch predict: a published student classifies a selection of the catalog; every frame's
 * prediction is recorded as a `model` label in `frame_labels` (with its probability as the
 * confidence) and every video's aggregated result goes to the run's predictions file.
 */
import { Context } from '@temporalio/activity';
import {
  batchPredictionsKey,
  failureOf,
  parseModelRef,
  RegistryError,
  type BatchPredictResult,
  type BatchVideoPrediction,
  type VideoFramesManifest,
} from '../../contracts';
import { aggregateVideo, loadClassifier, readClassifierS3 } from '../../lib/classifier';
import type { ActivityDeps } from '../../lib/deps';
import { repos } from '../../lib/repositories';
import { applyScope, lumaStd, type ScopeFile } from '../../lib/scope';
import { resolveModel } from './registry';

/** The batch's model and videos, as `planBatchPredict` resolved them. */
export interface BatchPlan {
  model: { name: string; version: number; stage: string; studentPrefix: string };
  videoIds: string[];
}

/** Batch predict activities: `planBatchPredict` (video queue), `predictVideos` (training queue: it loads the model). */
export function createBatchPredictActivities(deps: ActivityDeps) {
  const { pool, store } = deps;
  return {
    /**
     * Resolve the model reference (the version is fixed here, so a promotion during the run
     * changes nothing), pick the videos (the given ids, else the catalog's videos of
     * `catalogLabel` or its descendants, else every video; sorted, at most `maxVideos`), and
     * record the run (`runs`, kind `batch-predict`).
     *
     * @throws RegistryError when the model does not exist; InvalidInputError... never: unknown video ids are reported by extraction.
     */
    async planBatchPredict(input: { workflowId: string; model: string; videoIds: string[]; catalogLabel?: string; maxVideos: number }): Promise<BatchPlan> {
      const m = await resolveModel(pool, parseModelRef(input.model));
      if (!m.studentPrefix) throw new RegistryError(`${m.name}@${m.version} has no student (image) model`);
      let ids = input.videoIds;
      if (ids.length === 0) {
        ids = await repos.videos.idsOfLabelTree(pool, input.catalogLabel ?? null, input.maxVideos);
      }
      ids = [...new Set(ids)].slice(0, input.maxVideos);
      await repos.runs.recordBatchPredict(pool, input.workflowId, m.name, { ...input, model: `${m.name}@${m.version}` });
      return { model: { name: m.name, version: m.version, stage: m.stage, studentPrefix: m.studentPrefix }, videoIds: ids };
    },

    /**
     * Classify the frames of each video (its frames manifest from the extraction), apply the
     * out-of-scope gate (scope.json when the model has one, and flat frames), aggregate each
     * video by the mean probability of its in-scope frames, upsert one `model` label per
     * in-scope frame (label = argmax, confidence = its probability; re-running updates the
     * same rows), and write the predictions file. Heartbeats after every video.
     */
    async predictVideos(input: {
      workflowId: string;
      plan: BatchPlan;
      videos: Array<{ videoId: string; manifestKey: string | null; error?: { type: string; message: string } }>;
    }): Promise<BatchPredictResult> {
      const ctx = Context.current();
      const { model } = input.plan;
      const files = await readClassifierS3(store, model.studentPrefix);
      const scope = (await store.getJson<ScopeFile>(`${model.studentPrefix}/scope.json`)) ?? null;
      const clf = await loadClassifier(files, deps.config.REELSET_TF_BACKEND);
      const labels = files.artifact.labels;
      const k = labels.length;
      const out: Array<BatchVideoPrediction & { frameResults: Array<{ key: string; timestampS: number; label: string; probabilities: number[] }> }> = [];
      let frameLabels = 0;
      try {
        for (const [n, v] of input.videos.entries()) {
          ctx.heartbeat({ done: n, of: input.videos.length, videoId: v.videoId });
          if (!v.manifestKey) {
            out.push({
              videoId: v.videoId,
              label: null,
              probabilities: {},
              frames: 0,
              unknownFrames: 0,
              ...(v.error ? { error: v.error } : {}),
              frameResults: [],
            });
            continue;
          }
          try {
            const manifest = await store.getJson<VideoFramesManifest>(v.manifestKey);
            if (!manifest) throw new RegistryError(`frames manifest ${store.uri(v.manifestKey)} is missing`);
            const frames = manifest.frames;
            const images = await Promise.all(frames.map(async (f) => (await store.get(f.key)) ?? Buffer.alloc(0)));
            const p = await clf.predict(images);
            const gate = applyScope(scope, p.features, p.featureDim, await Promise.all(images.map((b) => lumaStd(b))), p.imagenetLogits);
            const agg = aggregateVideo(p.probs, labels, gate.inScope);
            const frameResults = frames.map((f, i) => {
              const row = Array.from(p.probs.subarray(i * k, (i + 1) * k));
              const best = row.indexOf(Math.max(...row));
              return { key: f.key, timestampS: f.timestampS, label: gate.inScope[i] ? labels[best]! : 'unknown', probabilities: row };
            });
            const rows = frameResults.filter((f) => f.label !== 'unknown');
            if (rows.length) {
              // Only frames with a row in `frames` (a manifest reused from S3 may list frames whose rows were deleted).
              frameLabels += await repos.frameLabels.upsertModelLabels(
                pool,
                input.workflowId,
                rows.map((r) => ({ frameKey: r.key, label: r.label, confidence: Math.max(...r.probabilities) })),
              );
            }
            out.push({
              videoId: v.videoId,
              label: agg.label,
              probabilities: agg.probabilities,
              frames: agg.frames,
              unknownFrames: agg.unknownFrames,
              frameResults,
            });
          } catch (err) {
            out.push({ videoId: v.videoId, label: null, probabilities: {}, frames: 0, unknownFrames: 0, error: failureOf(err), frameResults: [] });
          }
        }
      } finally {
        clf.dispose();
      }
      const key = batchPredictionsKey(input.workflowId);
      await store.putJson(key, {
        model: `${model.name}@${model.version}`,
        labels,
        aggregation: 'mean-probability',
        scope: scope ? { threshold: scope.threshold } : null,
        videos: out,
      });
      const perLabel: Record<string, number> = {};
      for (const v of out) if (v.label) perLabel[v.label] = (perLabel[v.label] ?? 0) + 1;
      return {
        workflowId: input.workflowId,
        model: { name: model.name, version: model.version, stage: model.stage },
        videos: out.length,
        failed: out.filter((v) => v.label === null).length,
        perLabel,
        frameLabels,
        predictionsKey: key,
      };
    },
  };
}
